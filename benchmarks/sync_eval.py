"""Known-truth AV-offset benchmark: the sync expert against the hand-crafted lipsync estimator.

On the held-out speakers of the sync expert's training (read from its meta.json, so the clips were
never seen), every clip gets offsets k = -15..+15 frames injected by shifting its audio in memory
(experts.sync.shifted_audio_clip: k > 0 delays the sound, k x 640 samples of zeros at the start).
Both estimators then run on the shifted clip:

  (a) share of (clip, k) whose clip offset is within +-1 frame of k, overall and by |k|;
      expert: argmin of the mean distance curve; hand-crafted: lipsync `av_offset_frames`. Also
      within +-1 of k + the estimator's own offset for the unshifted clip, since real footage is
      not always exactly in sync;
  (b) ROC-AUC of 1 s windows, in sync (k = 0) vs shifted by |k| >= 3 frames. Expert score: minus the
      mean lag-0 distance of the 0.2 s sync windows inside the 1 s window; hand-crafted score: the
      family's per-window `av_corr_lag0` (Pearson of detrended lip aperture and audio level at lag
      0 within the window) - both "how well do lips and sound agree right now", neither searches lags;
  (c) throughput on one 20 s clip, CPU, 1 thread: expert `embed` and the lipsync family `compute`.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/sync_eval.py --store STORE [--out sync_eval.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from talkqa.experts.base import training_clips  # noqa: E402
from talkqa.experts.sync import SyncConfig, SyncExpert, curve_scalars, shifted_audio_clip, window_distances  # noqa: E402
from talkqa.features.clip import PreprocessedClip  # noqa: E402
from talkqa.features.families import FAMILIES  # noqa: E402
from talkqa.features.families.base import frame_windows  # noqa: E402
from talkqa.store import atomic_write_text  # noqa: E402

SHIFTS = np.arange(-15, 16)
NEG_MIN_SHIFT = 3


def heldout_clips(store: Path, expert: SyncExpert, max_clips: int | None = None) -> list[PreprocessedClip]:
    meta = json.loads((expert.weights_dir() / "meta.json").read_text())
    held = set(meta["metrics"]["heldout_groups"])
    clips = []
    for _, track, group in training_clips([store]):
        if group in held:
            clip = PreprocessedClip.load(track)
            if clip.audio is not None and not clip.info.get("silent_audio"):
                clips.append(clip)
    return clips[:max_clips]


def expert_run(expert: SyncExpert, clip: PreprocessedClip, windows: np.ndarray) -> tuple[float, np.ndarray]:
    """Clip offset and per-1 s-window score (minus the mean lag-0 distance over its valid sync windows)."""
    v, a, ok = expert.encode(clip)
    offset = curve_scalars(expert.curve(v, a, ok), expert.config.max_lag)["offset_frames"]
    d0 = window_distances(v, a, np.array([0]))[:, 0]
    d0[~ok] = np.nan
    centres = np.arange(len(d0)) + 2  # row i is the window centred on frame i + 2
    scores = np.array([-np.nanmean(d0[(centres >= s) & (centres < e)]) if np.isfinite(d0[(centres >= s) & (centres < e)]).any()
                       else np.nan for s, e in windows])
    return offset, scores


def handcrafted_run(family, clip: PreprocessedClip, windows: np.ndarray) -> tuple[float, np.ndarray]:
    out = family.compute(clip, windows)
    return float(out.clip["av_offset_frames"]), np.asarray(out.windows["av_corr_lag0"], float)


def auc(pos: list[float], neg: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    pos, neg = np.asarray(pos), np.asarray(neg)
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def throughput(fn, clip: PreprocessedClip, repeats: int = 3) -> float:
    fn(clip)  # warm-up (lazy imports, filter banks)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(clip)
    return repeats / (time.perf_counter() - t0)


def twenty_seconds(clips: list[PreprocessedClip]) -> PreprocessedClip:
    """The longest held-out clip, cut to (or tiled up to) 500 frames = 20 s."""
    from dataclasses import replace

    c = max(clips, key=lambda c: c.n_frames)
    reps = int(np.ceil(500 / c.n_frames))

    def tile(x, per_frame=1):
        return None if x is None else np.concatenate([x] * reps)[: 500 * per_frame]

    return replace(c, n_frames=500, face_valid=tile(c.face_valid), aligned=tile(c.aligned), landmarks=tile(c.landmarks),
                   head_pose=tile(c.head_pose), face_crops=tile(c.face_crops), mouth_crops=tile(c.mouth_crops),
                   bbox=tile(c.bbox), frame_diff=tile(c.frame_diff), audio=tile(c.audio, c.hop),
                   audio_norm=tile(c.audio_norm, c.hop), vad=tile(c.vad))


def run(store: Path, weights: str | None, max_clips: int | None = None) -> dict:
    torch.set_num_threads(1)
    expert = SyncExpert(SyncConfig(weights=weights)).load()
    family = FAMILIES.create("lipsync")
    clips = heldout_clips(store, expert, max_clips)
    names = ("expert", "handcrafted")
    err = {n: [] for n in names}  # (clip, k, estimate)
    win = {n: {"pos": [], "neg": []} for n in names}
    for clip in clips:
        windows = frame_windows(clip.n_frames, clip.fps, 1.0)
        for k in SHIFTS:
            shifted = shifted_audio_clip(clip, int(k))
            for n, (off, scores) in zip(names, (expert_run(expert, shifted, windows), handcrafted_run(family, shifted, windows))):
                err[n].append((clip.clip_id, int(k), off))
                if k == 0:
                    win[n]["pos"] += list(scores)
                elif abs(k) >= NEG_MIN_SHIFT:
                    win[n]["neg"] += list(scores)
    result = {"heldout_clips": [c.clip_id for c in clips], "shifts": SHIFTS.tolist(), "negatives_min_shift": NEG_MIN_SHIFT}
    for n in names:
        k = np.array([e[1] for e in err[n]])
        est = np.array([e[2] for e in err[n]], float)
        hit = np.abs(est - k) <= 1  # NaN (no estimate) counts as a miss
        # the same against the estimator's own reading of the unshifted clip: real footage can itself
        # be off by a frame or two, which the absolute score charges to every k of that clip
        ids = np.array([e[0] for e in err[n]])
        own0 = {c: est[(ids == c) & (k == 0)][0] for c in set(ids)}
        rel_hit = np.abs(est - k - np.array([own0[c] for c in ids])) <= 1
        result[n] = {
            "within1_share": float(hit.mean()),
            "within1_share_vs_own_k0": float(rel_hit.mean()),
            "offset_as_is": {c: (None if not np.isfinite(v) else float(v)) for c, v in own0.items()},
            "within1_by_abs_k": {int(a): float(hit[np.abs(k) == a].mean()) for a in range(16)},
            "window_auc_1s": auc(win[n]["pos"], win[n]["neg"]),
            "n_windows": [len(win[n]["pos"]), len(win[n]["neg"])],
            "estimates": [[c, int(kk), None if not np.isfinite(o) else float(o)] for c, kk, o in err[n]],
        }
    clip20 = twenty_seconds(clips)
    w20 = frame_windows(500, clip20.fps, 1.0)
    result["expert"]["clips20s_per_s"] = throughput(expert.embed, clip20)
    result["handcrafted"]["clips20s_per_s"] = throughput(lambda c: family.compute(c, w20), clip20)
    result["weights_mb"] = (expert.weights_dir() / "model.pt").stat().st_size / 1e6
    return result


def table(res: dict) -> str:
    e, h = res["expert"], res["handcrafted"]
    rows = [
        "| metric | sync expert | lipsync (hand-crafted) |",
        "|---|---|---|",
        f"| within +-1 frame, all k in -15..15 ({len(res['heldout_clips'])} held-out clips) | "
        f"{e['within1_share']:.1%} | {h['within1_share']:.1%} |",
    ]
    rows.append(f"| within +-1 of k + own estimate at k = 0 (clip's own offset removed) | "
                f"{e['within1_share_vs_own_k0']:.1%} | {h['within1_share_vs_own_k0']:.1%} |")
    for a in range(16):
        rows.append(f"| within +-1, abs(k) = {a} | {e['within1_by_abs_k'][a]:.1%} | {h['within1_by_abs_k'][a]:.1%} |")
    rows += [
        f"| ROC-AUC 1 s windows, in sync vs abs(k) >= {NEG_MIN_SHIFT} | {e['window_auc_1s']:.3f} | {h['window_auc_1s']:.3f} |",
        f"| throughput, 20 s clips per second (CPU, 1 thread) | {e['clips20s_per_s']:.2f} | {h['clips20s_per_s']:.2f} |",
        f"| weights | {res['weights_mb']:.2f} MB (fp16) | - |",
    ]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True, help="store with tracks of the clips the expert was trained on")
    ap.add_argument("--weights", default=None, help="sync weights folder (default: the shipped ones)")
    ap.add_argument("--max-clips", type=int, default=None, help="only the first N held-out clips (a quick check)")
    ap.add_argument("--out", type=Path, default=None, help="write the full results as JSON here")
    args = ap.parse_args()
    res = run(args.store, args.weights, args.max_clips)
    print(table(res))
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
