"""The reduced demo, end to end: synth -> degrade -> extract -> embed -> benchmark -> report.

Checks that the report exists and is well formed, not that the models are good (8 tiny clips)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from talkqa.tasks import DIMENSION_NAMES

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from talkqa.scoring.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo"), size="quick", workers=2)


def test_demo_writes_a_complete_report(demo_run):
    from talkqa.experts import EXPERTS

    report = demo_run["report"]
    results = json.loads((report / "results.json").read_text())
    html = (report / "index.html").read_text()
    assert results["n_clips"] >= 16 and results["n_speakers"] >= 3
    assert set(results["strategies"]) == {"mtl_fusion", "single_task", "concat_mlp", "lgbm_stacking",
                                          "lgbm_handcrafted", "expert_scalars"}
    # ablations: one per expert dropped, no hand-crafted features, no expert scalars, no ranking loss
    assert set(results["ablations"]) == {*(f"mtl_fusion-no_{e}" for e in EXPERTS.names()),
                                         "mtl_fusion-no_handcrafted", "mtl_fusion-no_scalars", "mtl_fusion-no_ranking"}
    for name, block in results["strategies"].items():
        for dim in DIMENSION_NAMES:
            srcc = block[dim]["srcc"]
            if srcc["value"] is not None:
                # a bootstrap percentile CI need not contain the point estimate on 16 clips
                assert -1 <= srcc["lo"] <= srcc["hi"] <= 1 and -1 <= srcc["value"] <= 1, (name, dim, srcc)
        assert name in html
    assert any(block[d]["srcc"]["value"] is not None for block in results["strategies"].values() for d in DIMENSION_NAMES)
    preds = pd.read_parquet(report / "predictions.parquet")
    assert len(preds) == results["n_clips"] * (len(results["strategies"]) + len(results["ablations"]))
    for dim in results["shap"]:
        for plot in results["shap"][dim]["plots"].values():
            for p in plot if isinstance(plot, list) else [plot]:
                assert (report / p).is_file() and (report / p).stat().st_size > 1000
    assert "<img" in html and "http://" not in html.split("<body", 1)[1].split("</body>")[0].replace("http://www.w3.org", "")


def test_demo_store_has_every_expert(demo_run):
    from talkqa.experts import EXPERTS

    store = demo_run["store"]
    for name in EXPERTS.names():
        tokens = pd.read_parquet(store / "experts" / f"{name}.parquet")
        assert len(tokens) > 0 and tokens["clip_id"].nunique() >= 16
    assert set(demo_run["timings_s"]) >= {"corpus", "extract", "embed", "benchmark", "total"}
