"""Benchmark on a small synthetic store: a well-formed report for every strategy x dimension."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml

from synthetic_store import make_synthetic_store
from talkqa.splits import group_folds
from talkqa.scoring.benchmark import DEFAULT_STRATEGIES, STRATEGIES, BenchmarkConfig, run_benchmark
from talkqa.config import load_config
from talkqa.errors import UsageError
from talkqa.tasks import DIMENSION_NAMES, LABEL_COLUMNS

# Cross-validated benchmark runs, even at test size: the slow tier.
pytestmark = pytest.mark.slow

CI_CONFIG = "configs/benchmark/ci.yaml"
FAST = ["folds=2", "bootstrap=30", "fusion.train.epochs=2", "fusion.train.patience=2", "stacking.n_trials=1",
        "stacking.oof_folds=2", "shap_dimensions=[lip_sync]", f"strategies=[{','.join(DEFAULT_STRATEGIES)}]",
        "fusion.pretrain.epochs=1", "learning_curve.sizes=[6,0]", "learning_curve.strategies=[mtl_fusion,lgbm_stacking]"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from pathlib import Path

    root = tmp_path_factory.mktemp("bench")
    paths = make_synthetic_store(root / "data", n_clips=36, n_speakers=6)
    cfg = load_config(BenchmarkConfig, Path(__file__).resolve().parents[1] / CI_CONFIG,
                      FAST + [f"store={paths.store}", f"labels={paths.manifest}", f"pairs={paths.pairs}"])
    out = root / "report"
    return out, run_benchmark(cfg, out), paths


def test_results_cover_every_strategy_and_dimension_with_ci(report):
    out, res, _ = report
    stored = json.loads((out / "results.json").read_text())
    assert stored["strategies"].keys() == res["strategies"].keys() == set(DEFAULT_STRATEGIES)
    for key in ("n_clips", "n_folds", "dimensions", "metrics", "ablations", "inter_task", "shap", "timings_s"):
        assert key in stored
    assert stored["metrics"] == ["srcc", "krcc", "plcc", "rmse", "pairwise_accuracy"]
    for name, block in stored["strategies"].items():
        assert set(block) == set(DIMENSION_NAMES), name
        for dim, m in block.items():
            for metric in stored["metrics"]:
                assert m[metric]["value"] is not None, (name, dim, metric)
                assert m[metric]["lo"] <= m[metric]["value"] + 1e-9 <= m[metric]["hi"] + 2e-9, (name, dim, metric)
    assert set(stored["ablations"]) == {"mtl_fusion-no_voice", "mtl_fusion-no_motion", "mtl_fusion-no_picture",
                                        "mtl_fusion-no_sync", "mtl_fusion-no_handcrafted", "mtl_fusion-no_scalars",
                                        "mtl_fusion-no_ranking"}
    labels_corr = stored["inter_task"]["labels"]
    assert labels_corr["dimensions"] == list(DIMENSION_NAMES) and len(labels_corr["matrix"]) == len(DIMENSION_NAMES)
    assert "lip_sync [expert]" not in stored["shap"]["lip_sync"]["groups"]  # kinds are labelled
    assert "sync [expert]" in stored["shap"]["lip_sync"]["groups"]


def test_the_mtl_claim_is_measured(report):
    out, res, _ = report
    stored = json.loads((out / "results.json").read_text())
    for mtl in ("mtl_fusion", "mtl_pretrained"):
        for dim in DIMENSION_NAMES:
            cell = stored["differences"][mtl][dim]
            assert cell["vs_single_task"]["other"] == "single_task"
            assert cell["vs_best_other"]["other"] not in ("mtl_fusion", "mtl_pretrained")
            for d in cell.values():
                assert d["lo"] <= d["hi"] and -2 <= d["value"] <= 2 and d["n"] == stored["n_clips"]
    lc = stored["learning_curve"]
    assert lc["sizes"] == ["6", "all"] and set(lc["points"]) == {"mtl_fusion", "lgbm_stacking"}
    assert lc["points"]["mtl_fusion"]["6"]["n_sources"] == 6
    assert lc["points"]["mtl_fusion"]["all"]["n_sources"] > 6
    assert set(lc["points"]["lgbm_stacking"]["all"]["srcc"]) == set(DIMENSION_NAMES)
    assert set(lc["trend"]["mtl_fusion"]) == set(DIMENSION_NAMES)
    assert set(lc["crossings"]) <= {"mtl_fusion"}
    for block in [stored["inter_task"]["labels"], *stored["inter_task"]["predictions"].values()]:
        assert block["dimensions"] == list(DIMENSION_NAMES) and len(block["matrix"]) == len(DIMENSION_NAMES)
    assert all("pretrain_eval_align_accuracy" in f for f in stored["fit_details"]["mtl_pretrained"])
    page = (out / "index.html").read_text()
    assert "SRCC differences" in page and "Learning curve" in page and "What the fits chose" in page


def test_a_rerun_reuses_finished_fits(report, tmp_path):
    import shutil

    out, res, _ = report
    parts = sorted(p.name for p in (out / "parts").glob("*.parquet"))
    assert parts  # one per strategy x fold (+ ablations, learning-curve points)
    shutil.copytree(out / "parts", tmp_path / "parts")
    cfg = BenchmarkConfig.model_validate({**yaml.safe_load((out / "config.yaml").read_text()),
                                          "strategies": ["mtl_fusion"], "ablations": False, "shap": False,
                                          "learning_curve": {"sizes": []}})
    lines: list[str] = []
    again = run_benchmark(cfg, tmp_path, log=lines.append)
    assert sorted(p.name for p in (tmp_path / "parts").glob("*.parquet")) == parts  # nothing refitted
    assert again["strategies"]["mtl_fusion"] == res["strategies"]["mtl_fusion"]
    assert not any("fitting on" in m for m in lines)
    # a fit that is not cached says so before it starts (fits take minutes on a real corpus)
    fresh = cfg.model_copy(update={"strategies": ["expert_scalars"]})
    lines.clear()
    run_benchmark(fresh, tmp_path / "fresh", log=lines.append)
    started = [m for m in lines if "fitting on" in m]
    assert len(started) == fresh.folds and started[0].startswith("fold 1/2 expert_scalars: fitting on")


def test_predictions_are_out_of_fold_and_speaker_grouped(report):
    out, res, _ = report
    pred = pd.read_parquet(out / "predictions.parquet")
    assert {"clip_id", "speaker", "fold", "strategy", "kind", *[f"pred_{d}" for d in DIMENSION_NAMES],
            *LABEL_COLUMNS} <= set(pred.columns)
    one = pred[pred["strategy"] == "mtl_fusion"]
    assert len(one) == res["n_clips"] and one["clip_id"].is_unique
    assert one.groupby("speaker")["fold"].nunique().max() == 1


def test_index_html_is_self_contained(report):
    out, _, _ = report
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") >= 6  # comparison, scatter, ablations, heatmaps, SHAP
    # nothing fetched from elsewhere; the embedded images' base64 may spell "http" by chance, so drop it first
    body = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", page.split("<body>", 1)[1])
    assert 'src="shap/' not in page and "http" not in body
    for name in DEFAULT_STRATEGIES:
        assert name in page
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["folds"] == 2 and BenchmarkConfig.model_validate(saved)


def test_cli_writes_a_report(report, tmp_path):
    from typer.testing import CliRunner

    from talkqa.scoring.cli import app

    _, _, paths = report
    result = CliRunner().invoke(app, ["benchmark", "--config", CI_CONFIG, "--store", str(paths.store), "--labels",
                                      str(paths.manifest), "--out", str(tmp_path / "r"), "--set", "ablations=false",
                                      "--set", "shap=false", "--set", "folds=2", "--set",
                                      "strategies=[expert_scalars,lgbm_handcrafted]", "--set", "stacking.n_trials=0"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "index.html").is_file() and "expert_scalars" in result.output


def test_bad_config_is_one_clear_error(tmp_path):
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        BenchmarkConfig(strategies=["nope"])
    with pytest.raises(UsageError, match="needs a store and labels"):
        run_benchmark(BenchmarkConfig(), tmp_path)
    with pytest.raises(UsageError, match="at least 2 speakers"):
        group_folds(pd.Series(["a"] * 4).to_numpy(), 3, 0)
    assert set(DEFAULT_STRATEGIES) <= set(STRATEGIES.names())
