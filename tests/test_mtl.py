"""The multi-task fusion's fair fight: expert scalars as tokens, self-supervised pre-training, Optuna
tuning, the paired SRCC-difference CI, the learning curve's sampling, inter-task correlation over six
dimensions, `combine: auto` and the large-corpus recipe."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from synthetic_store import make_synthetic_store

from talkqa.errors import TalkqaError
from talkqa.fusion.batch import Featurizer
from talkqa.fusion.config import FusionConfig, PretrainConfig
from talkqa.fusion.model import build_model
from talkqa.fusion.pretrain import CandidateSampler, pretrain
from talkqa.fusion.train import FusionRegressor
from talkqa.labels import common_clips, load_labels
from talkqa.scoring.benchmark_analysis import _source_order, inter_task
from talkqa.scoring.metrics import srcc_difference
from talkqa.scoring.training import choose_combine
from talkqa.store_data import load_store
from talkqa.tasks import DIMENSION_NAMES


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    torch.set_num_threads(1)
    paths = make_synthetic_store(tmp_path_factory.mktemp("mtl"), n_clips=40, n_speakers=8)
    data = load_store(paths.store)
    labels = load_labels(paths.manifest)
    return paths, data, labels, common_clips(data, labels)


def tiny(**sections) -> FusionConfig:
    base = {"model": {"width": 16, "heads": 2, "layers": 1, "encoder_layers": 1, "dropout": 0.0},
            "train": {"epochs": 2, "patience": 2, "threads": 1}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return FusionConfig.model_validate(base)


# ------------------------------------------------------------------------------------- scalar tokens
def test_expert_scalars_are_tokens_and_part_of_the_schema(synth, tmp_path):
    _, data, labels, ids = synth
    model = FusionRegressor(tiny()).fit(data, labels, ids)
    assert model.featurizer_.scalar_columns == list(data.scalars.columns) and len(data.scalars.columns) >= 4
    assert model.model_.scalars is not None and model.schema()["scalar_columns"] == list(data.scalars.columns)
    loaded = FusionRegressor.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict(data, ids[:4]).to_numpy(), model.predict(data, ids[:4]).to_numpy(), atol=1e-6)
    assert json.loads((tmp_path / "m" / "training.json").read_text())["history"]
    data.scalars = data.scalars.drop(columns=["sync__confidence"])
    try:
        with pytest.raises(TalkqaError, match="expert scalar column.*sync__confidence"):
            loaded.predict(data, ids[:4])
    finally:
        data.scalars = load_store(synth[0].store).scalars
    without = FusionRegressor(tiny(use_scalars=False)).fit(data, labels, ids)
    assert without.featurizer_.scalar_columns == [] and without.model_.scalars is None


# ------------------------------------------------------------------------------------- pre-training
def test_candidates_hide_length_and_start_and_put_the_real_pairing_first(synth):
    _, data, _, ids = synth
    cfg = PretrainConfig(shifted_negatives=2, swapped_negatives=1, shift_s=(0.4, 1.0))
    sampler = CandidateSampler(data, ["voice"], ["motion", "picture"], cfg)
    cand, cand_ids, valid = sampler.sample(ids[:6], np.random.default_rng(0))
    assert cand_ids[:4] == [f"{ids[0]}#{k}" for k in range(4)] and valid.shape == (6, 4) and valid[:, 0].all()
    for i, cid in enumerate(ids[:6]):
        spans = []
        for k in range(4):
            c = f"{cid}#{k}"
            if not valid[i, k]:
                continue
            for e in ("voice", "motion"):
                t = cand.experts[e].t_mid[c]
                assert t.min() >= 0 and t.min() < 0.25  # re-timed to start at 0
                spans.append(round(float(t.max()), 1))
            assert c not in cand.experts["sync"].emb  # audiovisual experts stay out of every candidate
        assert max(spans) - min(spans) <= 0.4  # every candidate of a clip has the same length
    # the swapped candidate carries another clip's audio tokens
    first, swapped = cand.experts["voice"].emb[f"{ids[0]}#0"], cand.experts["voice"].emb[f"{ids[0]}#3"]
    assert not any(np.allclose(first[0], row) for row in swapped)


def _aligned_store(data, rng):
    """Voice and motion tokens of a clip share one latent time series: alignment is learnable."""
    u, v = rng.normal(0, 1, data.experts["voice"].info.dim), rng.normal(0, 1, data.experts["motion"].info.dim)
    for cid in data.clip_ids:
        t = data.experts["voice"].t_mid[cid]
        latent = np.cumsum(rng.normal(0, 1, len(t)))
        latent = (latent - latent.mean()) / (latent.std() + 1e-6) + np.sin(2 * np.pi * t * rng.uniform(0.3, 1.0))
        data.experts["voice"].emb[cid] = (np.outer(latent, u) + rng.normal(0, 0.3, (len(t), len(u)))).astype(np.float32)
        tm = data.experts["motion"].t_mid[cid]
        lat_m = np.interp(tm, t, latent)
        data.experts["motion"].emb[cid] = (np.outer(lat_m, v) + rng.normal(0, 0.3, (len(tm), len(v)))).astype(np.float32)
    return data


@pytest.mark.slow
def test_pretraining_learns_alignment_on_held_out_clips(synth):
    paths, _, _, ids = synth
    data = _aligned_store(load_store(paths.store), np.random.default_rng(3))
    cfg = tiny(pretrain={"enabled": True, "epochs": 25, "batch_size": 8, "lr": 3e-3, "mask_weight": 0.0,
                         "shifted_negatives": 2, "swapped_negatives": 1, "shift_s": [0.6, 1.2]})
    feat = Featurizer(data.feature_columns, data.expert_names, 128).fit(data, ids)
    net = build_model(cfg.model, {k: v.info.as_dict() for k, v in data.experts.items()}, 2 * len(data.feature_columns),
                      cfg.tasks)
    history = pretrain(net, feat, data, ids[:30], cfg.pretrain, "cpu", eval_ids=ids[30:])
    final = history[-1]
    assert final["eval_align_accuracy"] >= final["chance"] + 0.3, history[-3:]
    assert history[-2]["align_loss"] < history[0]["align_loss"]


def test_pretrained_fusion_fits_and_records_its_history(synth, tmp_path):
    _, data, labels, ids = synth
    cfg = tiny(pretrain={"enabled": True, "epochs": 1, "batch_size": 8})
    extra = ids[-5:]
    model = FusionRegressor(cfg).fit(data, labels, ids[:-5], unlabelled_ids=extra)
    assert model.pretrain_history_[0]["epoch"] == 0 and "eval_align_accuracy" in model.pretrain_history_[-1]
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "training.json").read_text())["pretrain"] == model.pretrain_history_
    assert yaml.safe_load((tmp_path / "m" / "config.yaml").read_text())["pretrain"]["enabled"] is True


# ------------------------------------------------------------------------------------- tuning
@pytest.mark.slow
def test_tuning_chooses_on_inner_folds_and_saves_the_choice(synth, tmp_path):
    _, data, labels, ids = synth
    model = FusionRegressor(tiny(tune={"n_trials": 2, "folds": 2, "epochs": 1})).fit(data, labels, ids)
    best = model.tuning_["best_params"]
    assert len(model.tuning_["trials"]) == 2 and model.config.tune.n_trials == 0
    assert model.config.model.width == best["width"] and model.config.train.weighting == best["weighting"]
    saved = yaml.safe_load((model.save(tmp_path / "m") / "config.yaml").read_text())
    assert saved["model"]["width"] == best["width"] and saved["loss"]["ranking_weight"] == pytest.approx(best["ranking_weight"])


# ------------------------------------------------------------------------------------- benchmark analysis
def test_paired_srcc_difference():
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 5, 120)
    good, bad = y + rng.normal(0, 0.3, 120), y + rng.normal(0, 2.0, 120)
    d = srcc_difference(good, bad, y, n_boot=200)
    assert d["value"] > 0.2 and 0 < d["lo"] <= d["hi"] and d["unit"] == "clip" and d["n"] == 120
    same = srcc_difference(good, good, y, n_boot=50)
    assert same["value"] == 0 and same["lo"] == same["hi"] == 0
    groups = np.repeat(np.arange(12), 10)
    by_speaker = srcc_difference(good, bad, y, n_boot=200, groups=groups)
    assert by_speaker["unit"] == "speaker" and by_speaker["lo"] <= by_speaker["value"] <= by_speaker["hi"] + 1e-9
    assert srcc_difference([1, 2], [2, 1], [1, 2])["value"] is None


def test_learning_curve_adds_sources_speaker_by_speaker():
    sources = np.array(["a1", "a1", "a2", "a3", "b1", "b2", "c1"])
    speakers = np.array(["a", "a", "a", "a", "b", "b", "c"])
    order = _source_order(sources, speakers, seed=0)
    assert sorted(order) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert {s[0] for s in order[:3]} == {"a", "b", "c"}  # the first three sources: three speakers


def test_inter_task_covers_six_dimensions_and_names_constant_ones():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({d: rng.normal(size=30) for d in DIMENSION_NAMES})
    df["visual_quality"] = 4.5
    res = inter_task(df.drop(columns=["consistency"]))
    assert res["dimensions"] == list(DIMENSION_NAMES) and len(res["matrix"]) == 6
    assert set(res["constant"]) == {"visual_quality", "consistency"}
    k = DIMENSION_NAMES.index("visual_quality")
    assert all(v is None for v in res["matrix"][k]) and res["matrix"][0][0] == pytest.approx(1.0)
    json.dumps(res, allow_nan=False)


# ------------------------------------------------------------------------------------- combine: auto
def test_combine_auto_keeps_the_mean_unless_one_clearly_wins():
    val = {"lip_sync": {"fusion": {"srcc": 0.40}, "stacking": {"srcc": 0.70}, "mean": {"srcc": 0.60}},
           "expression": {"fusion": {"srcc": 0.51}, "stacking": {"srcc": 0.50}, "mean": {"srcc": 0.50}},
           "overall": {"fusion": {"srcc": None}, "stacking": {"srcc": None}, "mean": {"srcc": None}}}
    choice = choose_combine(val, margin=0.02)
    assert choice["lip_sync"]["choice"] == "stacking" and "stacking 0.700" in choice["lip_sync"]["why"]
    assert choice["expression"]["choice"] == "mean"  # 0.01 better is within the margin
    assert choice["overall"]["choice"] == "mean" and set(choice) == set(DIMENSION_NAMES)


def test_combine_auto_on_rmse_prefers_the_lower_error():
    val = {"lip_sync": {"fusion": {"rmse": 0.90}, "stacking": {"rmse": 0.60}, "mean": {"rmse": 0.70}},
           "expression": {"fusion": {"rmse": 0.69}, "stacking": {"rmse": 0.71}, "mean": {"rmse": 0.70}}}
    choice = choose_combine(val, margin=0.02, metric="rmse")
    assert choice["lip_sync"]["choice"] == "stacking" and "validation RMSE" in choice["lip_sync"]["why"]
    assert choice["expression"]["choice"] == "mean"  # 0.01 lower is within the margin


# ------------------------------------------------------------------------------------- the corpus recipe
def test_corpus_labels_stage_joins_both_corpora(tmp_path):
    from talkqa.scoring.corpus_build import CorpusRecipe, build_corpus
    from talkqa.store import write_parquet

    for folder, speaker in (("real", "spk"), ("synth_degraded", "photo")):
        (tmp_path / folder / "videos" / "s").mkdir(parents=True)
        rows = [{"clip_id": f"{folder}/s/v{j:02d}", "video": f"videos/s/v{j:02d}.mp4", "speaker": speaker,
                 "source_clip": f"{folder}/s", "mos_lip_sync": 4.5 - j} for j in range(3)]
        pd.DataFrame(rows).to_csv(tmp_path / folder / "manifest.csv", index=False)
        write_parquet(pd.DataFrame({"clip_id": [rows[1]["clip_id"]], "start": [0.0], "end": [1.0],
                                    "dimension": ["lip_sync"], "artifact": ["av_offset"], "severity": [0.5],
                                    "issue": ["x"]}), tmp_path / folder / "diagnostics.parquet", producer="test")
    report = build_corpus(CorpusRecipe(), tmp_path, stages=("labels",))
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert report["labelled_clips"] == 6 and report["by_corpus"] == {"real": 3, "synth_degraded": 3}
    assert manifest["video"].str.startswith(("real/videos/", "synth_degraded/videos/")).all()
    assert len(pd.read_parquet(tmp_path / "diagnostics.parquet")) == 2
    assert json.loads((tmp_path / "build.json").read_text())["labelled_clips"] == 6


@pytest.mark.integration
def test_large_recipe_plans_3000_clips_from_training_speakers_only(shared_data):
    from talkqa.scoring.corpus_build import load_recipe, real_sources
    from talkqa.shared_data import load_shared_spec

    recipe = load_recipe("large")
    sources = real_sources(recipe, shared_data)
    assert recipe.planned_clips(len(sources)) >= 3000
    assert (sources["split"] == "train").all() and (sources["meta__sync"] == "in_sync").all()
    assert not set(sources["speaker"]) & set(load_shared_spec().heldout)
    sliced = real_sources(load_recipe("large", ["real.max_sources=10"]), shared_data)
    assert len(sliced) == 10 and sliced["speaker"].nunique() == 10


def test_benchmark_fusion_variants_differ_only_in_what_they_name():
    from talkqa.scoring.benchmark import STRATEGIES, BenchmarkConfig

    cfg = BenchmarkConfig(tuned_trials=3)
    tuned = STRATEGIES.create("mtl_tuned", config=cfg)._fusion_config()
    pre = STRATEGIES.create("mtl_pretrained", config=cfg)._fusion_config()
    assert tuned.tune.n_trials == 3 and not tuned.pretrain.enabled
    assert pre.pretrain.enabled and pre.tune.n_trials == 0
    assert tuned.model == pre.model == cfg.fusion.model and not cfg.fusion.pretrain.enabled


def test_benchmark_reports_no_srcc_for_constant_labels():
    """A corpus without any visual artifact labels visual_quality 4.5 everywhere: no SRCC is defined, so the
    strategy table shows none (not 0 [0, 0], which reads as a measured failure)."""
    from talkqa.scoring.benchmark import BenchmarkConfig, _metrics_for

    rng = np.random.default_rng(0)
    y = pd.DataFrame({"mos_lip_sync": rng.uniform(1, 5, 20), "mos_visual_quality": np.full(20, 4.5)})
    pred = pd.DataFrame({"lip_sync": y["mos_lip_sync"] + rng.normal(0, 0.1, 20), "visual_quality": rng.normal(size=20)})
    res = _metrics_for(pred, y, None, BenchmarkConfig(bootstrap=20))
    assert set(res) == {"lip_sync"} and res["lip_sync"]["srcc"]["value"] > 0.9


def test_fit_cache_key_ignores_a_later_setting_at_its_legacy_value():
    """fusion.model.stats_tokens=false is the model as it was before the setting existed: fits cached then
    keep their key; stats_tokens=true (the default) is another model, another key."""
    from talkqa.config import stable_hash
    from talkqa.scoring.benchmark import BenchmarkConfig, CachedFitPredict

    cache = object.__new__(CachedFitPredict)
    cache.context = "ctx"
    legacy = BenchmarkConfig(fusion={"model": {"stats_tokens": False}})
    settings = legacy.model_dump(mode="json", include=CachedFitPredict.MODEL_FIELDS)
    del settings["fusion"]["model"]["stats_tokens"]  # the dump before the setting existed
    before = stable_hash({"strategy": "mtl_fusion", "config": settings, "train": stable_hash(["a"]),
                          "test": stable_hash(["b"]), "unlabelled": stable_hash([]), "context": "ctx"}, 24)
    assert cache.key("mtl_fusion", legacy, ["a"], ["b"], []) == before
    assert cache.key("mtl_fusion", BenchmarkConfig(), ["a"], ["b"], []) != before
