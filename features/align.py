"""Similarity alignment of mesh landmarks to a canonical template; face and mouth crops; head pose.

The template places stable anchors (eye corners, nose tip, mouth corners) of a frontal face in a
face_size x face_size crop: eyes at 38 % of the height, inter-ocular distance 42 % of the width.
Coordinates are in inter-ocular-distance units around the eye midpoint, measured on a frontal
MediaPipe mesh and made left/right symmetric.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import ALIGN_ANCHORS, CHIN, FOREHEAD, LEFT_EYE_OUTER, RIGHT_EYE_OUTER

# (x, y) in IOD units, eye midpoint at the origin, in the order of ALIGN_ANCHORS.
_TEMPLATE_IOD = np.array(
    [[-0.5, 0.0], [-0.195, 0.03], [0.195, 0.03], [0.5, 0.0], [0.0, 0.45], [-0.36, 0.62], [0.36, 0.62]],
    dtype=np.float64,
)
_EYE_Y, _IOD = 0.38, 0.42  # fractions of the crop side
# Mouth window in IOD units (x0, y0, x1, y1): 1.2 IOD wide, 0.6 IOD high, around the mouth corners.
_MOUTH_BOX = (-0.6, 0.32, 0.6, 0.92)


def template(face_size: int) -> np.ndarray:
    return _TEMPLATE_IOD * (_IOD * face_size) + [face_size / 2, _EYE_Y * face_size]


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) mapping src -> dst, as a 2x3 matrix."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1
    rot = u @ fix @ vt
    scale = np.trace(np.diag(sig) @ fix) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def mouth_matrix(face_matrix: np.ndarray, face_size: int, mouth_size: tuple[int, int]) -> np.ndarray:
    """Compose the face alignment with a zoom onto the template's mouth window."""
    h, w = mouth_size
    unit = _IOD * face_size
    x0 = face_size / 2 + _MOUTH_BOX[0] * unit
    y0 = _EYE_Y * face_size + _MOUTH_BOX[1] * unit
    sx = w / ((_MOUTH_BOX[2] - _MOUTH_BOX[0]) * unit)
    sy = h / ((_MOUTH_BOX[3] - _MOUTH_BOX[1]) * unit)
    zoom = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1.0]])
    return (zoom @ np.vstack([face_matrix, [0, 0, 1]]))[:2]


def align_frame(frame: np.ndarray, lm: np.ndarray, face_size: int, mouth_size: tuple[int, int]):
    """(aligned landmarks (478, 2), face crop, mouth crop) for one frame's landmarks (478, 3)."""
    m = similarity(lm[list(ALIGN_ANCHORS), :2].astype(np.float64), template(face_size))
    aligned = lm[:, :2] @ m[:, :2].T + m[:, 2]
    face = cv2.warpAffine(frame, m, (face_size, face_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mm = mouth_matrix(m, face_size, mouth_size)
    mouth = cv2.warpAffine(frame, mm, (mouth_size[1], mouth_size[0]), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return aligned.astype(np.float32), face, mouth


def head_pose(lm: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) degrees from the 3-D mesh (x, y, z in the same pixel units).

    The head frame is built from the eye-corner axis (x, image left -> right) and the forehead -> chin
    axis made orthogonal to it (y, downwards). roll = in-plane angle of the eye axis (positive when the
    image-right eye is lower); yaw = depth tilt of the eye axis (positive when the image-right eye is
    farther from the camera); pitch = depth tilt of the forehead -> chin axis (positive when the chin
    is farther, i.e. head tilted back).
    """
    x = lm[LEFT_EYE_OUTER] - lm[RIGHT_EYE_OUTER]
    x = x / (np.linalg.norm(x) + 1e-9)
    y = lm[CHIN] - lm[FOREHEAD]
    y = y - np.dot(y, x) * x
    y = y / (np.linalg.norm(y) + 1e-9)
    roll = np.degrees(np.arctan2(x[1], x[0]))
    yaw = np.degrees(np.arcsin(np.clip(x[2], -1, 1)))
    pitch = np.degrees(np.arcsin(np.clip(y[2], -1, 1)))
    return np.array([yaw, pitch, roll], np.float32)
