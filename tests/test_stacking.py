"""LightGBM stacking on the synthetic store: speaker-disjoint OOF folds, tuning, SHAP additivity, plots."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from talkqa.labels import common_clips, load_labels
from talkqa.store_data import load_store
from synthetic_store import make_synthetic_store
from talkqa.stacking.config import StackingConfig
from talkqa.stacking.explain import explain, plot_explanation
from talkqa.stacking.model import StackingRegressor
from talkqa.tasks import DIMENSION_NAMES

FAST = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 4}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    paths = make_synthetic_store(tmp_path_factory.mktemp("synth"))
    data = load_store(paths.store)
    labels = load_labels(paths.manifest)
    ids = common_clips(data, labels)
    groups = labels.groups(ids)
    held = set(sorted(set(groups))[:3])
    train = [c for c, g in zip(ids, groups) if g not in held]
    test = [c for c, g in zip(ids, groups) if g in held]
    return data, labels, train, test


@pytest.fixture(scope="module")
def fitted(synth):
    data, labels, train, _ = synth
    return StackingRegressor(StackingConfig(n_trials=2, tuning_folds=2, oof_folds=3, params=FAST,
                                            pca_components=4)).fit(data, labels, train)


def test_oof_folds_are_speaker_disjoint(synth, fitted):
    data, labels, train, _ = synth
    speakers = labels.table.reindex(fitted.fold_of_.index)["speaker"]
    per_fold = speakers.groupby(fitted.fold_of_).apply(set)
    assert len(per_fold) == 3 and (fitted.fold_of_ >= 0).all()
    for a in per_fold.index:
        for b in per_fold.index:
            if a != b:
                assert not per_fold[a] & per_fold[b]
    assert np.isfinite(fitted.oof_[list(DIMENSION_NAMES)].to_numpy()).all()
    assert set(fitted.meta_) == set(DIMENSION_NAMES)


def test_tuning_and_held_out_accuracy(synth, fitted):
    data, labels, _, test = synth
    assert all(fitted.params_[d] and "num_leaves" in fitted.params_[d] for d in DIMENSION_NAMES)
    pred = fitted.predict(data, test)
    y = labels.y(test)
    assert stats.spearmanr(pred["lip_sync"], y[:, 0])[0] > 0.4
    assert pred.to_numpy().min() >= 1 and pred.to_numpy().max() <= 5


def test_shap_values_plus_base_reproduce_prediction(synth, fitted, tmp_path):
    data, _, _, test = synth
    exp = explain(fitted, data, test, "lip_sync")
    raw = fitted.models_["lip_sync"].predict(fitted.features(data, test))
    np.testing.assert_allclose(exp.values.sum(1) + exp.base_value, raw, atol=1e-6)
    groups = exp.group_importance(fitted.featurizer_.group_of_)
    assert {"sync [expert]", "voice [expert]", "audio [handcrafted]"} <= set(groups.index)
    assert groups.sum() == pytest.approx(exp.feature_importance().sum())
    paths = plot_explanation(exp, tmp_path, fitted.featurizer_.group_of_, waterfall_clips=2)
    files = [paths["bar"], paths["groups"], paths["beeswarm"], *paths["waterfall"]]
    assert len(files) == 5 and all(p.read_bytes()[:4] == b"\x89PNG" for p in files)


def test_handcrafted_only_uses_no_expert_column(synth):
    data, labels, train, test = synth
    model = StackingRegressor(StackingConfig(use_experts=False, include_scalars=False, n_trials=0, oof_folds=3,
                                             params=FAST, meta_learner="none")).fit(data, labels, train)
    assert set(model.featurizer_.columns_) == set(data.feature_columns)
    assert {kind for _, kind in model.featurizer_.group_of_.values()} == {"handcrafted"}
    assert model.predict(data, test).shape == (len(test), len(DIMENSION_NAMES))
