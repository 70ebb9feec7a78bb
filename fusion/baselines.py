"""Raw expert scalars as predictors: one scalar per dimension through a linear or monotone map.

The scalar for a dimension is either named in the config (`scalar_for: {lip_sync: sync__confidence}`)
or chosen on the training clips as the one with the largest |SRCC| against that dimension's labels,
so no expert or scalar name is special-cased here."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from talkqa.errors import UsageError
from talkqa.tasks import DIMENSIONS, DIMENSION_NAMES

from talkqa.labels import Labels
from talkqa.store_data import StoreData

_DIM = {d.name: d for d in DIMENSIONS}


class ScalarBaseline:
    def __init__(self, scalar_for: dict[str, str] | None = None, mapping: str = "linear"):
        self.scalar_for = dict(scalar_for or {})
        self.mapping = mapping

    def fit(self, data: StoreData, labels: Labels, clip_ids: list[str]) -> "ScalarBaseline":
        if self.mapping not in ("linear", "isotonic"):
            raise UsageError(f"scalar mapping must be linear or isotonic, got {self.mapping!r}")
        S = data.scalars.reindex(clip_ids)
        Y = labels.y(list(clip_ids))
        self.chosen_, self.maps_, self.fallback_ = {}, {}, {}
        for k, dim in enumerate(DIMENSION_NAMES):
            y = Y[:, k]
            if not np.isfinite(y).any():
                continue
            self.fallback_[dim] = float(np.nanmean(y))
            col = self.scalar_for.get(dim) or self._best(S, y)
            if col is None:
                continue
            if col not in S:
                raise UsageError(f"scalar_for.{dim}: column {col!r} not in the store's expert scalars")
            x = S[col].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3 or np.ptp(x[ok]) == 0:
                continue
            self.chosen_[dim] = col
            if self.mapping == "linear":
                self.maps_[dim] = np.polyfit(x[ok], y[ok], 1)
            else:
                increasing = stats.spearmanr(x[ok], y[ok])[0] >= 0
                self.maps_[dim] = IsotonicRegression(increasing=increasing, out_of_bounds="clip").fit(x[ok], y[ok])
        return self

    @staticmethod
    def _best(S: pd.DataFrame, y: np.ndarray) -> str | None:
        best, best_r = None, 0.0
        for col in S.columns:
            x = S[col].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
                r = abs(stats.spearmanr(x[ok], y[ok])[0])
                if np.isfinite(r) and r > best_r:
                    best, best_r = col, r
        return best

    def predict(self, data: StoreData, clip_ids: list[str] | None = None) -> pd.DataFrame:
        clip_ids = list(data.clip_ids if clip_ids is None else clip_ids)
        S = data.scalars.reindex(clip_ids)
        out = pd.DataFrame(index=pd.Index(clip_ids, name="clip_id"))
        for dim, mean in self.fallback_.items():
            pred = np.full(len(clip_ids), mean)
            if dim in self.chosen_:
                x = S[self.chosen_[dim]].to_numpy(float)
                ok = np.isfinite(x)
                m = self.maps_[dim]
                pred[ok] = np.polyval(m, x[ok]) if isinstance(m, np.ndarray) else m.predict(x[ok])
            lo, hi = _DIM[dim].scale
            out[dim] = np.clip(pred, lo, hi)
        return out
