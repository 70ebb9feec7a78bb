"""Landmark measures shared by the feature families, on the aligned (T, 478, 2) mesh.

Distances are divided by the same frame's inter-ocular distance (IOD, outer eye corners), so they
read in face units whatever the crop size; frames without a face (NaN landmarks) give NaN.
"""

from __future__ import annotations

import numpy as np

from . import landmarks as L

FACE_POINTS = np.arange(468)  # the mesh without the 10 iris points, which jitter on their own
# Inner-lip pairs (upper, lower) across the mouth: the mean of five gaps is steadier than 13-14 alone.
INNER_LIP_PAIRS = ((82, 87), (81, 178), (13, 14), (311, 402), (312, 317))
OPEN_EAR = 0.3  # EAR of an open eye: the closure proxy must not depend on the clip it describes
AU_NAMES = ("au_brow_raise", "au_brow_lower", "au_lip_corner_pull", "au_jaw_drop", "au_eye_closure")


def _dist(aligned: np.ndarray, i: int, j: int) -> np.ndarray:
    return np.linalg.norm(aligned[:, i] - aligned[:, j], axis=-1)


def _per_iod(values: np.ndarray, iod: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(iod > 1e-6, values / iod, np.nan)


def inter_ocular(aligned: np.ndarray) -> np.ndarray:
    """(T,) distance between the outer eye corners, in crop pixels."""
    return _dist(aligned, L.RIGHT_EYE_OUTER, L.LEFT_EYE_OUTER)


def lip_aperture(aligned: np.ndarray) -> np.ndarray:
    """(T,) mean vertical inner-lip gap / IOD: 0 for closed lips, ~0.3-0.6 wide open."""
    up = aligned[:, [u for u, _ in INNER_LIP_PAIRS], 1]
    low = aligned[:, [d for _, d in INNER_LIP_PAIRS], 1]
    return _per_iod(np.maximum(low - up, 0.0).mean(axis=1), inter_ocular(aligned))


def mouth_width(aligned: np.ndarray) -> np.ndarray:
    return _per_iod(_dist(aligned, L.MOUTH_LEFT, L.MOUTH_RIGHT), inter_ocular(aligned))


def _ear(aligned: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    p = aligned[:, list(idx)]
    vertical = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=-1)
    return _per_iod(vertical / 2, np.linalg.norm(p[:, 0] - p[:, 3], axis=-1))


def eye_aspect_ratio(aligned: np.ndarray) -> np.ndarray:
    """(T,) eye aspect ratio (Soukupova & Cech), mean of both eyes: ~0.25-0.35 open, < 0.1 closed."""
    return (_ear(aligned, L.RIGHT_EYE_EAR) + _ear(aligned, L.LEFT_EYE_EAR)) / 2


def brow_height(aligned: np.ndarray) -> np.ndarray:
    """(T,) height of the mid-brows above the eye-corner line / IOD."""
    eye_y = (aligned[:, L.RIGHT_EYE_OUTER, 1] + aligned[:, L.LEFT_EYE_OUTER, 1]) / 2
    brow_y = (aligned[:, L.RIGHT_BROW_MID, 1] + aligned[:, L.LEFT_BROW_MID, 1]) / 2
    return _per_iod(eye_y - brow_y, inter_ocular(aligned))


def au_proxies(aligned: np.ndarray) -> dict[str, np.ndarray]:
    """Geometric stand-ins for action units, (T,) each in IOD units, larger = more of the action:
    brow raise (AU1+2) brow height; brow lowerer (AU4) inner brows drawn together (negated gap);
    lip-corner pull (AU12) mouth width; jaw drop (AU26) nose tip to chin; eye closure (AU43)
    1 - EAR / open-eye EAR."""
    iod = inter_ocular(aligned)
    return {
        "au_brow_raise": brow_height(aligned),
        "au_brow_lower": -_per_iod(_dist(aligned, L.RIGHT_BROW_INNER, L.LEFT_BROW_INNER), iod),
        "au_lip_corner_pull": mouth_width(aligned),
        "au_jaw_drop": _per_iod(_dist(aligned, L.NOSE_TIP, L.CHIN), iod),
        "au_eye_closure": 1.0 - eye_aspect_ratio(aligned) / OPEN_EAR,
    }


def point_velocity(aligned: np.ndarray, points=FACE_POINTS) -> np.ndarray:
    """(T, P, 2) displacement of `points` since the previous frame / IOD (NaN at t = 0 and after gaps)."""
    p = aligned[:, np.asarray(points)].astype(np.float64)
    vel = np.full(p.shape, np.nan)
    vel[1:] = np.diff(p, axis=0)
    return _per_iod(vel, inter_ocular(aligned)[:, None, None])


def point_speed(aligned: np.ndarray, points=FACE_POINTS, reduce=np.mean) -> np.ndarray:
    """(T,) `reduce` over points of the per-frame displacement / IOD. The median variant is near 0
    only when (almost) nothing moves, however noisy a few points are."""
    return reduce(np.linalg.norm(point_velocity(aligned, points), axis=-1), axis=1)


def hf_residual(aligned: np.ndarray, points=FACE_POINTS) -> np.ndarray:
    """(T,) RMS high-frequency residual / IOD: each point's distance from the midpoint of its two
    neighbours in time. Smooth motion at 25 fps leaves almost nothing; independent jitter of std s
    per axis leaves s * sqrt(1.5) per axis, so after dividing by sqrt(1.5) the value reads s / IOD."""
    p = aligned[:, np.asarray(points)].astype(np.float64)
    res = np.full(len(aligned), np.nan)
    if len(aligned) > 2:
        lap = p[1:-1] - (p[:-2] + p[2:]) / 2
        res[1:-1] = np.sqrt(np.mean(lap**2, axis=(1, 2)) / 1.5)
    return _per_iod(res, inter_ocular(aligned))
