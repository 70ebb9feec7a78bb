"""A saved LightGBM regression model evaluated with NumPy, and the other small pieces a loaded
stacking model needs (PCA projection, linear meta-learner) without scikit-learn.

Why: scoring one clip needs only the trees' sums, and importing lightgbm costs ~0.3 s (it pulls in
scikit-learn and narwhals) of a cold `talkqa score`. The trees are read from LightGBM's own text
format (`Booster.model_to_string`, the `<dimension>.txt` files of a model folder); the rules are
LightGBM's numerical decisions, so predictions equal `Booster.predict` (tests/test_stacking_trees.py).
SHAP contributions still come from LightGBM: `booster_` loads it from the same text on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| at or below it counts as zero
_DEFAULT_LEFT = 2  # decision_type bit: missing values go left
_MISSING_SHIFT = 2  # decision_type bits 2-3: 0 none, 1 zero, 2 NaN counts as missing
_MISSING_ZERO, _MISSING_NAN = 1, 2


@dataclass
class _Tree:
    feature: np.ndarray  # (n_splits,) column of each split
    threshold: np.ndarray  # go left when value <= threshold
    decision: np.ndarray  # LightGBM decision_type per split
    left: np.ndarray  # child index; negative = leaf ~index
    right: np.ndarray
    leaf_value: np.ndarray

    def __post_init__(self):
        # Plain lists for walking one row: a clip is one row, and Python steps beat NumPy calls there.
        self._rows = list(zip(self.feature.tolist(), self.threshold.tolist(), self.decision.tolist(),
                              self.left.tolist(), self.right.tolist()))
        self._leaves = self.leaf_value.tolist()

    def predict_row(self, x: list[float]) -> float:
        if not self._rows:
            return self._leaves[0]
        node = 0
        while node >= 0:
            feature, threshold, decision, left, right = self._rows[node]
            value = x[feature]
            missing_type = (decision >> _MISSING_SHIFT) & 3
            if value != value and missing_type != _MISSING_NAN:  # NaN reads as 0 unless NaN is "missing"
                value = 0.0
            if (missing_type == _MISSING_ZERO and abs(value) <= _ZERO) or (missing_type == _MISSING_NAN
                                                                           and value != value):
                node = left if decision & _DEFAULT_LEFT else right
            else:
                node = left if value <= threshold else right
        return self._leaves[~node]

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not len(self.feature):  # a single leaf
            return np.full(len(X), self.leaf_value[0])
        node = np.zeros(len(X), np.int64)
        done = np.zeros(len(X), bool)
        leaf = np.zeros(len(X), np.int64)
        rows = np.arange(len(X))
        while not done.all():
            r = rows[~done]
            n = node[r]
            value = X[r, self.feature[n]]
            missing_type = (self.decision[n] >> _MISSING_SHIFT) & 3
            nan = np.isnan(value)
            value = np.where(nan & (missing_type != _MISSING_NAN), 0.0, value)  # NaN reads as 0 unless NaN is "missing"
            is_missing = ((missing_type == _MISSING_ZERO) & (np.abs(value) <= _ZERO)) | \
                         ((missing_type == _MISSING_NAN) & np.isnan(value))
            go_left = np.where(is_missing, (self.decision[n] & _DEFAULT_LEFT) > 0, value <= self.threshold[n])
            child = np.where(go_left, self.left[n], self.right[n])
            at_leaf = child < 0
            leaf[r[at_leaf]] = ~child[at_leaf]
            done[r[at_leaf]] = True
            node[r[~at_leaf]] = child[~at_leaf]
        return self.leaf_value[leaf]


def _parse_trees(text: str) -> tuple[list[_Tree], list[str]]:
    header, _, body = text.partition("\nTree=")
    fields = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    if fields.get("num_class", "1") != "1" or fields.get("objective", "regression").split()[0] not in (
            "regression", "regression_l2", "huber", "fair", "regression_l1", "quantile"):
        raise ValueError(f"not a single-output regression model (objective {fields.get('objective')})")
    names = fields.get("feature_names", "").split()
    trees = []
    for block in ("Tree=" + body).split("\nTree=")[:]:
        if not block.strip() or block.startswith("end of trees"):
            continue
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "leaf_value" not in kv:
            continue
        if int(kv.get("num_cat", "0")) or kv.get("is_linear", "0") != "0":
            raise ValueError("categorical splits and linear trees are not supported")
        ints = lambda k: np.array(kv[k].split(), np.int64) if kv.get(k) else np.zeros(0, np.int64)
        trees.append(_Tree(ints("split_feature"),
                           np.array(kv["threshold"].split(), np.float64) if kv.get("threshold") else np.zeros(0),
                           ints("decision_type"), ints("left_child"), ints("right_child"),
                           np.array(kv["leaf_value"].split(), np.float64)))
    return trees, names


def mean_of_models(texts: list[str]) -> str:
    """One LightGBM regression model (text) whose prediction is the mean of `texts`' predictions: every
    member's trees, renumbered, with their leaf (and internal) values divided by the number of members.
    A tree ensemble's output is the sum of its leaves, so the sum over all members' scaled trees is their
    mean; TreeSHAP is linear in the trees, so LightGBM's contributions of the merged model are the mean of
    the members' too. The members must share their features (one featurizer); the header, the feature
    importances and the parameters are the first member's; `tree_sizes` (bytes of each tree's block, which
    LightGBM reads the trees by) is counted again."""
    if not texts:
        raise ValueError("mean_of_models needs at least one model")
    if len(texts) == 1:
        return texts[0]
    scale = 1.0 / len(texts)
    header, _, _ = texts[0].partition("\nTree=")
    names = {next((line for line in t.partition("\nTree=")[0].splitlines() if line.startswith("feature_names=")), "")
             for t in texts}
    if len(names) > 1:
        raise ValueError("mean_of_models: the members do not share their feature names")
    blocks = []
    for text in texts:
        body = text.partition("\nTree=")[2].split("\nend of trees")[0]
        for block in body.split("\nTree="):
            lines = block.strip().splitlines()[1:]  # after the tree's old number
            if not any(line.startswith("leaf_value=") for line in lines):
                continue
            for i, line in enumerate(lines):
                key, _, value = line.partition("=")
                if key in ("leaf_value", "internal_value"):
                    lines[i] = key + "=" + " ".join(repr(float(v) * scale) for v in value.split())
            blocks.append(lines)
    header = "\n".join(line for line in header.splitlines() if line and not line.startswith("tree_sizes="))
    trees = [f"Tree={k}\n" + "\n".join(lines) + "\n\n\n" for k, lines in enumerate(blocks)]
    sizes = " ".join(str(len(t.encode())) for t in trees)
    tail = "end of trees" + texts[0].partition("\nend of trees")[2]
    return f"{header}\ntree_sizes={sizes}\n\n" + "".join(trees) + tail


class LoadedTrees:
    """A LightGBM regression model read from its text: `predict(X)` in NumPy, `booster_` (lightgbm,
    loaded on first use) for what needs LightGBM itself, such as SHAP contributions."""

    def __init__(self, text: str):
        self.text = text
        self.trees, self.feature_names = _parse_trees(text.split("\nend of trees")[0])
        self._booster = None

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or (self.feature_names and X.shape[1] != len(self.feature_names)):
            raise ValueError(f"expected {len(self.feature_names)} feature columns, got shape {X.shape}")
        if len(X) <= 4:  # one clip at a time: walk each tree in Python
            return np.array([sum(tree.predict_row(row) for tree in self.trees) for row in X.tolist()])
        out = np.zeros(len(X))
        for tree in self.trees:
            out += tree.predict(X)
        return out

    @property
    def booster_(self):
        if self._booster is None:
            import lightgbm as lgb  # lazy: ~0.3 s import, only for SHAP contributions

            self._booster = lgb.Booster(model_str=self.text)
        return self._booster


@dataclass
class Projection:
    """A fitted PCA's transform (centre, then project), as scikit-learn's PCA without whitening."""

    components_: np.ndarray
    mean_: np.ndarray

    @property
    def n_components_(self) -> int:
        return len(self.components_)

    def transform(self, X) -> np.ndarray:
        return (np.asarray(X, np.float64) - self.mean_) @ self.components_.T


@dataclass
class Linear:
    """A fitted linear model's prediction (the ridge meta-learner of a loaded stacking model)."""

    coef_: np.ndarray
    intercept_: float

    def predict(self, X) -> np.ndarray:
        return np.asarray(X, np.float64) @ self.coef_ + self.intercept_
