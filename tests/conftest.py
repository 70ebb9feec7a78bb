"""Shared fixtures. Test tiers: unit tests on tiny synthetic clips made here; contract tests over
the registries; integration tests on ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TALKQA_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "MANIFEST.tsv").is_file():
        pytest.skip(f"integration data not found at {SHARED_DATA} (set TALKQA_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_anchors() -> Path:
    """Human anchors (../shared/anchors, or TALKQA_SHARED_ANCHORS): read there, never copied."""
    path = Path(os.environ.get("TALKQA_SHARED_ANCHORS", SHARED_DATA.parent / "anchors"))
    if not (path / "thqa_ntire_distortions.csv").is_file():
        pytest.skip(f"human anchors not found at {path} (set TALKQA_SHARED_ANCHORS)")
    return path


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real face bundled with scikit-image (512x512 RGB)."""
    from skimage import data

    return data.astronaut()


def speech_like(duration_s: float, sr: int = 16000, rate_hz: float = 4.0, seed: int = 0) -> np.ndarray:
    """Syllable-like bursts of harmonic sound: enough for VAD, envelopes and pitch trackers."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sr)) / sr
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.zeros_like(t)
    pos = rng.uniform(0, 0.1)
    while pos < duration_s:
        length = rng.uniform(0.12, 0.25)
        idx = (t >= pos) & (t < pos + length)
        env[idx] = np.sin(np.pi * (t[idx] - pos) / length)
        pos += length + rng.uniform(0.05, 1.0 / rate_hz)
    return (0.3 * voice * env / np.max(np.abs(voice))).astype(np.float32)


@pytest.fixture(scope="session")
def talking_head_clip(astronaut, tmp_path_factory):
    """A preprocessed 3 s talking head (the astronaut portrait driven by syllable-like sound): real
    landmarks, crops, audio and VAD, for contract tests over every expert and family."""
    from talkqa.config import PreprocessConfig
    from talkqa.corpus.media import write_clip
    from talkqa.corpus.render import TalkingHeadRenderer
    from talkqa.corpus.speech import controls_from_audio
    from talkqa.features.preprocess import preprocess

    fps, sr, n = 25.0, 16000, 75
    audio = speech_like(n / fps, sr, seed=3)
    head = TalkingHeadRenderer(astronaut, size=192).prepare()
    controls = controls_from_audio(audio, sr, fps, np.random.default_rng(0), n_frames=n)
    frames = head.render(controls)
    path = write_clip(tmp_path_factory.mktemp("talking") / "head.mp4", frames, fps, audio, sr)
    return preprocess(path, PreprocessConfig(), clip_id="head")


@pytest.fixture
def load_benchmark(monkeypatch):
    """Import a script of benchmarks/ by name (it is not a package), registered in sys.modules for the
    test only (dataclasses and pickling look modules up there)."""
    import importlib.util
    import sys

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def synthetic_stack(tmp_path_factory):
    """The default synthetic store (tests/synthetic_store.py: 60 clips, 12 speakers) loaded, for the
    stacking tests: (StoreData, Labels, labelled clip ids). Read only: tests never change it."""
    from synthetic_store import make_synthetic_store
    from talkqa.labels import common_clips, load_labels
    from talkqa.store_data import load_store

    paths = make_synthetic_store(tmp_path_factory.mktemp("synthetic_stack"))
    data, labels = load_store(paths.store), load_labels(paths.manifest)
    return data, labels, common_clips(data, labels)


# The tiny trained model shared by the tests that score (imported last: tiny_model imports this module).
from tiny_model import bundle, score_inputs  # noqa: E402,F401
