"""The label rule's direct overall part, read from one reading (`overall_direct` of the training config).

The label rule charges some faults overall directly, on top of what they cost the dimensions (corpus/labels.py:
a stall's `overall` impact, people's judgement that a picture which stops while the voice goes on is worse as a
whole than its motion score says). A model that scores overall as the rule over its five dimension scores
(`overall_from: dimensions`, scoring/overall_rule.py) cannot see that part: on the training clips the 68 stalls
are labelled 0.34 below the rule over their own dimension labels, so even perfect dimension scores leave a
stall's overall a third of a point too high.

This module states what the training clips say about that part along one reading whose direction is known:

    direct(r) = - the mean of (label overall - rule over the label dimensions) among the training clips
                  reading about as badly as r,

as a centred isotonic map (stacking/calibration.py: never smaller for a worse reading, linear between the
points of its steps, flat beyond them), fitted only on the clips reading at least as badly as `start` and 0 for
any better reading. The start keeps every clip that reads like clean footage out of it (the longest held
picture of a clean training clip is 0.48 s, a 1 s stall holds about 1 s). The scorer adds the part to the
rule's overall; the explanation lists it beside the dimensions' parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkqa.splits import name_folds
from talkqa.stacking.calibration import MonotoneMap
from talkqa.tasks import DIMENSION_NAMES

from .bundle_config import OverallDirect, OverallRule
from .overall_rule import overall_from_dimensions

MIN_CLIPS = 20  # fewer counted clips than this say nothing about the part: no map


@dataclass
class DirectPart:
    column: str
    worse: int  # +1: a higher reading is worse; -1: a lower one
    start: float  # the reading counts only where at least as bad as this; the part is 0 for better readings
    curve: MonotoneMap | None  # badness (worse x reading) -> the part's size (>= 0); None: no part
    clips: int = 0  # training clips the map was fitted on

    @classmethod
    def fit(cls, spec: OverallDirect, reading, direct) -> "DirectPart":
        """The map of -`direct` (the label rule's direct parts, <= 0) along `reading`, from the clips reading at
        least as badly as spec.start (finite pairs only)."""
        reading, direct = np.asarray(reading, np.float64), np.asarray(direct, np.float64)
        badness = spec.worse * reading
        counted = np.isfinite(badness) & np.isfinite(direct) & (badness >= spec.worse * spec.start)
        if counted.sum() < MIN_CLIPS:
            return cls(spec.column, spec.worse, spec.start, None, int(counted.sum()))
        curve = MonotoneMap.fit(badness[counted], np.maximum(0.0, -direct[counted]))
        return cls(spec.column, spec.worse, spec.start, curve, int(counted.sum()))

    def __call__(self, reading) -> np.ndarray:
        """The part (<= 0) for each reading; 0 where it is missing or better than the start."""
        reading = np.asarray(reading, np.float64)
        out = np.zeros(reading.shape)
        if self.curve is None:
            return out
        badness = self.worse * reading
        counted = np.isfinite(badness) & (badness >= self.worse * self.start)
        out[counted] = -np.maximum(0.0, self.curve(badness[counted]))
        return out

    def to_dict(self) -> dict:
        return {"column": self.column, "worse": self.worse, "start": self.start, "clips": self.clips,
                "curve": None if self.curve is None else self.curve.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "DirectPart":
        curve = None if d.get("curve") is None else MonotoneMap.from_dict(d["curve"])
        return cls(d["column"], int(d["worse"]), float(d["start"]), curve, int(d.get("clips", 0)))


def label_direct_parts(y: np.ndarray, rule: OverallRule) -> np.ndarray:
    """Label overall - the rule over the label dimensions, per row of `y` (Labels.y: DIMENSION_NAMES order); NaN
    where a label is missing. 0 for a clip whose faults cost overall nothing beyond its dimensions."""
    k = DIMENSION_NAMES.index("overall")
    out = np.full(len(y), np.nan)
    for i, row in enumerate(y):
        dims = {d: row[j] for j, d in enumerate(DIMENSION_NAMES) if d != "overall"}
        if np.isfinite(row[k]) and all(np.isfinite(v) for v in dims.values()):
            out[i] = row[k] - overall_from_dimensions(dims, rule)
    return out


def readings(data, clip_ids: list[str], column: str) -> np.ndarray:
    """The column for these clips, from the experts' scalars or the hand-crafted features (NaN where absent)."""
    for table in (data.scalars, data.handcrafted):
        if column in table.columns:
            return table.reindex(clip_ids)[column].to_numpy(np.float64)
    return np.full(len(clip_ids), np.nan)


def fit_direct_part(spec: OverallDirect, data, labels, clip_ids: list[str], rule: OverallRule) -> DirectPart:
    return DirectPart.fit(spec, readings(data, clip_ids, spec.column), label_direct_parts(labels.y(clip_ids), rule))


def oof_direct_parts(spec: OverallDirect, data, labels, clip_ids: list[str], rule: OverallRule,
                     folds: int = 5) -> np.ndarray:
    """Each clip's part from a map fitted without its speaker (speaker folds dealt by name), for validation
    figures that do not flatter the map."""
    reading = readings(data, clip_ids, spec.column)
    direct = label_direct_parts(labels.y(clip_ids), rule)
    out = np.zeros(len(clip_ids))
    for tr, te in name_folds(labels.groups(clip_ids), folds):
        out[te] = DirectPart.fit(spec, reading[tr], direct[tr])(reading[te])
    return out
