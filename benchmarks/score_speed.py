"""Scoring speed and memory against the budgets (a benchmark script, not a timed test).

Prints, with the given model folder (default: the shipped one):
  * start-up: a cold `talkqa score clip.mp4` (a fresh process: imports, model load, first clip) against
    a warm score of the same clip (a process that has already scored one), on three 4 s 25 fps 512x512
    talking heads with different speech: wall and CPU times, cold/warm ratio and cold - warm (CPU time
    moves far less than wall time when other jobs share the cores);
  * model load time (Scorer construction: bundle + every expert it lists), in a fresh process (median of 3);
  * end-to-end scoring of a 20 s 25 fps 512x512 talking head (preprocess, hand-crafted features, all
    experts, fusion, stacking, diagnostics): wall time, real-time factor and ratio to plain decoding
    of the same clip measured in the same run; first clip of the process (cold) and the median of
    three more (warm);
  * peak RSS (VmHWM) of a fresh process that loads the model and scores a 60 s 1920x1080 clip;
  * batch throughput of `run_batch` with 2 local workers over 4 copies of the 20 s clip.
Budgets: cold - warm <= 2 s for a 4 s clip, <= 6 s per 20 s clip, load <= 3 s, RSS <= 2 GB.
The machine's load average is printed first: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/score_speed.py [--model DIR] [--workdir DIR] [--startup-only] [--skip-rss] [--skip-batch]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from extract_speed import decode_only, make_clip, speech, talking_frames  # noqa: E402

from talkqa.corpus.media import write_clip  # noqa: E402

BUDGETS = {"startup_4s_extra_s": 2.0, "score_20s_warm_s": 6.0, "load_s": 3.0, "peak_rss_mb_60s_1080p": 2048.0}


def _child(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def make_speech_clip(path: Path, seconds: float, size: tuple[int, int], k: int) -> Path:
    """A talking head saying the k-th stretch of the synthetic speech: clips of the same length whose
    audio differs (so no per-process cache of one clip's measurements helps a warm run)."""
    if path.exists():
        return path
    sr, fps = 16000, 25.0
    audio = speech(seconds * (k + 1), sr)[int(seconds * k * sr):]
    return write_clip(path, talking_frames(int(seconds * fps), size, audio, sr, fps), fps, audio, sr)


def cold_score(clip: Path, model: str | None) -> tuple[float, float]:
    """(wall, CPU) seconds of `talkqa score CLIP --json` in a fresh process, as a user types it. CPU time
    (user + system, every thread) moves much less than wall time with the machine's load."""
    exe = Path(sys.executable).with_name("talkqa")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "talkqa.scoring.cli"]
    cmd += ["score", str(clip), "--json"] + (["--model", model] if model else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-1500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup(model: str | None, workdir: Path, seconds: float = 4.0, n: int = 3) -> dict:
    """Cold (a fresh `talkqa score` per clip) and warm (one Scorer that has scored another clip first)
    on the same n clips, in this order: cold runs first, so the warm process is not competing with them."""
    clips = [make_speech_clip(workdir / f"talk_{seconds:g}s_512_{k}.mp4", seconds, (512, 512), k) for k in range(n + 1)]
    warmup, clips = clips[0], clips[1:]
    cold_score(warmup, model)  # the first process after an install or an edit also writes .pyc files
    cold, cold_cpu = zip(*[cold_score(c, model) for c in clips])

    from talkqa.scoring.scorer import Scorer

    scorer = Scorer(model)  # as `talkqa score` builds it (ONNX Runtime's default threads)
    scorer.score(warmup)
    warm, warm_cpu = [], []
    for c in clips:
        t0, c0 = time.perf_counter(), time.process_time()
        r = scorer.score(c)
        warm.append(time.perf_counter() - t0)
        warm_cpu.append(time.process_time() - c0)
        if r.error:
            raise SystemExit(f"scoring failed: {r.error}")
    c_med, w_med = statistics.median(cold), statistics.median(warm)
    cc_med, wc_med = statistics.median(cold_cpu), statistics.median(warm_cpu)
    print(f"start-up, {n} different {seconds:g} s 512x512 clips (cold: `talkqa score CLIP --json` in a fresh process; "
          f"warm: Scorer.score in a process that scored another clip first); wall seconds, then CPU seconds")
    print(f"{'clip':24s} {'cold':>6s} {'warm':>6s} {'ratio':>6s} {'extra':>6s} | {'CPU cold':>8s} {'warm':>6s} {'ratio':>6s} {'extra':>6s}")
    rows = list(zip([c.name for c in clips], cold, warm, cold_cpu, warm_cpu)) + [("median", c_med, w_med, cc_med, wc_med)]
    for name, a, b, ac, bc in rows:
        print(f"{name:24s} {a:6.2f} {b:6.2f} {a / b:6.2f} {a - b:6.2f} | {ac:8.2f} {bc:6.2f} {ac / bc:6.2f} {ac - bc:6.2f}")
    return {"startup_4s_cold_s": c_med, "startup_4s_warm_s": w_med, "startup_4s_ratio": c_med / w_med,
            "startup_4s_extra_s": c_med - w_med, "startup_4s_cold_cpu_s": cc_med, "startup_4s_warm_cpu_s": wc_med,
            "startup_4s_extra_cpu_s": cc_med - wc_med}


def load_time(model: str | None) -> dict:
    """Fresh process: what `talkqa score` pays before the first clip. `load_s` is the first Scorer
    (it imports ONNX Runtime, MediaPipe, openSMILE and the feature code); `model_only_s` a second one in
    the same process (reading the bundle, checking and loading the experts)."""
    code = (
        "import time, json; t0 = time.perf_counter()\n"
        "from talkqa.scoring.scorer import Scorer; t1 = time.perf_counter()\n"
        f"Scorer({model!r}, threads=2); t2 = time.perf_counter()\n"
        f"Scorer({model!r}, threads=2); t3 = time.perf_counter()\n"
        "print(json.dumps({'import_s': t1 - t0, 'load_s': t2 - t1, 'model_only_s': t3 - t2}))\n"
    )
    return _child(code)


def peak_rss(model: str | None, clip: Path) -> dict:
    code = (
        "import json\n"
        "from talkqa.scoring.scorer import Scorer\n"
        f"r = Scorer({model!r}, threads=2).score({str(clip)!r})\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(json.dumps({'peak_rss_mb': int(hwm.split()[1]) / 1024, 'error': r.error, 'elapsed_s': r.elapsed_s}))\n"
    )
    return _child(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: talkqa/models/default)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "talkqa-bench")
    ap.add_argument("--startup-only", action="store_true", help="only the cold vs warm 4 s clip section")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    model = str(Path(args.model).resolve()) if args.model else None
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"(1, 5, 15 min) at start")
    result: dict[str, float] = startup(model, args.workdir)
    if args.startup_only:
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        report(result)
        return

    clip20 = make_clip(args.workdir / "talk_20s_512.mp4", 20.0, (512, 512))
    # Load: the median of 3 fresh processes. The very first run after an install or an edit also
    # compiles .pyc files (about 1 s more), which is not what a user pays on the next call.
    loads = [load_time(model) for _ in range(3)]
    lt = {k: statistics.median(x[k] for x in loads) for k in loads[0]}
    result.update(lt)

    from talkqa.scoring.scorer import Scorer

    scorer = Scorer(model, threads=2)
    dec = decode_only(clip20)
    runs = []
    for _ in range(4):  # the first is cold (imports, MediaPipe graphs, ONNX sessions); warm = median of the rest
        t0 = time.perf_counter()
        r = scorer.score(clip20)
        runs.append(time.perf_counter() - t0)
        if r.error:
            raise SystemExit(f"scoring failed: {r.error}")
    timings = {"cold": runs[0], "warm": statistics.median(runs[1:])}
    dur = 20.0
    print(f"\nmodel {scorer.model['name']} {scorer.model['version']} (experts: {', '.join(scorer.experts) or 'none'}); "
          f"machine: {os.cpu_count()} cores, 2 threads per network")
    print(f"{'stage':40s} {'wall s':>8s} {'RTF':>7s} {'x decode':>9s}")
    print(f"{'decode only (PyAV, full res)':40s} {dec:8.2f} {dec / dur:7.3f} {1.0:9.1f}")
    for label, secs in timings.items():
        print(f"{'score end to end (' + label + ')':40s} {secs:8.2f} {secs / dur:7.3f} {secs / dec:9.1f}")
    print(f"warm runs: {', '.join(f'{x:.2f}' for x in runs[1:])} s")
    each = ", ".join(f"{x['load_s']:.2f}" for x in loads)
    print(f"model load, fresh process (median of 3: {each} s): "
          f"{lt['load_s']:.2f} s (the imports the model needs included; "
          f"the model itself {lt['model_only_s']:.2f} s), after {lt['import_s']:.2f} s importing talkqa.scoring")
    result.update({"decode_s": dec, "score_20s_cold_s": timings["cold"], "score_20s_warm_s": timings["warm"],
                   "rtf_warm": timings["warm"] / dur, "x_decode_warm": timings["warm"] / dec})

    if not args.skip_rss:
        clip60 = make_clip(args.workdir / "talk_60s_1080p.mp4", 60.0, (1080, 1920))
        rss = peak_rss(model, clip60)
        print(f"peak RSS, load + score a 60 s 1920x1080 clip: {rss['peak_rss_mb']:.0f} MB "
              f"(scored in {rss['elapsed_s']:.1f} s{', error: ' + rss['error'] if rss['error'] else ''})")
        result["peak_rss_mb_60s_1080p"] = rss["peak_rss_mb"]

    if not args.skip_batch:
        import pandas as pd

        from talkqa.scoring.batch import run_batch

        folder = args.workdir / "batch"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        videos = []
        for i in range(4):
            dst = folder / f"copy{i}.mp4"
            shutil.copy(clip20, dst)
            videos.append(str(dst))
        manifest = pd.DataFrame({"clip_id": [f"c{i}" for i in range(4)], "video": videos})
        t0 = time.perf_counter()
        table = run_batch(manifest, folder / "scores.parquet", model, workers=2)
        wall = time.perf_counter() - t0
        ok = int((table["status"] == "ok").sum())
        print(f"batch, 2 local workers, 4 x 20 s clips: {wall:.1f} s wall ({ok} ok), "
              f"{4 / wall * 60:.1f} clips/min, {4 * dur / wall:.1f} s of video per second (incl. worker start-up)")
        result.update({"batch_wall_s": wall, "batch_clips_per_min": 4 / wall * 60})

    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(result)


def report(result: dict[str, float]) -> None:
    print("\nbudgets: " + ", ".join(f"{k} {result[k]:.2f} <= {v:g}: {'ok' if result[k] <= v else 'OVER'}"
                                      for k, v in BUDGETS.items() if k in result))
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))


if __name__ == "__main__":
    main()
