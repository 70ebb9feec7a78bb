"""A tiny trained model for the tests that score (test_score, test_serve, test_file_modes): a small real
store (extract + experts) of awkward synthetic clips with made-up labels trains it in seconds, once per
session. The fixtures are registered in conftest.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clip_factory import bad_inputs
from talkqa.scoring.cli import app
from talkqa.tasks import DIMENSION_NAMES, LABEL_COLUMNS

FAST_EXTRACT = {"features": {"params": {"audio": {"dnsmos": False, "egemaps": False}}}}
TINY_TRAIN = ["--set", "fusion.model={width: 16, heads: 2, layers: 1, encoder_layers: 0, dropout: 0.0}",
              "--set", "fusion.train.epochs=3", "--set", "fusion.train.val_share=0.25", "--set", "fusion.train.threads=1",
              "--set", "stacking.n_trials=0", "--set", "stacking.oof_folds=2",
              "--set", "stacking.params={n_estimators: 20, num_leaves: 3, min_child_samples: 2}",
              "--set", "expert_overrides={voice: [dnsmos=false, opensmile_lld=false]}"]


@pytest.fixture(scope="session")
def score_inputs(tmp_path_factory, astronaut):
    return bad_inputs(tmp_path_factory.mktemp("score_inputs"), astronaut)


@pytest.fixture(scope="session")
def bundle(score_inputs, tmp_path_factory):
    """Extract + embed the usable clips, label them at random (4 speakers, a few diagnostic segments),
    then `talkqa train` a tiny model."""
    import torch

    from talkqa.config import ExtractConfig
    from talkqa.experts.embed import run_embed
    from talkqa.features.extract import run_extract

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("score_model")
    usable = ["good", "no_audio_track", "silent_audio", "face_in_part", "vfr", "fps60", "audio_8k", "audio_48k_stereo"]
    rng = np.random.default_rng(0)
    manifest = pd.DataFrame({"clip_id": usable, "video": [str(score_inputs[n][0]) for n in usable],
                             "speaker": [f"spk{i % 4}" for i in range(len(usable))]})
    for col in LABEL_COLUMNS:
        manifest[col] = np.round(rng.uniform(1.5, 4.8, len(usable)), 2)
    manifest.to_csv(root / "manifest.csv", index=False)
    diag = pd.DataFrame([{"clip_id": n, "start": 0.0, "end": 1.0, "dimension": DIMENSION_NAMES[i % 5],
                          "artifact": "made_up", "severity": 0.5, "issue": "made up"} for i, n in enumerate(usable[:6])])
    # Two corpora, each its own store + label file (+ diagnostics beside it), trained on together.
    args = []
    for part, rows in (("a", manifest.iloc[::2]), ("b", manifest.iloc[1::2])):
        folder = root / part
        folder.mkdir()
        rows.to_csv(folder / "manifest.csv", index=False)
        diag[diag["clip_id"].isin(rows["clip_id"])].to_parquet(folder / "diagnostics.parquet", index=False)
        run_extract(rows, folder / "store", ExtractConfig.model_validate(FAST_EXTRACT))
        run_embed(folder / "store", "motion")
        run_embed(folder / "store", "voice", overrides=["dnsmos=false", "opensmile_lld=false"])  # seconds, not a minute
        args += ["--store", str(folder / "store"), "--labels", str(folder / "manifest.csv")]
    res = CliRunner().invoke(app, ["train", *args, "--out", str(root / "model"), "--name", "tiny-test", "-q", *TINY_TRAIN])
    assert res.exit_code == 0, res.output
    return root / "model"
