"""Fusion model on the synthetic store: padding, learning, save/load, weighting schemes, metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from talkqa.fusion.baselines import ScalarBaseline
from talkqa.fusion.batch import Featurizer
from talkqa.fusion.config import FusionConfig
from talkqa.labels import common_clips, load_labels
from talkqa.store_data import load_store
from talkqa.scoring.metrics import dimension_metrics, fit_logistic4, pairwise_accuracy
from talkqa.fusion.model import MODELS, build_model
from synthetic_store import make_synthetic_store
from talkqa.fusion.train import FusionRegressor
from talkqa.fusion.weighting import WEIGHTINGS
from talkqa.errors import TalkqaError
from talkqa.tasks import DIMENSION_NAMES


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    torch.set_num_threads(1)
    paths = make_synthetic_store(tmp_path_factory.mktemp("synth"))
    data = load_store(paths.store)
    labels = load_labels(paths.manifest, pairs=paths.pairs)
    ids = common_clips(data, labels)
    groups = labels.groups(ids)
    held = set(sorted(set(groups))[:3])
    train = [c for c, g in zip(ids, groups) if g not in held]
    test = [c for c, g in zip(ids, groups) if g in held]
    return paths, data, labels, train, test


def small_config(**train) -> FusionConfig:
    return FusionConfig.model_validate({"model": {"width": 32, "layers": 2, "encoder_layers": 1, "dropout": 0.0},
                                        "train": {"epochs": 10, "patience": 10, "threads": 1, **train}})


@pytest.mark.parametrize("architecture", MODELS.names())
@pytest.mark.parametrize("direction", ["audio_to_visual", "visual_to_audio", "bidirectional"])
def test_padding_does_not_change_unpadded_items(synth, architecture, direction):
    _, data, _, train, _ = synth
    cfg = small_config()
    cfg.model.architecture = architecture
    cfg.model.direction = direction
    torch.manual_seed(0)
    feat = Featurizer(data.feature_columns, data.expert_names, 128).fit(data, train)
    experts = {k: v.info.as_dict() for k, v in data.experts.items()}
    model = build_model(cfg.model, experts, 2 * len(data.feature_columns), cfg.tasks).eval()
    lengths = {c: len(data.experts["voice"].emb[c]) for c in train}
    short, long_ = min(lengths, key=lengths.get), max(lengths, key=lengths.get)
    assert lengths[short] < lengths[long_]
    with torch.no_grad():
        alone = model(feat.batch(data, [short]))
        padded = model(feat.batch(data, [short, long_]))
    torch.testing.assert_close(alone["pred"][0], padded["pred"][0], atol=1e-5, rtol=1e-5)
    if alone["diag"] is not None:
        n_win = len(data.windows[short])
        torch.testing.assert_close(alone["diag"][0, :n_win], padded["diag"][0, :n_win], atol=1e-5, rtol=1e-5)


def test_loss_decreases_and_early_stopping_restores_best(synth):
    _, data, labels, train, _ = synth
    model = FusionRegressor(small_config(epochs=12, patience=12)).fit(data, labels, train)
    task_loss = [sum(h["train"][t] for t in DIMENSION_NAMES) for h in model.history_]
    assert task_loss[-1] < 0.7 * task_loss[0]
    assert model.best_val_loss_ == pytest.approx(min(h["val_loss"] for h in model.history_))
    for key in ("ranking", "contrastive", "diagnostic"):
        assert np.isfinite(model.history_[-1]["train"][key])


@pytest.mark.parametrize("weighting", WEIGHTINGS.names())
def test_every_weighting_scheme_trains(synth, weighting):
    _, data, labels, train, test = synth
    model = FusionRegressor(small_config(epochs=3, weighting=weighting)).fit(data, labels, train)
    w = model.history_[-1]["weights"]
    assert set(w) == set(DIMENSION_NAMES) and all(np.isfinite(v) and v > 0 for v in w.values())
    assert np.isfinite(model.predict(data, test).to_numpy()).all()


def test_fusion_learns_the_synthetic_signal(synth):
    _, data, labels, train, test = synth
    model = FusionRegressor(small_config(epochs=30, patience=30)).fit(data, labels, train)
    pred = model.predict(data, test)
    y = labels.y(test)
    srcc = {d: stats.spearmanr(pred[d], y[:, k])[0] for k, d in enumerate(DIMENSION_NAMES)}
    assert np.mean([srcc[d] for d in ("lip_sync", "expression", "audio_quality", "overall")]) > 0.4, srcc
    windows = model.predict_windows(data, test[:2])
    assert set(windows) == set(test[:2])
    assert list(windows[test[0]].columns) == ["t_start", "t_end", *DIMENSION_NAMES]


def test_single_task_and_dropped_inputs(synth):
    _, data, labels, train, test = synth
    cfg = small_config(epochs=2)
    cfg.tasks = ["audio_quality"]
    cfg.drop_experts = ["sync"]
    cfg.use_handcrafted = False
    model = FusionRegressor(cfg).fit(data, labels, train)
    assert list(model.predict(data, test).columns) == ["audio_quality"]
    assert set(model.schema()["experts"]) == {"voice", "motion", "picture"} and model.schema()["feature_columns"] == []


def test_save_load_round_trip_and_schema_refusal(synth, tmp_path):
    paths, data, labels, train, test = synth
    model = FusionRegressor(small_config(epochs=2)).fit(data, labels, train)
    folder = model.save(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} >= {"weights.pt", "config.yaml", "schema.json", "versions.json"}
    loaded = FusionRegressor.load(folder)
    np.testing.assert_allclose(loaded.predict(data, test).to_numpy(), model.predict(data, test).to_numpy(), atol=1e-6)

    other = load_store(make_synthetic_store(tmp_path / "other", n_clips=12, n_speakers=3, seed=1).store)
    with pytest.raises(TalkqaError, match="does not match store.*weights_hash"):
        loaded.predict(other)
    other.handcrafted = other.handcrafted.drop(columns=["audio__hnr_mean"])
    with pytest.raises(TalkqaError, match="audio__hnr_mean"):
        loaded.predict(other)
    with pytest.raises(TalkqaError, match="not a fusion model folder"):
        FusionRegressor.load(tmp_path)


def test_scalar_baseline_picks_informative_scalars(synth):
    _, data, labels, train, test = synth
    base = ScalarBaseline().fit(data, labels, train)
    assert base.chosen_["lip_sync"].startswith("sync__")
    pred = base.predict(data, test)
    assert stats.spearmanr(pred["audio_quality"], labels.y(test)[:, DIMENSION_NAMES.index("audio_quality")])[0] > 0.5


def test_metrics_logistic_ci_and_pairwise(synth):
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 5, 80)
    pred = np.tanh(y - 3) + rng.normal(0, 0.1, 80)
    mapped, how = fit_logistic4(pred, y)
    assert how == "logistic4" and np.corrcoef(mapped, y)[0, 1] > 0.9
    m = dimension_metrics(pred, y, n_boot=100)
    for key in ("srcc", "krcc", "plcc", "rmse"):
        assert m[key]["lo"] <= m[key]["value"] <= m[key]["hi"]
    _, _, labels, _, _ = synth
    truth = labels.table["mos_overall"].to_dict()
    acc = pairwise_accuracy(truth, labels.pairs[labels.pairs["dimension"] == "overall"], n_boot=50)
    assert acc["value"] > 0.7 and acc["n"] > 0
