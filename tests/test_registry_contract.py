"""Contract tests over the registries: every registered component keeps the same promises."""

from __future__ import annotations

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
    assert expert.model_ is not None
