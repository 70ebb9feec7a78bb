"""Lip-sync artifacts: audio offset, frozen / swapped / blurred / temporally jittered mouth."""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import regions
from .base import ARTIFACTS, Artifact, Saturating


def shift_audio(audio: np.ndarray, delay: int, lo: int, hi: int) -> np.ndarray:
    """out[n] = audio[n - delay] for n in [lo, hi): positive delay = sound later than the lips."""
    out = audio.copy()
    n = np.arange(lo, hi) - delay
    ok = (n >= 0) & (n < len(audio))
    seg = np.zeros(hi - lo, audio.dtype)
    seg[ok] = audio[n[ok]]
    out[lo:hi] = seg
    return out


@ARTIFACTS.register
class AVOffset(Artifact):
    """Audio delayed (the lips move first) or advanced (the sound comes first) by a level in seconds;
    the direction is drawn per application (delays twice as often: lagging audio is the common
    pipeline fault). People forgive lips-first more than sound-first at moderate offsets, so each
    direction has its own response curve, fitted to human ratings (benchmarks/fit_label_rule.py)."""

    name = "av_offset"
    kind = "av"
    # fitted: benchmarks/fit_label_rule.py. The lip-sync drop as the offset grows without bound runs far
    # below the floor: the label stops at 1, and overall takes its weighted share (corpus/labels.py)
    impacts = {"lip_sync": 8.66, "consistency": 0.52}
    responses = {"lips_first": Saturating(0.812, 1.18, origin=0.056),
                 "sound_first": Saturating(0.333, 1.57, ceiling=0.68)}
    levels = (0.08, 0.16, 0.32, 0.5, 1.0)
    unit = "s"
    order = 30

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        seconds = self.parameter(severity)
        lips_first = rng.random() < 2 / 3
        delay = int(round(seconds * out.sr)) * (1 if lips_first else -1)
        lo, hi = out.sample_range(segment)
        out.audio = shift_audio(out.audio, delay, lo, hi)
        mode = "lips_first" if lips_first else "sound_first"
        self._note(out, severity, segment, mode=mode, parameter=abs(delay) / out.sr, offset_s=delay / out.sr,
                   offset_frames=delay / out.hop,
                   issue=f"audio {'lags' if lips_first else 'leads'} lips by {abs(delay) / out.sr:.2f} s "
                         f"({abs(delay) / out.hop:g} frames)")
        return out


class _MouthArtifact(Artifact):
    needs_landmarks = True
    kind = "video"
    order = 10
    region = regions.LOWER_FACE

    def source_frame(self, t: int, a: int, b: int, n: int, param: float, rng, state: dict) -> int:
        raise NotImplementedError

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        param = self.parameter(severity)
        state: dict = {}
        for t in range(a, b):
            s = self.source_frame(t, a, b, out.n_frames, param, rng, state)
            if s != t:
                out.frames[t] = regions.transplant(sample.frames, sample.landmarks, t, s, self.region,
                                                   **self.blend_options(param))
        self._note(out, severity, segment, **self.details(param, state))
        return out

    def blend_options(self, param: float) -> dict:
        return {}

    def details(self, param: float, state: dict) -> dict:
        return {"issue": f"{self.name.replace('_', ' ')} ({param:g} {self.unit})"}


@ARTIFACTS.register
class MouthFreeze(_MouthArtifact):
    """The mouth region is held for `hold` frames at a time (inf: frozen for the whole segment)."""

    name = "mouth_freeze"
    impacts = {"lip_sync": 3.0, "expression": 0.8, "consistency": 1.0}
    levels = (4, 10, math.inf)
    unit = "frames held"

    def source_frame(self, t, a, b, n, param, rng, state):
        return regions.held_index(t, a, param)

    def details(self, param, state):
        return {"issue": "mouth frozen" if not np.isfinite(param) else f"mouth updated every {param:g} frames"}


@ARTIFACTS.register
class MouthSwap(_MouthArtifact):
    """The mouth comes from another moment of the same clip (>= 1 s away when the clip allows),
    pasted with a visible seam like a bad Wav2Lip pass; levels are the pasted mouth's opacity."""

    name = "mouth_swap"
    impacts = {"lip_sync": 3.0, "expression": 0.5}
    levels = (0.5, 0.75, 1.0)
    unit = "opacity"

    def source_frame(self, t, a, b, n, param, rng, state):
        if "offset" not in state:
            lo = min(25, max(1, n // 3))
            state["offset"] = int(rng.integers(lo, max(lo + 1, n - lo + 1)))
        return (t + state["offset"]) % n

    def blend_options(self, param):
        return {"opacity": param, "feather": 0.03, "grow": 0.1}

    def details(self, param, state):
        return {"source_offset_frames": state.get("offset", 0),
                "issue": f"mouth replaced by the mouth {state.get('offset', 0)} frames away (opacity {param:g})"}


@ARTIFACTS.register
class MouthJitter(_MouthArtifact):
    """Temporal jitter: each frame's mouth comes from a random frame within +-j frames."""

    name = "mouth_jitter"
    impacts = {"lip_sync": 2.0, "expression": 1.0}
    levels = (1, 2, 4)
    unit = "frames"

    def source_frame(self, t, a, b, n, param, rng, state):
        j = int(round(param))
        return int(np.clip(t + rng.integers(-j, j + 1), 0, n - 1))


@ARTIFACTS.register
class MouthBlur(Artifact):
    """The mouth patch is downscaled by a factor and upscaled again (low-resolution mouth)."""

    name = "mouth_blur"
    kind = "video"
    needs_landmarks = True
    order = 10
    impacts = {"lip_sync": 1.5, "expression": 0.5}
    levels = (2, 4, 8)
    unit = "x downscale"

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        factor = self.parameter(severity)
        for t in range(a, b):
            pts = sample.landmarks[t]
            iod = regions.inter_ocular(pts)
            frame = sample.frames[t]
            x0, y0, x1, y1 = regions.box(pts, regions.LOWER_FACE, 0.3 * iod, frame.shape)
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            patch = frame[y0:y1, x0:x1]
            small = cv2.resize(patch, (max(1, int((x1 - x0) / factor)), max(1, int((y1 - y0) / factor))),
                               interpolation=cv2.INTER_AREA)
            low = frame.copy()
            low[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            mask = regions.region_mask(frame.shape, [pts[list(regions.LOWER_FACE)]], 0.12 * iod, 0.08 * iod)
            out.frames[t] = regions.blend(frame, low, mask)
        self._note(out, severity, segment, issue=f"low-resolution mouth ({factor:g}x)")
        return out
