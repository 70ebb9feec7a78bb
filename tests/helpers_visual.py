"""Picture degradations with known strength, and clips made from analysis frames, for the visual family.

`portrait_clip(frames, meshes)` does what preprocessing does after the face mesh: the same similarity
alignment and crops (features/align.py) and the same analysis-frame statistics
(features/frame_stats.py), so a test controls the picture exactly without an encoder or MediaPipe in
the loop. The degradations act on RGB uint8 frames and take the frame's mesh where they need the face.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkqa.features import landmarks as L
from talkqa.features.align import align_frame, head_pose
from talkqa.features.clip import PreprocessedClip
from talkqa.features.frame_stats import FRAME_STATS, frame_stats

FPS = 25.0
FACE_SIZE, MOUTH_SIZE = 96, (48, 96)


def drifting(image: np.ndarray, mesh: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, H, W, 3), meshes (n, 478, 3)): the portrait moved by whole pixels along a slow
    wander (so crops differ a little from frame to frame, as a real head's do), mesh moved with it."""
    rng = np.random.default_rng(seed)
    path = np.cumsum(rng.integers(-1, 2, (n, 2)), axis=0)
    path = np.clip(path - path.mean(0).round().astype(int), -4, 4)
    frames = np.stack([np.roll(image, (int(dy), int(dx)), axis=(0, 1)) for dx, dy in path])
    meshes = np.repeat(mesh[None].astype(np.float32), n, axis=0)
    meshes[:, :, :2] += path[:, None, :]
    return frames, meshes


def portrait_clip(frames: np.ndarray, meshes: np.ndarray, block_period: int = 8,
                  clip_id: str = "portrait") -> PreprocessedClip:
    n = len(frames)
    crops = [align_frame(f, m, FACE_SIZE, MOUTH_SIZE) for f, m in zip(frames, meshes)]
    stats = np.stack([frame_stats(f, m, block_period, previous=frames[i - 1] if i else None)
                      for i, (f, m) in enumerate(zip(frames, meshes))])
    h, w = frames.shape[1:3]
    return PreprocessedClip(
        clip_id=clip_id, fps=FPS, n_frames=n, face_valid=np.ones(n, bool), landmarks=meshes,
        aligned=np.stack([c[0] for c in crops]), head_pose=np.stack([head_pose(m) for m in meshes]),
        face_crops=np.stack([c[1] for c in crops]), mouth_crops=np.stack([c[2] for c in crops]),
        bbox=np.tile(np.array([0, 0, w, h], np.float32), (n, 1)), frame_size=(w, h),
        frame_stats={k: stats[:, i] for i, k in enumerate(FRAME_STATS)},
    )


# ------------------------------------------------------------------------------------ degradations
def face_mask(frame_shape, mesh: np.ndarray) -> np.ndarray:
    """(H, W) bool: inside the convex hull of the face mesh."""
    mask = np.zeros(frame_shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(mesh[:468, :2]).astype(np.int32)), 1)
    return mask.astype(bool)


def blur_face(frame: np.ndarray, mesh: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return frame.copy()
    out = frame.copy()
    mask = face_mask(frame.shape, mesh)
    out[mask] = cv2.GaussianBlur(frame, (0, 0), sigma)[mask]
    return out


def mouth_box(mesh: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a box a lip-sync generator might paste: the lips with a margin of 0.2 IOD
    to the sides, 0.12 IOD above and below (it ends between the lips and the nose / the chin)."""
    iod = float(np.linalg.norm(mesh[L.RIGHT_EYE_OUTER, :2] - mesh[L.LEFT_EYE_OUTER, :2]))
    lips = mesh[list(L.OUTER_LIPS), :2]
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    return (int(x0 - 0.2 * iod), int(y0 - 0.12 * iod), int(x1 + 0.2 * iod), int(y1 + 0.12 * iod))


def paste_mouth(frame: np.ndarray, mesh: np.ndarray, blur_sigma: float = 0.0, downscale: int = 1) -> np.ndarray:
    """The mouth box replaced by a blurred (`blur_sigma` px) or low-resolution (shrunk `downscale`
    times, then scaled back up) copy of itself, pasted without blending."""
    x0, y0, x1, y1 = mouth_box(mesh)
    patch = frame[y0:y1, x0:x1]
    if blur_sigma > 0:
        patch = cv2.GaussianBlur(frame, (0, 0), blur_sigma)[y0:y1, x0:x1]
    if downscale > 1:
        small = cv2.resize(patch, ((x1 - x0) // downscale, (y1 - y0) // downscale), interpolation=cv2.INTER_AREA)
        patch = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    out = frame.copy()
    out[y0:y1, x0:x1] = patch
    return out


def block_quantise(frame: np.ndarray, step: float) -> np.ndarray:
    """JPEG-like coding: 8x8 DCT blocks of Y, Cb and Cr on the frame's grid, every coefficient
    quantised with `step` (0: untouched)."""
    from scipy.fft import dctn, idctn

    if step <= 0:
        return frame.copy()
    ycc = cv2.cvtColor(frame, cv2.COLOR_RGB2YCrCb).astype(np.float32) - 128
    h, w = (s - s % 8 for s in frame.shape[:2])
    blocks = ycc[:h, :w].reshape(h // 8, 8, w // 8, 8, 3)
    coded = idctn(np.round(dctn(blocks, axes=(1, 3), norm="ortho") / step) * step, axes=(1, 3), norm="ortho")
    ycc[:h, :w] = coded.reshape(h, w, 3)
    return cv2.cvtColor(np.clip(ycc + 128, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def add_face_noise(frame: np.ndarray, mesh: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of `sigma` grey levels on the face (mesh hull), new in every call."""
    mask = face_mask(frame.shape, mesh)
    out = frame.copy()
    out[mask] = np.clip(frame[mask] + rng.normal(0, sigma, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    return out


def shift_face_colour(frame: np.ndarray, mesh: np.ndarray, amount: float) -> np.ndarray:
    """The face (mesh hull) warmer by `amount`: red up and blue down by that share (a white-balance
    mismatch between a generated face and the frame it is pasted into)."""
    out = frame.astype(np.float32)
    mask = face_mask(frame.shape, mesh)
    out[mask, 0] *= 1 + amount
    out[mask, 2] *= 1 - amount
    return np.clip(out, 0, 255).astype(np.uint8)


def alternate_brightness(frames: np.ndarray, amount: float) -> np.ndarray:
    """Every other frame brighter by `amount` (a share of the pixel value): flicker."""
    out = frames.astype(np.float32)
    out[1::2] *= 1 + amount
    return np.clip(out, 0, 255).astype(np.uint8)
