"""Landmark measures shared by feature families and experts (all on aligned landmarks, (T, 478, 2)).

Distances are in inter-ocular units (outer eye corners), so they do not depend on face size.
"""

from __future__ import annotations

import numpy as np

from . import landmarks as L


def iod(aligned: np.ndarray) -> np.ndarray:
    return np.linalg.norm(aligned[:, L.LEFT_EYE_OUTER] - aligned[:, L.RIGHT_EYE_OUTER], axis=1) + 1e-6


def _dist(aligned: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(aligned[:, a] - aligned[:, b], axis=1)


def mouth_aperture(aligned: np.ndarray) -> np.ndarray:
    """Inner-lip gap / IOD: 0 for closed lips, ~0.3-0.6 wide open."""
    return _dist(aligned, L.UPPER_LIP_INNER, L.LOWER_LIP_INNER) / iod(aligned)


def mouth_width(aligned: np.ndarray) -> np.ndarray:
    return _dist(aligned, L.MOUTH_LEFT, L.MOUTH_RIGHT) / iod(aligned)


def _ear(aligned: np.ndarray, idx) -> np.ndarray:
    p = aligned[:, list(idx)]
    vertical = np.linalg.norm(p[:, 1] - p[:, 5], axis=1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=1)
    return vertical / (2 * np.linalg.norm(p[:, 0] - p[:, 3], axis=1) + 1e-6)


def eye_aspect_ratio(aligned: np.ndarray) -> np.ndarray:
    """Mean of both eyes' aspect ratio (Soukupova & Cech): ~0.25-0.35 open, < 0.15 closed."""
    return (_ear(aligned, L.RIGHT_EYE_EAR) + _ear(aligned, L.LEFT_EYE_EAR)) / 2


def brow_height(aligned: np.ndarray) -> np.ndarray:
    eye_y = (aligned[:, L.RIGHT_EYE_OUTER, 1] + aligned[:, L.LEFT_EYE_OUTER, 1]) / 2
    brow_y = (aligned[:, L.RIGHT_BROW_MID, 1] + aligned[:, L.LEFT_BROW_MID, 1]) / 2
    return (eye_y - brow_y) / iod(aligned)


AU_NAMES = ("au_brow_raise", "au_brow_lower", "au_lip_corner_pull", "au_jaw_drop", "au_eye_closure")


def au_proxies(aligned: np.ndarray) -> np.ndarray:
    """(T, 5) geometric action-unit proxies in AU_NAMES order: brow raise (AU1/2: brow height),
    brow lowerer (AU4: inner brows drawing together, negated distance), lip-corner pull (AU12: mouth
    width), jaw drop (AU26: inner-lip gap), eye closure (AU43: 1 - EAR / 0.3)."""
    brow_lower = -_dist(aligned, L.RIGHT_BROW_INNER, L.LEFT_BROW_INNER) / iod(aligned)
    closure = 1.0 - eye_aspect_ratio(aligned) / 0.3
    return np.stack([brow_height(aligned), brow_lower, mouth_width(aligned), mouth_aperture(aligned), closure],
                    axis=1).astype(np.float32)


def landmark_speed(aligned: np.ndarray, idx=None) -> np.ndarray:
    """(T,) mean speed of the chosen points per frame, in IOD units (first frame 0)."""
    pts = aligned if idx is None else aligned[:, list(idx)]
    v = np.linalg.norm(np.diff(pts, axis=0), axis=2).mean(1) / iod(aligned)[1:]
    return np.concatenate([[0.0], v])
