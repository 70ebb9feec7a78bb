"""SHAP explanations of the level-1 LightGBM models (TreeExplainer, exact for trees).

Global importance = mean |SHAP| per feature, also summed per group (an expert or a hand-crafted
family: the `<group>__` column prefix). Plots: bar per feature, bar per group, beeswarm, and
per-clip waterfalls. SHAP values + base value reproduce the model's raw prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from talkqa.store import atomic_write

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

    X = model.features(data, clip_ids)
    explainer = shap.TreeExplainer(model.models_[dimension])
    values = np.asarray(explainer.shap_values(X))
    base = float(np.ravel(explainer.expected_value)[0])
    return Explanation(dimension, values, base, X)


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
