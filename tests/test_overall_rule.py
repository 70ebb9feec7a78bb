"""`overall_from: dimensions`: overall is the label rule applied to the clip's five dimension scores."""

from __future__ import annotations

import numpy as np
import pytest

from talkqa.corpus.artifacts import ARTIFACTS
from talkqa.corpus.labels import OVERALL_WEIGHTS, Applied, LabelRule, pseudo_mos
from talkqa.scoring.bundle_config import OverallRule
from talkqa.scoring.explanation import _overall_block
from talkqa.scoring.overall_rule import overall_from_dimensions, overall_parts
from talkqa.tasks import DIMENSION_NAMES


def test_the_rule_a_model_records_is_the_label_rule():
    label, saved = LabelRule(), OverallRule()
    assert (saved.clean, saved.floor, saved.secondary) == (label.clean, label.floor, label.secondary)
    assert saved.weights == dict(OVERALL_WEIGHTS)


@pytest.mark.parametrize("name", [n for n in ARTIFACTS.names() if not ARTIFACTS.get(n).impacts.get("overall")])
def test_it_gives_back_the_labels_overall_from_the_labels_dimensions(name):
    # for a fault without a direct overall impact, the labels' overall is a function of their dimensions
    # (as long as no dimension sits on the floor, where the label keeps the whole drop)
    cls = ARTIFACTS.get(name)
    compared = 0
    for mode in list(cls.responses) or [None]:
        mos = pseudo_mos([Applied(name, 0.5, 1.0, mode)], ndigits=None)
        dims = {d: mos[f"mos_{d}"] for d in DIMENSION_NAMES if d != "overall"}
        if min(dims.values()) <= LabelRule().floor:
            continue
        assert overall_from_dimensions(dims, OverallRule()) == pytest.approx(mos["mos_overall"], abs=1e-9)
        compared += 1
    assert compared, f"{name}: every mode floors a dimension at half severity; compare at a lower one"


def test_overall_follows_the_worst_dimension_and_part_of_the_others():
    rule = OverallRule()
    clean = {d: 4.5 for d in DIMENSION_NAMES}
    assert overall_from_dimensions(clean, rule) == 4.5
    scores = {**clean, "lip_sync": 2.5, "visual_quality": 3.5, "overall": 1.0}  # its own overall is ignored
    parts = overall_parts(scores, rule)
    assert parts["visual_quality"] == pytest.approx(-1.0)  # the worst weighted drop, whole
    assert parts["lip_sync"] == pytest.approx(-0.4 * 0.38 * 2.0)  # lip sync counts 0.38, and as a secondary drop
    assert overall_from_dimensions(scores, rule) == pytest.approx(4.5 - 1.0 - 0.4 * 0.76)
    # never rises when a dimension falls; a dimension without a score (no audio) takes no part
    for d in ("lip_sync", "expression", "visual_quality", "audio_quality", "consistency"):
        lower = {**scores, d: scores[d] - 0.3}
        assert overall_from_dimensions(lower, rule) < overall_from_dimensions(scores, rule)
    no_audio = {**scores, "lip_sync": None, "audio_quality": None, "consistency": np.nan}
    assert overall_from_dimensions(no_audio, rule) == pytest.approx(3.5)
    assert overall_from_dimensions({"overall": 3.0, "lip_sync": None}, rule) is None
    assert overall_from_dimensions({d: 1.0 for d in DIMENSION_NAMES}, rule) == 1.0  # the floor


def test_overall_is_explained_by_the_dimensions_exactly():
    rule = OverallRule()
    scores = {"lip_sync": 2.5, "expression": 4.1, "visual_quality": 3.5, "audio_quality": 4.5, "consistency": 4.4}
    scores["overall"] = overall_from_dimensions(scores, rule)
    block = _overall_block(scores, rule)
    assert block["combine"] == "dimensions" and block["base_value"] == 4.5
    assert block["factors"][0]["factor"] == "visual_quality"  # the largest part of the drop first
    total = block["base_value"] + sum(f["contribution"] for f in block["factors"])
    assert total == pytest.approx(scores["overall"], abs=1e-3)
    assert block["sentence"].startswith(f"overall {scores['overall']:.2f} (from the dimension scores")
    assert "visual_quality 3.50 (-1.00)" in block["sentence"]


def test_a_model_trained_with_overall_from_dimensions_scores_and_explains_it(bundle, score_inputs, tmp_path):
    import json

    from typer.testing import CliRunner

    from talkqa.scoring.cli import app
    from talkqa.scoring.scorer import Scorer
    from tiny_model import TINY_TRAIN

    root = bundle.parent  # the tiny model's two stores and label files (tests/tiny_model.py)
    args = [a for part in ("a", "b") for a in ("--store", str(root / part / "store"), "--labels",
                                                 str(root / part / "manifest.csv"))]
    out = tmp_path / "model"
    res = CliRunner().invoke(app, ["train", *args, "--out", str(out), "--name", "tiny-rule", "-q", *TINY_TRAIN,
                                   "--set", "overall_from=dimensions", "--set", "combine=stacking"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "model.json").read_text())
    assert meta["overall_from"] == "dimensions" and meta["overall_rule"]["weights"] == {"lip_sync": 0.38}
    assert meta["val_metrics"]["overall"]["by_rule"]["n"] > 0
    assert "overall (`overall_from: dimensions`): the label rule" in (out / "model_card.md").read_text()

    result = Scorer(out).score(score_inputs["good"][0], explain=True)
    assert result.error is None
    assert result.scores["overall"] == pytest.approx(overall_from_dimensions(result.scores, OverallRule()), abs=1e-4)
    block = result.explanation["dimensions"]["overall"]
    assert block["combine"] == "dimensions" and {f["kind"] for f in block["factors"]} == {"dimension"}
    total = block["base_value"] + sum(f["contribution"] for f in block["factors"])
    assert total == pytest.approx(block["stacking"], abs=1e-3)  # the rule before the scale's floor
    assert result.scores["overall"] == pytest.approx(min(5.0, max(1.0, total)), abs=1e-3)
