"""Frames the analysis clock repeats: a source slower than the clock (a 15 fps recording on the 25 fps clock shows
2 frames in 5 twice), or a file made at a higher rate from a slower one (30 fps demos repeating a frame every 2-3).
Such a frame is a lower frame rate, not a stop: read as a stop and a jump, it looks like a frozen face and a jerky
head no viewer sees (hellomeme/nice, README "Version 48"). The expression family reads the motion the source
recorded, each repeated frame halfway between its neighbours. (The motion expert still reads the clock's frames: fed
the same, it moved no check row and lowered two margins, README "Version 48".)
"""

from __future__ import annotations

import numpy as np

# A frame the clock repeats changes the picture by a small fraction of what its neighbours change it by
# (hellomeme/nice, 15 fps re-encoded at 25: 0.01-0.17 of 255 between frames changing 0.5-7).
REPEAT_RATIO = 0.2  # its picture change is under this share of the smaller of its neighbours' ...
REPEAT_MOVING = 0.2  # ... which both change by more than this (0-255 thumbnail), so a calm moment is no repeat


def clock_repeats(frame_diff: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) frames that repeat the frame before while both neighbours move. All False without `frame_diff`
    (preprocessing's per-frame thumbnail change) or when it does not cover the n frames."""
    if frame_diff is None or len(frame_diff) != n or n < 3:
        return np.zeros(n, bool)
    d = np.asarray(frame_diff, np.float64)
    around = np.fmin(np.r_[np.nan, d[:-1]], np.r_[d[1:], np.nan])
    with np.errstate(invalid="ignore"):  # a missing change (no face) compares False: no repeat
        return (d < REPEAT_RATIO * around) & (around > REPEAT_MOVING)


def source_motion(series: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """A copy of a per-frame series (landmarks or head pose) in which each repeated frame sits halfway between
    its neighbours: the motion the source recorded, sampled on the clock."""
    out = np.array(series, np.float64, copy=True)
    t = np.flatnonzero(repeats)
    t = t[(t > 0) & (t < len(out) - 1)]
    out[t] = 0.5 * (out[t - 1] + out[t + 1])
    return out
