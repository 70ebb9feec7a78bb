"""Landmark-motion inputs and perturbations for the motion expert.

`motion_features` turns aligned landmarks + head pose into a per-frame vector; `PERTURBATIONS`
are the kinds of unnatural motion generators produce, applied to real sequences to make the
negatives the expert learns from (and is evaluated on, one family at a time).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from talkqa.features import landmarks as L

# A compact subset of the mesh: brows, eyes, lips, jaw line, nose ridge.
POINTS = tuple(dict.fromkeys(L.RIGHT_BROW + L.LEFT_BROW + L.RIGHT_EYE_EAR + L.LEFT_EYE_EAR + L.OUTER_LIPS
                             + L.INNER_LIPS[::2] + L.JAW[::2] + (1, 4, 6, 168)))
UPPER = tuple(i for i, p in enumerate(POINTS) if p in set(L.RIGHT_BROW + L.LEFT_BROW + L.RIGHT_EYE_EAR + L.LEFT_EYE_EAR))
N_AU = 5
FEATURE_DIM = len(POINTS) * 4 + N_AU + 3


def fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (edges hold the nearest valid value)."""
    if valid.all():
        return x
    idx = np.flatnonzero(valid)
    t = np.arange(len(x))
    flat = x.reshape(len(x), -1)
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, idx, flat[idx, j])
    return out.reshape(x.shape)


def au_proxies(aligned: np.ndarray) -> np.ndarray:
    """(T, 5) geometric AU proxies in inter-ocular units: brow raise, brow lowerer (inner-brow
    distance, negated), lip-corner pull (mouth width), jaw drop (inner-lip gap), eye closure (1 - EAR)."""
    iod = np.linalg.norm(aligned[:, L.LEFT_EYE_OUTER] - aligned[:, L.RIGHT_EYE_OUTER], axis=1)[:, None] + 1e-6
    eye_y = (aligned[:, L.RIGHT_EYE_OUTER, 1] + aligned[:, L.LEFT_EYE_OUTER, 1]) / 2
    brow_y = (aligned[:, L.RIGHT_BROW_MID, 1] + aligned[:, L.LEFT_BROW_MID, 1]) / 2
    brow_raise = (eye_y - brow_y) / iod[:, 0]
    brow_lower = -np.linalg.norm(aligned[:, L.RIGHT_BROW_INNER] - aligned[:, L.LEFT_BROW_INNER], axis=1) / iod[:, 0]
    corner_pull = np.linalg.norm(aligned[:, L.MOUTH_LEFT] - aligned[:, L.MOUTH_RIGHT], axis=1) / iod[:, 0]
    jaw_drop = np.linalg.norm(aligned[:, L.UPPER_LIP_INNER] - aligned[:, L.LOWER_LIP_INNER], axis=1) / iod[:, 0]

    def ear(idx):
        p = aligned[:, list(idx)]
        vert = np.linalg.norm(p[:, 1] - p[:, 5], axis=1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=1)
        return vert / (2 * np.linalg.norm(p[:, 0] - p[:, 3], axis=1) + 1e-6)

    closure = 1.0 - (ear(L.RIGHT_EYE_EAR) + ear(L.LEFT_EYE_EAR)) / 2 / 0.3
    return np.stack([brow_raise, brow_lower, corner_pull, jaw_drop, closure], axis=1).astype(np.float32)


def motion_features(aligned: np.ndarray, pose: np.ndarray, face_size: float = 96.0) -> np.ndarray:
    """(T, FEATURE_DIM): centred point positions, their velocities, AU proxies, head pose / 30 deg."""
    pts = aligned[:, list(POINTS)] / (0.42 * face_size)  # inter-ocular units
    pts = pts - pts.reshape(-1, 2).mean(0)
    vel = np.diff(pts, axis=0, prepend=pts[:1]) * 10.0  # velocities are small; bring them to unit scale
    aus = au_proxies(aligned)
    return np.concatenate([pts.reshape(len(pts), -1), vel.reshape(len(vel), -1), aus, pose / 30.0], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------- perturbations
# Each takes (aligned (T,478,2), pose (T,3), rng) and returns perturbed copies.
Perturbation = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def frozen(a, p, rng):
    k = int(rng.integers(len(a)))
    noise = rng.normal(0, 0.05, a.shape).astype(np.float32)
    return np.repeat(a[k : k + 1], len(a), 0) + noise, np.repeat(p[k : k + 1], len(p), 0)


def jittered(a, p, rng):
    s = rng.uniform(0.4, 1.5)
    return a + rng.normal(0, s, a.shape).astype(np.float32), p + rng.normal(0, s, p.shape).astype(np.float32)


def over_smoothed(a, p, rng):
    s = rng.uniform(3.0, 6.0)
    from scipy.ndimage import gaussian_filter1d  # lazy: training augmentation only; scoring skips SciPy

    return gaussian_filter1d(a, s, axis=0, mode="nearest"), gaussian_filter1d(p, s, axis=0, mode="nearest")


def time_warped(a, p, rng):
    n = len(a)
    from scipy.ndimage import gaussian_filter1d  # lazy: training augmentation only; scoring skips SciPy

    speed = np.exp(gaussian_filter1d(rng.normal(0, 1.0, n), 6.0) * rng.uniform(1.5, 3.0))
    t = np.cumsum(speed)
    t = (t - t[0]) / (t[-1] - t[0]) * (n - 1)
    flat = a.reshape(n, -1)
    warped = np.stack([np.interp(t, np.arange(n), flat[:, j]) for j in range(flat.shape[1])], 1).reshape(a.shape)
    pw = np.stack([np.interp(t, np.arange(n), p[:, j]) for j in range(3)], 1)
    return warped.astype(np.float32), pw.astype(np.float32)


def exaggerated(a, p, rng):
    g = rng.uniform(2.0, 3.0)
    mean = a.mean(0, keepdims=True)
    return (mean + g * (a - mean)).astype(np.float32), (p.mean(0) + g * (p - p.mean(0))).astype(np.float32)


_UPPER_MESH = np.array(sorted(set(L.RIGHT_BROW + L.LEFT_BROW + L.RIGHT_EYE_EAR + L.LEFT_EYE_EAR)))


def upper_face_frozen(a, p, rng):
    out = a.copy()
    k = int(rng.integers(len(a)))
    out[:, _UPPER_MESH] = a[k, _UPPER_MESH] + (a[:, L.NOSE_TIP : L.NOSE_TIP + 1] - a[k, L.NOSE_TIP])
    return out, p


# The lower face of a talking photo: lips and the chin half of the jaw line move with the speech.
_LOWER_MESH = np.array(sorted(set(L.MOUTH + L.JAW[4:17])))


def still_head(a, p, rng):
    """A talking photo (single-image lip sync, the most common generator output): head pose and the
    upper face held at one frame, only lips and chin move. Their motion relative to their own mean is
    kept and put on the held face, so the mouth opens and closes as in the real sequence. A landmark
    tracker on a talking photo still jitters from frame to frame about as much as on real footage (what
    is missing is the slow motion), so the held points keep the real sequence's fast part (the motion
    minus its 80 ms smoothing): else the expert would learn to spot a stillness that tracked video never has."""
    from scipy.ndimage import gaussian_filter1d  # lazy: training augmentation only; scoring skips SciPy

    k = int(rng.integers(len(a)))
    out = a[k] + (a - gaussian_filter1d(a, 2.0, axis=0, mode="nearest"))
    low = a[:, _LOWER_MESH]
    out[:, _LOWER_MESH] = a[k, _LOWER_MESH] + (low - low.mean(0, keepdims=True))
    pose = p[k] + (p - gaussian_filter1d(p, 2.0, axis=0, mode="nearest"))
    return out.astype(np.float32), pose.astype(np.float32)


def stalled(a, p, rng):
    """A playback stall: the whole face held for 0.3-1.6 s (8-40 frames) inside the window, then the
    motion goes on where it stopped being shown (the frames of the stall are lost, as in a stalled stream)."""
    n = len(a)
    if n < 24:  # a window too short to hold 8 frames with motion on both sides: hold its middle third
        length, s = max(1, n // 3), n // 3
    else:
        length = int(rng.integers(8, min(40, n - 8) + 1))
        s = int(rng.integers(4, n - length - 3))
    out, pose = a.copy(), p.copy()
    out[s : s + length] = a[s] + rng.normal(0, 0.05, (length,) + a.shape[1:]).astype(np.float32)
    pose[s : s + length] = p[s]
    return out.astype(np.float32), pose.astype(np.float32)


PERTURBATIONS: dict[str, Perturbation] = {
    "frozen": frozen,
    "jittered": jittered,
    "over_smoothed": over_smoothed,
    "time_warped": time_warped,
    "exaggerated": exaggerated,
    "upper_face_frozen": upper_face_frozen,
    "still_head": still_head,
    "stalled": stalled,
}
