"""Do fold sync experts read new footage as the shipped weights do?

Out-of-fold readings (`train-expert sync --fold K/N`, `embed --out-of-fold`) only make sense if a fold expert
reads a clip it never saw on the same scale as the shipped weights read the clips `talkqa check` scores. This
reads every usable clip of a store (extract the held-out real clips first) as it is, with the sound 0.5 s late
and early (12 frames, experts.sync.shifted_audio_clip) and with the next clip's voice, once with the shipped
weights and once with each fold's, and prints the median confidence, wide confidence, min_dist and
|offset_frames| per variant and reader.

    python benchmarks/shared_manifest.py real --split heldout --out heldout.csv
    talkqa extract heldout.csv --store heldout_store --workers 2
    PYTHONPATH=. python benchmarks/sync_fold_probe.py --store heldout_store \\
        --fold build/default-model/sync_fold1 --fold build/default-model/sync_fold2
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np
import pandas as pd

from talkqa.experts.embed import create_expert
from talkqa.experts.sync import shifted_audio_clip
from talkqa.features.clip import PreprocessedClip
from talkqa.store import Store, read_parquet

SHIFT = 12  # frames: 0.48 s at 25 fps, the check's 0.5 s offset


def variants(clip: PreprocessedClip, donor: PreprocessedClip) -> dict[str, PreprocessedClip]:
    voice = {k: np.resize(getattr(donor, k), len(getattr(clip, k))).astype(np.float32)
             for k in ("audio", "audio_norm") if getattr(clip, k) is not None and getattr(donor, k) is not None}
    return {"clean": clip, "late_0.5s": shifted_audio_clip(clip, SHIFT), "early_0.5s": shifted_audio_clip(clip, -SHIFT),
            "other_voice": replace(clip, vad=None, **voice)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="store with tracks (talkqa extract)")
    ap.add_argument("--fold", action="append", default=[], help="fold weights folder (repeat)")
    ap.add_argument("--out", help="also write the per-clip readings here (CSV)")
    args = ap.parse_args(argv)
    store = Store(args.store)
    status = read_parquet(store.status)
    status = status[status["status"] == "ok"]
    if len(status) < 2:
        print(f"{args.store}: need at least 2 usable clips (one lends its voice to the next)", file=sys.stderr)
        return 1
    clips = [PreprocessedClip.load(store.track(k)) for k in status["cache_key"]]
    readers = {"shipped": create_expert("sync").load()}
    for folder in args.fold:
        readers[folder.rstrip("/").rsplit("/", 1)[-1]] = create_expert("sync", overrides=[f"weights={json.dumps(folder)}"]).load()
    rows = []
    for i, clip in enumerate(clips):
        for name, v in variants(clip, clips[(i + 1) % len(clips)]).items():
            for reader, expert in readers.items():
                try:
                    s = expert.embed(v).scalars
                except ValueError as exc:  # too little face: say so, keep going
                    print(f"{status['clip_id'].iloc[i]} {name} {reader}: {exc}", file=sys.stderr)
                    continue
                rows.append({"clip_id": status["clip_id"].iloc[i], "variant": name, "reader": reader,
                             **{k: float(s[k]) for k in ("confidence", "wide_confidence", "min_dist", "offset_frames")}})
    df = pd.DataFrame(rows)
    df["abs_offset"] = df["offset_frames"].abs()
    print(f"{len(clips)} clips of {status['speaker'].nunique() if 'speaker' in status else '?'} speakers; medians:")
    print(df.groupby(["variant", "reader"])[["confidence", "wide_confidence", "min_dist", "abs_offset"]]
          .median().round(3).to_string())
    if args.out:
        df.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
