"""Mel filter banks and log-mel spectrograms in NumPy, equal to librosa's (Slaney mel scale and
area normalisation, the defaults of `librosa.filters.mel`; `melspectrogram` with a periodic Hann window,
centred frames padded with zeros; `power_to_db`).

Why not librosa itself: importing it and its first call (numba kernels, lazy submodules) cost ~2.5 s
of a cold `talkqa score`, for three small matrix products. tests/test_mel.py checks the equality."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_F_SP = 200.0 / 3  # Slaney: linear below 1 kHz (66.7 Hz per mel), logarithmic above
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    mel = hz / _F_SP
    log = hz >= _MIN_LOG_HZ
    return np.where(log, _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log = mel >= _MIN_LOG_MEL
    return np.where(log, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


@lru_cache(maxsize=16)
def _filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    width = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_hz)
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32, as `librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=)`.
    Cached and read-only: copy before changing it."""
    return _filters(int(sr), int(n_fft), int(n_mels), float(fmin), float(sr) / 2 if fmax is None else float(fmax))


def melspectrogram(y: np.ndarray, sr: int, n_fft: int, hop_length: int, n_mels: int) -> np.ndarray:
    """(n_mels, frames) mel power, as `librosa.feature.melspectrogram(y=, sr=, n_fft=, hop_length=, n_mels=)`."""
    y = np.asarray(y, np.float32)
    pad = n_fft // 2
    y = np.pad(y, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic Hann
    spec = np.fft.rfft(frames * window, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    return mel_filterbank(sr, n_fft, n_mels) @ power.T


def power_to_db(s: np.ndarray, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """As `librosa.power_to_db(s, ref=np.max)`: dB relative to the maximum, floored `top_db` below it."""
    db = 10.0 * np.log10(np.maximum(amin, s)) - 10.0 * np.log10(max(amin, float(np.max(s))))
    return np.maximum(db, db.max() - top_db)
