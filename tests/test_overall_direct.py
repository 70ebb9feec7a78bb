"""The label rule's direct overall part (scoring/overall_direct.py): what a stall costs overall beyond its
dimensions, fitted along a reading and added to the rule's overall under `overall_from: dimensions`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from talkqa.corpus.labels import Applied, pseudo_mos
from talkqa.scoring.bundle_config import OverallDirect, OverallRule
from talkqa.scoring.explanation import _overall_block
from talkqa.scoring.overall_direct import MIN_CLIPS, DirectPart, label_direct_parts, oof_direct_parts
from talkqa.scoring.overall_rule import overall_from_dimensions
from talkqa.tasks import DIMENSION_NAMES

HELD = OverallDirect(column="expression__held_longest_s", worse=1, start=0.5)


def _corpus(rng, n_clean=60, n_stall=40):
    """Clean clips hold up to 0.45 s and cost overall nothing directly; stalls hold 0.9-2 s and cost 0.3."""
    held = np.r_[rng.uniform(0.1, 0.45, n_clean), rng.uniform(0.9, 2.0, n_stall)]
    direct = np.r_[np.zeros(n_clean), np.full(n_stall, -0.3)]
    return held, direct


def test_the_part_is_what_clips_holding_as_long_cost_and_nothing_below_the_start():
    held, direct = _corpus(np.random.default_rng(0))
    part = DirectPart.fit(HELD, held, direct)
    assert part.clips == 40  # only the clips holding at least 0.5 s
    assert np.all(part([0.0, 0.3, 0.49]) == 0.0)  # clean-looking readings: none at all
    assert part([1.5])[0] == pytest.approx(-0.3)
    grid = np.linspace(0, 5, 200)
    values = part(grid)
    assert np.all(values <= 0) and np.all(np.diff(values) <= 1e-12)  # never a bonus, never less for a longer hold
    assert part([np.nan])[0] == 0.0  # a clip without the reading is charged nothing


def test_a_lower_is_worse_reading_and_too_few_clips():
    spec = OverallDirect(column="sync__confidence", worse=-1, start=0.2)
    conf = np.r_[np.linspace(0.25, 0.9, 50), np.linspace(0.0, 0.19, 30)]
    direct = np.r_[np.zeros(50), np.full(30, -0.2)]
    part = DirectPart.fit(spec, conf, direct)
    assert part([0.5])[0] == 0.0 and part([0.05])[0] == pytest.approx(-0.2)
    few = DirectPart.fit(HELD, np.full(MIN_CLIPS - 1, 1.5), np.full(MIN_CLIPS - 1, -0.3))
    assert few.curve is None and np.all(few([1.5, 3.0]) == 0.0)
    # a label above the rule (a positive "direct part") is never a bonus
    up = DirectPart.fit(HELD, np.full(30, 1.5), np.full(30, 0.4))
    assert np.all(up([1.5, 3.0]) == 0.0)


def test_it_survives_model_json():
    held, direct = _corpus(np.random.default_rng(1))
    part = DirectPart.fit(HELD, held, direct)
    again = DirectPart.from_dict(json.loads(json.dumps(part.to_dict())))
    grid = np.linspace(0, 4, 50)
    assert np.array_equal(part(grid), again(grid))


def test_the_labels_direct_part_is_the_stalls_own_overall_impact():
    rule = OverallRule()

    def y(applied):
        mos = pseudo_mos(applied, ndigits=None)
        return [mos[f"mos_{d}"] for d in DIMENSION_NAMES]

    stall = y([Applied("stall", 0.67, 0.1, "middle")])
    noise = y([Applied("noise_white", 0.5, 1.0, None)])
    parts = label_direct_parts(np.array([stall, noise, [np.nan] * len(DIMENSION_NAMES)]), rule)
    assert parts[0] < -0.05  # the rule charges a stall overall beyond its dimensions
    assert parts[1] == pytest.approx(0.0, abs=1e-9)  # white noise only through audio_quality
    assert np.isnan(parts[2])


def test_out_of_fold_parts_leave_each_speaker_out():
    class FakeLabels:
        def __init__(self, n):
            self.n = n

        def groups(self, ids):
            return np.array([f"spk{i % 10}" for i in range(len(ids))])

        def y(self, ids):
            return self._y

    class FakeData:
        def __init__(self, held):
            import pandas as pd

            self.handcrafted = pd.DataFrame({HELD.column: held}, index=[f"c{i}" for i in range(len(held))])
            self.scalars = pd.DataFrame(index=self.handcrafted.index)

    rng = np.random.default_rng(2)
    held, direct = _corpus(rng, 100, 100)
    clean = np.full(5, 4.5)
    rows = []
    for d in direct:  # labels whose overall sits `d` below the rule over their (clean) dimensions
        rows.append([*clean, 4.5 + d])
    labels = FakeLabels(len(held))
    labels._y = np.array(rows)
    ids = [f"c{i}" for i in range(len(held))]
    oof = oof_direct_parts(HELD, FakeData(held), labels, ids, OverallRule())
    assert np.all(oof[:100] == 0.0)
    assert oof[100:] == pytest.approx(-0.3, abs=1e-9)


def test_overall_takes_the_part_and_explains_it():
    rule = OverallRule()
    scores = {"lip_sync": 4.3, "expression": 3.3, "visual_quality": 4.4, "audio_quality": 4.5, "consistency": 4.4}
    without = overall_from_dimensions(scores, rule)
    assert overall_from_dimensions(scores, rule, -0.2) == pytest.approx(without - 0.2)
    assert overall_from_dimensions({d: 1.1 for d in scores}, rule, -0.5) == rule.floor  # never below the floor
    scores["overall"] = overall_from_dimensions(scores, rule, -0.2)
    block = _overall_block(scores, rule, ("expression__held_longest_s", -0.2, "longest held picture", "1.40 s"))
    direct = [f for f in block["factors"] if f["kind"] == "direct"]
    assert len(direct) == 1 and direct[0]["contribution"] == pytest.approx(-0.2)
    total = block["base_value"] + sum(f["contribution"] for f in block["factors"])
    assert total == pytest.approx(scores["overall"], abs=1e-3)
    assert "what the fault costs overall itself" in block["sentence"]
    assert "longest held picture: 1.40 s, charged to overall itself (-0.20)" in block["sentence"]
    # no part: the block is the dimensions' alone, as before
    plain = _overall_block({**scores, "overall": without}, rule, ("expression__held_longest_s", 0.0, "held", "0.2 s"))
    assert {f["kind"] for f in plain["factors"]} == {"dimension"} and "itself" not in plain["sentence"]


def test_the_scorer_adds_a_models_direct_part_and_the_card_shows_it(bundle, score_inputs, tmp_path):
    """The tiny model (tests/tiny_model.py) retrained with overall from the dimensions, then given a direct part
    that charges every clip 0.4 along a column each clip has: the score and the explanation take it."""
    from typer.testing import CliRunner

    from talkqa.scoring.cli import app
    from talkqa.scoring.model_card import model_card
    from talkqa.scoring.scorer import Scorer
    from tiny_model import TINY_TRAIN

    root = bundle.parent
    args = [a for part in ("a", "b") for a in ("--store", str(root / part / "store"), "--labels",
                                                 str(root / part / "manifest.csv"))]
    out = tmp_path / "model"
    res = CliRunner().invoke(app, ["train", *args, "--out", str(out), "--name", "tiny-direct", "-q", *TINY_TRAIN,
                                   "--set", "overall_from=dimensions", "--set", "combine=stacking",
                                   "--set", "overall_direct={column: expression__held_longest_s, worse: 1, start: 0.5}"])
    assert res.exit_code == 0, res.output
    assert "overall_direct: " in res.output and "no direct part" in res.output  # too few clips: said, not silent
    meta = json.loads((out / "model.json").read_text())
    assert meta["overall_direct"]["column"] == "expression__held_longest_s"  # fitted (8 clips: too few for a map)
    assert meta["overall_direct"]["curve"] is None and meta["val_metrics"]["overall"]["by_rule"]["n"] > 0

    charged = tmp_path / "charged"
    shutil.copytree(out, charged)
    meta["overall_direct"] = {"column": "expression__held_longest_s", "worse": 1, "start": -1.0, "clips": 30,
                              "curve": {"x": [-1.0, 100.0], "y": [0.4, 0.4]}}
    (charged / "model.json").write_text(json.dumps(meta))
    assert "plus the part the label rule charges a fault directly" in model_card(meta)

    clip = score_inputs["good"][0]
    plain, with_part = Scorer(out).score(clip, explain=True), Scorer(charged).score(clip, explain=True)
    assert plain.error is None and with_part.error is None
    assert {d: with_part.scores[d] for d in DIMENSION_NAMES if d != "overall"} == \
        {d: plain.scores[d] for d in DIMENSION_NAMES if d != "overall"}
    expected = overall_from_dimensions(plain.scores, OverallRule(), -0.4)
    assert with_part.scores["overall"] == pytest.approx(expected, abs=1e-4)
    assert with_part.scores["overall"] < plain.scores["overall"] or plain.scores["overall"] == 1.0
    factors = with_part.explanation["dimensions"]["overall"]["factors"]
    direct = [f for f in factors if f["kind"] == "direct"]
    assert len(direct) == 1 and direct[0]["contribution"] == pytest.approx(-0.4, abs=1e-4)
    assert direct[0]["text"].endswith("charged to overall itself") and direct[0]["name"] != ""
    assert "direct" not in [f["kind"] for f in plain.explanation["dimensions"]["overall"]["factors"]]
