"""What the picture expert reads on the default model's training corpora, by fault.

For each labelled store (a `talkqa degrade` manifest beside a store embedded with the picture expert), the
median `picture__quality_logit` of clean clips, clips compressed at severity >= 0.7 (H.264 QP 40-44), face
blur >= 0.7, talking photos (still_portrait) and the rest; the same medians for the clips whose source the
shipped picture weights held out (their meta.json); and the ROC-AUC that a compressed clip reads *higher*
than a clip labelled visual_quality >= 4.4 (0.5 = no separation, 0 = every compressed clip reads lower).
Several embeddings of one store compare readers: `--variant TAG` reads STORE_TAG (a copy of the store
re-embedded with other picture weights, e.g. `cp -al`, then `talkqa embed --experts picture --set weights=DIR`).

    PYTHONPATH=. python benchmarks/picture_readings_by_fault.py --corpus build/default-model --variant v26

Training corpora only: it never reads the held-out clips `talkqa check` scores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from check_evidence import auc  # P(a value of the first set > one of the second), ties half

STORES = (("real_store", "real_degraded"), ("balanced_store", "balanced_degraded"))
WEIGHTS_META = Path(__file__).resolve().parents[1] / "experts" / "weights" / "picture" / "meta.json"


def heldout_clips() -> set[str]:
    """The clips the shipped picture weights held out of training."""
    return set(json.loads(WEIGHTS_META.read_text())["metrics"]["heldout_clip_ids"])


def kind_of(table: pd.DataFrame) -> pd.Series:
    kind = pd.Series("other", index=table.index)
    kind[table.artifacts == "clean"] = "clean"
    kind[table.severity__compression >= 0.7] = "compressed"
    kind[table.severity__face_blur >= 0.7] = "blur"
    kind[table.severity__still_portrait > 0] = "talking photo"
    return kind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("build/default-model"), help="folder of the stores")
    ap.add_argument("--variant", action="append", default=[], help="also read STORE_TAG (repeatable)")
    args = ap.parse_args()
    held = heldout_clips()
    for store, labels in STORES:
        manifest = pd.read_csv(args.corpus / labels / "manifest.csv")
        for tag in ["shipped", *args.variant]:
            root = args.corpus / (store if tag == "shipped" else f"{store}_{tag}")
            table = manifest.merge(pd.read_parquet(root / "experts" / "picture.scalars.parquet"), on="clip_id")
            table["kind"] = kind_of(table)
            source = table.source_clip.str.replace("^balanced/", "", regex=True)
            q = table.picture__quality_logit
            ref = table.kind.isin(["clean", "other", "talking photo"]) & (table.mos_visual_quality >= 4.4)
            comp = table.kind == "compressed"
            medians = q.groupby(table.kind).median().round(2).to_dict()
            held_medians = q[source.isin(held)].groupby(table.kind[source.isin(held)]).median().round(2).to_dict()
            print(f"{store} [{tag}] ({comp.sum()} compressed clips)\n  median quality_logit: {medians}\n"
                  f"  sources the shipped weights held out: {held_medians}\n"
                  f"  AUC compressed reads higher than visual_quality >= 4.4: {auc(q[comp].to_numpy(), q[ref].to_numpy()):.2f}")


if __name__ == "__main__":
    main()
