"""Evidence ceilings: the most a clip may score on a dimension, given one reading whose direction is known.

Trees fitted on a few dozen speakers extrapolate badly to a clip unlike their training clips: a still
photo of a speaker they never saw can come out with expression 2.3 although every training clip whose
picture was frozen as long was labelled 1.5, and the frozen share says so plainly. A ceiling states what
the training clips say about such a reading and nothing more:

    cap(t) = the `quantile` of the labels of the training clips that read at least as badly as t,

taken over at least `min_clips` clips (the `min_clips` worst when fewer read that badly), and never lower
for a better reading (a running maximum from the worst reading up). Where the clips reading at least as
badly are labelled like the corpus as a whole (cap at or above the corpus's own `quantile`), the reading
says nothing and there is no cap. The final score is min(score, cap): a ceiling only lowers, it only binds
where the trees give more than the clips that read this badly ever got, and it never moves the order of
two clips that are both below it.

A step function on purpose: between two training readings the labels say nothing finer, and a step keeps
the rule exactly "of the clips that read this badly, 90 % were labelled at most this".

A reading is worse when higher (`worse` +1: the frozen share), when lower (-1: a confidence) or when farther
from zero either way (0: an audio-visual offset in frames, where sound 12 frames early is as far out of sync
as sound 12 frames late); for 0 the thresholds are in units of the reading's magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Ceiling:
    column: str
    worse: int  # +1: a higher reading is worse (frozen share); -1: a lower one (confidence); 0: farther from 0 (offset)
    thresholds: np.ndarray  # in the column's units (for 0: its magnitude), from the worst reading towards better ones
    caps: np.ndarray  # caps[i] holds for readings at least as bad as thresholds[i]; non-decreasing
    quantile: float
    min_clips: int
    start: float | None = None  # the reading counts only where at least as bad as this (None: everywhere)

    @classmethod
    def fit(cls, column: str, worse: int, reading, label, quantile: float = 0.9,
            min_clips: int = 20, start: float | None = None) -> "Ceiling":
        """The ceiling of `label` along `reading` (finite pairs only, and only readings at least as bad as `start`
        if given); no steps when the reading says nothing."""
        if worse not in (1, -1, 0):
            raise ValueError(f"ceiling {column}: worse must be +1, -1 or 0, got {worse}")
        reading, label = np.asarray(reading, np.float64), np.asarray(label, np.float64)
        ok = np.isfinite(reading) & np.isfinite(label) & _counts(worse, reading, start)
        s, y = _badness(worse, reading[ok]), label[ok]  # s: higher = worse
        empty = cls(column, worse, np.zeros(0), np.zeros(0), quantile, min_clips, start)
        if len(s) <= min_clips:
            return empty
        order = np.argsort(-s, kind="stable")
        s, y = s[order], y[order]
        no_information = float(np.quantile(y, quantile))
        # cap over the n worst clips (n >= min_clips); the running maximum keeps a better reading's cap at or
        # above a worse one's. C[i] is the cap over the min_clips + i worst.
        C = np.maximum.accumulate([np.quantile(y[:n], quantile) for n in range(min_clips, len(s) + 1)])
        # A reading u counts every clip reading at least as badly: n(u) = #{s >= u}. At each distinct reading
        # v (worst first) that count is the index of v's last occurrence + 1.
        values, first = np.unique(-s, return_index=True)  # -s ascending = s descending
        values = -values
        last = np.r_[first[1:], len(s)]  # clips reading at least as badly as values[j]
        caps = C[np.maximum(last, min_clips) - min_clips]
        caps = np.where(caps < no_information - 1e-9, caps, np.inf)  # no better than the corpus: no cap
        if np.isinf(caps[0]):
            return empty
        first_of_run = np.r_[True, caps[1:] != caps[:-1]]  # keep the first (worst) reading of each run of equal caps
        values, caps = values[first_of_run], caps[first_of_run]
        return cls(column, worse, values if worse == 0 else worse * values, caps, quantile, min_clips, start)

    @property
    def steps(self) -> int:
        return len(self.caps)

    def __call__(self, values) -> np.ndarray:
        """The cap for each reading; +inf where there is none (a reading no worse than most clips', or missing)."""
        values = np.asarray(values, np.float64)
        if not self.steps:
            return np.full(values.shape, np.inf)
        u = _badness(self.worse, values)  # higher = worse
        t = _badness(self.worse, self.thresholds)  # decreasing: the worst step first
        # the step of a reading is the last whose threshold is at least as bad as it; a reading worse than
        # every threshold takes the worst step (the cap over the min_clips worst clips)
        k = np.searchsorted(-t, -u, side="right") - 1
        out = self.caps[np.clip(k, 0, len(t) - 1)]
        return np.where(np.isfinite(u) & _counts(self.worse, values, self.start), out, np.inf)

    def to_dict(self) -> dict:
        return {"column": self.column, "worse": self.worse, "thresholds": self.thresholds.tolist(),
                "caps": [None if np.isinf(c) else c for c in self.caps.tolist()],  # null: no cap from there on
                "quantile": self.quantile, "min_clips": self.min_clips, "start": self.start}

    @classmethod
    def from_dict(cls, d: dict) -> "Ceiling":
        return cls(d["column"], int(d["worse"]), np.asarray(d["thresholds"], np.float64),
                   np.asarray([np.inf if c is None else c for c in d["caps"]], np.float64), float(d["quantile"]),
                   int(d["min_clips"]), d.get("start"))  # models before version 42 have no start


def _badness(worse: int, reading: np.ndarray) -> np.ndarray:
    """The reading turned so that higher is worse."""
    return np.abs(reading) if worse == 0 else worse * reading


def _counts(worse: int, reading: np.ndarray, start: float | None) -> np.ndarray:
    """Where a reading counts for the ceiling: at least as bad as `start` (everywhere without one)."""
    if start is None:
        return np.ones(np.shape(reading), bool)
    with np.errstate(invalid="ignore"):
        return _badness(worse, reading) >= _badness(worse, np.float64(start))


def lowest_caps(ceilings: list[Ceiling], X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row of X (feature columns), the lowest cap of `ceilings` (+inf: none) and the column of the
    ceiling that sets it ('' where none caps)."""
    caps = np.full(len(X), np.inf)
    columns = np.full(len(X), "", dtype=object)
    for ceiling in ceilings:
        cap = ceiling(X[ceiling.column].to_numpy())
        lower = cap < caps
        caps[lower], columns[lower] = cap[lower], ceiling.column
    return caps, columns
