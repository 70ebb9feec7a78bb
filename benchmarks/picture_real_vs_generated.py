"""Does the picture expert tell real footage from generated footage? (a benchmark script, not a test)

Embeds both stores with the picture expert (cached in the stores), then reports the ROC-AUC of each
picture scalar for real (positive, higher = cleaner) vs generated clips — on the real clips the weights
were NOT trained on (their meta.json lists the training clips) and all generated clips — with a
bootstrap 95 % interval, per generator, and next to a one-number baseline with no learning: the
Laplacian variance (sharpness) of the mouth crops.

    .venv/bin/python benchmarks/picture_real_vs_generated.py --real-store STORE --generated-store STORE \
        [--weights DIR] [--out reports/picture_real_vs_generated.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkqa.experts.embed import create_expert, run_embed  # noqa: E402
from talkqa.features.clip import PreprocessedClip  # noqa: E402
from talkqa.store import Store, atomic_write_json, read_parquet  # noqa: E402


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def auc_interval(pos: np.ndarray, neg: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap over clips, resampling each class on its own."""
    rng = np.random.default_rng(seed)
    draws = [auc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(n)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def mouth_sharpness(store: Store) -> pd.Series:
    status = read_parquet(store.status)
    out = {}
    for r in status.itertuples():
        if store.track(r.cache_key).exists():
            clip = PreprocessedClip.load(store.track(r.cache_key))
            crops = clip.mouth_crops[clip.face_valid][::5]
            if len(crops):
                out[r.clip_id] = float(np.mean([cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                                                for c in crops]))
    return pd.Series(out, name="baseline__mouth_laplacian_var")


def scalars(store_dir: Path, overrides: list[str], workers: int) -> pd.DataFrame:
    run_embed(store_dir, "picture", overrides=overrides, workers=workers)
    store = Store(store_dir)
    table = read_parquet(store.root / "experts" / "picture.scalars.parquet").set_index("clip_id")
    return table.join(mouth_sharpness(store))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-store", type=Path, required=True)
    ap.add_argument("--generated-store", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=None, help="picture weights folder (default: the shipped ones)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    overrides = [f"weights={args.weights}"] if args.weights else []
    expert = create_expert("picture", overrides=overrides)
    meta = json.loads((expert.weights_dir() / "meta.json").read_text())
    trained_on = set(meta["metrics"].get("train_clip_ids", []))
    real = scalars(args.real_store, overrides, args.workers)
    gen = scalars(args.generated_store, overrides, args.workers)
    real = real[~real.index.isin(trained_on)]
    gen = gen[~gen.index.isin(trained_on)]
    cols = [*expert.columns(), "baseline__mouth_laplacian_var"]
    report = {"weights": str(expert.weights_dir()), "real_clips": len(real), "generated_clips": len(gen),
              "real_clip_ids": sorted(real.index), "auc": {}, "auc_per_generator": {}}
    print(f"real clips not trained on: {len(real)}; generated clips: {len(gen)}")
    print(f"{'scalar':40s} {'AUC':>6s}  95% interval")
    for c in cols:
        p, n = real[c].dropna().to_numpy(), gen[c].dropna().to_numpy()
        lo, hi = auc_interval(p, n)
        report["auc"][c] = {"auc": auc(p, n), "interval": [lo, hi], "n_real": len(p), "n_generated": len(n)}
        print(f"{c:40s} {auc(p, n):6.3f}  [{lo:.3f}, {hi:.3f}]")
    generator = gen.index.str.split("/").str[1]
    print(f"\nper generator ({expert.columns()[0]}; real mean {real[cols[0]].mean():.2f}):")
    for g in sorted(set(generator)):
        sub = gen[generator == g]
        a = auc(real[cols[0]].dropna().to_numpy(), sub[cols[0]].dropna().to_numpy())
        b = auc(real[cols[-1]].dropna().to_numpy(), sub[cols[-1]].dropna().to_numpy())
        report["auc_per_generator"][g] = {"n": len(sub), "auc": a, "baseline_auc": b,
                                          "mean_quality_logit": float(sub[cols[0]].mean())}
        print(f"  {g:28s} n={len(sub):2d}  AUC {a:.2f}  (baseline {b:.2f})  mean {sub[cols[0]].mean():6.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
