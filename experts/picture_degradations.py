"""Picture degradations for training and evaluating the picture expert, applied to aligned crops.

Each family takes a window of consecutive frames — face crops (T, S, S, 3) and mouth crops (T, h, w, 3),
uint8, as `PreprocessedClip` stores them — a severity in (0, 1] and a random generator, and returns
degraded copies of the same shapes; a higher severity is a worse picture. Every family draws the same
random numbers whatever the severity, so one seed at several severities gives the same artefact made
stronger (what the expert's ranking loss needs).

The mouth crop is a zoom of a fixed box of the face crop (features/align.py), so a local artefact is
drawn once in face-crop coordinates and applied to both crops where it falls, at each crop's scale.

Families are of two kinds (`Degradation.kind`): `source` (blur, a low-resolution frame, JPEG blocks, a
coarse H.264 encode: what real footage from a small or compressed source has too) and `generation` (a soft
or pasted mouth, flicker, ghosting, grain, restored-looking skin, smeared teeth, warping: what generators
leave).

These are for learning signal, kept separate from the `talkqa degrade` corpus artifacts so that
evaluation on that corpus stays out-of-sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from talkqa.features.align import EYE_Y, IOD, MOUTH_BOX
from talkqa.features.codec import h264_roundtrip


@dataclass(frozen=True)
class CropGeometry:
    """Where the mouth crop lies in face-crop pixels, and its zoom relative to the face crop."""

    face_size: int
    mouth_hw: tuple[int, int]

    @property
    def box(self) -> tuple[float, float, float, float]:
        unit = IOD * self.face_size
        c = self.face_size / 2
        return (c + MOUTH_BOX[0] * unit, EYE_Y * self.face_size + MOUTH_BOX[1] * unit,
                c + MOUTH_BOX[2] * unit, EYE_Y * self.face_size + MOUTH_BOX[3] * unit)

    @property
    def zoom(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return self.mouth_hw[1] / (x1 - x0), self.mouth_hw[0] / (y1 - y0)

    def grids(self) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Face-crop coordinates (x, y) of every pixel of the face crop and of the mouth crop, with each
        crop's scale (pixels per face-crop pixel)."""
        s = self.face_size
        fy, fx = np.mgrid[0:s, 0:s].astype(np.float32)
        x0, y0, _, _ = self.box
        zx, zy = self.zoom
        h, w = self.mouth_hw
        my, mx = np.mgrid[0:h, 0:w].astype(np.float32)
        return [(fx, fy, 1.0), (x0 + (mx + 0.5) / zx - 0.5, y0 + (my + 0.5) / zy - 0.5, float(np.sqrt(zx * zy)))]


def _geometry(face: np.ndarray, mouth: np.ndarray) -> CropGeometry:
    return CropGeometry(face.shape[1], (mouth.shape[1], mouth.shape[2]))


def _soft_ellipse(x, y, cx, cy, rx, ry, feather: float) -> np.ndarray:
    """1 inside the ellipse, 0 outside, a linear ramp `feather` face pixels wide across its edge."""
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1 - r) * min(rx, ry) / max(feather, 1e-3) + 0.5, 0, 1).astype(np.float32)


def _soft_box(x, y, x0, y0, x1, y1, feather: float) -> np.ndarray:
    d = np.minimum.reduce([x - x0, x1 - x, y - y0, y1 - y])
    return np.clip(d / max(feather, 1e-3) + 0.5, 0, 1).astype(np.float32)


def _blend(img: np.ndarray, other: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """img where mask is 0, other where it is 1 (float arrays, mask broadcast over channels)."""
    m = mask[..., None] if mask.ndim < img.ndim else mask
    return img * (1 - m) + other * m


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _per_crop(face, mouth, fn: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]):
    """Apply fn(frames float32, x, y, scale) to both crops with their face-crop coordinate grids."""
    out = []
    for frames, (x, y, scale) in zip((face, mouth), _geometry(face, mouth).grids()):
        out.append(_to_uint8(fn(frames.astype(np.float32), x, y, scale)))
    return out[0], out[1]


def _mouth_centre(face: np.ndarray) -> tuple[float, float]:
    """Centre of the mouth in face-crop pixels (the template's mouth corners)."""
    s = face.shape[1]
    return s / 2, EYE_Y * s + 0.62 * IOD * s


# ----------------------------------------------------------------------------------------- families
def face_blur(face, mouth, sev, rng):
    """Gaussian blur of the whole face: an out-of-focus or over-smoothed (beautified, denoised) face."""
    sigma = 0.3 + 1.9 * sev  # face-crop pixels
    jitter = rng.uniform(0.85, 1.15)

    def op(frames, x, y, scale):
        s = sigma * jitter * scale
        return np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in frames])

    return _per_crop(face, mouth, op)


def lowres_frame(face, mouth, sev, rng):
    """The whole frame at a lower resolution (a small or upscaled source, a face far from the camera):
    both crops lose the same detail in face-crop pixels, so the zoomed mouth crop looks softest."""
    factor = 1.05 + 2.45 * sev  # face-crop pixels per source pixel
    jitter = rng.uniform(0.9, 1.1)

    def op(frames, x, y, scale):
        h, w = frames.shape[1:3]
        small = (max(2, int(round(w / (factor * jitter * scale)))), max(2, int(round(h / (factor * jitter * scale)))))
        return np.stack([cv2.resize(cv2.resize(fr, small, interpolation=cv2.INTER_AREA), (w, h),
                                    interpolation=cv2.INTER_CUBIC) for fr in frames])

    return _per_crop(face, mouth, op)


def lowres_mouth(face, mouth, sev, rng):
    """The mouth region rendered at a lower resolution and upscaled, as Wav2Lip's 96 px output pasted
    into a larger frame: a soft-edged patch around the mouth loses detail the rest of the face keeps."""
    factor = 1.2 + 3.3 * sev  # downscale factor in face-crop pixels
    cx, cy = _mouth_centre(face)
    s = face.shape[1]
    dx, dy, grow = rng.uniform(-0.03, 0.03) * s, rng.uniform(-0.03, 0.03) * s, rng.uniform(0.9, 1.3)

    def op(frames, x, y, scale):
        mask = _soft_ellipse(x, y, cx + dx, cy + dy, 0.32 * s * grow, 0.2 * s * grow, 0.05 * s)
        h, w = frames.shape[1:3]
        small = (max(2, int(round(w / (factor * scale)))), max(2, int(round(h / (factor * scale)))))
        low = np.stack([cv2.resize(cv2.resize(fr, small, interpolation=cv2.INTER_AREA), (w, h),
                                   interpolation=cv2.INTER_LINEAR) for fr in frames])
        return _blend(frames, low, mask)

    return _per_crop(face, mouth, op)


def pasted_box(face, mouth, sev, rng):
    """A lower-face box pasted back with a colour offset, slightly softer than the face around it and
    a visible seam that moves a little from frame to frame (face-detector jitter)."""
    s = face.shape[1]
    x0, x1 = rng.uniform(0.1, 0.2) * s, rng.uniform(0.8, 0.9) * s
    y0 = rng.uniform(0.42, 0.62) * s
    tint = rng.normal(0, 1, 3)
    tint = tint / (np.linalg.norm(tint) + 1e-6)
    shake = rng.normal(0, 1, (len(face), 2))
    offset = (4 + 22 * sev) * tint  # grey levels per channel
    feather = 3.0 - 2.5 * sev  # face pixels: a harder seam when worse

    def op(frames, x, y, scale):
        out = np.empty_like(frames)
        for t, fr in enumerate(frames):
            jx, jy = 1.5 * sev * shake[t]
            mask = _soft_box(x, y, x0 + jx, y0 + jy, x1 + jx, s * 1.2, feather)
            inner = cv2.GaussianBlur(fr, (0, 0), (0.3 + 0.6 * sev) * scale) + offset
            out[t] = _blend(fr, inner, mask)
        return out

    return _per_crop(face, mouth, op)


def blockiness(face, mouth, sev, rng):
    """JPEG compression of each frame (8x8 blocks, ringing, colour bleeding), the block grid at a random
    offset; H.264 at a low bitrate looks much the same on a still face."""
    quality = int(round(8 + 60 * (1 - sev) ** 1.5))  # 68 .. 8
    ox, oy = (int(v) for v in rng.integers(0, 8, 2))

    def op(frames, x, y, scale):
        out = []
        for fr in frames.astype(np.uint8):
            pad = cv2.copyMakeBorder(fr, oy, 0, ox, 0, cv2.BORDER_REFLECT)
            ok, buf = cv2.imencode(".jpg", pad, [cv2.IMWRITE_JPEG_QUALITY, quality])
            out.append(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)[oy:, ox:])
        return np.stack(out).astype(np.float32)

    return _per_crop(face, mouth, op)


def video_codec(face, mouth, sev, rng):
    """The window through H.264 at a coarse quantiser, as a pipeline's last encode leaves a picture:
    detail smeared into flat blocks, ringing at edges, and where the face barely moves, blocks carried
    over from the frame before. JPEG blocks (`blockiness`) have only the first of these: an expert
    trained without this family read faces encoded at QP 40-44 almost as clean as their sources (README,
    version 26). The crops are encoded at a drawn source size (source pixels per face-crop pixel, a face small
    or large in its frame), so the coder's 4-16 pixel blocks cover more or less of the face."""
    qp = int(round(28 + 23 * sev))  # x264 QP: 30 at severity 0.1, 51 (the coarsest) at 1
    source = rng.uniform(1.0, 2.5)

    def op(frames, x, y, scale):
        h, w = frames.shape[1:3]
        size = (max(16, int(round(w * source / scale))), max(16, int(round(h * source / scale))))
        up = size[0] >= w
        coded = h264_roundtrip(np.stack([cv2.resize(fr, size, interpolation=cv2.INTER_CUBIC if up else cv2.INTER_AREA)
                                         for fr in _to_uint8(frames)]), qp)
        return np.stack([cv2.resize(fr, (w, h), interpolation=cv2.INTER_AREA if up else cv2.INTER_CUBIC)
                         for fr in coded]).astype(np.float32)

    return _per_crop(face, mouth, op)


def flicker(face, mouth, sev, rng):
    """Brightness and colour that jump from frame to frame, over the whole face or the lower face only
    (where a generator re-renders the mouth every frame)."""
    n = len(face)
    gains = rng.normal(0, 1, (n, 1, 1, 3)) * 0.5 + rng.normal(0, 1, (n, 1, 1, 1))
    lower = rng.uniform() < 0.5
    s = face.shape[1]
    top = rng.uniform(0.45, 0.6) * s
    amp = 0.02 + 0.1 * sev

    def op(frames, x, y, scale):
        mask = _soft_box(x, y, -s, top, 2 * s, 2 * s, 4.0) if lower else np.ones_like(x)
        return _blend(frames, frames * (1 + amp * gains), mask[None])

    return _per_crop(face, mouth, op)


def ghosting(face, mouth, sev, rng):
    """Each frame blended with an earlier one: double edges around a moving mouth, smeared motion."""
    lag = int(rng.integers(1, 4))
    alpha = 0.1 + 0.4 * sev

    def op(frames, x, y, scale):
        prev = np.concatenate([np.repeat(frames[:1], lag, 0), frames[:-lag]]) if lag < len(frames) else frames[:1]
        return (1 - alpha) * frames + alpha * prev

    return _per_crop(face, mouth, op)


def texture_noise(face, mouth, sev, rng):
    """Grain that changes every frame, or a fixed checkerboard (the trace of a transposed-convolution
    upsampler), over the face or the lower face."""
    checker = rng.uniform() < 0.5
    lower = rng.uniform() < 0.5
    s = face.shape[1]
    seed = int(rng.integers(2**31))
    period = int(rng.integers(2, 4))

    def op(frames, x, y, scale):
        mask = _soft_box(x, y, -s, 0.5 * s, 2 * s, 2 * s, 4.0) if lower else np.ones_like(x)
        if checker:
            phase = ((np.floor(x / period) + np.floor(y / period)) % 2) * 2 - 1
            pattern = (1.5 + 8 * sev) * np.broadcast_to(phase[None, ..., None], frames.shape)
        else:
            noise = np.random.default_rng(seed).normal(0, 1, frames.shape[:3] + (1,)).astype(np.float32)
            pattern = (2 + 12 * sev) * noise  # grey grain: each crop its own, as independent sensors would
        return frames + pattern * mask[None, ..., None]

    return _per_crop(face, mouth, op)


def restored_skin(face, mouth, sev, rng):
    """The look of face restoration (GFPGAN, CodeFormer) and of some diffusion decoders: skin texture
    flattened by edge-preserving smoothing, then the edges that are left sharpened: plastic skin with
    crisp outlines, more detail at the edges than the source ever had."""
    amount = (0.3 + 1.7 * sev) * rng.uniform(0.8, 1.2)

    def op(frames, x, y, scale):
        out = []
        for fr in frames:
            size = int(round(3 + 2 * scale)) | 1
            smooth = cv2.bilateralFilter(np.clip(fr, 0, 255).astype(np.uint8), size, 8 + 40 * sev,
                                         (1 + 2 * sev) * scale).astype(np.float32)
            out.append(smooth + amount * (smooth - cv2.GaussianBlur(smooth, (0, 0), 1.0 * scale)))
        return np.stack(out)

    return _per_crop(face, mouth, op)


def teeth_smear(face, mouth, sev, rng):
    """The inside of the mouth smeared into a flat blob: teeth and tongue lose their edges, as when a
    generator cannot draw teeth."""
    cx, cy = _mouth_centre(face)
    s = face.shape[1]
    rx, ry = rng.uniform(0.17, 0.22) * s, rng.uniform(0.05, 0.08) * s

    def op(frames, x, y, scale):
        mask = _soft_ellipse(x, y, cx, cy, rx, ry, 0.02 * s)
        k = max(1, int(round((1 + 5 * sev) * scale)))
        out = []
        for fr in frames:
            smear = cv2.blur(fr, (2 * k + 1, max(1, k // 2) * 2 + 1))
            flat = (1 - 0.6 * sev) * smear + 0.6 * sev * smear.mean(axis=(0, 1), keepdims=True)
            out.append(_blend(fr, flat, mask * (0.5 + 0.5 * sev)))
        return np.stack(out)

    return _per_crop(face, mouth, op)


def warp(face, mouth, sev, rng):
    """A smooth displacement field that drifts over time: the face wobbles like jelly, features bend."""
    n = len(face)
    # a coarse 4x4 field per key frame, interpolated in time and space
    keys = rng.normal(0, 1, (n // 8 + 2, 2, 4, 4)).astype(np.float32)
    amp = 0.3 + 1.2 * sev  # face pixels (standard deviation of the displacement)

    def field_at(t):
        k, frac = divmod(t / 8.0, 1.0)
        k = int(k)
        return (1 - frac) * keys[k] + frac * keys[k + 1]

    def op(frames, x, y, scale):
        out = []
        for t, fr in enumerate(frames):
            f = field_at(t)
            h, w = fr.shape[:2]
            dx = cv2.resize(f[0], (w, h), interpolation=cv2.INTER_CUBIC) * amp * scale
            dy = cv2.resize(f[1], (w, h), interpolation=cv2.INTER_CUBIC) * amp * scale
            gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
            out.append(cv2.remap(fr, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        return np.stack(out)

    return _per_crop(face, mouth, op)


SOURCE, GENERATION = "source", "generation"


@dataclass(frozen=True)
class Degradation:
    """A family; which crops it visibly changes (the mouth crop lies inside a pasted lower-face box, so
    the box's seam shows only in the face crop; teeth are too small to judge in the face crop); whether
    training uses it only when asked (a family newer than the shipped weights, measured and not adopted:
    see `families`); and its kind: `source` for what a camera, a codec or a small source does to the whole
    frame (real footage has it too), `generation` for what a generator leaves (local, or unstable in time)."""

    fn: Callable
    regions: tuple[str, ...] = ("face", "mouth")
    kind: str = GENERATION
    opt_in: bool = False  # trained on only when the expert's config names it (opt_in_families)

    def __call__(self, face, mouth, sev, rng):
        if not 0 < sev <= 1:
            raise ValueError(f"severity must be in (0, 1], got {sev}")
        return self.fn(face, mouth, sev, rng)


DEGRADATIONS: dict[str, Degradation] = {
    "face_blur": Degradation(face_blur, kind=SOURCE),
    "lowres_frame": Degradation(lowres_frame, kind=SOURCE),
    "blockiness": Degradation(blockiness, kind=SOURCE),
    "video_codec": Degradation(video_codec, kind=SOURCE, opt_in=True),
    "lowres_mouth": Degradation(lowres_mouth),
    "pasted_box": Degradation(pasted_box, ("face",)),
    "flicker": Degradation(flicker),
    "ghosting": Degradation(ghosting),
    "texture_noise": Degradation(texture_noise),
    "restored_skin": Degradation(restored_skin),
    "teeth_smear": Degradation(teeth_smear, ("mouth",)),
    "warp": Degradation(warp),
}
OPT_IN_FAMILIES = tuple(n for n, d in DEGRADATIONS.items() if d.opt_in)


def families(opt_in=(), kind: str | None = None) -> list[str]:
    """The families a training run draws from (and evaluates): every family that is not opt-in, plus the
    opt-in ones named; `kind` keeps only source or generation families."""
    unknown = sorted(set(opt_in) - set(OPT_IN_FAMILIES))
    if unknown:
        raise ValueError(f"not opt-in picture families: {', '.join(unknown)} (opt-in: {', '.join(OPT_IN_FAMILIES)})")
    return [n for n, d in DEGRADATIONS.items() if (not d.opt_in or n in opt_in) and kind in (None, d.kind)]
