import pytest

from talkqa.config import ExtractConfig, load_config, save_config
from talkqa.errors import UsageError


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = load_config(ExtractConfig, "configs/extract.yaml", ["preprocess.detect_every=3", "features.window_s=0.5"])
    assert cfg.preprocess.detect_every == 3 and cfg.features.window_s == 0.5
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(ExtractConfig, tmp_path / "c.yaml")
    assert again == cfg
    assert again.params_hash() == cfg.params_hash()
    assert load_config(ExtractConfig).params_hash() != cfg.params_hash()


def test_unknown_key_and_bad_value_are_clear(tmp_path):
    with pytest.raises(UsageError, match="preprocess.fpz"):
        load_config(ExtractConfig, None, ["preprocess.fpz=30"])
    with pytest.raises(UsageError, match="preprocess.fps"):
        load_config(ExtractConfig, None, ["preprocess.fps=-1"])
    with pytest.raises(UsageError, match="key.sub=value"):
        load_config(ExtractConfig, None, ["nonsense"])
    with pytest.raises(UsageError, match="not found"):
        load_config(ExtractConfig, tmp_path / "missing.yaml")


@pytest.mark.parametrize("cls_path, pattern", [
    ("talkqa.corpus.degrade:DegradeRecipe", "configs/degrade/*.yaml"),
    ("talkqa.stacking.config:StackingConfig", "configs/stacking/*.yaml"),
    ("talkqa.scoring.bundle_config:BundleConfig", "configs/train/*.yaml"),
])
def test_every_shipped_config_file_loads(cls_path, pattern):
    """A recipe or config the Makefile or the README points at must load with its typed config."""
    import importlib
    from pathlib import Path

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    files = sorted(Path(".").glob(pattern))
    assert files
    for path in files:
        load_config(cls, path)
