"""How far each real clip of ../shared/data is from audio-visual sync, by two independent readers.

The evidence behind the `sync` verdicts of configs/shared_data.yaml. For every real clip with audio:

  * the shipped `sync` expert (talkqa.experts.sync): offset and confidence of the mean distance curve
    over the whole clip, and the offset of each 5 s stretch (a real offset is the same all along; a
    reading that wanders is noise);
  * the hand-crafted lipsync family: AV offset and confidence of the mouth-aperture / audio-envelope and
    opening-speed / onset cross-correlations;
  * with --plots: per clip a PNG with both curves and 6 s of detrended mouth aperture over the detrended
    audio envelope (the lips should open with each syllable).

Usage:
    .venv/bin/python benchmarks/sync_check.py --out /tmp/sync_check [--plots] [--only styletalk hellomeme xuniren]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_manifest import SHARED, shared_manifest  # noqa: E402

SEGMENT_S = 5.0


def measure(video: str, clip_id: str, scorer) -> tuple[dict, dict]:
    """(row of figures, curves and series for the plot) for one clip."""
    from talkqa.features import signals as S
    from talkqa.features.extract import _families, compute_features
    from talkqa.features.families.lipsync import av_signal_pairs
    from talkqa.features.preprocess import preprocess

    config = scorer.bundle.extract_config
    clip = preprocess(video, config.preprocess, clip_id=clip_id)
    lipsync = [f for f in _families(config) if f.name == "lipsync"]
    row_f, _, series = compute_features(clip, config, lipsync)
    expert = scorer.experts["sync"]
    v, a, valid = expert.encode(clip)
    curve = expert.curve(v, a, valid)
    lags = np.arange(-expert.config.max_lag, expert.config.max_lag + 1)
    whole = _argmin(lags, curve)
    seg = int(SEGMENT_S * clip.fps)
    seg_offsets = []
    for s in range(0, len(valid), seg):
        if len(valid) - s < seg // 2:
            break
        mask = np.zeros_like(valid)
        mask[s:s + seg] = valid[s:s + seg]
        seg_offsets.append(_argmin(lags, expert.curve(v, a, mask))["offset"])
    params = lipsync[0].params
    pairs = av_signal_pairs(series["lipsync__aperture"], series["lipsync__audio_envelope_db"], series["lipsync__onset_strength"], clip.fps,
                            params["detrend_s"])
    xc = {k: S.lagged_xcorr(m, s_, params["max_lag"])[1] for k, (m, s_) in pairs.items()}
    finite = [o for o in seg_offsets if np.isfinite(o)]
    row = {
        "clip_id": clip_id, "duration_s": round(clip.duration_s, 2), "speech_share": row_f.get("lipsync__speech_share"),
        "expert_offset": whole["offset"], "expert_confidence": round(whole["confidence"], 4),
        "expert_segment_offsets": " ".join(f"{o:+.0f}" for o in seg_offsets),
        "expert_segment_median": float(np.median(finite)) if finite else np.nan,
        "expert_segment_spread": float(np.subtract(*np.percentile(finite, [75, 25]))) if len(finite) > 1 else np.nan,
        "lipsync_offset": row_f["lipsync__av_offset_frames"], "lipsync_confidence": round(row_f["lipsync__av_confidence"], 4),
        "lipsync_envelope_offset": row_f["lipsync__envelope_offset_frames"],
        "lipsync_onset_offset": row_f["lipsync__onset_offset_frames"],
    }
    return row, {"lags": lags, "expert": curve, "xcorr": xc, "pairs": pairs, "fps": clip.fps}


def _argmin(lags: np.ndarray, curve: np.ndarray) -> dict[str, float]:
    if not np.isfinite(curve).any():
        return {"offset": np.nan, "confidence": np.nan}
    i = int(np.nanargmin(curve))
    return {"offset": float(lags[i]), "confidence": float(np.nanmedian(curve) - curve[i])}


def plot(path: Path, clip_id: str, row: dict, data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 6))
    lags = data["lags"]
    ax0.plot(lags, -(data["expert"] - np.nanmedian(data["expert"])), label="sync expert: median - distance")
    for k, c in data["xcorr"].items():
        ax0.plot(lags[: len(c)], c, label=f"lipsync {k} xcorr")
    ax0.axvline(0, color="grey", lw=0.5)
    ax0.set_xlabel("lag (frames; + = sound after lips)")
    ax0.legend(fontsize=7)
    ax0.set_title(f"{clip_id}: expert {row['expert_offset']:+.0f} (conf {row['expert_confidence']:.3f}; 5 s: "
                  f"{row['expert_segment_offsets']}), lipsync {row['lipsync_offset']:+.0f} "
                  f"(conf {row['lipsync_confidence']:.2f})", fontsize=8)
    mouth, env = data["pairs"]["envelope"]
    n = len(mouth)
    a = max(0, n // 2 - int(3 * data["fps"]))
    b = min(n, a + int(6 * data["fps"]))
    t = np.arange(a, b) / data["fps"]
    z = lambda x: (x - np.nanmean(x)) / (np.nanstd(x) + 1e-9)  # noqa: E731
    ax1.plot(t, z(mouth[a:b]), label="mouth aperture (detrended)")
    ax1.plot(t, z(env[a:b]), label="audio envelope dB (detrended)", alpha=0.7)
    ax1.set_xlabel("s")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="*", help="source folders under real/ to measure (default: all)")
    ap.add_argument("--plots", action="store_true")
    args = ap.parse_args()
    from talkqa.scoring.scorer import Scorer
    from talkqa.store import atomic_write_bytes

    df = shared_manifest("real", SHARED)
    df = df[df["meta__has_audio"] == "yes"]
    if args.only:
        df = df[df["clip_id"].str.split("/").str[1].isin(args.only)]
    scorer = Scorer()
    rows = []
    for i, r in enumerate(df.itertuples(index=False), 1):
        try:
            row, data = measure(r.video, r.clip_id, scorer)
        except Exception as exc:  # one unreadable clip must not stop the table
            print(f"{r.clip_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        rows.append(row)
        print(f"[{i}/{len(df)}] {r.clip_id}: expert {row['expert_offset']:+.0f} ({row['expert_confidence']:.3f}; "
              f"{row['expert_segment_offsets']}) lipsync {row['lipsync_offset']:+.0f} ({row['lipsync_confidence']:.2f})",
              flush=True)
        if args.plots:
            plot(args.out / "plots" / f"{r.clip_id.replace('/', '__')}.png", r.clip_id, row, data)
    table = pd.DataFrame(rows)
    atomic_write_bytes(args.out / "sync_check.csv", table.to_csv(index=False).encode())
    print(f"wrote {args.out / 'sync_check.csv'}")


if __name__ == "__main__":
    main()
