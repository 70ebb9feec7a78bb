"""The artifact contract: what `talkqa degrade` applies to a clip, and what it costs each dimension.

An artifact is a small class with declared attributes and one method:

    name      registry key (also the `severity__<name>` manifest column)
    kind      which stream it edits: 'video', 'audio', or 'av' (it edits one stream to break the
              audio-visual relation: offset, swap, stretch, silence ...)
    impacts   {dimension: drop in MOS at full severity}; labels.py turns these into pseudo-MOS.
              `overall` may be named too: a drop of the overall opinion beyond what the dimensions
              explain (a playback stall annoys as an interruption, not only as a frozen face)
    levels    physical parameter per graded level, mildest first (>= 3); severity of level i (0-based)
              of L is (i + 1) / L, so the last level is severity 1.0
    unit      what a level value means ('dB SNR', 'frames', ...)
    responses {mode: Saturating curve} for artifacts fitted to human ratings (labels.py,
              benchmarks/fit_label_rule.py): the drop is impacts x curve(physical level), so
              `impacts` is the drop as the level grows without bound; each mode (which way an
              offset goes, where a stall falls) has its own curve and `apply` logs the `mode` and the
              `parameter` it actually applied. Empty: the drop is linear in severity
    coverage_scaled  whether a segment's drop shrinks with the share of the clip it covers (False
              for an event whose level already says how long it lasts, such as a stall)
    needs_landmarks / needs_donors   the inputs it reads besides frames and audio
    order     application order within a variant (see the attribute's comment)

    apply(sample, severity, segment, rng) -> Sample

`segment` is a half-open frame range (start, stop) or None (whole clip). Audio edits cover
samples [start * hop, stop * hop) with hop = sr / fps = 640, so diagnostics are frame-exact.
`apply` never modifies its input; it appends what it actually did to `sample.log` (e.g. the sign
of an offset it drew, or `effective=False` when there was nothing to act on, such as blink removal
on a clip without blinks, so the variant is labelled clean for that artifact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Mapping

import numpy as np

from talkqa.registry import Registry
from talkqa.tasks import DIMENSIONS, PERCEPTUAL_DIMENSIONS

KINDS = ("video", "audio", "av")
FPS = 25.0
SR = 16000
HOP = int(round(SR / FPS))  # 640 audio samples per video frame
OVERALL = next(d.name for d in DIMENSIONS if d.combines_others)


@dataclass
class Sample:
    """One clip in memory: frames (T, H, W, 3) uint8 RGB at `fps`, mono float32 audio at `sr`
    of exactly T * hop samples, landmarks (T, 478, 2) frame pixels (gaps interpolated) or None,
    and `donors`: other speakers' speech at `sr` (for babble and swaps)."""

    frames: np.ndarray
    audio: np.ndarray
    landmarks: np.ndarray | None = None
    donors: list[np.ndarray] = field(default_factory=list)
    fps: float = FPS
    sr: int = SR
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hop(self) -> int:
        return int(round(self.sr / self.fps))

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def copy(self) -> "Sample":
        return replace(self, frames=self.frames.copy(), audio=self.audio.copy(), log=list(self.log))

    def frame_range(self, segment: tuple[int, int] | None) -> tuple[int, int]:
        if segment is None:
            return 0, self.n_frames
        a, b = int(segment[0]), int(segment[1])
        if not (0 <= a < b <= self.n_frames):
            raise ValueError(f"segment {segment} outside 0..{self.n_frames} frames")
        return a, b

    def sample_range(self, segment: tuple[int, int] | None) -> tuple[int, int]:
        a, b = self.frame_range(segment)
        return a * self.hop, min(b * self.hop, len(self.audio))


@dataclass(frozen=True)
class Saturating:
    """Share of an artifact's impacts paid at physical level x (in its `levels` unit):
    ceiling x (1 - exp(-(max(0, x - origin) / scale) ** shape)). Zero up to `origin`, rising
    monotonically to `ceiling` (in (0, 1]: a mode whose cost levels off below another's, such as a
    sound-first offset against a lips-first one); shape > 1 starts flat (small faults go unnoticed),
    shape < 1 starts steep."""

    scale: float
    shape: float
    origin: float = 0.0
    ceiling: float = 1.0

    def __post_init__(self):
        if not (self.scale > 0 and self.shape > 0 and math.isfinite(self.origin) and 0 < self.ceiling <= 1):
            raise ValueError(f"Saturating needs scale > 0, shape > 0 and a ceiling in (0, 1], got {self}")

    def __call__(self, x: float) -> float:
        u = max(0.0, float(x) - self.origin) / self.scale
        return float(-self.ceiling * math.expm1(-(u ** self.shape)))


class Artifact:
    name: ClassVar[str]
    kind: ClassVar[str]
    impacts: ClassVar[dict[str, float]]
    levels: ClassVar[tuple[float, ...]]
    unit: ClassVar[str] = ""
    responses: ClassVar[Mapping[str, Saturating]] = {}
    coverage_scaled: ClassVar[bool] = True
    needs_landmarks: ClassVar[bool] = False
    needs_donors: ClassVar[bool] = False
    min_segment_s: ClassVar[float] = 1.0
    # application order when a variant has several: local face edits (10) read the landmarks before
    # whole-frame warps (20) move the face; audio-visual edits (30) before audio degradations (40)
    order: ClassVar[int] = 20

    # ------------------------------------------------------------------ severity <-> level
    @classmethod
    def severities(cls) -> tuple[float, ...]:
        n = len(cls.levels)
        return tuple(round((i + 1) / n, 4) for i in range(n))

    @classmethod
    def parameter(cls, severity: float) -> float:
        """The level value at `severity` in (0, 1]; linear between graded levels, the mildest below."""
        if not (0.0 < severity <= 1.0):
            raise ValueError(f"{cls.name}: severity must be in (0, 1], got {severity}")
        sev = np.array(cls.severities())
        lv = np.array(cls.levels, dtype=float)
        if not np.all(np.isfinite(lv)):
            return float(lv[min(int(np.searchsorted(sev, severity - 1e-9)), len(lv) - 1)])
        return float(np.interp(severity, sev, lv))

    def apply(self, sample: Sample, severity: float, segment: tuple[int, int] | None,
              rng: np.random.Generator) -> Sample:
        raise NotImplementedError

    def _note(self, sample: Sample, severity: float, segment, **details) -> None:
        a, b = sample.frame_range(segment)
        sample.log.append({"artifact": self.name, "severity": float(severity), "start_frame": a, "stop_frame": b,
                           "effective": True, **details})

    @classmethod
    def check(cls) -> None:
        """Contract check, run at registration: declared attributes are complete and sane."""
        if cls.kind not in KINDS:
            raise ValueError(f"artifact {cls.name}: kind must be one of {KINDS}, got {cls.kind!r}")
        if len(cls.levels) < 3:
            raise ValueError(f"artifact {cls.name}: needs at least 3 graded levels")
        bad = set(cls.impacts) - set(PERCEPTUAL_DIMENSIONS) - {OVERALL}
        if (bad or not set(cls.impacts) & set(PERCEPTUAL_DIMENSIONS)
                or any(v <= 0 for v in cls.impacts.values())):
            raise ValueError(f"artifact {cls.name}: impacts must map at least one dimension other than overall "
                             "(and optionally overall) to positive drops")
        if cls.responses:
            lv = np.asarray(cls.levels, float)
            if not (np.all(np.isfinite(lv)) and np.all(np.diff(lv) > 0)):
                raise ValueError(f"artifact {cls.name}: an artifact with responses needs finite levels that "
                                 "increase with severity (the curves are monotone in the level)")
            if not all(isinstance(r, Saturating) for r in cls.responses.values()):
                raise ValueError(f"artifact {cls.name}: responses must map modes to Saturating curves")

    @classmethod
    def response(cls, severity: float, mode: str | None = None, parameter: float | None = None) -> float:
        """Share of `impacts` paid: linear in severity, or the mode's curve at the applied level."""
        if not cls.responses:
            return float(severity)
        if mode is None and len(cls.responses) == 1:
            mode = next(iter(cls.responses))
        if mode not in cls.responses:
            raise ValueError(f"artifact {cls.name}: mode {mode!r} unknown; one of {', '.join(cls.responses)}")
        x = cls.parameter(severity) if parameter is None else float(parameter)
        return cls.responses[mode](x)


class _ArtifactRegistry(Registry[Artifact]):
    def register(self, cls):
        cls.check()
        return super().register(cls)


ARTIFACTS: Registry[Artifact] = _ArtifactRegistry("artifact")
