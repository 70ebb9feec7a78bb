"""The demo, end to end at --quick size: planted faults scored with their HTML reports, then synth ->
degrade -> extract -> embed -> benchmark -> report. Checks what it writes and prints from, not that the
models are good (12 tiny clips); the verdict wording is checked on made-up results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from talkqa.tasks import DIMENSION_NAMES


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from talkqa.scoring.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo"), size="quick", workers=2)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_scores_every_planted_fault_with_a_report(demo_run):
    from talkqa.scoring.check_config import load_check_config
    from talkqa.scoring.demo import FAULTS, fault_rows

    config = load_check_config(FAULTS)
    keys = {v.key for c in config.checks for v in c.variants}
    assert {"clean", "still_photo"} <= keys and len(keys) >= 4
    assert set(demo_run["reports"]) == keys  # every version scored, each with its page, named after its check
    assert {p.stem for p in demo_run["reports"].values()} == {c.name for c in config.checks}
    for key, page in demo_run["reports"].items():
        html = page.read_text()
        assert page.stat().st_size > 2000 and "<html" in html.lower() and "lip" in html, key
    report = demo_run["faults"]
    assert {o.check for o in report.outcomes} == {c.name for c in config.checks}
    scores = report.scores[report.sources[0]]
    assert set(scores) == keys
    for key, s in scores.items():
        assert set(s) == set(DIMENSION_NAMES)
        assert all(v is None or 1.0 <= v <= 5.0 for v in s.values()), (key, s)
    rows = fault_rows(report, config, demo_run["fault_results"])
    assert len(rows) == len(keys) and all(r["verdict"] in {"yes", "no", "not scored"} for r in rows)
    assert all(r["result"].scores == scores[k] for r, k in zip(rows, [v.key for c in config.checks for v in c.variants]))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_benchmark_writes_a_complete_report(demo_run):
    from talkqa.config import config_path, load_config
    from talkqa.scoring.benchmark import BenchmarkConfig

    config = load_config(BenchmarkConfig, config_path("benchmark", "demo.yaml"))
    report = demo_run["report"]
    results = json.loads((report / "results.json").read_text())
    html = (report / "index.html").read_text()
    assert results["n_clips"] >= 12 and results["n_speakers"] >= 3 and results["n_folds"] == config.folds
    assert set(results["strategies"]) == set(config.strategies) and not results["ablations"]
    for name, block in results["strategies"].items():
        for dim in DIMENSION_NAMES:
            srcc = block.get(dim, {}).get("srcc")
            if srcc and srcc["value"] is not None:
                assert -1 <= srcc["lo"] <= srcc["hi"] <= 1 and -1 <= srcc["value"] <= 1, (name, dim, srcc)
        assert name in html
    assert any(block[d]["srcc"]["value"] is not None for block in results["strategies"].values() for d in block)
    preds = pd.read_parquet(report / "predictions.parquet")
    assert len(preds) == results["n_clips"] * len(results["strategies"])
    assert "mtl_fusion" in results["differences"]
    assert "http://" not in html.split("<body", 1)[1].split("</body>")[0].replace("http://www.w3.org", "")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_demo_store_has_every_expert(demo_run):
    from talkqa.experts import EXPERTS

    store = demo_run["store"]
    for name in EXPERTS.names():
        tokens = pd.read_parquet(store / "experts" / f"{name}.parquet")
        assert len(tokens) > 0 and tokens["clip_id"].nunique() >= 12
    assert set(demo_run["timings_s"]) >= {"faults", "corpus", "extract", "embed", "benchmark", "total"}


def test_verdicts_say_where_multi_task_fusion_loses():
    from talkqa.scoring.demo import verdict_lines

    def d(value, lo, hi, other):
        return {"value": value, "lo": lo, "hi": hi, "n": 12, "unit": "clip", "other": other}

    results = {"differences": {"mtl_fusion": {
        "lip_sync": {"vs_single_task": d(0.3, 0.1, 0.5, "single_task"), "vs_best_other": d(-0.4, -0.7, -0.1, "lgbm_stacking")},
        "overall": {"vs_single_task": d(-0.05, -0.3, 0.2, "single_task")}}}}
    lines = verdict_lines(results)
    assert len(lines) == 3
    assert "single_task, lip_sync" in lines[0] and lines[0].endswith("wins")
    assert "lgbm_stacking, lip_sync" in lines[1] and "loses" in lines[1]
    assert "no clear difference (behind)" in lines[2]


def test_faults_are_planted_in_a_rendered_head_without_shared_data(tmp_path, monkeypatch):
    from talkqa.scoring import demo

    monkeypatch.setattr(demo, "find_shared_data", lambda: None)
    source = demo._fault_source(tmp_path, 1.0)
    assert len(source) == 1 and (tmp_path / "source" / "manifest.csv").is_file()
    assert source["video"].map(lambda p: Path(p).is_file()).all()


@pytest.mark.integration
def test_faults_are_planted_in_a_held_out_real_clip_when_shared_data_is_there(shared_data, monkeypatch, tmp_path):
    from talkqa.scoring import demo
    from talkqa.shared_data import load_shared_spec

    monkeypatch.setenv("TALKQA_SHARED_DATA", str(shared_data))
    source = demo._fault_source(tmp_path, 4.0)
    spec = load_shared_spec()
    clip = source["clip_id"].iloc[0]
    assert len(source) == 1 and spec.split_of(spec.speaker_of(clip)) == "heldout"
    assert not (tmp_path / "source").exists()  # nothing rendered
