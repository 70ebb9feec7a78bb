"""Agreement metrics between predictions and MOS, with bootstrap confidence intervals.

PLCC is computed after the usual 4-parameter logistic mapping (VQEG); when the fit fails or is
worse than a straight line, a linear mapping is used and the result says so.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from scipy.optimize import curve_fit

METRICS = ("srcc", "krcc", "plcc", "rmse")


def logistic4(x, b1, b2, b3, b4):
    with np.errstate(over="ignore"):
        return (b1 - b2) / (1 + np.exp(-(x - b3) / (np.abs(b4) + 1e-8))) + b2


def fit_logistic4(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, str]:
    """Map predictions onto the label scale; returns (mapped, 'logistic4' | 'linear')."""
    pred, y = np.asarray(pred, float), np.asarray(y, float)
    slope, intercept = np.polyfit(pred, y, 1) if np.ptp(pred) > 0 else (0.0, float(np.mean(y)))
    linear = slope * pred + intercept
    try:
        p0 = [np.max(y), np.min(y), float(np.mean(pred)), float(np.std(pred) or 1.0)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(logistic4, pred, y, p0=p0, maxfev=5000)
        mapped = logistic4(pred, *params)
        if np.all(np.isfinite(mapped)) and np.sum((mapped - y) ** 2) <= np.sum((linear - y) ** 2) + 1e-9:
            return mapped, "logistic4"
    except (RuntimeError, ValueError, TypeError):
        pass
    return linear, "linear"


def _corr(fn, a, b) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = fn(a, b)[0]
    return float(v) if np.isfinite(v) else 0.0


def point_metrics(pred: np.ndarray, y: np.ndarray, mapped: np.ndarray | None = None) -> dict[str, float]:
    mapped = fit_logistic4(pred, y)[0] if mapped is None else mapped
    return {"srcc": _corr(stats.spearmanr, pred, y), "krcc": _corr(stats.kendalltau, pred, y),
            "plcc": _corr(stats.pearsonr, mapped, y), "rmse": float(np.sqrt(np.mean((pred - y) ** 2)))}


def bootstrap_ci(data: tuple[np.ndarray, ...], statistic, n_boot: int, seed: int, alpha: float) -> tuple:
    """Percentile bootstrap CI (scipy.stats.bootstrap) of a statistic of paired samples (clips are
    resampled as units); `statistic(*arrays)` may return a vector. (nan, nan) without resamples."""
    if not n_boot:
        return np.nan, np.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # degenerate resamples (a constant column) are expected
        res = stats.bootstrap(data, statistic, paired=True, vectorized=False, n_resamples=n_boot,
                              confidence_level=1 - alpha, method="percentile", random_state=seed)
    return res.confidence_interval.low, res.confidence_interval.high


def dimension_metrics(pred, y, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """{metric: {value, lo, hi}} over the finite (pred, y) pairs; bootstrap resamples clips.
    The logistic mapping is fitted once on all clips and reused inside the bootstrap."""
    pred, y = np.asarray(pred, float), np.asarray(y, float)
    ok = np.isfinite(pred) & np.isfinite(y)
    pred, y = pred[ok], y[ok]
    if len(y) < 3:
        return {m: {"value": None, "lo": None, "hi": None} for m in METRICS} | {"n": int(len(y)), "mapping": None}
    mapped, how = fit_logistic4(pred, y)
    point = point_metrics(pred, y, mapped)
    lo, hi = bootstrap_ci((pred, y, mapped), lambda p, t, m: np.array(list(point_metrics(p, t, m).values())),
                          n_boot, seed, alpha)
    lo, hi = np.broadcast_to(lo, len(METRICS)), np.broadcast_to(hi, len(METRICS))
    out = {m: {"value": point[m], "lo": float(lo[k]), "hi": float(hi[k])} for k, m in enumerate(METRICS)}
    return out | {"n": int(len(y)), "mapping": how}


def pairwise_accuracy(pred: dict[str, float], pairs, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Share of human-decided pairs (votes differ) whose order the predictions reproduce."""
    a = np.array([pred.get(c, np.nan) for c in pairs["clip_a"]], float)
    b = np.array([pred.get(c, np.nan) for c in pairs["clip_b"]], float)
    human = np.sign(pairs["votes_a"].to_numpy(float) - pairs["votes_b"].to_numpy(float))
    ok = np.isfinite(a) & np.isfinite(b) & (human != 0)
    hits = (np.sign(a - b)[ok] == human[ok]).astype(float)
    if not len(hits):
        return {"value": None, "lo": None, "hi": None, "n": 0}
    lo, hi = bootstrap_ci((hits,), np.mean, n_boot, seed, alpha)
    return {"value": float(hits.mean()), "lo": float(lo), "hi": float(hi), "n": int(len(hits))}


def srcc(pred: np.ndarray, y: np.ndarray) -> float:
    return _corr(stats.spearmanr, pred, y)


def srcc_difference(pred_a, pred_b, y, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                    groups=None) -> dict:
    """SRCC(a) - SRCC(b) against the same labels with a paired percentile bootstrap CI: every resample
    draws the same clips for both predictors (or, with `groups`, the same speakers with all their
    clips: a cluster bootstrap, wider when a speaker's clips are alike). Over the clips where a, b and
    y are all finite."""
    a, b, y = (np.asarray(v, float) for v in (pred_a, pred_b, y))
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(y)
    a, b, y = a[ok], b[ok], y[ok]
    if len(y) < 3:
        return {"value": None, "lo": None, "hi": None, "n": int(len(y)), "unit": "speaker" if groups is not None else "clip"}
    value = srcc(a, y) - srcc(b, y)
    if groups is None:
        lo, hi = bootstrap_ci((a, b, y), lambda pa, pb, t: srcc(pa, t) - srcc(pb, t), n_boot, seed, alpha)
    else:
        g = np.asarray(groups)[ok]
        members = [np.flatnonzero(g == u) for u in np.unique(g)]

        def stat(pick):
            idx = np.concatenate([members[int(k)] for k in pick])
            return srcc(a[idx], y[idx]) - srcc(b[idx], y[idx])

        lo, hi = (bootstrap_ci((np.arange(len(members)),), stat, n_boot, seed, alpha) if len(members) >= 2
                  else (np.nan, np.nan))
    clean = lambda v: None if v is None or not np.isfinite(v) else float(v)
    return {"value": float(value), "lo": clean(lo), "hi": clean(hi), "n": int(len(y)),
            "unit": "speaker" if groups is not None else "clip"}
