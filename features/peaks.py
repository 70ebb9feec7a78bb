"""Peak picking on 1-D signals, the subset of `scipy.signal.find_peaks` the features use.

Why not SciPy: importing `scipy.signal` costs ~0.6 s (it pulls in scipy.stats, scipy.interpolate and
scipy.optimize), a third of what a cold `talkqa score` pays before it starts reading the clip. The
rules are SciPy's, in SciPy's order (height, then distance, then prominence), so the peaks are the
same; tests/test_peaks.py compares the two on random and plateau-rich signals.
"""

from __future__ import annotations

import numpy as np


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of samples higher than both neighbours; a flat top (plateau) counts once, at its middle
    (rounded down). The first and last samples are never peaks."""
    x = np.asarray(x, np.float64)
    if len(x) < 3:
        return np.zeros(0, np.intp)
    step = np.sign(np.diff(x))
    # Steps of a plateau carry the sign of the next real step, so a plateau ending in a fall reads as a
    # rise followed by a fall; its start is where the rise ends.
    nonflat = np.flatnonzero(step)
    if not len(nonflat):
        return np.zeros(0, np.intp)
    rise_at = step[nonflat] > 0
    fall_after = np.zeros_like(rise_at)
    fall_after[:-1] = step[nonflat[1:]] < 0
    turn = rise_at & fall_after  # a rise whose next non-flat step falls
    starts = nonflat[turn] + 1  # first sample of the top
    ends = nonflat[np.flatnonzero(turn) + 1]  # last sample of the top
    return ((starts + ends) // 2).astype(np.intp)


def _keep_apart(x: np.ndarray, peaks: np.ndarray, distance: float) -> np.ndarray:
    """Drop peaks closer than `distance` samples to a higher one, highest first."""
    gap = int(np.ceil(distance))
    keep = np.ones(len(peaks), bool)
    for j in np.argsort(x[peaks])[::-1]:  # same (default) sort as SciPy, so ties resolve alike
        if not keep[j]:
            continue
        lo, hi = np.searchsorted(peaks, [peaks[j] - gap + 1, peaks[j] + gap])
        keep[lo:hi] = False
        keep[j] = True
    return peaks[keep]


def prominences(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """How far each peak stands above the higher of its two bases: the lowest points between the peak
    and the nearest strictly higher sample (or the signal's end) on either side."""
    x = np.asarray(x, np.float64)
    out = np.empty(len(peaks))
    for k, p in enumerate(peaks):
        higher_left = np.flatnonzero(x[:p] > x[p])
        higher_right = np.flatnonzero(x[p + 1:] > x[p])
        lo = higher_left[-1] + 1 if len(higher_left) else 0
        hi = p + 1 + higher_right[0] if len(higher_right) else len(x)
        out[k] = x[p] - max(x[lo:p + 1].min(), x[p:hi].min())
    return out


def find_peaks(x: np.ndarray, height: float | None = None, distance: float | None = None,
               prominence: float | None = None) -> np.ndarray:
    """Indices of the peaks of `x` at least `height` high, at least `distance` samples from a higher
    kept peak and standing `prominence` above their surroundings (each rule optional)."""
    x = np.asarray(x, np.float64)
    peaks = local_maxima(x)
    if height is not None:
        peaks = peaks[x[peaks] >= height]
    if distance is not None and distance > 1 and len(peaks) > 1:
        peaks = _keep_apart(x, peaks, distance)
    if prominence is not None and len(peaks):
        peaks = peaks[prominences(x, peaks) >= prominence]
    return peaks
