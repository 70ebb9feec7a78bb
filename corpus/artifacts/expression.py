"""Expression artifacts: frozen upper face, head motion removed / shaken / swung, exaggerated mouth
and brows, blinks removed, frame-repeat stutter. Whole-frame warps also move the landmarks, so a
later artifact in the same variant still finds the face."""

from __future__ import annotations

import math

import cv2
import numpy as np

from talkqa.features.landmarks import LEFT_EYE_EAR, RIGHT_EYE_EAR

from . import regions
from .base import ARTIFACTS, Artifact


def _warp_frames(out, a: int, b: int, mats: np.ndarray) -> None:
    """Apply per-frame 2x3 affine `mats` (frames a..b) to frames and landmarks in place."""
    h, w = out.frames.shape[1:3]
    for k, t in enumerate(range(a, b)):
        m = mats[k].astype(np.float32)
        out.frames[t] = cv2.warpAffine(out.frames[t], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if out.landmarks is not None:
            out.landmarks[t] = out.landmarks[t] @ m[:, :2].T + m[:, 2]


def _rigid(center, angle_deg: float, dx: float, dy: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(angle_deg), 1.0)
    m[:, 2] += (dx, dy)
    return m


def _face_geometry(sample, a, b):
    if sample.landmarks is not None:
        pts = sample.landmarks[a:b]
        return pts[:, list(regions.ANCHORS)].mean(axis=(0, 1)), float(np.median([regions.inter_ocular(p) for p in pts]))
    h, w = sample.frames.shape[1:3]
    return np.array([w / 2, h / 2]), 0.25 * min(h, w)


@ARTIFACTS.register
class StillPortrait(Artifact):
    """Everything but the mouth is held (inf: a still portrait with a talking mouth, like
    single-image animation without head motion); levels are hold lengths in frames."""

    name = "still_portrait"
    kind = "video"
    order = 10
    needs_landmarks = True
    impacts = {"expression": 3.0, "consistency": 1.0}
    levels = (8, 25, math.inf)
    unit = "frames held"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        out.landmarks = sample.landmarks.copy()
        a, b = out.frame_range(segment)
        hold = self.parameter(severity)
        mouth = list(regions.LOWER_FACE)
        for t in range(a, b):
            r = regions.held_index(t, a, hold)
            if r == t:
                continue
            still = sample.frames[r]
            # the live mouth of frame t, moved to where the mouth sits in the held frame
            out.frames[t] = regions.transplant(np.stack([still, sample.frames[t]]),
                                               np.stack([sample.landmarks[r], sample.landmarks[t]]), 0, 1, regions.LOWER_FACE)
            shift = regions.anchor(sample.landmarks[r]) - regions.anchor(sample.landmarks[t])
            pts = sample.landmarks[r].copy()
            pts[mouth] = sample.landmarks[t][mouth] + shift
            out.landmarks[t] = pts
        self._note(out, severity, segment,
                   issue="face frozen, only the mouth moves" if not np.isfinite(hold) else f"face updated every {hold:g} frames")
        return out


@ARTIFACTS.register
class HeadStabilise(Artifact):
    """Head motion removed: each frame warped (similarity) so the face stays at its mean position;
    levels are the share of the motion removed."""

    name = "head_stabilise"
    kind = "video"
    needs_landmarks = True
    impacts = {"expression": 1.5}
    levels = (0.5, 0.8, 1.0)
    unit = "of head motion removed"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        out.landmarks = sample.landmarks.copy()
        a, b = out.frame_range(segment)
        frac = self.parameter(severity)
        idx = list(regions.ANCHORS) + [234, 454, 10, 152]
        target = sample.landmarks[a:b, idx].mean(axis=0)
        eye = np.float64([[1, 0, 0], [0, 1, 0]])
        mats = []
        for t in range(a, b):
            m, _ = cv2.estimateAffinePartial2D(sample.landmarks[t, idx].astype(np.float32), target.astype(np.float32))
            mats.append(eye + frac * ((m if m is not None else eye) - eye))
        _warp_frames(out, a, b, np.array(mats))
        self._note(out, severity, segment, issue=f"head motion removed ({frac:.0%})")
        return out


@ARTIFACTS.register
class HeadJitter(Artifact):
    """Independent random shake of the whole frame every frame (translation sd = level x inter-ocular
    distance, rotation sd = 20 x level degrees)."""

    name = "head_jitter"
    kind = "video"
    impacts = {"expression": 2.5}
    levels = (0.02, 0.05, 0.1)
    unit = "x IOD"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        out.landmarks = None if sample.landmarks is None else sample.landmarks.copy()
        a, b = out.frame_range(segment)
        amp = self.parameter(severity)
        center, iod = _face_geometry(sample, a, b)
        mats = np.array([_rigid(center, rng.normal(0, 20 * amp), *rng.normal(0, amp * iod, 2)) for _ in range(a, b)])
        _warp_frames(out, a, b, mats)
        self._note(out, severity, segment, issue=f"jittery head motion ({amp:g} x IOD)")
        return out


@ARTIFACTS.register
class HeadPeriodic(Artifact):
    """Mechanical periodic head sway (0.8-2 Hz sinusoid in x, y and roll) added on top of the real motion."""

    name = "head_periodic"
    kind = "video"
    impacts = {"expression": 2.0}
    levels = (0.05, 0.1, 0.2)
    unit = "x IOD"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        out.landmarks = None if sample.landmarks is None else sample.landmarks.copy()
        a, b = out.frame_range(segment)
        amp = self.parameter(severity)
        center, iod = _face_geometry(sample, a, b)
        f = rng.uniform(0.8, 2.0)
        phase = 2 * np.pi * f * np.arange(b - a) / sample.fps
        mats = np.array([_rigid(center, 30 * amp * np.sin(p + 1.0), amp * iod * np.sin(p), 0.5 * amp * iod * np.sin(2 * p))
                         for p in phase])
        _warp_frames(out, a, b, mats)
        self._note(out, severity, segment, frequency_hz=f, issue=f"periodic head sway at {f:.1f} Hz ({amp:g} x IOD)")
        return out


@ARTIFACTS.register
class Exaggerate(Artifact):
    """Mouth and brow motion exaggerated: their landmarks' deviation from the segment's mean
    (head-relative) is scaled by 1 + gain and the frame warped to match (Gaussian-RBF field)."""

    name = "exaggerate"
    kind = "video"
    order = 10
    needs_landmarks = True
    impacts = {"expression": 2.5, "lip_sync": 0.5}
    levels = (0.5, 1.0, 2.0)
    unit = "extra gain"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        out.landmarks = sample.landmarks.copy()
        a, b = out.frame_range(segment)
        gain = self.parameter(severity)
        idx = list(regions.MOUTH + regions.BROWS)
        pts = sample.landmarks[:, idx]
        rel = pts - np.array([regions.anchor(p) for p in sample.landmarks])[:, None]
        mean = rel[a:b].mean(axis=0)
        h, w = sample.frames.shape[1:3]
        step = 4
        gy, gx = np.mgrid[0:h + step:step, 0:w + step:step].astype(np.float32)
        grid = np.stack([gx, gy], -1).reshape(-1, 2)
        mx, my = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        for t in range(a, b):
            iod = regions.inter_ocular(sample.landmarks[t])
            d = gain * (rel[t] - mean)
            sigma = 0.12 * iod
            d2 = ((grid[:, None, :] - pts[t][None]) ** 2).sum(-1)
            k = np.exp(-d2 / (2 * sigma ** 2))
            ks = k.sum(1, keepdims=True)
            field = (k @ d) / (ks + 1e-6) * np.minimum(1.0, ks)
            field = field.reshape(gy.shape + (2,)).astype(np.float32)
            full = cv2.remap(field, mx / step, my / step, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out.frames[t] = cv2.remap(sample.frames[t], mx - full[..., 0], my - full[..., 1], cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT101)
            out.landmarks[t, idx] = pts[t] + d
        self._note(out, severity, segment, issue=f"mouth and brow motion exaggerated x{1 + gain:g}")
        return out


def eye_aspect_ratio(pts: np.ndarray) -> np.ndarray:
    def one(ix):
        p = [pts[..., i, :] for i in ix]
        v = np.linalg.norm(p[1] - p[5], axis=-1) + np.linalg.norm(p[2] - p[4], axis=-1)
        return v / (2 * np.linalg.norm(p[0] - p[3], axis=-1) + 1e-9)

    return (one(RIGHT_EYE_EAR) + one(LEFT_EYE_EAR)) / 2


def blink_runs(landmarks: np.ndarray, drop: float = 0.75, pad: int = 1) -> list[tuple[int, int]]:
    """Frame runs [start, stop) where the eye aspect ratio falls below `drop` x its median, padded."""
    ear = eye_aspect_ratio(landmarks)
    closed = ear < drop * np.median(ear)
    runs, t, n = [], 0, len(ear)
    while t < n:
        if closed[t]:
            s = t
            while t < n and closed[t]:
                t += 1
            runs.append((max(0, s - pad), min(n, t + pad)))
        t += 1
    return runs


@ARTIFACTS.register
class BlinkRemoval(Artifact):
    """Blinks painted out with the open eyes of the frame just before each blink; levels are the
    share of blinks removed. A clip without blinks in the segment is left as is (not effective)."""

    name = "blink_removal"
    kind = "video"
    order = 10
    needs_landmarks = True
    impacts = {"expression": 1.2}
    levels = (0.34, 0.67, 1.0)
    unit = "of blinks"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        share = self.parameter(severity)
        runs = [(s, e) for s, e in blink_runs(sample.landmarks) if s >= a and e <= b]
        chosen = [r for r in runs if rng.random() < share] if share < 1 else runs
        if runs and not chosen:
            chosen = [runs[int(rng.integers(len(runs)))]]
        for s, e in chosen:
            src = s - 1 if s > 0 else min(e, sample.n_frames - 1)
            for t in range(s, e):
                out.frames[t] = regions.transplant(sample.frames, sample.landmarks, t, src, regions.EYES,
                                                   grow=0.1, feather=0.06)
        self._note(out, severity, segment, blinks_removed=len(chosen), blinks_found=len(runs),
                   issue=f"{len(chosen)} of {len(runs)} blinks removed")
        out.log[-1]["effective"] = bool(chosen)
        return out


@ARTIFACTS.register
class FrameStutter(Artifact):
    """Frame-repeat stutter: each frame shown `hold` times (the ones in between dropped), the audio runs on.
    Its end is a still photo with a voice (inf: the first frame for the whole range), where the
    mouth never moves while someone speaks: no natural motion and no lip sync at all. Over part of
    a clip that end is the picture a stall makes, labelled here by coverage like every stutter."""

    name = "frame_stutter"
    kind = "video"
    impacts = {"expression": 3.0, "lip_sync": 3.0}
    levels = (2, 3, 5, math.inf)
    unit = "frames held"

    def apply(self, sample, severity, segment, rng):
        hold = self.parameter(severity)
        out = hold_frames(sample, segment, hold)
        self._note(out, severity, segment, issue=f"stutter: each frame repeated {hold:g}x" if np.isfinite(hold)
                   else "still picture while the sound goes on")
        return out


def hold_frames(sample, segment: tuple[int, int] | None, hold: float = math.inf):
    """A copy whose frames in `segment` are each held for `hold` frames (the ones in between dropped)
    while the audio runs on; hold=inf freezes the picture on the segment's first frame (a stall, or
    over the whole clip a still photo)."""
    out = sample.copy()
    out.landmarks = None if sample.landmarks is None else sample.landmarks.copy()
    a, b = out.frame_range(segment)
    src = np.array([regions.held_index(t, a, hold) for t in range(a, b)])
    out.frames[a:b] = sample.frames[src]
    if out.landmarks is not None:
        out.landmarks[a:b] = sample.landmarks[src]
    return out
