"""Audio on the analysis clock: WebRTC VAD per video frame, loudness normalisation (EBU R128 / BS.1770)."""

from __future__ import annotations

import numpy as np

from .loudness import integrated_loudness

VAD_FRAME_S = 0.02  # WebRTC VAD accepts 10, 20 or 30 ms frames
_VAD_RATES = (8000, 16000, 32000, 48000)  # the only rates WebRTC VAD accepts
MIN_LOUDNESS_S = 0.5  # BS.1770 gates 400 ms blocks: shorter audio has no integrated loudness


def rms_dbfs(x: np.ndarray) -> float:
    if len(x) == 0:
        return float("-inf")
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


def vad_per_frame(audio: np.ndarray, sr: int, n_frames: int, hop: int, aggressiveness: int = 2) -> np.ndarray:
    """(n_frames,) bool: video frame t (samples [t*hop, (t+1)*hop)) is speech if any 20 ms VAD frame
    overlapping it is."""
    import webrtcvad  # lazy: slow import, only on this path

    x = np.pad(audio, (0, max(0, n_frames * hop - len(audio))))[: n_frames * hop]
    vad_sr = sr if sr in _VAD_RATES else 16000
    if vad_sr != sr:
        from scipy.signal import resample_poly  # lazy: slow import, only on this path

        x = resample_poly(x, vad_sr, sr)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    sub = int(vad_sr * VAD_FRAME_S)
    vad = webrtcvad.Vad(aggressiveness)
    speech = np.zeros(n_frames, bool)
    samples_per_frame = hop * vad_sr / sr
    for start in range(0, len(pcm) - sub + 1, sub):
        if vad.is_speech(pcm[start : start + sub].tobytes(), vad_sr):
            first = int(start // samples_per_frame)
            last = int(np.ceil((start + sub) / samples_per_frame)) - 1
            speech[first : min(last, n_frames - 1) + 1] = True
    return speech


def loudness_normalise(audio: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """(normalised copy, measured integrated loudness in LUFS). Audio too short to measure or silent
    (loudness -inf) comes back as an unchanged copy. Peaks are kept within [-1, 1], so a very quiet
    recording may end a little under the target rather than clip."""
    if len(audio) < int(MIN_LOUDNESS_S * sr):
        return audio.astype(np.float32, copy=True), float("nan")
    x = audio.astype(np.float64)
    lufs = integrated_loudness(x, sr)
    if not np.isfinite(lufs):
        return audio.astype(np.float32, copy=True), lufs
    out = x * 10.0 ** ((target_lufs - lufs) / 20.0)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > 1.0:
        out = out / peak
    return out.astype(np.float32), lufs
