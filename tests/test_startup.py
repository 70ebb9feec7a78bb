"""What a cold `talkqa score` pays for: scoring one clip with the shipped model imports nothing that
scoring does not use (benchmarks/score_speed.py measures the time; this keeps the heavy imports off)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

# Packages a scored clip must not import: training, tuning, explanation, plotting, clusters, serving,
# the audio libraries features/mel.py and features/dnsmos.py replace (librosa's numba kernels), torch (the
# shipped networks run from their ONNX exports, talkqa/onnx_model.py), LightGBM and scikit-learn (the stack's
# trees and projections are evaluated in NumPy, stacking/trees.py), and scipy, scikit-image and pyloudnorm
# (features/peaks.py, filters.py and loudness.py compute the few functions scoring needs).
NOT_ON_THE_SCORING_PATH = ["torch", "transformers", "optuna", "shap", "ray", "librosa", "numba", "speechmos", "sympy",
                           "fastapi", "uvicorn", "talkqa.corpus", "lightgbm", "sklearn", "scipy", "skimage",
                           "pyloudnorm"]


@pytest.mark.slow  # a fresh process that loads the shipped model and scores a clip (~10-20 s on 2 cores)
def test_scoring_a_clip_imports_only_what_it_uses(astronaut, tmp_path):
    from talkqa.corpus.media import write_clip
    from talkqa.corpus.render import TalkingHeadRenderer
    from talkqa.corpus.speech import controls_from_audio

    from conftest import speech_like

    fps, sr, n = 25.0, 16000, 75
    audio = speech_like(n / fps, sr, seed=3)
    frames = TalkingHeadRenderer(astronaut, size=192).prepare().render(
        controls_from_audio(audio, sr, fps, np.random.default_rng(0), n_frames=n))
    clip = write_clip(tmp_path / "head.mp4", frames, fps, audio, sr)
    code = (
        "import json, sys\n"
        "from talkqa.scoring.scorer import Scorer\n"
        f"r = Scorer().score({str(clip)!r})\n"
        "print(json.dumps({'error': r.error, 'modules': sorted(sys.modules)}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] is None
    loaded = {m for m in out["modules"] if any(m == p or m.startswith(p + ".") for p in NOT_ON_THE_SCORING_PATH)}
    assert not loaded, f"scoring imported {sorted(loaded)[:10]}"
