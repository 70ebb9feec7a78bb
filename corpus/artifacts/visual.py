"""Visual-quality artifacts: what generators do to the picture of a face rather than to its motion.
Blur, a low-resolution mouth paste (Wav2Lip renders the face at 96 px), a pasted box with a seam
and a colour mismatch, flicker, ghosting, noise or checkerboard texture, smeared teeth.

Local edits work frame by frame on a crop around the face (`_FaceEdit`): the edited crop is
blended back through a feathered mask, so pixels the mask does not reach stay byte-identical.
Sizes are fractions of the inter-ocular distance (IOD) so a level means the same on every face size.
"""

from __future__ import annotations

import cv2
import numpy as np

from talkqa.features.landmarks import (CHIN, INNER_LIPS, LOWER_LIP_INNER, MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP,
                                       UPPER_LIP_INNER)

from . import regions
from .base import ARTIFACTS, Artifact

FACE = tuple(range(468))  # the mesh without its iris points; its hull is the face oval
NOSE_BASE = 2
OPEN_MOUTH = 0.04  # inner-lip gap / IOD above which the inside of the mouth (teeth) is visible


def face_side(pts: np.ndarray) -> float:
    """The face box side in pixels: the larger extent of the landmark cloud."""
    ext = pts[list(FACE)].max(axis=0) - pts[list(FACE)].min(axis=0)
    return float(max(ext))


def seam_box(pts: np.ndarray, iod: float) -> tuple[float, float, float, float]:
    """The pasted lower-face box (x0, y0, x1, y1) in frame pixels: mouth corners +-0.35 IOD wide,
    from halfway between nose base and upper lip to just below the chin."""
    x0 = min(pts[MOUTH_LEFT, 0], pts[MOUTH_RIGHT, 0]) - 0.35 * iod
    x1 = max(pts[MOUTH_LEFT, 0], pts[MOUTH_RIGHT, 0]) + 0.35 * iod
    y0 = 0.5 * (pts[NOSE_BASE, 1] + pts[UPPER_LIP_INNER, 1])
    y1 = pts[CHIN, 1] + 0.1 * iod
    return float(x0), float(y0), float(x1), float(y1)


def mouth_gap(pts: np.ndarray) -> float:
    return float(np.linalg.norm(pts[UPPER_LIP_INNER] - pts[LOWER_LIP_INNER]) / max(regions.inter_ocular(pts), 1e-6))


class _FaceEdit(Artifact):
    """A frame-by-frame edit of a face region. Subclasses implement `edit` (the changed crop, or None
    to leave the frame alone) and may override `mask`, `begin` (per-application draws) and `details`."""

    kind = "video"
    needs_landmarks = True
    order = 10
    region: tuple[int, ...] = FACE
    grow = 0.0  # x IOD, the mask is 1 this far outside the region's hull
    feather = 0.1  # x IOD, soft edge beyond that

    def begin(self, sample, param: float, severity: float, rng: np.random.Generator) -> dict:
        return {}

    def context(self, param: float, iod: float, state: dict) -> float:
        """Pixels of image around the masked area that `edit` reads (a blur's reach)."""
        return 0.0

    def reach(self, pts: np.ndarray, iod: float, param: float, state: dict) -> np.ndarray:
        """Points whose bounding box, padded, is the crop."""
        return pts[list(self.region)]

    def edit(self, crop: np.ndarray, pts: np.ndarray, iod: float, param: float, state: dict) -> np.ndarray | None:
        raise NotImplementedError

    def mask(self, shape: tuple[int, ...], pts: np.ndarray, iod: float, param: float, state: dict) -> np.ndarray:
        return regions.region_mask(shape, [pts[list(self.region)]], self.grow * iod, self.feather * iod)

    def details(self, param: float, state: dict) -> dict:
        return {"issue": f"{self.name.replace('_', ' ')} ({param:g} {self.unit})"}

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        param = self.parameter(severity)
        state = {"rng": rng, **self.begin(sample, param, severity, rng)}
        edited = 0
        h, w = sample.frames.shape[1:3]
        for t in range(a, b):
            pts = sample.landmarks[t]
            iod = regions.inter_ocular(pts)
            if not np.isfinite(iod) or iod < 2:
                continue
            # the soft mask ends ~3 feathers past the grown hull (dilation + Gaussian tail)
            pad = (self.grow + 3 * self.feather) * iod + self.context(param, iod, state) + 2
            p = self.reach(pts, iod, param, state)
            x0, y0 = int(max(0, np.floor(p[:, 0].min() - pad))), int(max(0, np.floor(p[:, 1].min() - pad)))
            x1, y1 = int(min(w, np.ceil(p[:, 0].max() + pad))), int(min(h, np.ceil(p[:, 1].max() + pad)))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            crop = sample.frames[t, y0:y1, x0:x1]
            local = pts - np.array([x0, y0], np.float32)
            new = self.edit(crop, local, iod, param, state)
            if new is None:
                continue
            out.frames[t, y0:y1, x0:x1] = regions.blend(crop, new, self.mask(crop.shape, local, iod, param, state))
            edited += 1
        state.pop("rng")
        self._note(out, severity, segment, frames_edited=edited, **self.details(param, state))
        out.log[-1]["effective"] = edited > 0
        return out


@ARTIFACTS.register
class FaceBlur(_FaceEdit):
    """Gaussian blur of the whole face (landmark hull, feathered); levels are the blur's sigma."""

    name = "face_blur"
    impacts = {"visual_quality": 3.0}
    levels = (0.015, 0.025, 0.04, 0.06)
    unit = "x IOD blur sigma"

    def context(self, param, iod, state):
        return 3 * param * iod

    def edit(self, crop, pts, iod, param, state):
        return cv2.GaussianBlur(crop, (0, 0), param * iod)

    def details(self, param, state):
        return {"issue": f"blurred face (sigma {param:g} x IOD)"}


@ARTIFACTS.register
class MouthPasteLowres(_FaceEdit):
    """The lower half of the face (below the nose, as a Wav2Lip-style generator replaces it) rendered
    at a face resolution of `level` px, upscaled and blended back. Frames whose face is less than
    1.25x that size are left alone (they would lose next to nothing); if that is every frame, the
    application is not effective."""

    name = "mouth_paste_lowres"
    impacts = {"visual_quality": 2.5}
    levels = (96, 64, 48, 32)
    unit = "px face"
    feather = 0.08

    def edit(self, crop, pts, iod, param, state):
        scale = param / face_side(pts)
        if scale > 0.8:  # a face less than 1.25x the paste's resolution loses next to nothing
            return None
        h, w = crop.shape[:2]
        small = cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    def mask(self, shape, pts, iod, param, state):
        hull = super().mask(shape, pts, iod, param, state)
        # keep the part below the nose tip, measured along the face's own down axis (heads roll)
        eyes = pts[263] - pts[33]
        down = np.array([-eyes[1], eyes[0]], np.float32) / max(float(np.linalg.norm(eyes)), 1e-6)
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
        depth = (xx - pts[NOSE_TIP, 0]) * down[0] + (yy - pts[NOSE_TIP, 1]) * down[1]
        return hull * np.clip(0.5 + depth / (0.1 * iod), 0.0, 1.0)

    def details(self, param, state):
        return {"issue": f"low-resolution mouth paste ({param:g} px face)"}


@ARTIFACTS.register
class FaceBoxSeam(_FaceEdit):
    """A pasted lower-face box whose colour does not match the face around it: inside the box, a
    brightness offset of `level` 8-bit levels (sign drawn per application) plus a tint of half that
    size. The box edge hardens with severity: its feather shrinks from 0.08 IOD to a hard seam."""

    name = "face_box_seam"
    impacts = {"visual_quality": 2.5}
    levels = (8, 14, 22, 32)
    unit = "8-bit levels"
    edge_feathers = (0.08, 0.05, 0.025, 0.0)  # x IOD, per level: milder pastes are blended more softly

    def begin(self, sample, param, severity, rng):
        tint = rng.normal(size=3)
        tint -= tint.mean()  # orthogonal to grey: a hue shift, the brightness is the offset's
        tint /= np.linalg.norm(tint) + 1e-9
        sign = 1.0 if rng.random() < 0.5 else -1.0
        edge = float(np.interp(severity, self.severities(), self.edge_feathers))
        return {"offset": param * (sign + 0.5 * tint), "edge": edge, "sign": sign}

    def reach(self, pts, iod, param, state):
        x0, y0, x1, y1 = seam_box(pts, iod)
        return np.array([[x0, y0], [x1, y1]], np.float32)

    def context(self, param, iod, state):
        return 3 * state["edge"] * iod

    def edit(self, crop, pts, iod, param, state):
        return crop.astype(np.float32) + state["offset"].astype(np.float32)

    def mask(self, shape, pts, iod, param, state):
        x0, y0, x1, y1 = (int(round(v)) for v in seam_box(pts, iod))
        m = np.zeros(shape[:2], np.float32)
        m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 1.0
        sigma = state["edge"] * iod / 2
        return cv2.GaussianBlur(m, (0, 0), sigma) if sigma >= 0.3 else m

    def details(self, param, state):
        return {"brightness_offset": float(state["sign"] * param), "edge_feather_iod": state["edge"],
                "issue": f"pasted mouth box with a seam ({state['sign'] * param:+g} levels, "
                         f"{'hard' if state['edge'] == 0 else 'soft'} edge)"}


@ARTIFACTS.register
class TemporalFlicker(_FaceEdit):
    """The face's brightness and colour jump from frame to frame: an independent offset per frame,
    `level` 8-bit levels sd in brightness and 0.3 x that per channel in colour."""

    name = "temporal_flicker"
    impacts = {"visual_quality": 2.5}
    levels = (2, 4, 7, 12)
    unit = "8-bit levels sd"
    feather = 0.15

    def edit(self, crop, pts, iod, param, state):
        rng = state["rng"]
        offset = rng.normal(0, param) + rng.normal(0, 0.3 * param, 3)
        return crop.astype(np.float32) + offset.astype(np.float32)

    def details(self, param, state):
        return {"issue": f"face flicker (brightness sd {param:g} levels per frame)"}


def _bilinear(grid: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """2-D `grid` sampled at fractional row coordinates `gy` x column coordinates `gx` (bilinear,
    indices wrap around, so a small grid is a repeating tile)."""
    gh, gw = grid.shape
    y0, x0 = np.floor(gy).astype(int), np.floor(gx).astype(int)
    fy, fx = (gy - y0)[:, None], (gx - x0)[None, :]
    r0, r1, c0, c1 = y0 % gh, (y0 + 1) % gh, x0 % gw, (x0 + 1) % gw
    top = grid[r0][:, c0] * (1 - fx) + grid[r0][:, c1] * fx
    bottom = grid[r1][:, c0] * (1 - fx) + grid[r1][:, c1] * fx
    return top * (1 - fy) + bottom * fy


@ARTIFACTS.register
class TextureNoise(_FaceEdit):
    """Unnatural texture on the face, `level` 8-bit levels RMS, as a generator that renders the face
    at R px (drawn from 96-256 per application) leaves it: on a grid of face_side / R pixels, pasted
    back bilinearly, so a level looks about the same on a small and a large face. One of two kinds is
    drawn per application: fresh grain every frame (noise), or a fixed period-2/4 pattern that moves
    with the face, like the checkerboard of transposed-convolution upsampling. On a face smaller than
    R px the texture is drawn per pixel and dimmed by face_side / R (what the paste would average)."""

    name = "texture_noise"
    impacts = {"visual_quality": 2.0}
    levels = (4, 7, 12, 20)
    unit = "8-bit levels RMS"
    generator_px = (96, 128, 192, 256)

    def begin(self, sample, param, severity, rng):
        # one grid for the whole application: a cell that changed with the jaw would make the pattern swim
        side = float(np.median([face_side(p) for p in sample.landmarks]))
        state = {"generator_px": int(rng.choice(self.generator_px))}
        state["cell"] = side / state["generator_px"]
        if rng.random() < 0.5:
            return {**state, "pattern": "noise"}
        period = int(rng.choice([2, 4]))
        yy, xx = np.mgrid[0:period, 0:period]
        tile = np.where((yy + xx) % 2 == 0, 1.0, -1.0) + 0.5 * rng.normal(size=(period, period))
        tile -= tile.mean()
        tile /= np.sqrt(np.mean(tile ** 2)) + 1e-9
        colour = 1.0 + 0.2 * rng.normal(size=3)
        return {**state, "pattern": "checkerboard", "period": period, "tile": tile, "colour": colour}

    def edit(self, crop, pts, iod, param, state):
        h, w = crop.shape[:2]
        # a face smaller than the generator's face averages its texture down (a grid finer than a
        # pixel is drawn at a pixel, dimmed by the share of it one pixel would average away)
        cell = max(1.0, state["cell"])
        rms = param * min(1.0, state["cell"])
        if state["pattern"] == "noise":
            rng = state["rng"]
            gh, gw = int(np.ceil(h / cell)) + 1, int(np.ceil(w / cell)) + 1
            grid = (rng.normal(0, rms, (gh, gw, 1)) + rng.normal(0, 0.3 * rms, (gh, gw, 3))).astype(np.float32)
            if cell > 1:  # the noise has no phase to keep, so a plain resize pastes it
                grid = cv2.resize(grid, (round(gw * cell), round(gh * cell)), interpolation=cv2.INTER_LINEAR)
            return crop.astype(np.float32) + grid[:h, :w]
        # the pattern's phase follows the face anchor, so the texture sticks to the skin
        ax, ay = np.round(regions.anchor(pts))
        pattern = _bilinear(state["tile"], (np.arange(h) - ay) / cell, (np.arange(w) - ax) / cell)
        return crop.astype(np.float32) + (rms * pattern[..., None] * state["colour"]).astype(np.float32)

    def details(self, param, state):
        kind = state["pattern"] if state["pattern"] == "noise" else f"checkerboard period {state['period']}"
        return {"pattern": kind, "generator_px": state["generator_px"],
                "issue": f"texture {kind} on the face ({param:g} levels RMS, {state['generator_px']} px face grid)"}


@ARTIFACTS.register
class TeethSmear(_FaceEdit):
    """The inside of the open mouth smeared: a horizontal smear `level` x the mouth width long (and
    a quarter of that tall) wipes out the gaps between teeth. Frames with a closed mouth are left
    alone; a segment where the mouth never opens is not effective."""

    name = "teeth_smear"
    impacts = {"visual_quality": 2.0}
    levels = (0.1, 0.2, 0.35)
    unit = "x mouth width"
    region = INNER_LIPS
    feather = 0.03

    def _length(self, pts, param) -> int:
        return max(3, int(round(param * np.linalg.norm(pts[MOUTH_LEFT] - pts[MOUTH_RIGHT]))))

    def context(self, param, iod, state):
        return 1.5 * param * iod  # the smear's reach: a mouth is at most ~1.5 IOD wide

    def edit(self, crop, pts, iod, param, state):
        if mouth_gap(pts) < OPEN_MOUTH:
            return None
        k = self._length(pts, param)
        smeared = cv2.blur(crop, (k, max(1, k // 4)))
        return cv2.GaussianBlur(smeared, (0, 0), max(0.5, k / 8))

    def details(self, param, state):
        return {"issue": f"teeth smeared ({param:g} x mouth width)"}


@ARTIFACTS.register
class FrameGhosting(Artifact):
    """Each frame blended with the previous output frame, y[t] = (1 - w) x[t] + w y[t-1]: moving
    parts leave fading trails (several frames long at high w), a still background is untouched.
    Levels are w. The first frame of a segment blends with the unedited frame before it."""

    name = "frame_ghosting"
    kind = "video"
    impacts = {"visual_quality": 2.5}
    levels = (0.25, 0.4, 0.55, 0.7)
    unit = "weight of the previous frame"
    # after the whole-frame warps (20): ghosts of the picture as finally shown; audio edits come later
    order = 25

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        wgt = self.parameter(severity)
        prev = sample.frames[max(0, a - 1)].astype(np.float32)
        for t in range(a, b):
            prev = (1 - wgt) * sample.frames[t].astype(np.float32) + wgt * prev
            out.frames[t] = np.clip(np.round(prev), 0, 255).astype(np.uint8)
        self._note(out, severity, segment, issue=f"ghosting (previous frame weight {wgt:g})")
        out.log[-1]["effective"] = not np.array_equal(out.frames[a:b], sample.frames[a:b])
        return out
