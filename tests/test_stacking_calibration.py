"""The stack keeps an expert's evidence on the way to the score: monotone constraints on named readings
and the centred isotonic calibration of its out-of-fold predictions (stacking/calibration.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from talkqa.stacking.calibration import MonotoneMap
from talkqa.stacking.config import StackingConfig
from talkqa.stacking.explain import clip_contributions
from talkqa.stacking.model import StackingRegressor
from talkqa.tasks import DIMENSION_NAMES

FAST = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 4}


def test_centred_isotonic_map_rises_strictly_and_stays_within_the_labels():
    rng = np.random.default_rng(0)
    pred = rng.normal(3.0, 0.4, 400)
    label = np.clip(3.0 + 2.5 * (pred - 3.0) + rng.normal(0, 0.4, 400), 1.0, 4.5)  # predictions pulled to the mean
    curve = MonotoneMap.fit(pred, label)
    assert curve.steps >= 10
    assert np.all(np.diff(curve.x) > 0) and np.all(np.diff(curve.y) > 0)
    grid = np.linspace(pred.min(), pred.max(), 200)
    assert np.all(np.diff(curve(grid)) >= 0) and np.all(np.diff(curve(grid[(grid > curve.x[0]) & (grid < curve.x[-1])])) > 0)
    # it undoes the pull: the calibrated spread is close to the labels', the raw one far below
    assert np.std(curve(pred)) > 1.8 * np.std(pred) and abs(np.std(curve(pred)) - np.std(label)) < 0.35
    assert label.min() <= curve(-10.0) <= curve(10.0) <= label.max()  # flat beyond the knots
    back = MonotoneMap.from_dict(curve.to_dict())
    assert np.array_equal(back(grid), curve(grid))


def test_pooling_merges_violators_and_equal_predictions():
    curve = MonotoneMap.fit([1, 2, 2, 3, 4], [1.0, 3.0, 2.0, 2.0, 5.0])
    # 2 (mean 2.5 of the two clips at x=2) and 3 (2.0) violate the order: pooled into one step at 2.33
    assert np.allclose(curve.x, [1.0, 7 / 3, 4.0]) and np.allclose(curve.y, [1.0, 7 / 3, 5.0])
    with pytest.raises(ValueError, match="at least 2"):
        MonotoneMap.fit([1.0], [2.0])
    assert MonotoneMap.fit([1, 2, 3], [3.0, 2.0, 1.0]).steps == 1  # no order at all: one step


@pytest.fixture(scope="module")
def synth(synthetic_stack):
    return synthetic_stack  # tests/conftest.py


@pytest.fixture(scope="module")
def constrained(synth):
    data, labels, ids = synth
    config = StackingConfig(n_trials=0, oof_folds=3, params=FAST, calibration="isotonic",
                            monotone={"lip_sync": {"sync__confidence": 1, "no_such__column": -1},
                                      "audio_quality": {"voice__quality_logit": 1}})
    return StackingRegressor(config).fit(data, labels, ids)


def test_monotone_readings_never_lower_the_score(synth, constrained):
    data, _, ids = synth
    assert constrained.monotone_ == {"lip_sync": {"sync__confidence": 1}, "audio_quality": {"voice__quality_logit": 1}}
    X = constrained.features(data, ids[:20])
    for dim, col in (("lip_sync", "sync__confidence"), ("audio_quality", "voice__quality_logit")):
        lo, hi = float(X[col].min()), float(X[col].max())
        for _, row in X.iterrows():
            sweep = np.repeat(row.to_numpy()[None], 25, 0)
            sweep[:, X.columns.get_loc(col)] = np.linspace(lo - 1, hi + 1, 25)
            level1 = constrained.models_[dim].predict(pd.DataFrame(sweep, columns=X.columns))
            assert np.all(np.diff(level1) >= -1e-9), f"{dim} falls as {col} rises"


def test_calibration_is_fitted_saved_and_explained(synth, constrained, tmp_path):
    data, labels, ids = synth
    assert set(constrained.calibration_) == set(DIMENSION_NAMES)
    pred = constrained.predict(data, ids)
    uncal = constrained._level2(constrained.level1(data, ids)).clip(1, 5)
    for dim in DIMENSION_NAMES:  # a rising map: the order of the clips is kept
        order = np.argsort(uncal[dim].to_numpy(), kind="stable")
        assert np.all(np.diff(pred[dim].to_numpy()[order]) >= -1e-9)
        assert pred[dim].std() >= 0.9 * uncal[dim].std()  # never pulled further toward the mean
    loaded = StackingRegressor.load(constrained.save(tmp_path / "stacking"))
    assert np.allclose(loaded.predict(data, ids).to_numpy(), pred.to_numpy())
    assert loaded.monotone_ == constrained.monotone_
    inside = [c for c in ids if all(1 < pred.loc[c, d] < 5 for d in DIMENSION_NAMES)][:3]  # not clipped to the scale
    assert inside
    for model in (constrained, loaded):  # base value + contributions = the calibrated prediction
        for cid in inside:
            for dim, c in clip_contributions(model, data, cid).items():
                assert c.prediction == pytest.approx(float(pred.loc[cid, dim]), abs=1e-6)


def test_monotone_rejects_unknown_dimensions():
    with pytest.raises(ValueError, match="unknown dimension"):
        StackingConfig(monotone={"lipsync": {"sync__confidence": 1}})
