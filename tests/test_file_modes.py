"""Every file talkqa writes gets the mode a plain open() gives (0644 under umask 022): the atomic
writer's temporary files are created 0600, which would hide stores, corpora and reports from other
users, web servers and containers."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthetic_store import make_synthetic_store
from talkqa.scoring.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_extract_degrade_benchmark_and_html_report_write_files_0644_under_umask_022(score_inputs, bundle, tmp_path):
    good = str(score_inputs["good"][0])
    pd.DataFrame({"clip_id": ["good"], "video": [good], "speaker": ["s1"]}).to_csv(tmp_path / "real.csv", index=False)
    synthetic = make_synthetic_store(tmp_path / "synthetic", n_clips=24, n_speakers=4)
    commands = {
        "store": ["extract", good, "--store", str(tmp_path / "store"),
                  "--set", "features.params={audio: {dnsmos: false, egemaps: false}}"],
        "degraded": ["degrade", str(tmp_path / "real.csv"), "--out", str(tmp_path / "degraded"), "--variants", "2"],
        "bench": ["benchmark", "--config", str(REPO / "configs/benchmark/ci.yaml"), "--store", str(synthetic.store),
                  "--labels", str(synthetic.manifest), "--out", str(tmp_path / "bench"), "--set", "folds=2",
                  "--set", "ablations=false", "--set", "strategies=[lgbm_stacking]", "--set", "stacking.n_trials=0",
                  "--set", "shap_dimensions=[lip_sync]", "--set", "bootstrap=10"],
        "html": ["score", good, "--model", str(bundle), "--html", str(tmp_path / "html")],
    }
    old = os.umask(0o022)
    try:
        for out, args in commands.items():
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, (out, res.output)
    finally:
        os.umask(old)
    for out in commands:
        written = list((tmp_path / out).rglob("*"))
        assert any(p.is_file() for p in written), out
        wrong = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in written
                 if p.stat().st_mode & 0o777 != (0o755 if p.is_dir() else 0o644)}
        assert not wrong, wrong
    # among them the writers that do not use a plain file handle: PyAV videos, matplotlib PNGs, np.savez tracks
    for made in ("degraded/videos", "degraded/contact_sheet.png", "bench/shap/lip_sync_bar.png", "store/tracks"):
        assert (tmp_path / made).exists(), made
