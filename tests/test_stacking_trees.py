"""stacking/trees.py: a loaded stacking model predicts with NumPy exactly what LightGBM predicts (the
scoring path no longer imports lightgbm or scikit-learn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")

from talkqa.stacking.trees import Linear, LoadedTrees, Projection  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "talkqa" / "models" / "default" / "stacking"


def _with_gaps(X: np.ndarray, rng) -> np.ndarray:
    X = X.copy()
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take each split's default direction
    X[rng.random(X.shape) < 0.05] = 0.0  # exact zeros: the "zero is missing" rule
    return X


@pytest.mark.parametrize("use_missing,zero_as_missing", [(True, False), (True, True), (False, False)])
def test_numpy_trees_equal_lightgbm(use_missing, zero_as_missing):
    rng = np.random.default_rng(0)
    X = _with_gaps(rng.normal(size=(300, 6)), rng)
    y = np.nan_to_num(X[:, 0]) * 2 - np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.1, 300)
    model = lgb.LGBMRegressor(n_estimators=40, num_leaves=7, min_child_samples=5, verbose=-1,
                              use_missing=use_missing, zero_as_missing=zero_as_missing).fit(X, y)
    text = model.booster_.model_to_string()
    test = _with_gaps(rng.normal(size=(200, 6)) * 1.5, rng)
    trees, expected = LoadedTrees(text), model.booster_.predict(test)
    np.testing.assert_allclose(trees.predict(test), expected, rtol=0, atol=1e-12)  # vectorised over rows
    np.testing.assert_allclose(trees.predict(test[:3]), expected[:3], rtol=0, atol=1e-12)  # row by row


def test_single_leaf_trees():
    X, y = np.zeros((30, 2)), np.full(30, 3.0)  # nothing to split on: every tree is one leaf
    model = lgb.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, y)
    np.testing.assert_allclose(LoadedTrees(model.booster_.model_to_string()).predict(X), model.predict(X))


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no shipped stacking model")
def test_shipped_stacking_model_predicts_as_lightgbm():
    rng = np.random.default_rng(1)
    for path in sorted(SHIPPED.glob("*.txt")):
        text = path.read_text()
        booster = lgb.Booster(model_str=text)
        X = _with_gaps(rng.normal(size=(64, booster.num_feature())), rng)
        np.testing.assert_allclose(LoadedTrees(text).predict(X), booster.predict(X), rtol=0, atol=1e-12)
        np.testing.assert_allclose(LoadedTrees(text).predict(X[:1]), booster.predict(X[:1]), rtol=0, atol=1e-12)
        assert LoadedTrees(text).booster_.num_trees() == booster.num_trees()  # SHAP still gets LightGBM's


def test_projection_and_linear_match_scikit_learn():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 5))
    pca = PCA(3).fit(X)
    np.testing.assert_allclose(Projection(pca.components_, pca.mean_).transform(X), pca.transform(X), atol=1e-12)
    ridge = Ridge().fit(X, X @ np.arange(5.0) + 1)
    np.testing.assert_allclose(Linear(ridge.coef_, ridge.intercept_).predict(X), ridge.predict(X), atol=1e-12)


def test_refuses_what_it_cannot_evaluate():
    X = np.random.default_rng(3).normal(size=(60, 2))
    model = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, (X[:, 0] > 0).astype(int))
    with pytest.raises(ValueError, match="regression"):
        LoadedTrees(model.booster_.model_to_string())
    with pytest.raises(ValueError, match="columns"):
        LoadedTrees(lgb.LGBMRegressor(n_estimators=2, verbose=-1).fit(X, X[:, 0]).booster_.model_to_string()
                    ).predict(np.zeros((1, 3)))
