"""Measuring rendered faces the way the feature extractor will: MediaPipe FaceMesh on every frame."""

from __future__ import annotations

import numpy as np

from talkqa.features.landmarks import (LEFT_EYE_EAR, LEFT_EYE_OUTER, LOWER_LIP_INNER, RIGHT_EYE_EAR, RIGHT_EYE_OUTER,
                                UPPER_LIP_INNER)


def mesh_frames(frames: np.ndarray, video: bool = True) -> np.ndarray:
    """(T, 478, 2) pixel landmarks per frame; NaN where no face was found."""
    import mediapipe as mp

    h, w = frames.shape[1:3]
    out = np.full((len(frames), 478, 2), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=not video, refine_landmarks=True, max_num_faces=1) as mesh:
        for t, frame in enumerate(frames):
            result = mesh.process(np.ascontiguousarray(frame))
            if result.multi_face_landmarks:
                out[t] = [[p.x * w, p.y * h] for p in result.multi_face_landmarks[0].landmark]
    return out


def inter_ocular(pts: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pts[..., LEFT_EYE_OUTER, :] - pts[..., RIGHT_EYE_OUTER, :], axis=-1)


def lip_aperture(pts: np.ndarray) -> np.ndarray:
    """Inner-lip gap (landmarks 13/14) over the inter-ocular distance (33/263)."""
    return np.linalg.norm(pts[..., LOWER_LIP_INNER, :] - pts[..., UPPER_LIP_INNER, :], axis=-1) / inter_ocular(pts)


def eye_aspect_ratio(pts: np.ndarray) -> np.ndarray:
    """Mean of both eyes' EAR: (|p2-p6| + |p3-p5|) / (2 |p1-p4|)."""
    def one(idx):
        p = [pts[..., i, :] for i in idx]
        vertical = np.linalg.norm(p[1] - p[5], axis=-1) + np.linalg.norm(p[2] - p[4], axis=-1)
        return vertical / (2 * np.linalg.norm(p[0] - p[3], axis=-1))

    return (one(RIGHT_EYE_EAR) + one(LEFT_EYE_EAR)) / 2
