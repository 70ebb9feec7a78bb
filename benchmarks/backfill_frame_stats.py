"""Give an existing store the frame statistics added since it was extracted, without meshing any face again.

A frame statistic (features/frame_stats.py) is a function of the analysis frame, the face mesh and the frame
EVERY frames earlier. A store keeps each clip's mesh in its track file (tracks/<key>.npz), so decoding the
video again onto the same clock and applying `frame_stats` to the stored mesh gives what `talkqa extract`
would have measured, at a fraction of the cost (the face mesh is ~90 % of extraction). Every statistic is
recomputed, and the ones the track already had are compared with what it holds: a clip whose stored values
are not reproduced stops the run (the store was extracted with other code, or the video changed).

Then the named feature families are computed again from the updated track, and their columns replace those
of the clip's part and of handcrafted.parquet, in the order extraction writes them (the other families'
columns and windows.parquet are left as they are: training reads only the windows' times, so a backfilled
store trains like a re-extracted one, while its window values of a new statistic stay missing):

    .venv/bin/python benchmarks/backfill_frame_stats.py build/default-model/real_store --families expression
    .venv/bin/python benchmarks/backfill_frame_stats.py build/default-model/real_store --families visual  # static_blocks

A statistic whose computation changed is named with --recompute: it is measured again and replaced instead of
compared (the others are still compared), e.g. the codec reading once it reads each frame both ways (version 33):

    .venv/bin/python benchmarks/backfill_frame_stats.py build/default-model/real_store --families visual \
        --recompute codec_logit

A family's new clip feature computed from what the tracks hold already (the longest held picture, version 34)
needs no decoding: a clip whose track has every statistic but whose part lacks a column of the named families
gets those families computed again ("new features"):

    .venv/bin/python benchmarks/backfill_frame_stats.py build/default-model/real_store --families expression

A family whose rule changed since the store was extracted (the frozen-frame rule of 2026-12-07, which changes
`expression__frozen_share` and what reads the `held` series) is computed again from the tracks with
--refresh-families, without decoding:

    .venv/bin/python benchmarks/backfill_frame_stats.py build/default-model/real_store --families expression \
        --refresh-families

A column of a configured family that the family no longer computes (a reading renamed since the store was
extracted) is dropped from handcrafted.parquet and from every part rewritten, as extraction would not write it.

Tracks and parquet files are rewritten atomically; a rerun skips clips whose track already has every
statistic and whose part has every column of the named families and, with --recompute, the clips listed as
recomputed in the store's backfill_recomputed.json (delete it to recompute them again). The store's extract.yaml
must be the current extraction config (its hash is kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from talkqa.config import ExtractConfig, load_config
from talkqa.errors import OK, PARTIAL_CODES
from talkqa.features.clip import PreprocessedClip
from talkqa.features.decode import DecodeStats, iter_video
from talkqa.features.extract import PRODUCER, compute_features, families_of
from talkqa.features.families import FAMILIES
from talkqa.features.frame_stats import EVERY, FRAME_STATS, block_period, frame_stats
from talkqa.features.preprocess import is_black
from talkqa.store import Store, atomic_write_json, read_parquet, write_parquet

TOLERANCE = 1e-4  # float32 storage of values the code computes in float64
RECOMPUTED = "backfill_recomputed.json"  # {statistic: [clip ids measured again]}: what a rerun skips


def measured_stats(video: str, clip: PreprocessedClip, config: ExtractConfig) -> np.ndarray:
    """(T, len(FRAME_STATS)) as preprocessing measures them: every EVERY-th frame with a face, NaN elsewhere."""
    pre = config.preprocess
    stats = DecodeStats()
    out = np.full((clip.n_frames, len(FRAME_STATS)), np.nan, np.float32)
    period, before, last = None, None, None
    for t, frame in enumerate(iter_video(video, pre.fps, pre.analysis_max_side, stats)):
        if t >= clip.n_frames:
            break
        if is_black(frame, pre.black_threshold):  # preprocessing skips black frames
            continue
        if period is None:
            period = block_period(frame.shape[1], stats.display_size[0])
        previous = last[1] if last is not None and last[0] == t - 1 else None
        last = (t, frame)
        if t % EVERY:
            continue
        earlier = before[1] if before is not None and before[0] == t - EVERY else None
        if clip.face_valid[t]:
            out[t] = frame_stats(frame, clip.landmarks[t], period, earlier, previous)
        before = (t, frame)
    return out


def backfill_clip(args) -> tuple[str, str, dict | None]:
    """(clip_id, what happened, the named families' clip features or None)."""
    clip_id, video, track, part, config, families, recompute, refresh = args
    clip = PreprocessedClip.load(track)
    old = clip.frame_stats or {}
    instances = [FAMILIES.create(name, **config.features.params.get(name, {})) for name in families]
    if all(name in old for name in FRAME_STATS) and not recompute:
        wanted = [c for fam in instances for c in fam.columns()]
        have = set(read_parquet(part).columns) if part.is_file() else set()
        if all(c in have for c in wanted) and not refresh:
            return clip_id, "had every statistic", None
        # a family has a clip feature computed from what the track holds already (or one whose rule changed,
        # --refresh-families): no decoding needed
        row, _, _ = compute_features(clip, config, instances)
        return clip_id, "features computed again" if refresh else "new features", row
    new = measured_stats(video, clip, config)
    for i, name in enumerate(FRAME_STATS):
        if name in old and name not in recompute:
            a, b = np.asarray(old[name], np.float64), new[:, i].astype(np.float64)
            same = (np.isnan(a) == np.isnan(b)).all() and np.allclose(a[np.isfinite(a)], b[np.isfinite(b)],
                                                                      atol=TOLERANCE, rtol=TOLERANCE)
            if not same:
                return clip_id, f"stored {name} not reproduced: extracted with other code, or the video changed", None
    clip.frame_stats = {name: new[:, i].copy() for i, name in enumerate(FRAME_STATS)}
    clip.save(track, PreprocessedClip.load_series(track))
    row, _, _ = compute_features(clip, config, instances)
    return clip_id, "ok", row


def in_extraction_order(frame: pd.DataFrame, config: ExtractConfig) -> pd.DataFrame:
    """`frame` in the columns and order `talkqa extract` writes: the other columns (clip_id) first, as they were,
    then the features family by family as in the config. A column added here would otherwise come last, and a
    family's column it no longer computes (a reading renamed since the store was extracted) would stay: stores
    whose columns differ or are ordered differently cannot be trained on together."""
    families = families_of(config)
    order = [c for fam in families for c in fam.columns() if c in frame.columns]
    known, prefixes = set(order), tuple(f"{fam.name}__" for fam in families)
    retired = {c for c in frame.columns if c.startswith(prefixes) and c not in known}
    return frame[[c for c in frame.columns if c not in known and c not in retired] + order]


def recomputed_clips(store_dir: Path, recompute: list[str]) -> tuple[dict[str, list[str]], set[str]]:
    """The store's record of clips measured again per statistic, and the clips that have every statistic of
    `recompute` measured again already."""
    path = store_dir / RECOMPUTED
    record = json.loads(path.read_text()) if path.is_file() else {}
    done = set.intersection(*(set(record.get(name, [])) for name in recompute)) if recompute else set()
    return record, done


def backfill(store_dir: Path, families: list[str], workers: int, recompute: tuple[str, ...] = (),
             refresh: bool = False) -> pd.DataFrame:
    store = Store(store_dir)
    config = load_config(ExtractConfig, store.config)
    status = read_parquet(store.status)
    status = status[status.status.isin([OK, *PARTIAL_CODES])]
    record, skip = recomputed_clips(store_dir, list(recompute))
    results = [{"clip_id": c, "result": "recomputed before"} for c in status.clip_id if c in skip]
    jobs = [(r.clip_id, r.video, store.track(r.cache_key), store.part(r.cache_key, "clip.parquet"), config, families,
             tuple(recompute), refresh)
            for r in status.itertuples() if store.track(r.cache_key).is_file() and r.clip_id not in skip]
    key_of = dict(zip(status.clip_id, status.cache_key))
    failed, t0 = None, time.perf_counter()

    def keep_record() -> None:
        if recompute:
            atomic_write_json(store_dir / RECOMPUTED, record)

    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        done = pool.map(backfill_clip, jobs, chunksize=4) if pool else map(backfill_clip, jobs)
        for i, (clip_id, what, row) in enumerate(done):
            results.append({"clip_id": clip_id, "result": what})
            if what not in ("ok", "new features", "features computed again", "had every statistic"):
                failed = f"{store_dir}: {clip_id}: {what}"
                break
            if row is not None:
                part = store.part(key_of[clip_id], "clip.parquet")
                frame = read_parquet(part)
                for column, value in row.items():
                    frame[column] = value
                write_parquet(in_extraction_order(frame, config), part, PRODUCER, config.params_hash())
            for name in recompute:
                if clip_id not in record.setdefault(name, []):
                    record[name].append(clip_id)
            if (i + 1) % 50 == 0 or i + 1 == len(jobs):
                keep_record()
                print(f"{store_dir.name}: {i + 1}/{len(jobs)} clips, {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        keep_record()
    # handcrafted.parquet from the parts of every clip done so far (this run's or an interrupted one's)
    columns = [f"{name}__{feature}" for name in families for feature in FAMILIES.get(name).clip_features]
    table = read_parquet(store.handcrafted)
    parts = {}
    for clip_id, key in key_of.items():
        part = store.part(key, "clip.parquet")
        if part.is_file():
            row = read_parquet(part)
            parts[clip_id] = {c: row[c].iloc[0] for c in columns if c in row}
    new = pd.DataFrame.from_dict(parts, orient="index")
    for column in new.columns:
        table[column] = table["clip_id"].map(new[column]).astype(np.float64)
    write_parquet(in_extraction_order(table, config), store.handcrafted, PRODUCER, config.params_hash())
    if failed:
        raise SystemExit(f"error: {failed}; the clips before it are updated (a rerun skips them)")
    return pd.DataFrame(results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", type=Path, nargs="+", help="store folders written by `talkqa extract`")
    ap.add_argument("--families", nargs="+", default=["expression"],
                    help="feature families to compute again from the updated tracks (default: expression)")
    ap.add_argument("--recompute", nargs="+", default=[], metavar="STATISTIC",
                    help="frame statistics whose computation changed: measured again and replaced, not compared "
                         f"(one of {', '.join(FRAME_STATS)})")
    ap.add_argument("--refresh-families", action="store_true",
                    help="compute the named families' clip features again from the tracks even where the store has "
                         "them: a family whose rule changed (the frozen-frame rule of 2026-12-07: --families expression)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    strange = [s for s in args.recompute if s not in FRAME_STATS]
    if strange:
        print(f"error: --recompute {' '.join(strange)}: not a frame statistic; known: {', '.join(FRAME_STATS)}",
              file=sys.stderr)
        return 2
    unknown = [f for f in args.families if f not in FAMILIES.names()]
    if unknown:
        print(f"error: unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; known: "
              f"{', '.join(FAMILIES.names())}", file=sys.stderr)
        return 2
    for store in args.stores:
        if not (store / "status.parquet").is_file():
            print(f"error: {store} is not a store (no status.parquet); give folders written by `talkqa extract`",
                  file=sys.stderr)
            return 2
    for store in args.stores:
        done = backfill(store, args.families, args.workers, tuple(args.recompute), args.refresh_families)
        print(f"{store}: " + ", ".join(f"{n} {k}" for k, n in done.result.value_counts().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
