"""Evidence ceilings (stacking/ceilings.py): the most a clip may score given one reading, from what the
training clips reading at least as badly were labelled; fitted with the stack, saved, explained, and
addable to a trained model (benchmarks/add_ceilings.py) with the same result as training with them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from talkqa.config import config_path
from talkqa.scoring.model_card import _ceiling_lines
from talkqa.stacking.ceilings import Ceiling
from talkqa.stacking.config import StackingConfig
from talkqa.stacking.explain import clip_contributions
from talkqa.stacking.model import StackingRegressor
from talkqa.store_data import load_store
from talkqa.tasks import DIMENSION_NAMES

FAST = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 5, "min_child_samples": 4}


def naive_cap(reading, label, worse, u, quantile, min_clips):
    """The definition, written out: the quantile over the clips reading at least as badly as u (at least
    min_clips of the worst), maximised over every worse reading; inf when no lower than the corpus's own."""
    s, v = worse * np.asarray(reading, float), worse * u
    order = np.argsort(-s, kind="stable")
    s, y = s[order], np.asarray(label, float)[order]
    n = max(int((s >= v).sum()), min_clips)
    cap = max(np.quantile(y[:m], quantile) for m in range(min_clips, n + 1))
    return np.inf if cap >= np.quantile(y, quantile) - 1e-9 else cap


def test_a_frozen_picture_is_capped_at_what_frozen_clips_were_labelled():
    # 100 clean clips (nothing frozen, 4.5), 30 stalls (a third frozen, 3.0), 30 still photos (all frozen, 1.5)
    frozen = np.r_[np.zeros(100), np.full(30, 0.3), np.full(30, 1.0)]
    label = np.r_[np.full(100, 4.5), np.full(30, 3.0), np.full(30, 1.5)]
    ceiling = Ceiling.fit("expression__frozen_share", 1, frozen, label, quantile=0.9, min_clips=20)
    got = ceiling(np.array([0.0, 0.1, 0.3, 0.5, 1.0, 3.0, np.nan]))
    # nothing frozen: no cap; between the stalls and the photos: the stalls' and photos' labels (0.9 quantile
    # 3.0); worse than every stall: only photos read that badly (1.5); beyond every clip: the worst cap; missing: none
    assert got.tolist() == [np.inf, 3.0, 3.0, 1.5, 1.5, 1.5, np.inf]
    # the direction is the configured one: a lower reading is worse with -1
    mirrored = Ceiling.fit("expression__still_share", -1, -frozen, label, quantile=0.9, min_clips=20)
    assert np.array_equal(mirrored(-np.array([0.0, 0.1, 0.5, 1.0])), got[[0, 1, 3, 4]])
    back = Ceiling.from_dict(json.loads(json.dumps(ceiling.to_dict())))  # valid JSON: no cap is null
    assert np.array_equal(back(np.linspace(-1, 2, 50)), ceiling(np.linspace(-1, 2, 50)))


def test_the_ceiling_is_its_definition_and_never_falls_for_a_better_reading():
    rng = np.random.default_rng(3)
    reading = np.round(rng.gamma(1.5, 1.0, 300), 1)  # rounded: many ties
    label = np.clip(4.6 - 0.6 * reading + rng.normal(0, 0.5, 300), 1, 4.5)
    ceiling = Ceiling.fit("x", 1, reading, label, quantile=0.8, min_clips=15)
    assert ceiling.steps >= 3
    grid = np.r_[np.unique(reading), np.linspace(-1, 12, 131)]
    got = ceiling(grid)
    want = np.array([naive_cap(reading, label, 1, u, 0.8, 15) for u in grid])
    assert np.allclose(got, want)
    order = np.argsort(grid)
    finite = np.where(np.isinf(got), 99.0, got)[order]  # no cap reads as the highest
    assert np.all(np.diff(finite) <= 1e-12)  # a worse (higher) reading never gets a higher cap


def test_a_reading_that_says_nothing_or_too_few_clips_give_no_ceiling():
    rng = np.random.default_rng(0)
    unrelated = Ceiling.fit("x", 1, rng.normal(size=400), np.full(400, 4.5))
    assert unrelated.steps == 0 and np.isinf(unrelated(np.array([10.0]))).all()
    assert Ceiling.fit("x", 1, np.arange(10.0), np.arange(10.0) / 3 + 1, min_clips=20).steps == 0
    with pytest.raises(ValueError, match="worse must be"):
        Ceiling.fit("x", 2, [1.0], [1.0])


def test_an_offset_is_capped_by_its_size_whichever_way_it_goes():
    # 100 clips in sync (offset within a frame, 4.5), 40 with the sound 12 frames late and 40 with it 12 frames
    # early (both labelled about 1.1), 30 at 5 frames either way (3.0): worse = 0 caps by the magnitude
    rng = np.random.default_rng(1)
    offset = np.r_[rng.integers(-1, 2, 100), np.full(40, 12), np.full(40, -12), np.full(15, 5), np.full(15, -5)]
    label = np.r_[np.full(100, 4.5), np.full(80, 1.1), np.full(30, 3.0)].astype(float)
    ceiling = Ceiling.fit("sync__offset_frames", 0, offset, label, quantile=0.9, min_clips=20)
    assert ceiling.worse == 0 and np.all(ceiling.thresholds >= 0)
    got = ceiling(np.array([0.0, 1.0, -1.0, 5.0, -5.0, 8.0, 12.0, -12.0, -30.0, np.nan]))
    assert got.tolist() == [np.inf, np.inf, np.inf, 3.0, 3.0, 1.1, 1.1, 1.1, 1.1, np.inf]
    # the definition on the magnitude, and a +1 ceiling on |offset| is the same ceiling
    on_size = Ceiling.fit("size", 1, np.abs(offset), label, quantile=0.9, min_clips=20)
    grid = np.linspace(-20, 20, 81)
    assert np.array_equal(ceiling(grid), on_size(np.abs(grid)))
    assert np.allclose(ceiling(grid), [naive_cap(np.abs(offset), label, 1, abs(u), 0.9, 20) for u in grid])
    back = Ceiling.from_dict(json.loads(json.dumps(ceiling.to_dict())))
    assert back.worse == 0 and np.array_equal(back(grid), ceiling(grid))
    # a one-sided ceiling on the same readings sees only the late side
    late = Ceiling.fit("sync__offset_frames", 1, offset, label, quantile=0.9, min_clips=20)
    assert late(np.array([-12.0]))[0] > 3.0 and late(np.array([12.0]))[0] == pytest.approx(1.1)
    # configurable as 0, and the model card says how it reads
    assert StackingConfig(ceilings={"lip_sync": {"sync__offset_frames": 0}}).ceilings["lip_sync"] == {"sync__offset_frames": 0}
    card = "\n".join(_ceiling_lines({"ceilings": {"lip_sync": [ceiling.to_dict()]}}))
    assert "| lip_sync | sync__offset_frames | farther from 0" in card and "12 → 1.10" in card


def test_a_reading_counted_from_a_value_on_caps_only_there_and_is_fitted_on_those_clips_alone():
    # A broad reading (the picture expert's quality: lower is worse) over clean clips (4.5), a one-fault corpus of
    # mild blurs reading a little low (3.0) and hard blurs reading very low (2.25), plus clean clips that read a
    # little low too. Over the whole reading the mild blurs cap those clean clips at 3.0; counted from -2.5 on, the
    # ceiling holds only where the reading is sure, from the clips reading that badly alone.
    rng = np.random.default_rng(5)
    reading = np.r_[rng.uniform(-1.6, 1.5, 120), rng.uniform(-3.0, -0.5, 80), rng.uniform(-8.0, -3.5, 60)]
    label = np.r_[np.full(120, 4.5), np.full(80, 3.0), np.full(60, 2.25)]
    whole = Ceiling.fit("picture__quality_logit", -1, reading, label, 0.9, 20)
    counted = Ceiling.fit("picture__quality_logit", -1, reading, label, 0.9, 20, start=-2.5)
    assert whole(np.array([-1.5]))[0] <= 3.0  # the mild blurs' label caps a clean clip reading -1.5
    grid = np.linspace(-10, 2, 121)
    got = counted(grid)
    assert np.all(np.isinf(got[grid > -2.5]))  # better than the start: never capped
    assert counted(np.array([-6.0]))[0] == 2.25  # where only hard blurs read: their label
    # the same as a ceiling fitted on the counted clips alone, there
    alone = Ceiling.fit("picture__quality_logit", -1, reading[reading <= -2.5], label[reading <= -2.5], 0.9, 20)
    assert np.array_equal(got[grid <= -2.5], alone(grid[grid <= -2.5]))
    back = Ceiling.from_dict(json.loads(json.dumps(counted.to_dict())))
    assert back.start == -2.5 and np.array_equal(back(grid), got)
    old = {k: v for k, v in whole.to_dict().items() if k != "start"}  # saved before ceilings had a start
    assert np.array_equal(Ceiling.from_dict(old)(grid), whole(grid))
    # the configuration names the start of a column a ceiling reads, and the model card says it
    config = StackingConfig(ceilings={"visual_quality": {"picture__quality_logit": -1}},
                            ceiling_from={"picture__quality_logit": -2.5})
    assert config.ceiling_from == {"picture__quality_logit": -2.5}
    with pytest.raises(ValueError, match="no ceiling reads"):
        StackingConfig(ceilings={"visual_quality": {"visual__blockiness": 1}}, ceiling_from={"picture__quality_logit": -2.5})
    card = "\n".join(_ceiling_lines({"ceilings": {"visual_quality": [counted.to_dict()]}}))
    assert "| visual_quality | picture__quality_logit | lower, counted from -2.5 on |" in card


def test_the_card_says_overall_ceilings_do_not_cap_an_overall_taken_from_the_dimensions():
    # the scorer replaces the stack's overall by the label rule over the dimensions (test_overall_rule.py), so a
    # ceiling fitted for overall bounds a head that score never reads: the card must not promise a cap
    frozen = np.r_[np.linspace(0, 0.3, 80), np.linspace(0.7, 1.0, 40)]
    label = np.r_[np.full(80, 4.5), np.full(40, 1.2)]
    ceiling = Ceiling.fit("expression__frozen_share", 1, frozen, label).to_dict()
    ceilings = {"expression": [ceiling], "overall": [ceiling]}
    from_model = "\n".join(_ceiling_lines({"ceilings": ceilings, "overall_from": "model"}))
    assert "| overall | expression__frozen_share |" in from_model and "not applied" not in from_model
    from_dimensions = "\n".join(_ceiling_lines({"ceilings": ceilings, "overall_from": "dimensions"}))
    assert "| overall (not applied: see below) | expression__frozen_share |" in from_dimensions
    assert "| expression | expression__frozen_share |" in from_dimensions  # the dimensions' ceilings still cap
    assert "do not cap the overall it gives" in from_dimensions
    only_expression = "\n".join(_ceiling_lines({"ceilings": {"expression": [ceiling]}, "overall_from": "dimensions"}))
    assert "not applied" not in only_expression and "overall" not in only_expression


@pytest.fixture(scope="module")
def synth(synthetic_stack):
    return synthetic_stack  # tests/conftest.py


def _config(**extra) -> StackingConfig:
    return StackingConfig(n_trials=0, oof_folds=3, params=FAST, calibration="isotonic", **extra)


CEILINGS = {"expression": {"expression__jitter": 1, "no_such__column": 1}, "lip_sync": {"lipsync__av_corr": -1}}


@pytest.fixture(scope="module")
def capped(synth):
    data, labels, ids = synth
    return StackingRegressor(_config(ceilings=CEILINGS, ceiling_quantile=0.5)).fit(data, labels, ids)


def test_the_stack_never_scores_above_its_ceilings_and_saves_them(synth, capped, tmp_path):
    data, labels, ids = synth
    assert set(capped.ceilings_) == {"expression", "lip_sync"}  # a column the store lacks is skipped
    assert [c.column for c in capped.ceilings_["expression"]] == ["expression__jitter"]
    X = capped.features(data, ids)
    caps = capped.caps(X)
    pred = capped.predict(data, ids)
    uncapped = capped._scores(capped.level1(data, ids))  # the same stack without its ceilings
    for dim in ("expression", "lip_sync"):
        assert (pred[dim] <= caps[dim] + 1e-9).all()
        cut = pred[dim] < uncapped[dim] - 1e-9
        assert cut.any(), f"no {dim} score reached its ceiling: the test shows nothing"
        assert np.allclose(pred[dim][cut], caps[dim][cut])  # where it cuts, the score is the cap
        assert np.allclose(pred[dim][~cut], uncapped[dim][~cut])  # elsewhere nothing moves
    for dim in ("audio_quality", "visual_quality"):
        assert np.allclose(pred[dim], uncapped[dim])
    # out of fold, each clip's caps come from ceilings fitted without its fold
    oof_caps = capped.oof_.filter(like="cap__")
    assert list(oof_caps.columns) == ["cap__expression", "cap__lip_sync"]
    assert not np.allclose(oof_caps["cap__expression"].to_numpy(), caps["expression"].reindex(oof_caps.index))
    assert (capped.oof_scores()["expression"] <= oof_caps["cap__expression"] + 1e-9).all()
    capped.save(tmp_path / "stack")
    loaded = StackingRegressor.load(tmp_path / "stack")
    assert np.allclose(loaded.predict(data, ids).to_numpy(), pred.to_numpy())
    assert np.allclose(loaded.oof_scores().to_numpy(), capped.oof_scores().to_numpy())


def test_ceilings_added_later_equal_ceilings_fitted_with_the_trees(synth, capped):
    data, labels, ids = synth
    plain = StackingRegressor(_config()).fit(data, labels, ids)
    assert plain.ceilings_ == {} and not plain.oof_.filter(like="cap__").columns.size
    plain.config = _config(ceilings=CEILINGS, ceiling_quantile=0.5)
    plain.fit_ceilings(data, labels, ids)
    assert plain.ceilings_summary() == capped.ceilings_summary()
    pd.testing.assert_frame_equal(plain.predict(data, ids), capped.predict(data, ids))
    pd.testing.assert_frame_equal(plain.oof_scores(), capped.oof_scores())


def test_the_stack_counts_a_ceiling_reading_from_its_configured_start_on(synth, capped):
    data, labels, ids = synth
    X = capped.features(data, ids)
    start = float(np.nanquantile(X["expression__jitter"], 0.3))  # +1: a higher jitter is worse
    stack = StackingRegressor(_config())
    stack.__dict__.update({k: v for k, v in capped.__dict__.items() if k != "config"})
    stack.config = _config(ceilings=CEILINGS, ceiling_quantile=0.5, ceiling_from={"expression__jitter": start})
    stack.fit_ceilings(data, labels, ids)
    (ceiling,) = stack.ceilings_["expression"]
    assert ceiling.start == start and np.all(ceiling.thresholds >= start)
    below = (X["expression__jitter"] < start).to_numpy()
    assert np.isinf(stack.caps(X)["expression"][below]).all()  # better than the start: no cap, in fold or out
    assert np.isinf(stack.oof_["cap__expression"].reindex(X.index)[below]).all()
    assert np.isfinite(stack.caps(X)["expression"][~below]).any()
    assert stack.ceilings_summary()["lip_sync"] == capped.ceilings_summary()["lip_sync"]  # others as they were


def test_a_ceiling_only_a_fold_finds_still_caps_that_fold_out_of_fold(synth, capped, monkeypatch):
    # over every clip a reading can say nothing (no steps) while over the clips of four folds out of five it
    # does: the out-of-fold scores must take that fold fit's caps (this once raised KeyError cap__<dim>)
    import talkqa.stacking.model as model_module

    data, labels, ids = synth
    fit = Ceiling.fit.__func__

    def fold_only(cls, column, worse, reading, label, *args):
        found = fit(cls, column, worse, reading, label, *args)
        return cls(column, worse, np.zeros(0), np.zeros(0), found.quantile, found.min_clips) if len(reading) == len(
            ids) else found

    monkeypatch.setattr(model_module.Ceiling, "fit", classmethod(fold_only))
    capped.config = _config(ceilings=CEILINGS, ceiling_quantile=0.5)
    try:
        capped.fit_ceilings(data, labels, ids)
        assert capped.ceilings_ == {}  # none over every clip ...
        oof_caps = capped.oof_.filter(like="cap__")
        assert list(oof_caps.columns) == ["cap__expression", "cap__lip_sync"]  # ... but each fold's own
        assert np.isfinite(oof_caps["cap__expression"]).any()
        assert (capped.oof_scores()["expression"] <= oof_caps["cap__expression"] + 1e-9).all()
    finally:
        monkeypatch.undo()
        capped.fit_ceilings(data, labels, ids)  # the shared fixture as the other tests expect it
    assert set(capped.ceilings_) == {"expression", "lip_sync"}


def test_ceiling_only_clips_fit_the_ceilings_and_move_nothing_else(synth):
    """Clips labelled for the ceilings only (a one-fault corpus of the training speakers): the ceilings are fitted
    on them and the trained clips together, out of fold each fold leaves out its own speakers' ceiling-only clips,
    and the trees, level 2 and calibration are those of the model without them."""
    data, labels, ids = synth
    extra, trained = ids[::5], [c for i, c in enumerate(ids) if i % 5]  # every speaker has some of each
    column, ceilings = "expression__jitter", {"expression": {"expression__jitter": 1}}
    plain = StackingRegressor(_config()).fit(data, labels, trained)
    before_oof, before = plain.oof_.copy(), plain.predict(data, trained)
    plain.config = _config(ceilings=ceilings, ceiling_quantile=0.5)
    plain.fit_ceilings(data, labels, trained, ceiling_only=extra)
    k = DIMENSION_NAMES.index("expression")
    reading = data.handcrafted[column]
    union = trained + extra
    expected = Ceiling.fit(column, 1, reading.reindex(union).to_numpy(), labels.y(union)[:, k], 0.5, 20)
    assert plain.ceilings_summary()["expression"] == [expected.to_dict()]
    alone = Ceiling.fit(column, 1, reading.reindex(trained).to_numpy(), labels.y(trained)[:, k], 0.5, 20)
    assert alone.to_dict() != expected.to_dict(), "the ceiling-only clips changed nothing: the test shows nothing"
    # nothing but the capped dimension moves, and there only down to the cap
    pd.testing.assert_frame_equal(plain.oof_[before_oof.columns], before_oof)
    after = plain.predict(data, trained)
    pd.testing.assert_frame_equal(after.drop(columns="expression"), before.drop(columns="expression"))
    assert (after["expression"] <= before["expression"] + 1e-12).all()
    # out of fold: a fold's ceiling saw neither its clips nor its speakers' ceiling-only clips
    groups, extra_groups = labels.groups(trained), labels.groups(extra)
    tr, te = next(iter(plain._oof_folds(groups)))
    keep = [c for c, g in zip(extra, extra_groups) if g not in set(groups[te])]
    assert 0 < len(keep) < len(extra)
    rows = [trained[i] for i in tr] + keep
    fold = Ceiling.fit(column, 1, reading.reindex(rows).to_numpy(), labels.y(rows)[:, k], 0.5, 20)
    te_ids = [trained[i] for i in te]
    np.testing.assert_allclose(plain.oof_.loc[te_ids, "cap__expression"], fold(reading.reindex(te_ids).to_numpy()))
    with pytest.raises(ValueError, match="both trained on and ceiling-only"):
        plain.fit_ceilings(data, labels, trained, ceiling_only=trained[:3])


def test_training_fits_a_ceiling_on_a_column_no_tree_reads_as_adding_it_later_does(synth):
    """A ceiling's reading that the trees do not have (no hand-crafted features for the trees here) is read from the
    store while training too, so `talkqa train` and add_ceilings.py on the same trees fit the same ceiling."""
    data, labels, ids = synth
    ceilings = {"expression": {"expression__jitter": 1}}
    trained = StackingRegressor(_config(use_handcrafted=False, ceilings=ceilings, ceiling_quantile=0.5)).fit(
        data, labels, ids)
    assert "expression__jitter" not in trained.featurizer_.columns_ and trained.ceilings_
    later = StackingRegressor(_config(use_handcrafted=False)).fit(data, labels, ids)
    later.config = trained.config
    later.fit_ceilings(data, labels, ids)
    assert later.ceilings_summary() == trained.ceilings_summary()
    pd.testing.assert_frame_equal(later.oof_, trained.oof_)
    pd.testing.assert_frame_equal(later.predict(data, ids), trained.predict(data, ids))


def test_a_ceiling_may_read_a_column_its_trees_never_saw(synth):
    """A ceiling given to trees fitted before its reading existed (version 34: the longest held picture on
    version 33's trees) reads the column from the store; a store without it gets no cap; an explanation
    gives the cut to that reading."""
    import dataclasses

    data, labels, ids = synth
    column = "expression__jitter"
    without = dataclasses.replace(data, handcrafted=data.handcrafted.drop(columns=[column]))
    model = StackingRegressor(_config()).fit(without, labels, ids)
    assert column not in model.featurizer_.columns_
    model.config = _config(ceilings={"expression": {column: 1}}, ceiling_quantile=0.5)
    model.fit_ceilings(data, labels, ids)
    assert [c.column for c in model.ceilings_["expression"]] == [column]
    pred, uncapped = model.predict(data, ids), model._scores(model.level1(data, ids))
    caps = model.caps(model.features(data, ids))
    cut = pred["expression"] < uncapped["expression"] - 1e-9
    assert cut.any() and np.allclose(pred["expression"][cut], caps["expression"][cut])
    assert np.allclose(pred.drop(columns="expression"), uncapped.drop(columns="expression"))
    pd.testing.assert_frame_equal(model.predict(without, ids), uncapped)  # the reading missing: no cap
    assert (model.oof_scores()["expression"] <= model.oof_["cap__expression"] + 1e-9).all()
    clip = next(c for c in ids if cut[c] and 1 < pred.loc[c, "expression"] < 5)
    contrib = clip_contributions(model, data, clip)["expression"]
    assert contrib.prediction == pytest.approx(pred.loc[clip, "expression"], abs=1e-6)
    assert contrib.contributions[column] == pytest.approx(caps.loc[clip, "expression"] - uncapped.loc[clip, "expression"])


def test_a_cut_is_explained_by_the_reading_that_made_it(synth, capped):
    data, _, ids = synth
    pred = capped.predict(data, ids)
    uncapped = capped._scores(capped.level1(data, ids))
    clip = next(c for c in ids if pred.loc[c, "expression"] < uncapped.loc[c, "expression"] - 0.05
                and 1 < pred.loc[c, "expression"] < 5)
    contrib = clip_contributions(capped, data, clip)["expression"]
    assert contrib.prediction == pytest.approx(pred.loc[clip, "expression"], abs=1e-6)
    plain = StackingRegressor(capped.config.model_copy(update={"ceilings": {}}))
    plain.__dict__.update({k: v for k, v in capped.__dict__.items() if k not in ("config", "ceilings_")})
    plain.ceilings_ = {}
    before = clip_contributions(plain, data, clip)["expression"].contributions
    moved = (contrib.contributions - before).abs()
    assert moved.idxmax() == "expression__jitter" and moved.drop("expression__jitter").max() < 1e-9


def test_add_ceilings_gives_a_trained_model_what_training_with_them_gives(bundle, tmp_path, load_benchmark):
    """benchmarks/add_ceilings.py on the tiny model (tests/tiny_model.py) equals `talkqa train` with the
    same ceilings; the original is left as it was; the wrong stores are refused with a usage error."""
    from typer.testing import CliRunner

    from talkqa.scoring.cli import app
    from tiny_model import TINY_TRAIN

    add_ceilings = load_benchmark("add_ceilings")
    root = bundle.parent
    stores = [root / p / "store" for p in ("a", "b")]
    manifests = [root / p / "manifest.csv" for p in ("a", "b")]
    args = [a for s, m in zip(stores, manifests) for a in ("--store", str(s), "--labels", str(m))]
    ceilings = ["lip_sync:lipsync__av_peak_corr:-1", "expression:expression__landmark_speed:-1",
                "audio_quality:audio__snr_db:-1", "visual_quality:visual__face_lapvar:-1"]
    as_config = "{" + ", ".join(f"{d}: {{{c}: {s}}}" for d, c, s in (x.split(":") for x in ceilings)) + "}"
    common = ["-q", *TINY_TRAIN, "--set", "stacking.ceiling_min_clips=3", "--set", "stacking.ceiling_quantile=0.5"]
    with_ = tmp_path / "with"
    res = CliRunner().invoke(app, ["train", *args, "--out", str(with_), *common, "--set", f"stacking.ceilings={as_config}",
                                   "--set", "stacking.ceiling_from={}"])
    assert res.exit_code == 0, res.output
    without = tmp_path / "without"
    res = CliRunner().invoke(app, ["train", *args, "--out", str(without), *common])
    assert res.exit_code == 0, res.output
    state = lambda folder: json.loads((folder / "stacking" / "state.json").read_text())
    assert state(with_)["ceilings"], "no ceiling had a step on the tiny corpus: the test shows nothing"
    before = (without / "stacking" / "state.json").read_text()

    added = tmp_path / "added"
    code = add_ceilings.main([str(without), "--out", str(added), *args, *sum((["--ceiling", c] for c in ceilings), []),
                              "--version", "9"])
    assert code == 0
    assert state(added)["ceilings"] == state(with_)["ceilings"]
    assert (without / "stacking" / "state.json").read_text() == before  # the original is untouched
    data = load_store(stores[0])
    ids = list(data.clip_ids)
    a, b = StackingRegressor.load(added / "stacking"), StackingRegressor.load(with_ / "stacking")
    pd.testing.assert_frame_equal(a.predict(data, ids), b.predict(data, ids))
    pd.testing.assert_frame_equal(a.oof_scores(), b.oof_scores())
    meta = json.loads((added / "model.json").read_text())
    assert meta["version"] == "9" and meta["ceilings"] == state(with_)["ceilings"]
    assert "add_ceilings.py" in meta["command"] and "## Evidence ceilings" in (added / "model_card.md").read_text()

    # the wrong training data, or an --out that exists, is one clear message and exit 2
    assert add_ceilings.main([str(without), "--out", str(tmp_path / "x"), "--store", str(stores[0]), "--labels",
                              str(manifests[0])]) == 2
    assert add_ceilings.main([str(without), "--out", str(added), *args]) == 2
    assert add_ceilings.main([str(without), "--out", str(tmp_path / "y"), *args, "--ceiling", "mood:x:1"]) == 2
    # ceiling-only clips must come in store/labels pairs and be clips the trees never saw
    alone = ["--ceiling-store", str(stores[1])]
    assert add_ceilings.main([str(without), "--out", str(tmp_path / "z"), *args, *alone]) == 2
    assert add_ceilings.main([str(without), "--out", str(tmp_path / "z"), *args, "--ceiling-store", str(stores[1]),
                              "--ceiling-labels", str(manifests[1])]) == 2
    assert not (tmp_path / "z").exists()

    # stores rebuilt since training may miss a few of its clips: left out of the fit (within max_missing), and
    # their out-of-fold rows get no cap rather than a missing one
    short = tmp_path / "short.csv"
    labels_b = pd.read_csv(manifests[1])
    gone = labels_b["clip_id"].iloc[0]
    labels_b.iloc[1:].to_csv(short, index=False)
    as_dict = {d: {c: int(sg)} for d, c, sg in (x.split(":") for x in ceilings)}
    add_ceilings.add_ceilings(without, tmp_path / "rebuilt", stores, [manifests[0], short], as_dict, None, None, "test",
                              max_missing=0.5)
    rebuilt = StackingRegressor.load(tmp_path / "rebuilt" / "stacking")
    scores = rebuilt.oof_scores()
    assert gone in scores.index and np.isfinite(scores.to_numpy(dtype=float)).all()


def _ceiling_only_corpus(folder: Path, stores: list[Path], manifests: list[Path], speaker: str | None = None):
    """A ceiling-only store as `talkqa extract` leaves one (no experts): the training stores' clips again under new
    ids (ceiling/...) and labelled two points worse, of the same speakers (or all of `speaker`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    (folder / "store").mkdir()
    table = pa.concat_tables([pq.read_table(s / "handcrafted.parquet") for s in stores])
    ids = pa.array(["ceiling/" + c for c in table.column("clip_id").to_pylist()])
    pq.write_table(table.set_column(table.schema.get_field_index("clip_id"), "clip_id", ids),
                   folder / "store" / "handcrafted.parquet")
    (folder / "store" / "extract.yaml").write_text((stores[0] / "extract.yaml").read_text())
    labels = pd.concat([pd.read_csv(m) for m in manifests], ignore_index=True)
    labels["clip_id"] = "ceiling/" + labels["clip_id"]
    mos = [c for c in labels if c.startswith("mos_")]
    labels[mos] = (labels[mos] - 2).clip(1, 5)
    if speaker:
        labels["speaker"] = speaker
    labels.to_csv(folder / "manifest.csv", index=False)
    return folder / "store", folder / "manifest.csv"


def test_training_with_ceiling_only_clips_equals_adding_them_later(bundle, tmp_path, load_benchmark):
    """`talkqa train --ceiling-store S --ceiling-labels L` in one step gives the model that training without them
    and then benchmarks/add_ceilings.py --ceiling-store S --ceiling-labels L gives: the same ceilings, the same
    scores (out of fold too), the same record of the ceiling-only clips in model.json and the model card."""
    from typer.testing import CliRunner

    from talkqa.labels import load_labels, merge_labels
    from talkqa.scoring.cli import app
    from talkqa.store_data import merge_store_data
    from tiny_model import TINY_TRAIN

    add_ceilings = load_benchmark("add_ceilings")
    root = bundle.parent
    stores = [root / p / "store" for p in ("a", "b")]
    manifests = [root / p / "manifest.csv" for p in ("a", "b")]
    args = [a for s, m in zip(stores, manifests) for a in ("--store", str(s), "--labels", str(m))]
    extra_store, extra_labels = _ceiling_only_corpus(tmp_path / "ceiling", stores, manifests)
    extra = ["--ceiling-store", str(extra_store), "--ceiling-labels", str(extra_labels)]
    ceilings = ["lip_sync:lipsync__av_peak_corr:-1", "expression:expression__landmark_speed:-1",
                "audio_quality:audio__snr_db:-1", "visual_quality:visual__face_lapvar:-1"]
    as_config = "{" + ", ".join(f"{d}: {{{c}: {s}}}" for d, c, s in (x.split(":") for x in ceilings)) + "}"
    common = ["-q", *TINY_TRAIN, "--set", "stacking.ceiling_min_clips=3", "--set", "stacking.ceiling_quantile=0.5"]
    one_step = tmp_path / "one_step"
    res = CliRunner().invoke(app, ["train", *args, *extra, "--out", str(one_step), *common,
                                   "--set", f"stacking.ceilings={as_config}", "--set", "stacking.ceiling_from={}"])
    assert res.exit_code == 0, res.output
    assert "and 8 for the ceilings only" in res.output
    trees = tmp_path / "trees"
    res = CliRunner().invoke(app, ["train", *args, "--out", str(trees), *common])
    assert res.exit_code == 0, res.output
    two_steps = tmp_path / "two_steps"
    assert add_ceilings.main([str(trees), "--out", str(two_steps), *args, *extra,
                              *sum((["--ceiling", c] for c in ceilings), [])]) == 0

    state = lambda folder: json.loads((folder / "stacking" / "state.json").read_text())
    assert state(one_step)["ceilings"] and state(one_step)["ceilings"] == state(two_steps)["ceilings"]
    a, b = StackingRegressor.load(one_step / "stacking"), StackingRegressor.load(two_steps / "stacking")
    data = merge_store_data([load_store(s) for s in stores])
    ids = list(data.clip_ids)
    pd.testing.assert_frame_equal(a.predict(data, ids), b.predict(data, ids))
    pd.testing.assert_frame_equal(a.oof_, b.oof_)  # the folds' caps (cap__<dimension>) included
    pd.testing.assert_frame_equal(a.oof_scores(), b.oof_scores())
    # the ceiling-only clips moved the ceilings: without them the same trees get others
    labels = merge_labels([load_labels(m) for m in manifests])
    alone = StackingRegressor.load(one_step / "stacking").fit_ceilings(data, labels, list(a.oof_.index))
    assert alone.ceilings_summary() != a.ceilings_summary(), "the ceiling-only clips changed nothing"

    meta_a, meta_b = (json.loads((f / "model.json").read_text()) for f in (one_step, two_steps))
    assert meta_a["training_data"]["ceiling_only"] == meta_b["training_data"]["ceiling_only"] == {
        "clips": 8, "stores": [str(extra_store.resolve())], "labels": [str(extra_labels.resolve())]}
    assert meta_a["training_data"]["clips"] == meta_b["training_data"]["clips"]  # the trees' clips only
    for dim, figures in meta_b["val_metrics"].items():
        assert meta_a["val_metrics"][dim]["stacking"] == pytest.approx(figures["stacking"]), dim
    assert f"8 more labelled clips of the training speakers, stores: {extra_store.resolve()}" in \
        (one_step / "model_card.md").read_text()


def test_train_refuses_ceiling_only_clips_it_cannot_use(bundle, tmp_path):
    """Each wrong --ceiling-store / --ceiling-labels is one line naming the file and what to do, exit 2, before any
    training and with no model folder written."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from talkqa.config import ExtractConfig, load_config
    from talkqa.scoring.cli import app
    from talkqa.store import META_KEY, parquet_meta
    from tiny_model import TINY_TRAIN

    root = bundle.parent
    stores = [root / p / "store" for p in ("a", "b")]
    manifests = [root / p / "manifest.csv" for p in ("a", "b")]
    args = [a for s, m in zip(stores, manifests) for a in ("--store", str(s), "--labels", str(m))]
    extra_store, extra_labels = _ceiling_only_corpus(tmp_path / "ceiling", stores, manifests)
    _, strangers = _ceiling_only_corpus(tmp_path / "strangers", stores, manifests, speaker="someone_else")
    other_extraction = tmp_path / "other_extraction"
    shutil.copytree(extra_store, other_extraction)
    yaml_path = other_extraction / "extract.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("detect_every: 3", "detect_every: 2"))
    table = pq.read_table(other_extraction / "handcrafted.parquet")  # as `talkqa extract` with that config writes it
    meta = {**parquet_meta(other_extraction / "handcrafted.parquet"),
            "params_hash": load_config(ExtractConfig, yaml_path).params_hash()}
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, META_KEY: json.dumps(meta).encode()}),
                   other_extraction / "handcrafted.parquet")
    cases = {
        "1 --ceiling-store but 0 --ceiling-labels": ["--ceiling-store", str(extra_store)],
        f"are training clips already (e.g. audio_8k in {stores[0]})": ["--ceiling-store", str(stores[0]),
                                                                   "--ceiling-labels", str(manifests[0])],
        f"the ceiling-only store {extra_store} shares no clip id with its labels {manifests[1]}":
            ["--ceiling-store", str(extra_store), "--ceiling-labels", str(manifests[1])],
        f"speakers not among the training clips' (e.g. someone_else in {strangers})":
            ["--ceiling-store", str(extra_store), "--ceiling-labels", str(strangers)],
        f"the ceiling-only store {other_extraction} was extracted with another config":
            ["--ceiling-store", str(other_extraction), "--ceiling-labels", str(extra_labels)],
    }
    for i, (message, extra) in enumerate(cases.items()):
        out = tmp_path / f"model{i}"
        res = CliRunner().invoke(app, ["train", *args, *extra, "--out", str(out), "-q", *TINY_TRAIN])
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert res.exit_code == 2 and len(errors) == 1 and message in errors[0], res.output
        assert "Traceback" not in res.output and not out.exists()


def test_bag_models_gives_two_trained_seeds_what_training_a_bag_gives(bundle, tmp_path, load_benchmark):
    """benchmarks/bag_models.py on the tiny models of stacking seeds 0 and 1 equals `talkqa train` with
    stacking.bag = 2; the members are left as they were; seeds out of order are refused with a usage error."""
    from typer.testing import CliRunner

    from talkqa.scoring.cli import app
    from tiny_model import TINY_TRAIN

    bag_models = load_benchmark("bag_models")
    root = bundle.parent
    stores = [root / p / "store" for p in ("a", "b")]
    manifests = [root / p / "manifest.csv" for p in ("a", "b")]
    args = [a for s, m in zip(stores, manifests) for a in ("--store", str(s), "--labels", str(m))]
    common = ["-q", *TINY_TRAIN, "--set", "stacking.calibration=isotonic"]
    trained = {}
    for name, sets in (("seed0", ["stacking.seed=0"]), ("seed1", ["stacking.seed=1"]), ("bag", ["stacking.bag=2"])):
        trained[name] = tmp_path / name
        res = CliRunner().invoke(app, ["train", *args, "--out", str(trained[name]), *common,
                                       *sum((["--set", s] for s in sets), [])])
        assert res.exit_code == 0, res.output
    before = (trained["seed1"] / "stacking" / "state.json").read_text()

    out = tmp_path / "bagged"
    assert bag_models.main([str(trained["seed0"]), str(trained["seed1"]), "--out", str(out), *args,
                            "--version", "7"]) == 0
    assert (trained["seed1"] / "stacking" / "state.json").read_text() == before
    data = load_store(stores[0])
    ids = list(data.clip_ids)
    a, b = StackingRegressor.load(out / "stacking"), StackingRegressor.load(trained["bag"] / "stacking")
    assert a.config == b.config and a.config.bag == 2
    pd.testing.assert_frame_equal(a.predict(data, ids), b.predict(data, ids), atol=1e-9)
    pd.testing.assert_frame_equal(a.oof_scores(), b.oof_scores(), atol=1e-9)
    meta = json.loads((out / "model.json").read_text())
    assert meta["version"] == "7" and "bag_models.py" in meta["command"] and "[seed 1]" in meta["command"]
    assert json.loads((trained["bag"] / "model.json").read_text())["val_metrics"]["lip_sync"]["stacking"] == \
        pytest.approx(meta["val_metrics"]["lip_sync"]["stacking"])

    assert bag_models.main([str(trained["seed1"]), str(trained["seed0"]), "--out", str(tmp_path / "x"), *args]) == 2
    assert bag_models.main([str(trained["seed0"]), "--out", str(tmp_path / "y"), *args]) == 2
    assert bag_models.main([str(trained["seed0"]), str(trained["seed1"]), "--out", str(out), *args]) == 2


def test_the_shipped_model_caps_a_still_pictures_lip_sync_and_the_recipe_fits_the_same_ceiling():
    """Version 40: lip sync of a clip whose picture and lips hold still throughout (a still photo with a voice) is
    capped where every training clip like it was labelled; no tree reads the new columns, so the recipe's trees
    stay version 19's (configs/train/default.yaml), and `make default-model` fits the same ceiling."""
    root = Path(__file__).resolve().parents[1]
    meta = json.loads((root / "talkqa" / "models" / "default" / "model.json").read_text())
    [lip] = meta["ceilings"]["lip_sync"]
    ceiling = Ceiling.from_dict(lip)
    assert lip["column"] == "expression__still_picture"
    assert ceiling(np.array([1.0]))[0] <= 2.0 and np.isinf(ceiling(np.array([0.0, np.nan]))).all()
    recipe = yaml.safe_load(config_path("train", "default.yaml").read_text())["stacking"]
    assert recipe["ceilings"]["lip_sync"] == {"expression__still_picture": 1}
    for dim, dropped in recipe["drop_columns"].items():
        assert {"expression__still_picture", "expression__still_lips_share"} <= set(dropped), dim


def test_the_shipped_model_caps_heavy_coding_and_hard_blur_and_the_recipe_fits_the_same_ceilings():
    """Version 41: visual quality of a face coded hard (visual__heavy_coding_logit: the codec reading where the coder's
    grid shows and the reader says coded) is capped at what the clips compressed at QP 44 were labelled (2.0); a
    clip without the reading (NaN: not coded hard) is never capped. Version 42: so is a face the picture expert reads
    as blurred hard (picture__quality_logit counted from -2.5 on), at what the training clips blurred that hard were
    labelled; a reading above -2.5 is never capped. The recipe has the same ceilings, which `make default-model` fits
    with the compression and blur corpora as ceiling-only clips, in one `talkqa train`."""
    root = Path(__file__).resolve().parents[1]
    meta = json.loads((root / "talkqa" / "models" / "default" / "model.json").read_text())
    coded, blurred = meta["ceilings"]["visual_quality"][:2]
    assert coded["column"] == "visual__heavy_coding_logit" and blurred["column"] == "picture__quality_logit"
    ceiling = Ceiling.from_dict(coded)
    assert ceiling(np.array([3.0]))[0] <= 2.5 and np.isinf(ceiling(np.array([np.nan])))[0]
    blur = Ceiling.from_dict(blurred)
    assert blur.start == -2.5 and blur.worse == -1
    assert blur(np.array([-5.0]))[0] <= 2.25  # the median reading of the blur at 0.04 x IOD (label 2.25)
    assert np.isinf(blur(np.array([-2.4, -1.0, 1.0, np.nan]))).all()  # clean training clips read -1.8 and up
    assert meta["training_data"]["ceiling_only"]["clips"] >= 500  # the compression and blur corpora
    recipe = yaml.safe_load(config_path("train", "default.yaml").read_text())["stacking"]
    assert list(recipe["ceilings"]["visual_quality"].items())[:2] == [("visual__heavy_coding_logit", 1),
                                                                     ("picture__quality_logit", -1)]
    assert recipe["ceiling_from"]["picture__quality_logit"] == -2.5
    for dim, dropped in recipe["drop_columns"].items():
        assert "visual__heavy_coding_logit" in dropped, dim
    makefile = (root / "Makefile").read_text()
    assert "--ceiling-store $(WORK)/compression_store" in makefile and "--ceiling-store $(WORK)/blur_store" in makefile
    assert "add_ceilings.py $(WORK)" not in makefile  # one step: the trees and every ceiling in `talkqa train`


def test_the_shipped_model_caps_a_face_softer_than_the_frame_around_it_and_the_recipe_fits_the_same_ceiling():
    """Version 49: visual quality of a face whose finer detail is gone while the hair, collar and background around
    it keep theirs (visual__surround_detail counted from 0.45 down: a face blurred at 0.04 x IOD reads a median of
    0.25 on the training sources, every training clip without a face blur 0.45 and up) is capped at what the training
    clips reading so were labelled; no tree reads the column, and the recipe fits the same ceiling."""
    root = Path(__file__).resolve().parents[1]
    meta = json.loads((root / "talkqa" / "models" / "default" / "model.json").read_text())
    soft = Ceiling.from_dict(meta["ceilings"]["visual_quality"][2])
    assert soft.column == "visual__surround_detail" and soft.start == 0.45 and soft.worse == -1
    assert soft(np.array([0.19]))[0] <= 2.25 and soft(np.array([0.25]))[0] <= 2.5  # held-out pcavs blurs: 0.19-0.23
    assert np.isinf(soft(np.array([0.45, 0.7, 1.0, 2.7, np.nan]))).all()  # footage without a face blur
    recipe = yaml.safe_load(config_path("train", "default.yaml").read_text())["stacking"]
    assert recipe["ceilings"]["visual_quality"]["visual__surround_detail"] == -1
    assert recipe["ceiling_from"]["visual__surround_detail"] == 0.45
    for dim, dropped in recipe["drop_columns"].items():
        assert "visual__surround_detail" in dropped, dim


def test_the_shipped_model_caps_heavy_noise_from_a_flat_spectrum_on_and_the_recipe_fits_the_same_ceiling():
    """Version 43: audio quality under heavy white noise (audio__spectral_flatness counted from 0.2 on: 0 dB noise reads
    0.34-0.46 on the training sources, clean clips 0.14 at the most) is capped at what the training clips that noisy
    were labelled (1.5 at 0 dB); a flatness under 0.2 is never capped. `make default-model` fits it with a corpus of
    white noise alone as ceiling-only clips."""
    root = Path(__file__).resolve().parents[1]
    meta = json.loads((root / "talkqa" / "models" / "default" / "model.json").read_text())
    audio = meta["ceilings"]["audio_quality"][0]
    ceiling = Ceiling.from_dict(audio)
    assert audio["column"] == "audio__spectral_flatness" and ceiling.start == 0.2 and ceiling.worse == 1
    assert ceiling(np.array([0.45]))[0] <= 2.0  # 0 dB white noise
    assert np.isinf(ceiling(np.array([0.0, 0.05, 0.14, 0.19, np.nan]))).all()  # clean speech, however flat-ish
    assert meta["training_data"]["ceiling_only"]["clips"] >= 800  # compression, blur and noise corpora
    recipe = yaml.safe_load(config_path("train", "default.yaml").read_text())["stacking"]
    assert list(recipe["ceilings"]["audio_quality"].items())[0] == ("audio__spectral_flatness", 1)
    assert recipe["ceiling_from"]["audio__spectral_flatness"] == 0.2
    makefile = (root / "Makefile").read_text()
    assert "--ceiling-store $(WORK)/noise_store" in makefile and "train_corpus,noise,default_model_noise" in makefile


def test_the_shipped_model_caps_heavy_noise_where_the_voice_is_no_stronger_than_the_noise():
    """Version 44: audio quality where the voice's harmonics-to-noise ratio falls below 0 dB (audio__hnr_db counted
    from 0 dB down) is capped at what the training clips reading so were labelled: among every fault of the five
    training stores only white noise reads there (0 dB SNR: a median of -2.2 dB; clean clips 2.1 dB at the lowest),
    so a voice that talks throughout, whose spectrum stays less flat under 0 dB noise (0.34), is capped too. Both
    audio ceilings bound the score: the lower cap holds."""
    root = Path(__file__).resolve().parents[1]
    meta = json.loads((root / "talkqa" / "models" / "default" / "model.json").read_text())
    flat, hnr = (Ceiling.from_dict(c) for c in meta["ceilings"]["audio_quality"])
    assert hnr.column == "audio__hnr_db" and hnr.start == 0 and hnr.worse == -1
    assert hnr(np.array([-1.7]))[0] <= 2.0  # a training pcavs source under 0 dB noise (flatness 0.34)
    assert np.isinf(flat(np.array([0.34])))[0] or flat(np.array([0.34]))[0] > 2.0  # which flatness alone left high
    assert np.isinf(hnr(np.array([0.0, 2.1, 10.0, np.nan]))).all()  # clean speech reads 2.1 dB and up
    recipe = yaml.safe_load(config_path("train", "default.yaml").read_text())["stacking"]
    assert recipe["ceilings"]["audio_quality"] == {"audio__spectral_flatness": 1, "audio__hnr_db": -1}
    assert recipe["ceiling_from"]["audio__hnr_db"] == 0


def test_add_ceilings_refuses_a_start_no_ceiling_reads_before_reading_any_store(tmp_path, load_benchmark, capsys):
    add_ceilings = load_benchmark("add_ceilings")
    nowhere = str(tmp_path / "nowhere")  # never opened: the configuration is checked first
    args = [nowhere, "--out", str(tmp_path / "out"), "--store", nowhere, "--labels", nowhere,
            "--ceiling", "visual_quality:visual__blockiness:1"]
    assert add_ceilings.main([*args, "--ceiling-from", "picture__quality_logit:-2.5"]) == 2
    err = capsys.readouterr().err
    assert "ceiling_from names picture__quality_logit, which no ceiling reads" in err and "Traceback" not in err
    assert add_ceilings.main([*args, "--ceiling-from", "picture__quality_logit"]) == 2
    assert "write COLUMN:VALUE" in capsys.readouterr().err
