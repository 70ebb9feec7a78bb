"""A strictly increasing map from a model's prediction to the label scale, fitted on out-of-fold
predictions: centred isotonic regression (Oron & Flournoy, 2017).

Trees fitted on a few hundred clips pull every prediction toward the label mean: a still photo whose
expression label is 1.2 comes out near 2.4 out of fold, a clean clip labelled 4.5 near 3.6. Isotonic
regression of the labels on the out-of-fold predictions finds, for each prediction, the mean label of
clips predicted alike, under the one constraint that the map never falls. Plain isotonic regression is
a step function, which would give clips of different severity the same score (a graded check needs
scores that keep moving); the centred variant keeps one point per step, at the mean prediction and mean
label of its clips, and interpolates linearly between those points, so the map rises strictly inside
the range of the training predictions and is flat beyond it (never past the mean label of the most
extreme clips). Fitting and applying need NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MonotoneMap:
    x: np.ndarray  # knots: increasing predictions
    y: np.ndarray  # strictly increasing calibrated values at the knots

    @classmethod
    def fit(cls, pred, label) -> "MonotoneMap":
        """Centred isotonic regression of `label` on `pred` (finite pairs only)."""
        pred, label = np.asarray(pred, np.float64), np.asarray(label, np.float64)
        ok = np.isfinite(pred) & np.isfinite(label)
        if ok.sum() < 2:
            raise ValueError(f"calibration needs at least 2 finite (prediction, label) pairs, got {int(ok.sum())}")
        xs, inverse = np.unique(pred[ok], return_inverse=True)  # equal predictions are one point
        w = np.bincount(inverse).astype(np.float64)
        ys = np.bincount(inverse, weights=label[ok]) / w
        # pool adjacent violators; equal neighbours are pooled too, so the blocks' means rise strictly
        blocks: list[list[float]] = []  # [weight, weighted label sum, weighted prediction sum]
        for xi, yi, wi in zip(xs, ys, w):
            blocks.append([wi, wi * yi, wi * xi])
            while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
                tail = blocks.pop()
                blocks[-1] = [a + b for a, b in zip(blocks[-1], tail)]
        b = np.asarray(blocks)
        return cls(b[:, 2] / b[:, 0], b[:, 1] / b[:, 0])

    @property
    def steps(self) -> int:
        return len(self.x)

    def __call__(self, values) -> np.ndarray:
        values = np.asarray(values, np.float64)
        if self.steps == 1:
            return np.full(values.shape, self.y[0])
        return np.interp(values, self.x, self.y)

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "MonotoneMap":
        return cls(np.asarray(d["x"], np.float64), np.asarray(d["y"], np.float64))
