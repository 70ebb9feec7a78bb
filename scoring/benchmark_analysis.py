"""What the benchmark says about the multi-task claim, beyond one table of SRCCs.

* `srcc_differences`: per dimension, SRCC(MTL) - SRCC(single-task) and SRCC(MTL) - SRCC(best other
  strategy) on the same out-of-fold clips, with a paired bootstrap 95 % CI (both predictors see the same
  resampled clips, or the same resampled speakers). A CI that excludes 0 is a difference the data
  supports; one that straddles 0 is not.
* `learning_curve`: SRCC vs the number of training source clips (subsets of each training fold, nested
  and spread over as many speakers as possible; the test folds are those of the main run), with a
  least-squares trend SRCC = a + b * log2(sources) per strategy and dimension and, where MTL gains
  faster than a strategy that is ahead of it, the number of sources at which the trends would meet
  (an extrapolation of measured points, labelled as such).
* `inter_task`: Spearman correlation between dimensions, of labels or predictions, over all six
  dimensions (null where a dimension is constant or absent, e.g. a corpus without visual artifacts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from talkqa.errors import UsageError
from talkqa.tasks import DIMENSION_NAMES

from .metrics import dimension_metrics, srcc_difference


def _finite(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def inter_task(df: pd.DataFrame) -> dict:
    """{'dimensions': all six, 'matrix': Spearman (None where undefined), 'constant': dims without spread}."""
    dims = list(DIMENSION_NAMES)
    cols = {d: df[d].to_numpy(float) if d in df else np.full(len(df), np.nan) for d in dims}
    usable = {d: np.isfinite(v).sum() >= 3 and np.ptp(v[np.isfinite(v)]) > 0 for d, v in cols.items()}
    matrix = []
    for a in dims:
        row = []
        for b in dims:
            ok = np.isfinite(cols[a]) & np.isfinite(cols[b])
            if not (usable[a] and usable[b]) or ok.sum() < 3 or np.ptp(cols[a][ok]) == 0 or np.ptp(cols[b][ok]) == 0:
                row.append(None)
            else:
                row.append(_finite(stats.spearmanr(cols[a][ok], cols[b][ok])[0]))
        matrix.append(row)
    return {"dimensions": dims, "matrix": matrix, "constant": [d for d in dims if not usable[d]]}


def _by_strategy(predictions: pd.DataFrame, strategy: str) -> pd.DataFrame:
    return predictions[predictions["strategy"] == strategy].set_index("clip_id")


def srcc_differences(predictions: pd.DataFrame, strategy_metrics: dict, config) -> dict:
    """{mtl strategy: {dimension: {'vs_single_task' | 'vs_best_other': {value, lo, hi, n, unit, other}}}}."""
    dc = config.differences
    ran = list(strategy_metrics)
    out = {}
    for mtl in [s for s in dc.strategies if s in ran]:
        m = _by_strategy(predictions, mtl)
        others = [s for s in ran if s not in dc.strategies]
        block = {}
        for dim in DIMENSION_NAMES:
            col = f"mos_{dim}"
            known = m[col].dropna() if col in m else pd.Series(dtype=float)
            if known.nunique() < 2 or dim not in strategy_metrics[mtl]:  # no labels, or nothing to rank
                continue
            point = {s: (strategy_metrics[s].get(dim, {}).get("srcc") or {}).get("value") for s in others}
            ranked = [s for s in others if point[s] is not None]
            pairs = {}
            if dc.single_task in ran and dc.single_task != mtl:
                pairs["vs_single_task"] = dc.single_task
            if ranked:
                pairs["vs_best_other"] = max(ranked, key=point.get)
            cell = {}
            for key, other in pairs.items():
                o = _by_strategy(predictions, other).reindex(m.index)
                groups = m["speaker"].to_numpy() if dc.unit == "speaker" else None
                d = srcc_difference(m[f"pred_{dim}"], o[f"pred_{dim}"], m[col], config.bootstrap, config.seed,
                                    groups=groups)
                cell[key] = {**d, "other": other}
            block[dim] = cell
        out[mtl] = block
    return out


def _source_order(sources: np.ndarray, speakers: np.ndarray, seed: int) -> list[str]:
    """Training sources in the order a learning curve adds them: speakers shuffled, then their sources
    dealt round-robin, so the first n sources cover as many speakers as n allows."""
    rng = np.random.default_rng(seed)
    by_speaker: dict[str, list[str]] = {}
    for src, spk in zip(sources, speakers):
        lst = by_speaker.setdefault(str(spk), [])
        if src not in lst:
            lst.append(str(src))
    spk_order = [sorted(by_speaker)[i] for i in rng.permutation(len(by_speaker))]
    for s in spk_order:
        by_speaker[s] = [by_speaker[s][i] for i in rng.permutation(len(by_speaker[s]))]
    order, depth = [], 0
    while len(order) < sum(len(v) for v in by_speaker.values()):
        order += [by_speaker[s][depth] for s in spk_order if depth < len(by_speaker[s])]
        depth += 1
    return order


def learning_curve(config, data, labels, ids: list[str], folds, unlabelled: list[str], predictions: pd.DataFrame,
                   fit_predict: Callable, log: Callable[[str], None]) -> dict:
    """SRCC (95 % CI, pooled out-of-fold) per strategy, size and dimension, the trends and crossings.
    `fit_predict`: a CachedFitPredict (it takes note=, the progress line of a fit it has to run)."""
    lc = config.learning_curve
    sources, speakers = labels.sources(ids), labels.groups(ids)
    src_of = dict(zip(ids, sources))
    rows = []
    for f, (tr, te) in enumerate(folds):
        train_ids, test_ids = [ids[i] for i in tr], [ids[i] for i in te]
        order = _source_order(sources[tr], speakers[tr], config.seed + f)
        for size in sorted(set(lc.sizes), key=lambda n: n or math.inf):
            n = len(order) if size == 0 or size >= len(order) else max(2, size)
            keep = set(order[:n])
            subset = [c for c in train_ids if src_of[c] in keep]
            label = "all" if size == 0 else str(size)
            for strategy in lc.strategies:
                reuse = n == len(order) and strategy in set(predictions["strategy"])
                if reuse:  # the full training fold is the main run: reuse its predictions
                    main = predictions[(predictions["strategy"] == strategy) & (predictions["fold"] == f)]
                    pred = main.set_index("clip_id")[[f"pred_{d}" for d in DIMENSION_NAMES]].rename(
                        columns=lambda c: c[5:]).reindex(test_ids)
                else:
                    what = f"learning curve fold {f + 1}/{len(folds)} {strategy} n={n} sources ({len(subset)} clips)"
                    t0 = time.time()
                    try:
                        pred, _ = fit_predict(strategy, config, data, labels, subset, test_ids, unlabelled, note=what)
                    except UsageError as exc:  # e.g. too few speakers for a strategy's inner folds
                        log(f"learning curve fold {f + 1} {strategy} n={n}: skipped ({exc})")
                        continue
                    log(f"{what}: {time.time() - t0:.1f} s")
                block = pd.DataFrame({"clip_id": test_ids, "fold": f, "strategy": strategy, "size": label,
                                      "n_sources": n, "n_clips": len(subset)})
                for d in DIMENSION_NAMES:
                    block[f"pred_{d}"] = pred[d].to_numpy(float) if d in pred else np.nan
                rows.append(block)
    if not rows:
        return {}
    curve = pd.concat(rows, ignore_index=True)
    points = {}
    for (strategy, label), g in curve.groupby(["strategy", "size"], sort=False):
        yy = labels.table.reindex(g["clip_id"])
        entry = {"n_sources": round(float(g.groupby("fold")["n_sources"].first().mean()), 2),
                 "n_clips": round(float(g.groupby("fold")["n_clips"].first().mean()), 1), "srcc": {}}
        for d in DIMENSION_NAMES:
            col = f"mos_{d}"
            if col in yy and yy[col].nunique() >= 2 and g[f"pred_{d}"].notna().any():
                m = dimension_metrics(g[f"pred_{d}"].to_numpy(float), yy[col].to_numpy(float), config.bootstrap,
                                      config.seed)["srcc"]
                entry["srcc"][d] = {k: _finite(v) for k, v in m.items()}
        points.setdefault(strategy, {})[label] = entry
    trend = _trends(points)
    return {"sizes": [("all" if n == 0 else str(n)) for n in sorted(set(lc.sizes), key=lambda n: n or math.inf)],
            "points": points, "trend": trend,
            "crossings": _crossings(trend, points, [s for s in config.differences.strategies if s in points])}


def _trends(points: dict) -> dict:
    """strategy -> dimension -> {intercept, slope_per_doubling} of SRCC vs log2(sources)."""
    out = {}
    for strategy, by_size in points.items():
        for d in DIMENSION_NAMES:
            xy = [(math.log2(e["n_sources"]), e["srcc"][d]["value"]) for e in by_size.values()
                  if d in e["srcc"] and e["srcc"][d]["value"] is not None and e["n_sources"] > 0]
            if len({x for x, _ in xy}) < 2:
                continue
            slope, intercept = np.polyfit([x for x, _ in xy], [v for _, v in xy], 1)
            out.setdefault(strategy, {})[d] = {"intercept": _finite(intercept), "slope_per_doubling": _finite(slope)}
    return out


def _crossings(trend: dict, points: dict, mtl_strategies: list[str]) -> dict:
    """Where the MTL trend would meet each strategy ahead of it at the largest measured size."""
    out = {}
    for mtl in mtl_strategies:
        for other in [s for s in trend if s != mtl and s not in mtl_strategies]:
            for d, tm in trend.get(mtl, {}).items():
                to = trend[other].get(d)
                if to is None:
                    continue
                largest = max(points[mtl].values(), key=lambda e: e["n_sources"])
                largest_o = max(points[other].values(), key=lambda e: e["n_sources"])
                gap = (largest_o["srcc"].get(d, {}).get("value") or 0.0) - (largest["srcc"].get(d, {}).get("value") or 0.0)
                if gap <= 0:
                    verdict, n_star = "mtl ahead or level at the largest size", None
                elif tm["slope_per_doubling"] <= to["slope_per_doubling"]:
                    verdict, n_star = "trends do not converge: MTL gains no faster per doubling", None
                else:
                    n_star = 2 ** ((to["intercept"] - tm["intercept"]) / (tm["slope_per_doubling"] - to["slope_per_doubling"]))
                    verdict = "trends meet (extrapolated)"
                out.setdefault(mtl, {}).setdefault(other, {})[d] = {
                    "gap_at_largest": round(gap, 4), "verdict": verdict,
                    "sources_to_meet": None if n_star is None else round(float(n_star), 1)}
    return out
