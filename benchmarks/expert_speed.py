"""Embedding cost of each expert on one clip of a store (a benchmark script, not a timed test).

Takes the clip with the most frames in the store and prints, per expert (weights loaded, warm), the
median wall time and process CPU time of `embed` over a few runs, and both scaled to a 20 s clip at
25 fps (500 frames). CPU time is the figure to compare with a budget on a shared machine: wall time
there depends on everyone else.

    .venv/bin/python benchmarks/expert_speed.py --store STORE [--experts picture,sync] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkqa.experts import EXPERTS  # noqa: E402
from talkqa.experts.embed import create_expert  # noqa: E402
from talkqa.features.clip import PreprocessedClip  # noqa: E402
from talkqa.store import Store, read_parquet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--experts", default=None, help="comma-separated names (default: every registered expert)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    store = Store(args.store)
    status = read_parquet(store.status)
    status = status[[store.track(k).exists() for k in status["cache_key"]]]
    row = status.sort_values("n_frames").iloc[-1]
    clip = PreprocessedClip.load(store.track(row["cache_key"]))
    print(f"clip {row['clip_id']}: {clip.n_frames} frames, {args.threads} thread(s)")
    names = args.experts.split(",") if args.experts else EXPERTS.names()
    for name in names:
        expert = create_expert(name).load()
        expert.embed(clip)  # warm
        wall, cpu = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            expert.embed(clip)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        k = 500 / clip.n_frames
        print(f"  {name:10s} wall {statistics.median(wall):6.3f} s  cpu {statistics.median(cpu):6.3f} s  "
              f"-> per 500 frames: wall {k * statistics.median(wall):6.3f} s, cpu {k * statistics.median(cpu):6.3f} s")


if __name__ == "__main__":
    main()
