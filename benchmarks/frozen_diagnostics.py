"""How well does the frozen-picture diagnostic name stalls, and what else does it flag?

Three rules, on the expression family's per-frame readings: the 1 s window rule scoring/diagnostics.py used
before (a window whose frames are at least 90 % frozen, as counted in frozen_share), runs of at least 0.5 s of
such frozen frames, and runs of at least 0.5 s of the `held` series that `frozen_diagnostics` reads (frozen,
or the picture changing by less than HOLD_PIXELS on average over 0.2 s: an encoder without lookahead keeps
refining a held frame, so its single frames do not all read as frozen). Two kinds of clips:

  * STORE:DEGRADED pairs of degrade corpora whose stores kept their tracks (`talkqa extract` does): truth is
    the corpus's diagnostics.parquet, a stall's segment;
  * --kept DIR, the clips of `talkqa check --manifest TRAIN.csv --only stall --keep DIR` (a 1.5 s stall in
    the middle of each source, encoded the way the check encodes, and the clean clip beside it).

Printed: per group, how many stalls are at least half covered by the rule's segments (what `talkqa check`
asks of a stall), and how many clean clips and clips whose faults do not freeze the picture get any segment.

    .venv/bin/python benchmarks/shared_manifest.py real --split train --out /tmp/train.csv
    .venv/bin/talkqa check --manifest /tmp/train.csv --only stall --keep /tmp/train_stall
    .venv/bin/python benchmarks/frozen_diagnostics.py \\
        build/default-model/real_store:build/default-model/real_degraded \\
        build/default-model/balanced_store:build/default-model/balanced_degraded --kept /tmp/train_stall

About 80 s for the 1,136 clips of the default model's two corpora and 60 s for 49 kept sources on 2 cores.
Use training clips only: the held-out ones are what `talkqa check` evaluates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from talkqa.config import ExtractConfig
from talkqa.features.clip import PreprocessedClip
from talkqa.features.families import FAMILIES
from talkqa.features.families.base import frame_windows
from talkqa.features.preprocess import preprocess
from talkqa.scoring.diagnostics import frozen_diagnostics

RULES = ("window 90 % frozen", "frozen runs >= 0.5 s", "held runs >= 0.5 s (shipped)")
# faults that freeze all or part of the picture on purpose: neither a hit nor a false alarm
FREEZING = {"stall", "frame_stutter", "still_portrait", "photo_animation", "mouth_freeze"}
KEPT_STALL, KEPT_CLEAN, KEPT_SECONDS = "stall(seconds=1.5).mp4", "clean.mp4", 1.5


def rule_segments(family, clip: PreprocessedClip) -> dict[str, list[tuple[float, float]]] | None:
    """Each rule's segments (seconds) on one clip; None without enough face to judge (as the family says)."""
    fps, n = clip.fps, clip.n_frames
    valid = np.asarray(clip.face_valid, bool)
    if valid.sum() < 3:
        return None
    aligned = np.where(valid[:, None, None], clip.aligned, np.nan).astype(np.float64)
    frozen, judged = family._frozen(clip, aligned)
    held = family._held(clip, frozen, judged)
    frozen = np.where(judged, frozen.astype(np.float64), np.nan)
    windows = []
    for a, b in frame_windows(n, fps):
        v = frozen[a:b][np.isfinite(frozen[a:b])]
        if len(v) and v.mean() >= 0.9:
            windows.append((a / fps, b / fps))
    runs = [frozen_diagnostics(x, fps, set()) for x in (frozen, held)]
    return dict(zip(RULES, [windows] + [[(d["start"], d["end"]) for d in r] for r in runs]))


def cover(segments: list[tuple[float, float]], t0: float, t1: float) -> float:
    return sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in segments) / (t1 - t0)


def row(group: str, segs: dict, stall: tuple[float, float] | None) -> dict:
    r = {"group": group}
    for name, s in segs.items():
        r[name] = cover(s, *stall) >= 0.5 if stall else bool(s)
    return r


def corpus_rows(store: Path, degraded: Path, family) -> list[dict]:
    status = pd.read_parquet(store / "status.parquet")
    manifest = pd.read_csv(degraded / "manifest.csv", usecols=["clip_id", "artifacts"])
    truth = pd.read_parquet(degraded / "diagnostics.parquet")
    stalls = truth[truth["artifact"] == "stall"].groupby("clip_id")[["start", "end"]].first()
    status = status[status["status"] == "ok"].merge(manifest, on="clip_id")
    rows = []
    for r in status.itertuples():
        track = store / "tracks" / f"{r.cache_key}.npz"
        if not track.exists():
            continue
        segs = rule_segments(family, PreprocessedClip.load(track))
        if segs is None:
            continue
        kinds = {a.split(" ")[0] for a in str(r.artifacts).split("; ")}
        if r.clip_id in stalls.index:
            t0, t1 = stalls.loc[r.clip_id]
            rows.append(row(f"corpus: stalls of {t1 - t0:.2f} s, named", segs, (t0, t1)))
        elif r.artifacts == "clean":
            rows.append(row("corpus: clean clips, flagged", segs, None))
        elif not kinds & FREEZING:
            rows.append(row("corpus: faults that do not freeze the picture, flagged", segs, None))
    return rows


def kept_rows(kept: Path, family) -> list[dict]:
    config = ExtractConfig().preprocess
    rows = []
    for source in sorted(p for p in kept.iterdir() if p.is_dir()):
        for name in (KEPT_STALL, KEPT_CLEAN):
            if not (source / name).exists():
                continue
            clip = preprocess(source / name, config)
            segs = rule_segments(family, clip)
            if segs is None:
                continue
            if name == KEPT_STALL:  # scoring/check.py's stall: the middle round(1.5 * fps) frames held
                k = int(round(KEPT_SECONDS * clip.fps))
                a = (clip.n_frames - k) // 2
                rows.append(row("check-encoded: 1.5 s stalls, named", segs, (a / clip.fps, (a + k) / clip.fps)))
            else:
                rows.append(row("check-encoded: clean clips, flagged", segs, None))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpora", nargs="*", metavar="STORE:DEGRADED",
                    help="a store folder and the degrade folder (manifest.csv, diagnostics.parquet) it was built from")
    ap.add_argument("--kept", type=Path, help="folder of `talkqa check --only stall --keep DIR` on training clips")
    args = ap.parse_args(argv)
    if not args.corpora and not args.kept:
        ap.error("give at least one STORE:DEGRADED pair or --kept DIR")
    for pair in args.corpora:
        store, _, degraded = pair.partition(":")
        missing = [p for p in (Path(store) / "status.parquet", Path(degraded) / "manifest.csv",
                               Path(degraded) / "diagnostics.parquet") if degraded and not p.exists()]
        if not degraded or missing:
            print(f"error: {pair}: expected STORE:DEGRADED with {', '.join(map(str, missing)) or 'both folders'}; "
                  "build them with `talkqa degrade` and `talkqa extract`", file=sys.stderr)
            return 2
    if args.kept and not args.kept.is_dir():
        print(f"error: --kept {args.kept}: no such folder; make it with `talkqa check --only stall --keep DIR`",
              file=sys.stderr)
        return 2
    family = FAMILIES.create("expression")
    rows = []
    for pair in args.corpora:
        store, _, degraded = pair.partition(":")
        rows += corpus_rows(Path(store), Path(degraded), family)
    if args.kept:
        rows += kept_rows(args.kept, family)
    d = pd.DataFrame(rows)
    counts = d.groupby("group")[list(RULES)].sum().astype(int)
    counts.insert(0, "clips", d.groupby("group").size())
    pd.set_option("display.width", 200, "display.max_colwidth", 60)
    print(counts.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
