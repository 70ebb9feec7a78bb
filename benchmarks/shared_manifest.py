"""Manifests of ../shared/data clips with speaker groups, held-out split and sync verdicts.

Who is who, which clips are in sync and which speakers are held out are declared once, in
configs/shared_data.yaml (read by talkqa.shared_data). Real clips get `speaker` (same-person groups),
`split` (`train` / `heldout`: held-out speakers are never used to train anything) and `meta__sync`
(in_sync / offset / unknown / no_audio) with `meta__sync_offset_frames`. Usage:

    .venv/bin/python benchmarks/shared_manifest.py real --out /tmp/real_manifest.csv
    .venv/bin/python benchmarks/shared_manifest.py real --split train --out /tmp/real_train.csv
    .venv/bin/python benchmarks/shared_manifest.py generated --out /tmp/gen_manifest.csv
    .venv/bin/python benchmarks/shared_manifest.py real --split train --id-prefix faults/ --out /tmp/faults.csv

--id-prefix puts a prefix before every clip id, so a second degrade corpus of the same sources (the
faults corpus of configs/degrade/default_model_faults.yaml) gets ids that cannot collide with the first one's in `talkqa train`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from talkqa.shared_data import HELDOUT, TRAIN, shared_manifest as _shared_manifest
from talkqa.store import atomic_write_bytes

SHARED = Path(os.environ.get("TALKQA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def shared_manifest(kind: str, shared: Path = SHARED) -> pd.DataFrame:
    return _shared_manifest(kind, shared)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["real", "generated"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", choices=[TRAIN, HELDOUT], help="real clips: keep only this split")
    ap.add_argument("--id-prefix", default="", help="put this before every clip_id (e.g. faults/)")
    args = ap.parse_args()
    df = shared_manifest(args.kind)
    if args.split:
        if args.kind != "real":
            ap.error("--split is for real clips")
        df = df[df["split"] == args.split].reset_index(drop=True)
    df["clip_id"] = args.id_prefix + df["clip_id"]
    atomic_write_bytes(args.out, df.to_csv(index=False).encode())
    print(f"wrote {args.out}: {len(df)} clips" + (f", {df['speaker'].nunique()} speakers" if "speaker" in df else ""))
