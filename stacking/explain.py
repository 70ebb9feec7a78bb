"""SHAP explanations of the level-1 LightGBM models (TreeExplainer, exact for trees).

Global importance = mean |SHAP| per feature, also summed per group (an expert or a hand-crafted
family: the `<group>__` column prefix). Plots: bar per feature, bar per group, beeswarm, and
per-clip waterfalls. SHAP values + base value reproduce the model's raw prediction.

One clip (`clip_contributions`, what `talkqa score --explain` and the per-clip report use): LightGBM's
own TreeSHAP (`pred_contrib`, the same values as shap's TreeExplainer, without importing shap) per
dimension, carried through the linear level-2 meta-learner (and, with `calibration: isotonic`, scaled
by the calibration curve's rise between the base value and the clip), so base value + contributions =
the stacking prediction before it is clipped to the scale. Where an evidence ceiling (stacking/ceilings.py)
cuts the prediction, the cut is added to the contribution of the reading the ceiling reads, so the sum
stays the score and the reason reads "frozen frames: 87 % of frames (-1.32)". `factor_contributions` sums them into factors a
person can name: all columns of one expert (pooled embedding dimensions and scalars) are one factor,
each hand-crafted column is its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from talkqa.store import atomic_write

from .ceilings import lowest_caps
from .features import column_group
from .model import StackingRegressor


@dataclass
class Explanation:
    dimension: str
    values: np.ndarray  # (n_clips, n_features)
    base_value: float
    features: pd.DataFrame  # the explained rows (index clip_id)

    def feature_importance(self) -> pd.Series:
        return pd.Series(np.abs(self.values).mean(0), index=self.features.columns).sort_values(ascending=False)

    def group_importance(self, group_of: dict[str, tuple[str, str]] | None = None) -> pd.Series:
        """Summed per `group [kind]`; kind is 'expert' or 'handcrafted' when `group_of` is given."""
        imp = self.feature_importance()
        label = lambda c: "{} [{}]".format(*group_of[c]) if group_of and c in group_of else column_group(c)
        return imp.groupby([label(c) for c in imp.index]).sum().sort_values(ascending=False)


def explain(model: StackingRegressor, data, clip_ids: list[str], dimension: str) -> Explanation:
    import shap  # lazy: slow import, only on this path

    X = model.features(data, clip_ids)[model.columns_of(dimension)]  # the columns its trees were fitted on
    explainer = shap.TreeExplainer(getattr(model.models_[dimension], "booster_", model.models_[dimension]))
    values = np.asarray(explainer.shap_values(X))
    base = float(np.ravel(explainer.expected_value)[0])
    return Explanation(dimension, values, base, X)


@dataclass
class ClipContributions:
    dimension: str
    base_value: float  # the prediction for a typical clip (the training mean of the model's output)
    contributions: pd.Series  # MOS points per feature column

    @property
    def prediction(self) -> float:
        """The stacking prediction, before clipping to the scale."""
        return self.base_value + float(self.contributions.sum())


def clip_contributions(model: StackingRegressor, data, clip_id: str) -> dict[str, ClipContributions]:
    """Per dimension, exact per-feature contributions to the stacking prediction of one clip."""
    X = model.features(data, [clip_id])
    values = X.to_numpy(np.float64)  # LightGBM's pandas checks cost more than the prediction
    position = {c: i for i, c in enumerate(X.columns)}
    level1 = {}
    for dim in model.dimensions_:
        booster = getattr(model.models_[dim], "booster_", model.models_[dim])  # fitted here, or loaded
        # the columns the trees saw (feature_groups / drop_columns narrow them; X may add a ceiling's reading)
        used = [position[c] for c in model.columns_of(dim)]
        # one row: OpenMP threads cost more than the work (5x on a busy 2-core machine)
        row = np.asarray(booster.predict(values[:, used], pred_contrib=True, num_threads=1), np.float64)[0]
        phi = np.zeros(len(position))  # a column outside the dimension's groups contributes nothing
        phi[used] = row[:-1]
        level1[dim] = (float(row[-1]), phi)  # LightGBM puts the expected value last
    out = {}
    for dim in model.dimensions_:
        meta = model.meta_.get(dim)
        if meta is None:
            base, phi = level1[dim]
        else:  # the meta-learner is linear in the level-1 predictions, so contributions pass through it exactly
            w = np.ravel(meta.coef_)
            base = float(meta.intercept_) + sum(wk * level1[d][0] for wk, d in zip(w, model.dimensions_))
            phi = sum(wk * level1[d][1] for wk, d in zip(w, model.dimensions_))
        curve = model.calibration_.get(dim)
        if curve is not None:
            # The calibration curve rises, so it keeps the sign of the total; every contribution is scaled
            # by the same factor, which keeps base + contributions equal to the calibrated prediction.
            raw = base + float(np.sum(phi))
            new_base, new_pred = float(curve(base)), float(curve(raw))
            total = raw - base
            phi = phi * ((new_pred - new_base) / total) if abs(total) > 1e-12 else phi * 0.0
            base = new_base
        prediction = base + float(np.sum(phi))
        [cap], [column] = lowest_caps(model.ceilings_.get(dim, []), X)
        if cap < prediction:  # an evidence ceiling cut the score: its reading gets the cut, so the sum stays the score
            phi = phi.copy()
            phi[position[column]] += cap - prediction
        out[dim] = ClipContributions(dim, base, pd.Series(phi, index=X.columns))
    return out


def factor_of(column: str, group_of: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(factor, kind): an expert's column belongs to the factor named after the expert; a hand-crafted
    column is a factor of its own."""
    group, kind = group_of.get(column, (column_group(column), "handcrafted"))
    return (group, kind) if kind == "expert" else (column, kind)


def factor_contributions(contributions: pd.Series, group_of: dict[str, tuple[str, str]],
                         readings: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Contributions summed per factor, largest |contribution| first: columns factor, kind, contribution
    and from_readings, the part that comes from `readings` columns (an expert's scalars; the rest of an
    expert's share comes from its pooled embeddings, its learned features)."""
    total: dict[tuple[str, str], float] = {}
    read: dict[tuple[str, str], float] = {}
    for column, value in zip(contributions.index.tolist(), contributions.to_numpy(np.float64).tolist()):
        key = factor_of(column, group_of)
        total[key] = total.get(key, 0.0) + value
        if column in readings or key[1] == "handcrafted":
            read[key] = read.get(key, 0.0) + value
    keys = sorted(total, key=lambda k: -abs(total[k]))
    return pd.DataFrame({"factor": [k[0] for k in keys], "kind": [k[1] for k in keys],
                         "contribution": [total[k] for k in keys], "from_readings": [read.get(k, 0.0) for k in keys]})


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=90, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_explanation(exp: Explanation, out_dir: str | Path, group_of: dict[str, tuple[str, str]], max_display: int = 15,
                     waterfall_clips: int = 3) -> dict[str, list[Path] | Path]:
    """Writes <dim>_bar.png, <dim>_groups.png, <dim>_beeswarm.png, <dim>_waterfall_<k>.png."""
    import matplotlib  # lazy: slow import, only on this path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path
    import shap  # lazy: slow import, only on this path

    out_dir = Path(out_dir)
    paths: dict = {}
    imp = exp.feature_importance().head(max_display)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(imp) + 1))
    ax.barh(imp.index, imp.values, color="#4472c4")
    ax.set_xlabel("mean |SHAP| (MOS)")
    ax.set_title(f"{exp.dimension}: feature importance")
    paths["bar"] = _save(fig, out_dir / f"{exp.dimension}_bar.png")

    grp = exp.group_importance(group_of)[::-1]
    colors = ["#ed7d31" if g.endswith("[expert]") else "#70ad47" for g in grp.index]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(grp) + 1))
    ax.barh(list(grp.index), grp.values, color=colors)
    ax.set_xlabel("sum of mean |SHAP| (MOS)")
    ax.set_title(f"{exp.dimension}: by expert (orange) and hand-crafted family (green)")
    paths["groups"] = _save(fig, out_dir / f"{exp.dimension}_groups.png")

    sv = shap.Explanation(exp.values, base_values=np.full(len(exp.values), exp.base_value),
                          data=exp.features.to_numpy(), feature_names=list(exp.features.columns))
    plt.figure(figsize=(7, 5))
    shap.plots.beeswarm(sv, max_display=max_display, show=False)
    plt.title(f"{exp.dimension}: SHAP beeswarm")
    paths["beeswarm"] = _save(plt.gcf(), out_dir / f"{exp.dimension}_beeswarm.png")

    paths["waterfall"] = []
    pred = exp.values.sum(1) + exp.base_value
    # the clips predicted lowest, highest and in the middle: the ones people ask about
    order = np.argsort(pred)
    picks = list(dict.fromkeys([order[0], order[-1], order[len(order) // 2]] + list(order)))[:waterfall_clips]
    for k, i in enumerate(picks):
        plt.figure(figsize=(7, 4))
        shap.plots.waterfall(sv[int(i)], max_display=min(max_display, 10), show=False)
        plt.title(f"{exp.dimension}: {exp.features.index[int(i)]}")
        paths["waterfall"].append(_save(plt.gcf(), out_dir / f"{exp.dimension}_waterfall_{k}.png"))
    return paths
