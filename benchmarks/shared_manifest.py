"""Manifests of ../shared/data clips with speaker groups, for training and benchmarks.

The same person appears in several real clips under different folders (found by looking at the
frames), so a speaker-disjoint split must group them; the GRID clips include look-alikes and form
one group. Usage:

    .venv/bin/python benchmarks/shared_manifest.py real --out /tmp/real_manifest.csv
    .venv/bin/python benchmarks/shared_manifest.py generated --out /tmp/gen_manifest.csv
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

SHARED = Path(os.environ.get("TALKQA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

SAME_PERSON = {
    "aoc": ("real/sadtalker/WDA_AlexandriaOcasioCortez_000", "real/vexpress/test_samples_short_case_AOC_gt",
            "real/video-retalking/face_3"),
    "obama": ("real/hyperlips/video2", "real/edtalk/test_data_uncrop_Obama", "real/styletalk/Obama_clip1",
              "real/styletalk/Obama_clip2", "real/styletalk/Obama_clip3"),
    "mead_m030": ("real/eamm/test_crop_M030_sad_3_001", "real/eamm/test_video_disgusted", "real/eamm/test_video_sad"),
    # named so by their sources (and ../shared/data/README.md: "xzy* are 72 s of one man")
    "feifeili": ("real/styletalk/feifeili_clip1", "real/styletalk/feifeili_clip2_short", "real/styletalk/feifeili_clip3"),
    "andrew": ("real/styletalk/andrew_clip_1", "real/styletalk/andrew_clip_2"),
    "xzy": ("real/hellomeme/xzy1", "real/hellomeme/xzy2", "real/hellomeme/xzy3"),
}


def speaker_of(clip_id: str) -> str:
    for person, clips in SAME_PERSON.items():
        if clip_id in clips:
            return person
    folder, stem = clip_id.split("/")[1], clip_id.rsplit("/", 1)[1]
    return "grid" if folder == "lipnet_grid" else f"{folder}/{stem}"


def shared_manifest(kind: str, shared: Path = SHARED) -> pd.DataFrame:
    listing = pd.read_csv(shared / "MANIFEST.tsv", sep="\t")
    rows = listing[listing["local_path"].str.startswith(f"{kind}/")]
    out = pd.DataFrame({
        "clip_id": rows["local_path"].str.rsplit(".", n=1).str[0],
        "video": [str(shared / p) for p in rows["local_path"]],
        "language": rows["language"].values,
    })
    if kind == "real":
        out["speaker"] = out["clip_id"].map(speaker_of)
        out["generator"] = "real"
    else:
        out["generator"] = out["clip_id"].str.split("/").str[1]
    out["meta__has_audio"] = rows["has_audio"].values
    return out.reset_index(drop=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["real", "generated"])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from talkqa.store import atomic_write_bytes

    df = shared_manifest(args.kind)
    atomic_write_bytes(args.out, df.to_csv(index=False).encode())
    print(f"wrote {args.out}: {len(df)} clips" + (f", {df['speaker'].nunique()} speakers" if "speaker" in df else ""))
