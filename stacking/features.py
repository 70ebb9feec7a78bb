"""Tabular features for the tree models: pooled expert tokens (mean/std over time, optionally after a
per-expert PCA fitted on training clips), expert scalars and hand-crafted columns.

Every column keeps the `<group>__<name>` form, where the group is the expert or feature family that
produced it (the registries give every prefix one producer); `group_of_` maps each column to
(group, kind) with kind 'expert' or 'handcrafted', so SHAP importance can be summed per expert and per
family."""

from __future__ import annotations

import numpy as np
import pandas as pd

from talkqa.store_data import StoreData


def column_group(column: str) -> str:
    return column.split("__", 1)[0]


class PooledFeaturizer:
    def __init__(self, use_experts: bool = True, use_handcrafted: bool = True, include_scalars: bool = True,
                 pca_components: int | None = None, seed: int = 0):
        self.use_experts = use_experts
        self.use_handcrafted = use_handcrafted
        self.include_scalars = include_scalars
        self.pca_components = pca_components
        self.seed = seed

    def fit(self, data: StoreData, clip_ids: list[str]) -> "PooledFeaturizer":
        self.experts_ = list(data.experts) if self.use_experts else []
        self.pca_ = {}
        if self.pca_components:
            from sklearn.decomposition import PCA  # lazy: slow import, only when fitting

            for name in self.experts_:
                toks = [data.experts[name].emb[c] for c in clip_ids if c in data.experts[name].emb]
                if toks:
                    x = np.concatenate(toks)
                    k = min(self.pca_components, x.shape[1], len(x))
                    self.pca_[name] = PCA(k, random_state=self.seed).fit(x)
        self.handcrafted_ = list(data.feature_columns) if self.use_handcrafted else []
        self.scalars_ = [c for c in data.scalars.columns if column_group(c) in self.experts_] \
            if self.include_scalars else []
        self.columns_ = list(self.transform(data, clip_ids[:1]).columns)
        self.group_of_ = {c: (column_group(c), "handcrafted") for c in self.handcrafted_}
        self.group_of_.update({c: (column_group(c), "expert") for c in self.columns_ if c not in self.group_of_})
        return self

    def transform(self, data: StoreData, clip_ids: list[str]) -> pd.DataFrame:
        blocks = []
        for name in self.experts_:
            et = data.experts[name]
            pca = self.pca_.get(name)
            width = pca.n_components_ if pca is not None else et.info.dim
            stat = np.full((len(clip_ids), 2 * width), np.nan)
            for i, c in enumerate(clip_ids):
                x = et.emb.get(c)
                if x is None or not len(x):
                    continue
                x = pca.transform(x) if pca is not None else x
                stat[i] = np.concatenate([x.mean(0), x.std(0)])
            stem = "pc" if pca is not None else "e"
            cols = [f"{name}__emb_{stem}{k}_mean" for k in range(width)] + \
                [f"{name}__emb_{stem}{k}_std" for k in range(width)]
            blocks.append(pd.DataFrame(stat, index=clip_ids, columns=cols))
        if self.scalars_:
            blocks.append(data.scalars.reindex(clip_ids)[self.scalars_])
        if self.handcrafted_:
            blocks.append(data.handcrafted.reindex(clip_ids)[self.handcrafted_])
        X = pd.concat(blocks, axis=1) if blocks else pd.DataFrame(index=clip_ids)
        X.index.name = "clip_id"
        return X.astype(np.float64)
