"""Face regions from 478-point landmarks, and moving a region from one frame to another.

Artifacts that edit part of the face (mouth, eyes) transplant a patch: the source frame is
translated by the head's displacement between the two frames (measured on stable anchors: eye
corners and nose tip, which do not move with speech) and blended in through a feathered mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkqa.features.landmarks import (CHIN, INNER_LIPS, LEFT_BROW, LEFT_EYE_EAR, NOSE_TIP, OUTER_LIPS, RIGHT_BROW,
                                RIGHT_EYE_EAR)

ANCHORS = (33, 133, 362, 263, NOSE_TIP)  # eye corners + nose tip: move with the head, not with speech
MOUTH = OUTER_LIPS + INNER_LIPS
LOWER_FACE = OUTER_LIPS + (CHIN, 148, 377, 176, 400)
EYES = RIGHT_EYE_EAR + LEFT_EYE_EAR + (7, 163, 144, 145, 153, 154, 155, 246, 161, 160, 159, 158, 157, 173,
                                       382, 381, 380, 374, 373, 390, 249, 466, 388, 387, 386, 385, 384, 398)
BROWS = RIGHT_BROW + LEFT_BROW


def inter_ocular(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[33] - pts[263]))


def anchor(pts: np.ndarray) -> np.ndarray:
    return pts[list(ANCHORS)].mean(axis=0)


def translate(img: np.ndarray, shift: np.ndarray) -> np.ndarray:
    if np.allclose(shift, 0, atol=1e-3):
        return img
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def region_mask(shape: tuple[int, ...], polys: list[np.ndarray], grow: float, feather: float) -> np.ndarray:
    """Union of the convex hulls of `polys`, dilated by `grow` px, edge softened over `feather` px; float32 0-1.
    The mask is exactly 1 inside the grown hull (the feather only widens it outwards)."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for p in polys:
        hull = cv2.convexHull(np.round(p).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    g = max(1, int(round(grow)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * g + 1, 2 * g + 1)))
    f = max(1, int(round(feather)))
    if f > 1:
        soft = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * f + 1, 2 * f + 1)))
        soft = cv2.GaussianBlur(soft.astype(np.float32), (0, 0), f / 2.0)
        out = np.maximum(soft / 255.0, mask / 255.0)
    else:
        out = mask / 255.0
    return out.astype(np.float32)


def blend(dst: np.ndarray, src: np.ndarray, mask: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    a = (mask * opacity)[..., None]
    out = dst.astype(np.float32) * (1 - a) + src.astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def transplant(frames: np.ndarray, landmarks: np.ndarray, dst: int, src: int, region: tuple[int, ...],
               grow: float = 0.12, feather: float = 0.08, opacity: float = 1.0,
               src_image: np.ndarray | None = None) -> np.ndarray:
    """Frame `dst` with `region` replaced by frame `src`'s, moved by the head displacement src -> dst.
    `grow`/`feather` are fractions of the inter-ocular distance."""
    pd_, ps = landmarks[dst], landmarks[src]
    shift = np.round(anchor(pd_) - anchor(ps))  # whole pixels: the moved patch stays sharp
    moved = translate(src_image if src_image is not None else frames[src], shift)
    iod = inter_ocular(pd_)
    idx = list(region)
    mask = region_mask(frames[dst].shape, [pd_[idx], ps[idx] + shift], grow * iod, feather * iod)
    return blend(frames[dst], moved, mask, opacity)


def box(pts: np.ndarray, idx: tuple[int, ...], pad: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    p = pts[list(idx)]
    lo, hi = p.min(axis=0) - pad, p.max(axis=0) + pad
    h, w = shape[:2]
    x0, y0 = int(max(0, np.floor(lo[0]))), int(max(0, np.floor(lo[1])))
    x1, y1 = int(min(w, np.ceil(hi[0]))), int(min(h, np.ceil(hi[1])))
    return x0, y0, x1, y1


def held_index(t: int, start: int, hold: float) -> int:
    """The frame shown at t when frames from `start` on are held for `hold` frames each (inf: forever)."""
    if not np.isfinite(hold):
        return start
    h = max(1, int(round(hold)))
    return start + ((t - start) // h) * h
