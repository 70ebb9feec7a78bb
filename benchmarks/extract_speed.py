"""Extraction speed and memory (a benchmark script, not a timed test).

Prints, for a 20 s 25 fps 512x512 clip with speech: wall time of plain decoding, of preprocessing
(decode + face tracking + mesh + alignment + audio prep) and of all hand-crafted features, each as a
real-time factor (wall / clip duration) and as a ratio to decode-only measured in the same run; then
the peak RSS of a whole extraction of a 60 s 1920x1080 clip, measured in a fresh subprocess.
With --visual-overhead, what the visual family adds to the 20 s clip: the analysis-frame statistics
measured during preprocessing (features/frame_stats.py) and the family itself, each as the CPU time
of the thread that runs it (time.thread_time: what the code costs, however busy the machine) and as
the best of three wall times.

    .venv/bin/python benchmarks/extract_speed.py [--workdir DIR] [--skip-rss] [--visual-overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkqa.config import ExtractConfig  # noqa: E402
from talkqa.corpus.media import write_clip  # noqa: E402


def speech(duration_s: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Synthetic speech from eSpeak NG when it is available, else syllable-like harmonic bursts."""
    try:
        from talkqa.corpus.speech import SENTENCES, synthesize

        parts, total = [], 0
        i = 0
        while total < duration_s * sr:
            x = synthesize(SENTENCES["en"][i % len(SENTENCES["en"])], "en", sr)
            parts += [x, np.zeros(int(0.25 * sr), np.float32)]
            total += len(x) + int(0.25 * sr)
            i += 1
        return np.concatenate(parts)[: int(duration_s * sr)]
    except Exception:
        rng = np.random.default_rng(seed)
        t = np.arange(int(duration_s * sr)) / sr
        env = (np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)) > 0.2) * 1.0
        return (0.2 * np.sign(np.sin(2 * np.pi * 130 * t)) * env).astype(np.float32)


def talking_frames(n: int, size: tuple[int, int], audio: np.ndarray, sr: int, fps: float = 25.0):
    """A talking head: rendered from the bundled portrait when the renderer exists, else a drifting portrait."""
    from skimage import data

    portrait = data.astronaut()
    h, w = size
    try:
        from talkqa.corpus.render import TalkingHeadRenderer
        from talkqa.corpus.speech import controls_from_audio

        side = min(h, w, 512)
        renderer = TalkingHeadRenderer(portrait, size=side)
        controls = controls_from_audio(audio, sr, fps, np.random.default_rng(0))
        controls = {k: v[:n] for k, v in controls.items()}
        heads = renderer.render(controls)
    except Exception as exc:  # the renderer arrives with the synth issue
        print(f"(renderer unavailable: {exc}; using a drifting still portrait)")
        side = min(h, w, 512)
        base = cv2.resize(portrait, (side, side))
        heads = np.stack([np.roll(base, int(4 * np.sin(i / 10)), axis=1) for i in range(n)])
    for i in range(n):
        head = heads[i % len(heads)]
        if head.shape[:2] == (h, w):
            yield head
        else:
            canvas = np.full((h, w, 3), 30, np.uint8)
            s = min(h, w)
            canvas[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s] = cv2.resize(head, (s, s))
            yield canvas


def make_clip(path: Path, seconds: float, size: tuple[int, int]) -> Path:
    if path.exists():
        return path
    sr, fps = 16000, 25.0
    audio = speech(seconds, sr)
    n = int(seconds * fps)
    return write_clip(path, talking_frames(n, size, audio, sr, fps), fps, audio, sr)


def decode_only(path: Path) -> float:
    t0 = time.perf_counter()
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            frame.to_ndarray(format="rgb24")
    with av.open(str(path)) as c:
        if c.streams.audio:
            for frame in c.decode(audio=0):
                frame.to_ndarray()
    return time.perf_counter() - t0


def time_extraction(path: Path, config: ExtractConfig) -> dict[str, float]:
    from talkqa.features.preprocess import preprocess
    from talkqa.features.extract import compute_features

    # warm-up on a short slice is not possible without re-encoding; the first run includes model loading,
    # so run twice and report both (cold = what a single-clip CLI call sees).
    out = {}
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        clip = preprocess(path, config.preprocess)
        t1 = time.perf_counter()
        compute_features(clip, config)
        t2 = time.perf_counter()
        out[f"preprocess_{label}"] = t1 - t0
        out[f"features_{label}"] = t2 - t1
        out["duration_s"] = clip.duration_s
    return out


def peak_rss_child(path: Path) -> float:
    """Peak RSS (MB) of a fresh process that extracts `path`. Read from VmHWM: getrusage's maxrss
    would also count the pages the child shared with this (large) parent before exec."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from talkqa.extract import extract_one\n"
        "extract_one(%r)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    ) % (str(Path(__file__).resolve().parents[1]), str(path))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def visual_overhead(path: Path, repeats: int = 3) -> dict[str, float]:
    """Seconds the visual family adds to extracting `path` (see the module docstring)."""
    import talkqa.features.preprocess as pre
    from talkqa.features.families import FAMILIES, frame_windows

    measure = pre.frame_stats
    spent = {"cpu": 0.0, "wall": 0.0, "calls": 0}

    def timed(*args):
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return measure(*args)
        finally:
            spent["cpu"] += time.thread_time() - c0
            spent["wall"] += time.perf_counter() - w0
            spent["calls"] += 1

    pre.frame_stats = timed
    config = ExtractConfig()
    family = FAMILIES.create("visual")
    runs = []
    try:
        for _ in range(repeats):
            spent.update(cpu=0.0, wall=0.0, calls=0)
            clip = pre.preprocess(path, config.preprocess)
            windows = frame_windows(clip.n_frames, clip.fps)
            c0, w0 = time.thread_time(), time.perf_counter()
            family.extract(clip, windows)
            runs.append({"frame_stats_cpu_s": spent["cpu"], "frame_stats_wall_s": spent["wall"],
                         "frame_stats_calls": spent["calls"], "family_cpu_s": time.thread_time() - c0,
                         "family_wall_s": time.perf_counter() - w0})
    finally:
        pre.frame_stats = measure
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    best["total_cpu_s"] = best["frame_stats_cpu_s"] + best["family_cpu_s"]
    best["total_wall_s"] = best["frame_stats_wall_s"] + best["family_wall_s"]
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "talkqa-bench")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--visual-overhead", action="store_true", help="time the visual family's share (see above)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    clip20 = make_clip(args.workdir / "talk_20s_512.mp4", 20.0, (512, 512))
    config = ExtractConfig()
    dec = decode_only(clip20)
    t = time_extraction(clip20, config)
    dur = t["duration_s"]
    rows = [("decode only (PyAV, full res)", dec)]
    for label in ("cold", "warm"):
        rows += [(f"preprocess ({label})", t[f"preprocess_{label}"]), (f"features ({label})", t[f"features_{label}"]),
                 (f"whole extraction ({label})", t[f"preprocess_{label}"] + t[f"features_{label}"])]
    print(f"\n20 s clip, 512x512, 25 fps ({clip20}); machine: {os.cpu_count()} cores, 1 worker")
    print(f"{'stage':34s} {'wall s':>8s} {'RTF':>7s} {'x decode':>9s}")
    for name, secs in rows:
        print(f"{name:34s} {secs:8.2f} {secs / dur:7.3f} {secs / dec:9.1f}")
    result = {name: secs for name, secs in rows}
    if args.visual_overhead:
        overhead = visual_overhead(clip20)
        print(f"\nvisual family on the 20 s clip (best of 3): analysis-frame statistics "
              f"{overhead['frame_stats_cpu_s']:.3f} s CPU / {overhead['frame_stats_wall_s']:.3f} s wall over "
              f"{overhead['frame_stats_calls']} frames; family {overhead['family_cpu_s']:.3f} s CPU / "
              f"{overhead['family_wall_s']:.3f} s wall; together {overhead['total_cpu_s']:.3f} s CPU")
        result["visual_overhead"] = overhead
    if not args.skip_rss:
        clip60 = make_clip(args.workdir / "talk_60s_1080p.mp4", 60.0, (1080, 1920))
        rss = peak_rss_child(clip60)
        print(f"\npeak RSS, whole extraction of a 60 s 1920x1080 clip: {rss:.0f} MB")
        result["peak_rss_mb_60s_1080p"] = rss
    print(json.dumps(result))


if __name__ == "__main__":
    main()
