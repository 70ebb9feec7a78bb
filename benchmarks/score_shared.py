"""Scores of a model on ../shared/data: mean score per generator and for the real clips, and ROC-AUC
of each score for real vs generated clips.

    .venv/bin/python benchmarks/shared_manifest.py real --out real.csv
    .venv/bin/python benchmarks/shared_manifest.py generated --out gen.csv
    .venv/bin/python benchmarks/score_shared.py --real real.csv --generated gen.csv --out shared_scores.parquet

Scoring runs through `talkqa.scoring.run_batch` (resumable: a rerun skips clips already scored). The
shipped default model was trained on degraded variants of the real clips (their clean copies
included), so for it the real clips are training data: read the AUC as an upper bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkqa.tasks import DIMENSION_NAMES  # noqa: E402


def summarise(scores: pd.DataFrame, generator: pd.Series) -> dict:
    from sklearn.metrics import roc_auc_score

    df = scores.assign(generator=scores["clip_id"].map(generator))
    cols = [f"score_{d}" for d in DIMENSION_NAMES]
    ok = df[df["status"] == "ok"]
    means = ok.groupby("generator")[cols].mean().round(2)
    means["n"] = ok.groupby("generator").size()
    auc = {}
    for c in cols:
        sub = ok[ok[c].notna()]
        y = (sub["generator"] == "real").astype(int)
        auc[c[6:]] = round(float(roc_auc_score(y, sub[c])), 3) if y.nunique() == 2 else None
    return {"means": means, "auc_real_vs_generated": auc,
            "status_counts": df["status"].value_counts().to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True)
    ap.add_argument("--generated", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="scores parquet (resumable)")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    from talkqa.scoring.batch import run_batch

    manifest = pd.concat([pd.read_csv(args.real), pd.read_csv(args.generated)], ignore_index=True)
    manifest = manifest[["clip_id", "video", "generator"]]
    scores = run_batch(manifest[["clip_id", "video"]], args.out, args.model, workers=args.workers)
    res = summarise(scores, manifest.set_index("clip_id")["generator"])
    print(res["means"].to_string())
    print("ROC-AUC real vs generated:", json.dumps(res["auc_real_vs_generated"]))
    print("status:", json.dumps(res["status_counts"]))


if __name__ == "__main__":
    main()
