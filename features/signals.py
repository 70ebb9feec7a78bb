"""Signal tools shared by the feature families: NaN gaps, robust statistics, audio envelopes and
spectra on the video clock, lagged cross-correlation, F0 and syllable nuclei.

Everything on the video clock takes and returns (T,) arrays, one value per frame, where frame t
covers audio samples [t*hop, (t+1)*hop). Missing values are NaN and every reducer here is NaN-aware,
so a face lost for a few frames or a silent stretch degrades to NaN, never to an exception.
"""

from __future__ import annotations

import warnings

import numpy as np

from .filters import gaussian_filter1d, maximum_filter1d, minimum_filter1d
from .filters import otsu_threshold as _otsu
from .mel import mel_filterbank
from .peaks import find_peaks

EPS = 1e-12


# ------------------------------------------------------------------------------------- NaN handling
def runs(mask: np.ndarray) -> np.ndarray:
    """(R, 2) [start, end) index pairs of the runs of True in a 1-D boolean mask."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    return np.flatnonzero(np.diff(m.astype(np.int8))).reshape(-1, 2)


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D boolean mask (0 when there is none)."""
    found = runs(mask)
    return int((found[:, 1] - found[:, 0]).max()) if len(found) else 0


def fill_gaps(x: np.ndarray, max_gap: int | None = None) -> np.ndarray:
    """Linear interpolation across interior NaN runs of at most `max_gap` samples (all when None).
    Runs at the edges and longer ones stay NaN: inventing seconds of motion would fake a measurement."""
    x = np.asarray(x, np.float64)
    bad = ~np.isfinite(x)
    if not bad.any() or bad.all():
        return x.copy()
    good = np.flatnonzero(~bad)
    out = x.copy()
    out[bad] = np.interp(np.flatnonzero(bad), good, x[good])
    for start, end in runs(bad):
        if start == 0 or end == len(x) or (max_gap is not None and end - start > max_gap):
            out[start:end] = np.nan
    return out


def nanmean(x, axis=None):
    """np.nanmean without the 'mean of empty slice' warning: an empty window is simply NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def nanstd(x, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(x, axis=axis)


def nanmedian(x, axis=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=axis)


def nanpercentile(x, q) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else float("nan")


def share(mask: np.ndarray, within: np.ndarray | None = None) -> float:
    """Share of the `within` frames (all when None) where `mask` holds; NaN when `within` is empty."""
    mask = np.asarray(mask, bool)
    within = np.ones_like(mask) if within is None else np.asarray(within, bool)
    n = int(within.sum())
    return float((mask & within).sum() / n) if n else float("nan")


def rolling_range(x: np.ndarray, size: int) -> np.ndarray:
    """(T,) max - min over a centred window of `size` frames; NaN where x is NaN (the lipsync family's
    moving mouth, the expression family's still lips)."""
    bad = ~np.isfinite(x)
    if bad.all():
        return np.full(len(x), np.nan)
    filled = np.where(bad, np.nanmedian(x), x)
    out = maximum_filter1d(filled, size) - minimum_filter1d(filled, size)
    out[bad] = np.nan
    return out


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD), falling back to the standard deviation when over half the values
    are equal (MAD 0), and to zeros for a constant signal. NaN stays NaN."""
    x = np.asarray(x, np.float64)
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return x.copy()
    med = np.median(finite)
    scale = 1.4826 * np.median(np.abs(finite - med))
    if scale < EPS:
        scale = finite.std()
    if scale < EPS:
        return np.where(np.isfinite(x), 0.0, np.nan)
    return (x - med) / scale


def pearson(a: np.ndarray, b: np.ndarray, min_n: int = 3) -> float:
    """Pearson correlation over the positions where both are finite; NaN when too few or constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < min_n:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > EPS else float("nan")


def window_reduce(x: np.ndarray, windows: np.ndarray, fn=nanmean) -> np.ndarray:
    """(W,) fn(x[start:end]) per window; fn must give NaN for an empty or all-NaN slice."""
    return np.array([fn(x[s:e]) for s, e in windows], dtype=np.float64)


def window_share(mask: np.ndarray, windows: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    within = np.ones(len(mask), bool) if within is None else within
    return np.array([share(mask[s:e], within[s:e]) for s, e in windows], dtype=np.float64)


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """NaN-aware Gaussian smoothing (normalised convolution); NaN positions stay NaN."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if not ok.any() or sigma <= 0:
        return x.copy()
    num = gaussian_filter1d(np.where(ok, x, 0.0), sigma)
    den = gaussian_filter1d(ok.astype(np.float64), sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.maximum(den, EPS), np.nan)


def moving_mean(x: np.ndarray, n: int, min_count: int | None = None) -> np.ndarray:
    """NaN-aware centred mean over `n` samples (normalised convolution, as `smooth`); NaN where fewer than
    `min_count` (default: half of `n`, rounded up) finite samples fall in the window."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    kernel = np.ones(n)
    total = np.convolve(np.where(ok, x, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(np.float64), kernel, mode="same")
    need = (n + 1) // 2 if min_count is None else min_count
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= max(need, 1), total / count, np.nan)


def detrend(x: np.ndarray, sigma: float) -> np.ndarray:
    """x minus its Gaussian-smoothed trend: keeps the syllabic modulations that carry audio-visual
    timing and drops slow drifts (head pitch, loudness ramps) that only blur a correlation peak."""
    return np.asarray(x, np.float64) - smooth(x, sigma)


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of a 1-D sample (scikit-image), ignoring NaN; the mean when there is nothing to split."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2 or v.max() - v.min() < EPS:
        return float(v.mean()) if len(v) else float("nan")
    return _otsu(v, bins)


# ----------------------------------------------------------------------------- audio on the video clock
def frame_audio(audio: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """(T, hop) audio cut into video frames, zero-padded at the end."""
    need = n_frames * hop
    x = np.asarray(audio, np.float64)
    x = np.pad(x, (0, max(0, need - len(x))))[:need]
    return x.reshape(n_frames, hop)


def frame_power(audio: np.ndarray, n_frames: int, hop: int) -> np.ndarray:
    """(T,) mean squared amplitude of the samples inside each video frame."""
    return np.mean(frame_audio(audio, n_frames, hop) ** 2, axis=1)


def to_db(power: np.ndarray, floor_db: float = -120.0) -> np.ndarray:
    """Power (not amplitude) in dB, floored so silence gives a number, not -inf."""
    return np.maximum(10.0 * np.log10(np.maximum(np.asarray(power, np.float64), EPS)), floor_db)


def envelope_db(audio: np.ndarray, n_frames: int, hop: int, range_db: float = 40.0) -> np.ndarray:
    """(T,) frame RMS level in dB, floored `range_db` under the clip's loud end (99th percentile), so
    the fluctuations of background noise do not look like speech."""
    db = to_db(frame_power(audio, n_frames, hop))
    return np.maximum(db, np.percentile(db, 99) - range_db) if len(db) else db


def speech_mask(vad: np.ndarray | None, frame_db: np.ndarray) -> np.ndarray:
    """VAD speech frames; an energy split (Otsu on frame dB) when the clip carries no VAD."""
    if vad is not None:
        return np.asarray(vad, bool)
    return frame_db > otsu_threshold(frame_db)


def frame_spectra(audio: np.ndarray, n_frames: int, hop: int, n_fft: int = 1024) -> np.ndarray:
    """(T, n_fft//2 + 1) Hann-windowed power spectra, one per video frame, centred on the frame's
    centre (t*hop + hop/2) so spectral features line up with the envelope and the landmarks."""
    x = np.asarray(audio, np.float64)
    pad = n_fft // 2 - hop // 2
    x = np.pad(x, (pad, 0)) if pad >= 0 else x[-pad:]
    need = (n_frames - 1) * hop + n_fft
    x = np.pad(x, (0, max(0, need - len(x))))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n_frames]
    spec = np.fft.rfft(frames * np.hanning(n_fft), axis=1)
    return spec.real**2 + spec.imag**2


def onset_strength(spectra: np.ndarray, sr: int, n_mels: int = 40) -> np.ndarray:
    """(T,) spectral flux: mean positive rise of the log-mel spectrum (dB) into each frame, so an
    onset is credited to the frame it starts in. Flux within 80 dB of silence is ignored."""
    n_fft = 2 * (spectra.shape[1] - 1)
    mel = to_db(spectra @ mel_filterbank(sr, n_fft, n_mels).T)
    mel = np.maximum(mel, mel.max() - 80.0)
    return np.maximum(np.diff(mel, axis=0, prepend=mel[:1]), 0.0).mean(axis=1)


def spectral_flatness(spectra: np.ndarray) -> np.ndarray:
    """(T,) geometric / arithmetic mean of each power spectrum (1 = white noise, ~0 = pure tone)."""
    p = spectra + 1e-20
    return np.exp(np.mean(np.log(p), axis=1)) / np.mean(p, axis=1)


def rolloff_hz(power: np.ndarray, sr: int, fraction: float = 0.95) -> np.ndarray:
    """Frequency below which `fraction` of the power lies, per row of (N, F) spectra; NaN if silent."""
    p = np.atleast_2d(power)
    freqs = np.linspace(0, sr / 2, p.shape[1])
    cum = np.cumsum(p, axis=1)
    total = cum[:, -1:]
    idx = np.argmax(cum >= fraction * np.maximum(total, EPS), axis=1)
    return np.where(total[:, 0] > EPS, freqs[idx], np.nan)


# ------------------------------------------------------------------------------------ timing, rhythm
def lagged_xcorr(a: np.ndarray, b: np.ndarray, max_lag: int, min_overlap: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(lags, corr) with corr[i] = Pearson(a[t], b[t + lags[i]]) over the frames where both exist.

    A positive lag pairs a with a later b: with a = mouth and b = audio, a peak at lag +k means the
    sound comes k frames after the lips (audio delayed)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        if abs(lag) >= n:
            continue
        x, y = (a[: n - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: n + lag])
        corr[i] = pearson(x, y, min_n=min_overlap)
    return lags, corr


def xcorr_peak(lags: np.ndarray, corr: np.ndarray) -> dict[str, float]:
    """Offset at the correlation maximum, the peak, the lag-0 value and a confidence (peak minus the
    median over lags, like SyncNet's LSE-C: a flat curve is no evidence for any offset)."""
    if not np.isfinite(corr).any():
        return {"offset": np.nan, "peak": np.nan, "lag0": np.nan, "confidence": np.nan}
    i = int(np.nanargmax(corr))
    zero = np.flatnonzero(lags == 0)
    return {
        "offset": float(lags[i]),
        "peak": float(corr[i]),
        "lag0": float(corr[zero[0]]) if len(zero) else np.nan,
        "confidence": float(corr[i] - np.nanmedian(corr)),
    }


def count_peaks(x: np.ndarray, prominence: float, min_distance: int = 1) -> np.ndarray:
    """Indices of peaks standing `prominence` above their surroundings; NaN gaps break no peak
    search (they are bridged by interpolation) but peaks inside them are dropped."""
    filled = fill_gaps(x)
    ok = np.isfinite(filled)
    if ok.sum() < 3:
        return np.zeros(0, int)
    peaks = find_peaks(np.where(ok, filled, np.nanmin(filled)), prominence=prominence, distance=min_distance)
    return peaks[np.isfinite(np.asarray(x, np.float64)[peaks])]


def f0_track(
    audio: np.ndarray, sr: int, n_frames: int, fps: float, floor: float = 75.0, ceiling: float = 500.0
) -> np.ndarray:
    """(T,) F0 in Hz at each video frame's centre (Praat autocorrelation pitch); NaN when unvoiced."""
    import parselmouth  # lazy: slow import, only on this path

    out = np.full(n_frames, np.nan)
    snd = parselmouth.Sound(np.asarray(audio, np.float64), sampling_frequency=sr)
    if snd.duration < 3.0 / floor + 1.0 / fps:  # Praat needs three periods of the lowest pitch
        return out
    pitch = snd.to_pitch_ac(time_step=1.0 / fps, pitch_floor=floor, pitch_ceiling=ceiling)
    f0 = pitch.selected_array["frequency"].astype(np.float64)
    f0[f0 <= 0] = np.nan
    idx = np.round(((np.arange(n_frames) + 0.5) / fps - pitch.t1) / pitch.time_step).astype(int)
    inside = (idx >= 0) & (idx < len(f0))
    out[inside] = f0[idx[inside]]
    return out


def semitones(f0_hz: np.ndarray, ref_hz: float = 100.0) -> np.ndarray:
    """F0 on a log scale, so variability compares across low and high voices."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 12.0 * np.log2(np.asarray(f0_hz, np.float64) / ref_hz)


def intensity_db(
    audio: np.ndarray, sr: int, step_s: float = 0.01, win_s: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """(times, dB) short-time intensity on a 10 ms grid (Hann window), like Praat's intensity tier."""
    step, win = int(round(step_s * sr)), int(round(win_s * sr))
    x = np.asarray(audio, np.float64)
    if len(x) < win:
        return np.zeros(0), np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::step]
    w = np.hanning(win)
    power = (frames**2 * w).sum(axis=1) / w.sum()
    return (np.arange(len(frames)) * step + win / 2) / sr, to_db(power)


def syllable_nuclei(
    audio: np.ndarray,
    sr: int,
    voiced: np.ndarray | None = None,
    fps: float = 25.0,
    prominence_db: float = 2.0,
    silence_db: float = -25.0,
    min_gap_s: float = 0.1,
) -> np.ndarray:
    """Times (s) of syllable nuclei after de Jong & Wempe (2009): peaks of the intensity contour that
    rise `prominence_db` above the dips around them, lie no more than `silence_db` under the loud end
    of the clip (99th percentile) and fall in a voiced frame (`voiced` on the video clock: F0 present
    or VAD speech; every frame when None)."""
    times, db = intensity_db(audio, sr)
    if len(db) < 3:
        return np.zeros(0)
    db = gaussian_filter1d(db, 2.0, mode="reflect")  # ~20 ms: merge the ripple of single pitch periods
    distance = max(1, int(round(min_gap_s / (times[1] - times[0]))))
    peaks = find_peaks(db, prominence=prominence_db, height=np.percentile(db, 99) + silence_db, distance=distance)
    t = times[peaks]
    if voiced is not None and len(voiced):
        frame = np.clip((t * fps).astype(int), 0, len(voiced) - 1)
        t = t[np.asarray(voiced, bool)[frame]]
    return t
