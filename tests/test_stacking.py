"""LightGBM stacking on the synthetic store: speaker-disjoint OOF folds, tuning, SHAP additivity, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from talkqa.stacking.config import StackingConfig
from talkqa.stacking.explain import explain, plot_explanation
from talkqa.stacking.model import StackingRegressor
from talkqa.tasks import DIMENSION_NAMES

FAST = {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 4}


@pytest.fixture(scope="module")
def synth(synthetic_stack):
    data, labels, ids = synthetic_stack  # tests/conftest.py
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


def test_feature_groups_keep_each_dimension_to_its_evidence(synth, tmp_path):
    from talkqa.errors import TalkqaError
    from talkqa.stacking.explain import clip_contributions

    data, labels, train, test = synth
    groups = {"lip_sync": ["sync", "lipsync"], "audio_quality": ["voice", "audio"]}
    # no meta-learner: with ridge, level 2 mixes every dimension's level-1 prediction, and with them their columns
    cfg = StackingConfig(n_trials=0, oof_folds=3, params=FAST, feature_groups=groups, meta_learner="none",
                         monotone={"lip_sync": {"sync__confidence": 1}})
    model = StackingRegressor(cfg).fit(data, labels, train)
    for dim in DIMENSION_NAMES:
        used = model.columns_of(dim)
        wanted = groups.get(dim)
        if wanted is None:  # not configured: every column
            assert used == model.featurizer_.columns_
        else:
            assert used and {c.split("__", 1)[0] for c in used} <= set(wanted) < {g for g, _ in model.featurizer_.group_of_.values()}
            assert model.models_[dim].booster_.feature_name() == used  # the trees never saw another column
    # a clip's contributions: zero outside the dimension's groups, and they still add up to the prediction
    predicted = model.predict(data, test[:2])
    per_dim = clip_contributions(model, data, test[0])
    outside = [c for c in model.featurizer_.columns_ if c not in set(model.columns_of("lip_sync"))]
    assert (per_dim["lip_sync"].contributions[outside] == 0).all()
    assert np.clip(per_dim["lip_sync"].prediction, 1, 5) == pytest.approx(predicted.loc[test[0], "lip_sync"], abs=1e-6)
    assert explain(model, data, test, "lip_sync").features.columns.tolist() == model.columns_of("lip_sync")
    # saved and loaded: the same columns per dimension, the same scores
    loaded = StackingRegressor.load(model.save(tmp_path / "grouped"))
    assert all(loaded.columns_of(d) == model.columns_of(d) for d in DIMENSION_NAMES)
    np.testing.assert_allclose(loaded.predict(data, test[:2]).to_numpy(), predicted.to_numpy(), atol=1e-9)
    # a group the model does not have is one clear error naming the dimension and the groups it has
    with pytest.raises(TalkqaError, match=r"feature_groups\.expression: none of nosuch .*sync"):
        StackingRegressor(StackingConfig(n_trials=0, oof_folds=3, params=FAST, meta_learner="none",
                                         feature_groups={"expression": ["nosuch"]})).fit(data, labels, train)
    with pytest.raises(ValueError, match="unknown dimension"):
        StackingConfig(feature_groups={"lipsync": ["sync"]})


def test_drop_columns_fits_a_dimension_as_a_model_without_the_column(synth, tmp_path):
    import dataclasses

    from talkqa.errors import TalkqaError

    data, labels, train, test = synth
    column = next(c for c in data.handcrafted.columns if c.startswith("expression__"))
    kept_out = ["lip_sync", "visual_quality"]
    cfg = dict(n_trials=2, tuning_folds=2, oof_folds=3, params=FAST)
    model = StackingRegressor(StackingConfig(**cfg, drop_columns={d: [column, "no__such_column"] for d in kept_out})
                              ).fit(data, labels, train)
    without = dataclasses.replace(data, handcrafted=data.handcrafted.drop(columns=[column]))
    alone = StackingRegressor(StackingConfig(**cfg)).fit(without, labels, train)
    X, X_without = model.features(data, test), alone.features(without, test)
    for dim in DIMENSION_NAMES:
        if dim in kept_out:  # tuned, fitted and predicted out of fold exactly as without the column
            assert model.columns_of(dim) == alone.featurizer_.columns_ and column not in model.columns_of(dim)
            assert model.params_[dim] == alone.params_[dim]
            assert model.models_[dim].booster_.model_to_string() == alone.models_[dim].booster_.model_to_string()
            np.testing.assert_allclose(model.oof_[dim], alone.oof_[dim], atol=1e-12)
            np.testing.assert_allclose(model.level1(data, test)[dim], alone.models_[dim].predict(X_without), atol=1e-12)
        else:  # the others still read it
            assert model.columns_of(dim) == model.featurizer_.columns_ and column in model.columns_of(dim)
    assert X.shape[1] == X_without.shape[1] + 1
    loaded = StackingRegressor.load(model.save(tmp_path / "dropped"))
    assert loaded.config.drop_columns == model.config.drop_columns
    np.testing.assert_allclose(loaded.predict(data, test), model.predict(data, test), atol=1e-9)
    with pytest.raises(TalkqaError, match=r"drop_columns\.lip_sync drops every column"):
        StackingRegressor(StackingConfig(n_trials=0, oof_folds=3, params=FAST, feature_groups={"lip_sync": ["sync"]},
                                         drop_columns={"lip_sync": [c for c in model.featurizer_.columns_
                                                                    if c.startswith("sync__")]})).fit(data, labels, train)
    with pytest.raises(ValueError, match="unknown dimension"):
        StackingConfig(drop_columns={"lipsync": [column]})


def test_mean_of_models_predicts_and_explains_the_members_mean():
    import lightgbm as lgb

    from talkqa.stacking.trees import LoadedTrees, mean_of_models

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = 2 * X[:, 0] + X[:, 1] ** 2 + 0.1 * rng.normal(size=200)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take each tree's default branch, as in the members
    members = [lgb.LGBMRegressor(n_estimators=20 + 10 * i, num_leaves=4 + i, subsample=0.8, subsample_freq=1,
                                 random_state=i, verbose=-1).fit(X, y) for i in range(3)]
    merged = mean_of_models([m.booster_.model_to_string() for m in members])
    mean = np.mean([m.predict(X) for m in members], axis=0)
    booster = lgb.Booster(model_str=merged)
    assert booster.num_trees() == sum(m.booster_.num_trees() for m in members)
    np.testing.assert_allclose(booster.predict(X), mean, atol=1e-9)
    np.testing.assert_allclose(LoadedTrees(merged).predict(X), mean, atol=1e-9)  # many rows, NumPy
    np.testing.assert_allclose(LoadedTrees(merged).predict(X[:1]), mean[:1], atol=1e-9)  # one clip, row walk
    contributions = np.mean([m.booster_.predict(X, pred_contrib=True) for m in members], axis=0)
    np.testing.assert_allclose(booster.predict(X, pred_contrib=True), contributions, atol=1e-9)  # SHAP: exact
    assert mean_of_models([merged]) == merged
    other = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X[:, :4], y).booster_.model_to_string()
    with pytest.raises(ValueError, match="feature names"):
        mean_of_models([merged, other])


def test_a_bag_of_two_seeds_is_the_mean_of_the_two_seeds_models(synth, tmp_path):
    from talkqa.errors import TalkqaError

    data, labels, train, test = synth
    cfg = dict(n_trials=2, tuning_folds=2, oof_folds=3, params=FAST, calibration="isotonic")
    single = [StackingRegressor(StackingConfig(seed=s, **cfg)).fit(data, labels, train) for s in (3, 4)]
    bag = StackingRegressor(StackingConfig(seed=3, bag=2, **cfg)).fit(data, labels, train)
    X = bag.features(data, test)
    dims = list(DIMENSION_NAMES)
    for dim in dims:  # each member tuned and fitted as the model of its seed alone
        assert bag.params_[dim] == [m.params_[dim] for m in single]
        np.testing.assert_allclose(bag.models_[dim].predict(X), np.mean([m.models_[dim].predict(X) for m in single], 0),
                                   atol=1e-9)
    np.testing.assert_allclose(bag.oof_[dims], (single[0].oof_[dims] + single[1].oof_[dims]) / 2, atol=1e-9)
    assert not np.allclose(single[0].oof_[dims], single[1].oof_[dims])  # the seeds differ: the bag is not trivial
    loaded = StackingRegressor.load(bag.save(tmp_path / "bag"))
    assert loaded.config.bag == 2
    np.testing.assert_allclose(loaded.predict(data, test), bag.predict(data, test), atol=1e-9)
    exp = explain(loaded, data, test, "lip_sync")  # SHAP on the merged trees still adds up to the prediction
    np.testing.assert_allclose(exp.values.sum(1) + exp.base_value, loaded.models_["lip_sync"].predict(X), atol=1e-6)
    # the same bag from the two models trained apart (saved and loaded, as benchmarks/bag_models.py reads them)
    apart = [StackingRegressor.load(m.save(tmp_path / f"seed{m.config.seed}")) for m in single]
    merged = StackingRegressor.bag_of(apart, data, labels, train)
    assert merged.config == bag.config
    np.testing.assert_allclose(merged.predict(data, test), bag.predict(data, test), atol=1e-9)
    np.testing.assert_allclose(merged.oof_scores(), bag.oof_scores(), atol=1e-9)
    with pytest.raises(TalkqaError, match="consecutive seeds"):
        StackingRegressor.bag_of(apart[::-1], data, labels, train)
    with pytest.raises(TalkqaError, match="not these"):
        StackingRegressor.bag_of(apart, data, labels, train[::-1])


def test_meta_from_keeps_a_dimension_to_its_own_trees_and_refits_as_training_would(synth, tmp_path, load_benchmark):
    from talkqa.errors import TalkqaError, UsageError

    data, labels, train, test = synth
    cfg = dict(n_trials=2, tuning_folds=2, oof_folds=3, params=FAST, calibration="isotonic")
    own = {"lip_sync": ["lip_sync"], "consistency": ["lip_sync", "consistency"]}
    plain = StackingRegressor(StackingConfig(**cfg)).fit(data, labels, train)
    narrowed = StackingRegressor(StackingConfig(**cfg, meta_from=own)).fit(data, labels, train)
    dims = list(DIMENSION_NAMES)
    for dim in dims:
        read = np.flatnonzero(narrowed.meta_[dim].coef_)
        assert set(np.asarray(dims)[read]) <= set(own.get(dim, dims))
    assert np.count_nonzero(plain.meta_["lip_sync"].coef_) > 1  # without it lip_sync borrows from the others
    # level 1 does not depend on level 2: refitting the plain model's level 2 gives the narrowed model exactly
    refit = StackingRegressor.load(plain.save(tmp_path / "plain")).with_level2(narrowed.config, labels, train)
    np.testing.assert_allclose(refit.predict(data, test), narrowed.predict(data, test), atol=1e-9)
    np.testing.assert_allclose(refit.oof_scores(), narrowed.oof_scores(), atol=1e-9)
    loaded = StackingRegressor.load(refit.save(tmp_path / "refit"))
    assert loaded.config.meta_from == own
    np.testing.assert_allclose(loaded.predict(data, test), narrowed.predict(data, test), atol=1e-9)
    with pytest.raises(TalkqaError, match="talkqa train"):
        plain.with_level2(StackingConfig(**{**cfg, "oof_folds": 4}), labels, train)
    with pytest.raises(ValueError, match=r"meta_from\.lip_sync"):
        StackingConfig(meta_from={"lip_sync": ["lipsync"]})
    with pytest.raises(ValueError, match="unknown dimension"):
        StackingConfig(meta_from={"lipsync": ["lip_sync"]})
    script = load_benchmark("refit_level2")
    assert script.parse_sets(["meta_from={lip_sync: [lip_sync]}"]) == {"meta_from": {"lip_sync": ["lip_sync"]}}
    with pytest.raises(UsageError, match="KEY one of"):
        script.parse_sets(["oof_folds=3"])


def test_folds_dealt_from_speaker_names_stay_when_a_corpus_adds_clips_and_refit_as_training_would(synth, tmp_path):
    from talkqa.splits import group_folds, name_folds

    speakers = np.array(["ann", "bob", "cy", "dee", "eve", "fay", "gus"])
    groups = np.repeat(speakers, 3)
    more = np.concatenate([groups, np.repeat(speakers[:2], 20)])  # a second corpus: many clips of two of them

    def fold_by_speaker(folds, g):
        return {str(g[i]): f for f, (_, te) in enumerate(folds) for i in te}

    before = fold_by_speaker(name_folds(groups, 3), groups)
    assert fold_by_speaker(name_folds(more, 3), more) == before and len(set(before.values())) == 3
    for tr, te in name_folds(more, 3):
        assert not set(more[tr]) & set(more[te])
    salted = fold_by_speaker(name_folds(more, 3, seed=1), more)  # another dealing, just as stable
    assert salted != before and salted == fold_by_speaker(name_folds(groups, 3, seed=1), groups)
    shuffled = group_folds(more, 3, seed=1)  # oof_folds_seed under clip_counts: GroupKFold shuffled
    assert fold_by_speaker(shuffled, more) != fold_by_speaker(group_folds(more, 3), more)
    assert all(not set(more[tr]) & set(more[te]) for tr, te in shuffled)
    data, labels, train, test = synth
    cfg = dict(n_trials=2, tuning_folds=2, oof_folds=3, params=FAST, calibration="isotonic", bag=2,
               ceilings={"lip_sync": {data.handcrafted.columns[0]: 1}}, ceiling_min_clips=5)
    plain = StackingRegressor(StackingConfig(**cfg)).fit(data, labels, train)
    by_names = StackingRegressor(StackingConfig(**cfg, oof_folds_by="speaker_names")).fit(data, labels, train)
    assert not np.allclose(plain.oof_[list(DIMENSION_NAMES)], by_names.oof_[list(DIMENSION_NAMES)])
    refit = StackingRegressor.load(plain.save(tmp_path / "plain")).with_level2(by_names.config, labels, train, data)
    np.testing.assert_allclose(refit.oof_.to_numpy(), by_names.oof_.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(refit.predict(data, test), by_names.predict(data, test), atol=1e-9)
    np.testing.assert_allclose(refit.oof_scores(), by_names.oof_scores(), atol=1e-9)
    reseeded = refit.with_level2(refit.config.model_copy(update={"oof_folds_seed": 1}), labels, train, data)
    speaker = pd.Series(labels.groups(train), index=reseeded.fold_of_.index)
    assert (speaker.groupby(reseeded.fold_of_).nunique().sum() == speaker.nunique()  # folds speaker-disjoint
            and not reseeded.fold_of_.equals(refit.fold_of_))
    assert not np.allclose(reseeded.oof_.to_numpy(), refit.oof_.to_numpy(), equal_nan=True)
    # two dealings averaged: out of fold, the mean of the two models dealt once each (the trees do not depend on
    # the dealing), and a refit gives what training with oof_repeats gives
    dims = list(DIMENSION_NAMES)
    twice = refit.with_level2(refit.config.model_copy(update={"oof_repeats": 2}), labels, train, data)
    np.testing.assert_allclose(twice.oof_[dims].to_numpy(), (refit.oof_[dims] + reseeded.oof_[dims]).to_numpy() / 2,
                               atol=1e-9)
    assert twice.fold_of_.equals(refit.fold_of_)  # the first dealing is the recorded one
    trained = StackingRegressor(twice.config).fit(data, labels, train)
    np.testing.assert_allclose(trained.oof_.to_numpy(), twice.oof_.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(trained.predict(data, test), twice.predict(data, test), atol=1e-9)
    with pytest.raises(Exception, match="training store"):
        plain.with_level2(by_names.config, labels, train)
