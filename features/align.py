"""Similarity alignment of mesh landmarks to a canonical template; face and mouth crops; head pose.

The template places the stable anchors (eye corners, nose tip, mouth corners) of a frontal face in a
face_size x face_size crop: eyes at 38 % of the height, inter-ocular distance (IOD, outer corners)
42 % of the width, mouth corners at 64 %, chin near the bottom edge. Coordinates are in IOD units
around the eye midpoint, measured on a frontal MediaPipe mesh and made left/right symmetric.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import (ALIGN_ANCHORS, FOREHEAD, LEFT_EYE_INNER, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_INNER,
                        RIGHT_EYE_OUTER)

# (x, y) in IOD units, eye midpoint at the origin, in the order of ALIGN_ANCHORS.
TEMPLATE_IOD = np.array(
    [[-0.5, 0.0], [-0.195, 0.03], [0.195, 0.03], [0.5, 0.0], [0.0, 0.45], [-0.36, 0.62], [0.36, 0.62]],
    dtype=np.float64,
)
EYE_Y, IOD = 0.38, 0.42  # fractions of the crop side
# Mouth window in IOD units (x0, y0, x1, y1): 1.2 IOD wide, 0.6 IOD high, around the mouth corners.
MOUTH_BOX = (-0.6, 0.32, 0.6, 0.92)

# Rigid points of MediaPipe's canonical face model (cm; x image-right, y down, z away from the camera):
# eye corners and the forehead-to-nose-tip midline, which do not move when the mouth or brows do.
POSE_POINTS = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER,
                FOREHEAD, 151, 9, 8, 168, 6, NOSE_TIP, 4)
POSE_REFERENCE = np.array(
    [[-4.445859, -2.663991, -3.173422], [-1.856432, -2.585245, -3.757904], [1.856432, -2.585245, -3.757904],
     [4.445859, -2.663991, -3.173422], [0.0, -8.261778, -4.481535], [0.0, -6.545390, -5.027311],
     [0.0, -4.885979, -5.385258], [0.0, -4.019042, -5.284764], [0.0, -3.271027, -5.236015],
     [0.0, -2.473255, -5.788627], [0.0, 1.126865, -7.475604], [0.0, 0.463170, -7.586580]],
    dtype=np.float64,
)


def template(face_size: int) -> np.ndarray:
    """(7, 2) pixel positions of ALIGN_ANCHORS in the aligned face crop."""
    return TEMPLATE_IOD * (IOD * face_size) + [face_size / 2, EYE_Y * face_size]


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity dst ~ scale * R @ src + t (any dimension); returns (scale, R, t)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    fix = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[-1, -1] = -1  # a rotation, never a mirror
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix) / s.var(0).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2-D similarity mapping src -> dst, as a 2x3 matrix for cv2.warpAffine."""
    scale, rot, t = umeyama(src, dst)
    return np.hstack([scale * rot, t[:, None]])


def mouth_zoom(face_size: int, mouth_size: tuple[int, int]) -> np.ndarray:
    """3x3 map from face-crop pixels to mouth-crop pixels (the template's mouth window, zoomed)."""
    h, w = mouth_size
    unit = IOD * face_size
    x0 = face_size / 2 + MOUTH_BOX[0] * unit
    y0 = EYE_Y * face_size + MOUTH_BOX[1] * unit
    sx = w / ((MOUTH_BOX[2] - MOUTH_BOX[0]) * unit)
    sy = h / ((MOUTH_BOX[3] - MOUTH_BOX[1]) * unit)
    return np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy], [0, 0, 1.0]])


def mouth_matrix(face_matrix: np.ndarray, face_size: int, mouth_size: tuple[int, int]) -> np.ndarray:
    """The face alignment followed by a zoom onto the template's mouth window (one warp, one resampling)."""
    return (mouth_zoom(face_size, mouth_size) @ np.vstack([face_matrix, [0, 0, 1]]))[:2]


def align_frame(frame: np.ndarray, lm: np.ndarray, face_size: int, mouth_size: tuple[int, int]):
    """(aligned landmarks (478, 2) float32, face crop, mouth crop) for one frame's landmarks (478, 3)."""
    m = similarity(lm[list(ALIGN_ANCHORS), :2].astype(np.float64), template(face_size))
    aligned = lm[:, :2] @ m[:, :2].T + m[:, 2]
    face = cv2.warpAffine(frame, m, (face_size, face_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mouth = cv2.warpAffine(frame, mouth_matrix(m, face_size, mouth_size), (mouth_size[1], mouth_size[0]),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return aligned.astype(np.float32), face, mouth


def head_pose(lm: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from the 3-D mesh (x, y, z in the same pixel units, z away from camera).

    The head rotation R is the least-squares fit of the rigid canonical points onto the mesh, so all
    three angles are 0 for a face looking straight into the camera. Signs, as seen in the image:
    yaw > 0 when the face turns towards the image's right (the subject's left side moves away);
    pitch > 0 when the head tilts down (chin away, forehead towards the camera);
    roll > 0 when the head tilts clockwise on screen (the image-right eye lower than the other).
    """
    _, rot, _ = umeyama(POSE_REFERENCE, lm[list(POSE_POINTS)].astype(np.float64))
    # Columns of R are the head's axes in camera coordinates: x ear-to-ear, y downwards.
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    yaw = np.degrees(np.arcsin(np.clip(rot[2, 0], -1, 1)))
    pitch = np.degrees(np.arcsin(np.clip(rot[2, 1], -1, 1)))
    return np.array([yaw, pitch, roll], np.float32)
