"""Per-dimension window-flag thresholds for diagnostics, chosen on the validation speakers."""

from __future__ import annotations

import numpy as np

from talkqa.labels import window_targets
from talkqa.tasks import DIMENSION_NAMES

from .bundle_config import DiagnosticsConfig


def diagnostic_thresholds(fusion, data, labels, val_ids: list[str], cfg: DiagnosticsConfig) -> dict[str, dict]:
    """Per dimension: the window-flag threshold and how it was chosen (see DiagnosticsConfig.threshold)."""
    fixed = cfg.threshold if cfg.threshold != "auto" else None
    out = {d: {"threshold": fixed if fixed is not None else cfg.default_threshold,
               "source": "config" if fixed is not None else "default (no labelled problem windows on validation)"}
           for d in DIMENSION_NAMES}
    if fixed is not None or not val_ids or labels.diagnostics is None:
        return out
    probs = fusion.predict_windows(data, val_ids)
    targets = window_targets(labels, data, val_ids)
    ids = [c for c in val_ids if c in probs and c in targets]
    if not ids:
        return out
    p = np.concatenate([probs[c][list(DIMENSION_NAMES)].to_numpy() for c in ids])
    t = np.concatenate([targets[c][: len(probs[c])] for c in ids]) > 0.5
    lo, hi = cfg.threshold_range
    grid = np.round(np.arange(lo, hi + 1e-9, 0.05), 2)
    for k, dim in enumerate(DIMENSION_NAMES):
        if t[:, k].sum() == 0:
            continue
        score = []
        for th in grid:
            flag = p[:, k] > th
            tp = float((flag & t[:, k]).sum())
            precision, recall = tp / max(flag.sum(), 1), tp / t[:, k].sum()
            score.append(1.25 * precision * recall / max(0.25 * precision + recall, 1e-9))  # F0.5
        best = len(score) - 1 - int(np.argmax(score[::-1]))  # ties: the highest (most conservative) threshold
        source = "validation window F0.5" if score[best] > 0 else \
            "validation: no threshold caught a labelled problem window, so the most conservative one"
        out[dim] = {"threshold": float(grid[best]), "source": source, "f05": round(score[best], 4),
                    "positive_windows": int(t[:, k].sum()), "windows": int(len(t))}
    return out
