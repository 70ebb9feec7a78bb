"""Contract tests over the registries: every registered component keeps the same promises."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from talkqa.experts import EXPERTS
from talkqa.features.families import FAMILIES
from talkqa.config import ExtractConfig
from talkqa.experts.embed import create_expert, expert_config_path


@pytest.mark.parametrize("name", FAMILIES.names())
def test_family_declares_its_names_up_front(name):
    fam = FAMILIES.create(name)
    assert fam.name == name and fam.description
    cols = fam.columns()
    assert cols and len(cols) == len(set(cols))
    assert all(c.startswith(f"{name}__") for c in cols + fam.window_columns())
    with pytest.raises(TypeError, match="unknown parameter"):
        FAMILIES.create(name, no_such_param=1)


@pytest.mark.parametrize("name", FAMILIES.names())
def test_family_names_every_feature_for_people(name):
    """An explained score reads a feature by the name and unit its family declares ("blinks per minute: 2.1")."""
    fam = FAMILIES.create(name)
    declared = (*fam.clip_feature_names(), *fam.window_feature_names())
    for feature in declared:
        label = fam.feature_label(feature)
        assert label is not None and label.name.strip(), f"{name}: declare a name for {feature!r} in feature_labels"
        assert "__" not in label.name and label.reading(0.5) and label.reading(float("nan")) == "not measured"
    stale = set(fam.feature_labels) - set(declared)
    assert not stale, f"{name}: labels for undeclared features {sorted(stale)}"


def test_default_extraction_uses_every_family():
    assert sorted(ExtractConfig().features.families) == FAMILIES.names()


@pytest.mark.parametrize("name", EXPERTS.names())
def test_expert_contract(name, tmp_path):
    # one name everywhere: registry key = config file stem = column prefix = Parquet stem
    path = expert_config_path(name)
    assert path.is_file(), f"configs/experts/{name}.yaml is missing"
    expert = create_expert(name)
    assert expert.name == name and expert.modality in ("audio", "visual", "audiovisual")
    assert expert.input_kind and expert.version
    assert isinstance(expert.dim, int) and expert.dim > 0  # known before any weights load
    assert all(c.startswith(f"{name}__") for c in expert.columns())
    # the YAML round-trips through the typed config
    again = expert.config_cls.model_validate(yaml.safe_load(path.read_text()))
    assert again == expert.config
    # shipped weights load and carry a model card
    assert (expert.weights_dir() / "model_card.md").is_file()
    expert.load()
    assert expert.sessions_ is not None or expert.model_ is not None


@pytest.mark.parametrize("name", EXPERTS.names())
def test_expert_embeds_what_it_declares_and_round_trips(name, talking_head_clip, tmp_path):
    expert = create_expert(name).load()
    tokens = expert.embed(talking_head_clip)
    n = len(tokens.t_start)
    assert n > 0 and tokens.emb.shape == (n, expert.dim) and tokens.emb.dtype == np.float32
    assert np.all(np.diff(tokens.t_start) > 0) and np.all(tokens.t_end > tokens.t_start)
    assert tokens.t_end[-1] <= talking_head_clip.duration_s + 1e-6
    assert set(tokens.scalars) == set(expert.scalar_names)  # exactly the declared scalars, before any run
    # save -> load into a new instance gives the same tokens (the checkpoint is the whole state)
    expert.save(tmp_path / "w")
    again = create_expert(name, overrides=[f"weights={tmp_path / 'w'}"]).load()
    assert again.weights_hash() != "" and (tmp_path / "w" / "model_card.md").is_file()
    np.testing.assert_allclose(again.embed(talking_head_clip).emb, tokens.emb, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", EXPERTS.names())
def test_expert_describes_itself_in_words(name):
    expert = create_expert(name)
    assert expert.title().strip()
    for value in (float("nan"), 0.5, -2.0):
        text = expert.describe({s: value for s in expert.scalar_names})
        assert isinstance(text, str) and text.strip() and "__" not in text
        assert np.isnan(value) or "nan" not in text.lower()


def test_every_expert_and_family_owns_its_column_prefix():
    assert not set(EXPERTS.names()) & set(FAMILIES.names())
    from talkqa.registry import Registry

    experts = Registry("expert", column_prefix=True)

    class Clash:
        name = "lipsync"  # a family's prefix

    with pytest.raises(ValueError, match="lipsync__"):
        experts.register(Clash)


def test_an_expert_without_its_yaml_is_an_error(tmp_path):
    from talkqa.errors import UsageError

    with pytest.raises(UsageError, match="no config file"):
        create_expert(EXPERTS.names()[0], config_dir=tmp_path)
