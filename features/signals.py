"""Signal tools shared by the hand-crafted families: NaN-aware statistics, audio envelopes on the
video clock, the audio-visual cross-correlation offset estimator, syllable nuclei, peak rates."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks


def nan_stat(fn, x, default=np.nan) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(fn(x)) if len(x) else default


def interp_nan(x: np.ndarray) -> np.ndarray:
    """Fill NaN gaps linearly (edges hold); all-NaN stays all-NaN."""
    x = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x
    t = np.arange(len(x))
    x[~ok] = np.interp(t[~ok], t[ok], x[ok])
    return x


def detrend(x: np.ndarray, frames: int) -> np.ndarray:
    """Remove the slow trend (moving average over `frames`), keeping the syllable-rate motion."""
    return x - uniform_filter1d(x, size=max(1, frames), mode="nearest")


def rms_envelope(frames: np.ndarray) -> np.ndarray:
    """(T,) RMS of each audio frame (frames: (T, hop))."""
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


def to_db(x: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    return 20 * np.log10(np.maximum(x, floor))


def onset_strength(audio: np.ndarray, sr: int, hop: int, n_frames: int) -> np.ndarray:
    """Positive spectral flux of the log-magnitude spectrum, one value per video frame. (librosa's
    onset_strength gives the same shape of curve but costs seconds of JIT warm-up per process.)"""
    import librosa

    mag = np.abs(librosa.stft(audio.astype(np.float32), n_fft=2 * hop, hop_length=hop, center=False))
    logmag = np.log1p(100 * mag)
    flux = np.maximum(0.0, np.diff(logmag, axis=1, prepend=logmag[:, :1])).mean(0)
    out = np.zeros(n_frames)
    out[: min(n_frames, len(flux))] = flux[:n_frames]
    return out


def lagged_corr(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of a[t] with b[t + lag] for lag in -max_lag..max_lag over the frames where
    both are finite. With a = mouth and b = audio, a peak at lag k > 0 means the sound comes k frames
    after the lips."""
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.full(len(lags), np.nan)
    n = len(a)
    for i, lag in enumerate(lags):
        if lag >= 0:
            x, y = a[: n - lag], b[lag:]
        else:
            x, y = a[-lag:], b[: n + lag]
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 8:
            continue
        x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
        den = np.sqrt((x * x).sum() * (y * y).sum())
        if den > 0:
            corr[i] = float((x * y).sum() / den)
    return lags, corr


def av_offset(mouth: np.ndarray, audio_env: np.ndarray, max_lag: int, fps: float) -> dict[str, float]:
    """Offset estimate from the cross-correlation of the detrended mouth aperture with the detrended
    audio envelope: offset (frames, positive = sound after lips), peak and lag-0 correlation, and a
    confidence (peak minus median over lags, an LSE-C analogue)."""
    win = int(round(fps))  # 1 s trend removal: syllables are 3-8 Hz
    m = detrend(interp_nan(mouth), win)
    m[~np.isfinite(mouth)] = np.nan
    e = detrend(audio_env, win)
    lags, corr = lagged_corr(m, e, max_lag)
    if not np.isfinite(corr).any():
        return {"av_offset_frames": np.nan, "av_peak_corr": np.nan, "av_corr_lag0": np.nan, "av_confidence": np.nan}
    best = int(np.nanargmax(corr))
    return {
        "av_offset_frames": float(lags[best]),
        "av_peak_corr": float(corr[best]),
        "av_corr_lag0": float(corr[max_lag]),
        "av_confidence": float(corr[best] - np.nanmedian(corr)),
    }


def peak_rate(x: np.ndarray, fps: float, prominence: float, min_gap_s: float = 0.1, mask=None) -> float:
    """Peaks per second of `x` (counted only where mask is True; the rate is per masked second)."""
    x = interp_nan(x)
    if not np.isfinite(x).any():
        return np.nan
    peaks, _ = find_peaks(x, prominence=prominence, distance=max(1, int(min_gap_s * fps)))
    if mask is None:
        mask = np.ones(len(x), bool)
    seconds = mask.sum() / fps
    if seconds < 0.5:
        return np.nan
    return float(mask[peaks].sum() / seconds)


def syllable_nuclei(audio: np.ndarray, sr: int, speech_mask_100hz: np.ndarray | None = None,
                    prominence_db: float = 2.0) -> np.ndarray:
    """Times (s) of syllable nuclei, de Jong & Wempe style: peaks of the smoothed intensity contour
    (10 ms steps) that stand `prominence_db` above their surroundings, are louder than the clip's
    median speech level minus 25 dB, lie in speech and are at least 100 ms apart."""
    hop = sr // 100
    n = len(audio) // hop
    if n < 10:
        return np.zeros(0)
    frames = audio[: n * hop].reshape(n, hop)
    level = uniform_filter1d(to_db(rms_envelope(frames)), size=5, mode="nearest")
    speech = np.ones(n, bool) if speech_mask_100hz is None else speech_mask_100hz[:n]
    if not speech.any():
        return np.zeros(0)
    floor = np.median(level[speech]) - 25
    peaks, _ = find_peaks(level, prominence=prominence_db, distance=10)
    keep = peaks[(level[peaks] > floor) & speech[peaks]]
    return keep / 100.0


def otsu_split(values: np.ndarray) -> float:
    """Threshold that best separates two classes of 1-D values (Otsu)."""
    v = np.sort(values[np.isfinite(values)])
    if len(v) < 4:
        return float(np.median(v)) if len(v) else np.nan
    best, best_t = -1.0, v[len(v) // 2]
    for t in np.quantile(v, np.linspace(0.05, 0.95, 46)):
        lo, hi = v[v <= t], v[v > t]
        if len(lo) == 0 or len(hi) == 0:
            continue
        score = len(lo) * len(hi) * (lo.mean() - hi.mean()) ** 2
        if score > best:
            best, best_t = score, t
    return float(best_t)
