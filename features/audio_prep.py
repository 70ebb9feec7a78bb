"""Audio preparation on the analysis clock: WebRTC VAD per video frame, loudness normalisation."""

from __future__ import annotations

import warnings

import numpy as np


def rms_dbfs(x: np.ndarray) -> float:
    if len(x) == 0:
        return float("-inf")
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def vad_per_frame(audio: np.ndarray, sr: int, n_frames: int, hop: int, aggressiveness: int = 2) -> np.ndarray:
    """(n_frames,) bool: a video frame is speech if any 20 ms VAD frame starting inside it is."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    sub = int(sr * 0.02)
    need = n_frames * hop
    x = np.pad(audio, (0, max(0, need - len(audio))))[:need]
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    speech = np.zeros(n_frames, bool)
    for start in range(0, len(pcm) - sub + 1, sub):
        if vad.is_speech(pcm[start : start + sub].tobytes(), sr):
            speech[min(start // hop, n_frames - 1)] = True
    return speech


def loudness_normalise(audio: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """(normalised copy, measured integrated loudness). Too short or silent audio is copied unchanged."""
    import pyloudnorm

    if len(audio) < int(0.5 * sr):
        return audio.copy(), float("nan")
    meter = pyloudnorm.Meter(sr)
    lufs = float(meter.integrated_loudness(audio.astype(np.float64)))
    if not np.isfinite(lufs):
        return audio.copy(), lufs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns on clipping; we rescale below
        out = pyloudnorm.normalize.loudness(audio.astype(np.float64), lufs, target_lufs)
    peak = np.max(np.abs(out)) if len(out) else 0.0
    if peak > 1.0:
        out = out / peak  # keep the waveform valid; loudness ends a little under target
    return out.astype(np.float32), lufs
