"""Hand-crafted feature families: thin components on a fat base.

A family implements `compute(clip, windows)` and declares its feature names up front. The base
validates what comes back, fills what the family could not compute with NaN (e.g. audio features of
a clip without audio), and adds the `<family>__` prefix, so every family's output has the same
shape whatever the input.

A family also declares, next to the names, how a person reads each feature (`feature_labels`: a
name, a unit and a number format), so that an explained score can say "blinks per minute: 2.1"
rather than `expression__blink_rate_per_min`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from talkqa.registry import Registry

from ..clip import PreprocessedClip

FAMILIES: Registry["FeatureFamily"] = Registry("feature family", column_prefix=True)


@dataclass(frozen=True)
class FeatureLabel:
    """How a person reads one feature: `name` ("mouth closed while speaking"), `unit` ("% of speech")
    and the number format; `scale` turns a share into a percentage (100)."""

    name: str
    unit: str = ""
    fmt: str = "{:.2f}"
    scale: float = 1.0

    def reading(self, value: float | None) -> str:
        """The value as a person reads it: "35 % of speech", "+3 frames"; "not measured" for NaN."""
        if value is None or not np.isfinite(value):
            return "not measured"
        text = self.fmt.format(value * self.scale)
        return f"{text} {self.unit}" if self.unit else text


@dataclass
class FamilyOutput:
    clip: dict[str, float] = field(default_factory=dict)  # one value per clip
    windows: dict[str, np.ndarray] = field(default_factory=dict)  # (W,) per name
    series: dict[str, np.ndarray] = field(default_factory=dict)  # (T,) per-frame series, for experts/reports


def frame_windows(n_frames: int, fps: float, window_s: float = 1.0, min_window_s: float = 0.5) -> np.ndarray:
    """Non-overlapping windows as (W, 2) [start, end) frame indices; a short tail window is dropped
    unless it is the only one."""
    size = max(1, int(round(window_s * fps)))
    starts = np.arange(0, n_frames, size)
    ends = np.minimum(starts + size, n_frames)
    keep = (ends - starts) >= min_window_s * fps
    if not keep.any() and n_frames > 0:
        keep[0] = True
    return np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64) if n_frames else np.zeros((0, 2), np.int64)


class FeatureFamily:
    name: ClassVar[str]
    # What it reads: "audio" families need no face and "visual" ones no sound. Scoring runs the audio
    # side on a second thread (talkqa/scoring.py), so the distinction buys wall time, not results.
    modality: ClassVar[str] = "audiovisual"
    description: ClassVar[str] = ""
    clip_features: ClassVar[tuple[str, ...]] = ()
    window_features: ClassVar[tuple[str, ...]] = ()
    series_names: ClassVar[tuple[str, ...]] = ()
    # Clip features that exist only under a condition most clips do not meet and are NaN elsewhere (a reading
    # of heavy coding where the coding grid shows); every other clip feature is finite on a clip with a face
    # and a voice (tests/test_families.py checks both).
    conditional_features: ClassVar[tuple[str, ...]] = ()
    # How a person reads each declared clip and window feature (unprefixed name -> label); the registry
    # contract test checks that every declared feature has one.
    feature_labels: ClassVar[dict[str, FeatureLabel]] = {}
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {sorted(unknown)}; known: {sorted(self.defaults)}")
        self.params = {**self.defaults, **params}

    # Subclasses may override these when the names depend on parameters (e.g. optional eGeMAPS).
    def clip_feature_names(self) -> tuple[str, ...]:
        return self.clip_features

    def window_feature_names(self) -> tuple[str, ...]:
        return self.window_features

    def columns(self) -> list[str]:
        return [f"{self.name}__{n}" for n in self.clip_feature_names()]

    def feature_label(self, name: str) -> FeatureLabel | None:
        """How a person reads feature `name` (unprefixed); None when the family declares no label.
        Families whose names are generated (eGeMAPS) override this with a rule."""
        return self.feature_labels.get(name)

    def window_columns(self) -> list[str]:
        return [f"{self.name}__{n}" for n in self.window_feature_names()]

    def compute(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        raise NotImplementedError

    def extract(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        """Run `compute` and return prefixed, complete, float64 outputs."""
        out = self.compute(clip, windows)
        self._check("clip", out.clip, self.clip_feature_names())
        self._check("window", out.windows, self.window_feature_names())
        n_win = len(windows)
        clip_vals = {
            f"{self.name}__{k}": float(out.clip.get(k, np.nan)) if out.clip.get(k) is not None else np.nan
            for k in self.clip_feature_names()
        }
        win_vals = {}
        for k in self.window_feature_names():
            v = out.windows.get(k)
            arr = np.full(n_win, np.nan) if v is None else np.asarray(v, dtype=np.float64)
            if arr.shape != (n_win,):
                raise ValueError(f"{self.name}: window feature {k!r} has shape {arr.shape}, expected ({n_win},)")
            win_vals[f"{self.name}__{k}"] = arr
        series = {f"{self.name}__{k}": np.asarray(v, dtype=np.float32) for k, v in out.series.items()}
        for k, v in series.items():
            if v.shape[0] != clip.n_frames:
                raise ValueError(f"{self.name}: series {k!r} has {v.shape[0]} frames, clip has {clip.n_frames}")
        return FamilyOutput(clip=clip_vals, windows=win_vals, series=series)

    def _check(self, what: str, values: dict, declared: tuple[str, ...]) -> None:
        extra = set(values) - set(declared)
        if extra:
            raise ValueError(f"{self.name}: undeclared {what} feature(s) {sorted(extra)}")
