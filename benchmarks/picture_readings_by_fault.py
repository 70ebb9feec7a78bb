"""What the picture expert reads on the default model's training corpora, by fault.

For each labelled store (a `talkqa degrade` manifest beside a store embedded with the picture expert), the
median `picture__quality_logit` of clean clips, clips compressed at severity >= 0.7 (H.264 QP 40-44), face
blur >= 0.7, talking photos (still_portrait) and the rest; the same medians for the clips whose source the
shipped picture weights held out (their model card); and the ROC-AUC that a compressed clip reads *higher*
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
from scipy.stats import mannwhitneyu

STORES = (("real_store", "real_degraded"), ("balanced_store", "balanced_degraded"))
CARD = Path(__file__).resolve().parents[1] / "experts" / "weights" / "picture" / "model_card.md"


def card_clips() -> tuple[set[str], set[str]]:
    text = CARD.read_text()
    start = text.index("```json") + len("```json")
    metrics = json.loads(text[start:text.index("```", start)])
    return set(metrics["train_clip_ids"]), set(metrics["heldout_clip_ids"])


def kind_of(table: pd.DataFrame) -> pd.Series:
    kind = pd.Series("other", index=table.index)
    kind[table.artifacts == "clean"] = "clean"
    kind[table.severity__compression >= 0.7] = "compressed"
    kind[table.severity__face_blur >= 0.7] = "blur"
    kind[table.severity__still_portrait > 0] = "talking photo"
    return kind


def higher_auc(a: pd.Series, b: pd.Series) -> float:
    a, b = a.dropna(), b.dropna()
    return float(mannwhitneyu(a, b).statistic / (len(a) * len(b))) if len(a) and len(b) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("build/default-model"), help="folder of the stores")
    ap.add_argument("--variant", action="append", default=[], help="also read STORE_TAG (repeatable)")
    args = ap.parse_args()
    _, held = card_clips()
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
                  f"  AUC compressed reads higher than visual_quality >= 4.4: {higher_auc(q[comp], q[ref]):.2f}")


if __name__ == "__main__":
    main()
