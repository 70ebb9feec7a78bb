"""A small fake store with exactly the real schemas, for tests and for trying the benchmark offline.

Layout written under `root`:

    store/handcrafted.parquet           clip_id, <family>__<feature> (some NaN)
    store/windows.parquet               clip_id, t_start, t_end, <family>__<feature>
    store/experts/<name>.parquet        clip_id, t_start, t_end, emb (fixed-size list<float32>)
    store/experts/<name>.scalars.parquet
    labels/manifest.csv                 clip_id, video, speaker, split, mos_*, severity__*
    labels/diagnostics.parquet          clip_id, start, end, dimension, artifact, severity, issue
    labels/pairs.csv                    clip_a, clip_b, dimension, votes_a, votes_b

Labels depend on the features and tokens (plus noise), so every strategy has something to learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from talkqa.store import Store, atomic_write_bytes, write_parquet
from talkqa.tasks import DIMENSION_NAMES, LABEL_COLUMNS, PERCEPTUAL_DIMENSIONS

# name -> (modality, dim, scalar names, the latent quality it mostly carries)
SYNTHETIC_EXPERTS: dict[str, tuple[str, int, tuple[str, ...], str]] = {
    "sync": ("audiovisual", 16, ("offset_frames", "confidence"), "lip_sync"),
    "motion": ("visual", 12, ("naturalness_logit",), "expression"),
    "picture": ("visual", 12, ("quality_logit",), "visual_quality"),
    "voice": ("audio", 16, ("quality_logit",), "audio_quality"),
}
TOKEN_S = 0.2


@dataclass(frozen=True)
class SyntheticPaths:
    store: Path
    manifest: Path
    diagnostics: Path
    pairs: Path


def _tokens_table(clip_ids, t_start, t_end, emb: np.ndarray) -> pa.Table:
    dim = emb.shape[1]
    return pa.table({
        "clip_id": pa.array(clip_ids, pa.string()),
        "t_start": pa.array(np.asarray(t_start, np.float64)),
        "t_end": pa.array(np.asarray(t_end, np.float64)),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.astype(np.float32).ravel(), pa.float32()), dim),
    })


def make_synthetic_store(root: str | Path, n_clips: int = 60, n_speakers: int = 12, seed: int = 0,
                         noise: float = 0.25) -> SyntheticPaths:
    rng = np.random.default_rng(seed)
    root = Path(root)
    store = Store(root / "store")
    labels_dir = root / "labels"
    clip_ids = [f"spk{i % n_speakers:02d}/clip{i:03d}" for i in range(n_clips)]
    speakers = [c.split("/")[0] for c in clip_ids]
    durations = rng.uniform(2.5, 6.0, n_clips).round(2)
    # Latent quality in [0, 1] per clip and dimension; overall mixes the others.
    q = {d: rng.beta(2.0, 2.0, n_clips) for d in PERCEPTUAL_DIMENSIONS}
    spk_bias = {s: rng.normal(0, 0.05) for s in sorted(set(speakers))}

    # ---------------------------------------------------------------- diagnostics (bad segments)
    diag_rows = []
    for i, cid in enumerate(clip_ids):
        for dim in PERCEPTUAL_DIMENSIONS:
            if q[dim][i] < 0.35:
                start = float(rng.uniform(0, max(0.1, durations[i] - 1.5)))
                end = float(min(durations[i], start + rng.uniform(0.8, 1.5)))
                diag_rows.append({"clip_id": cid, "start": round(start, 2), "end": round(end, 2), "dimension": dim,
                                  "artifact": f"{dim}_artifact", "severity": float(1 - q[dim][i]),
                                  "issue": f"synthetic {dim} problem"})
    diag = pd.DataFrame(diag_rows, columns=["clip_id", "start", "end", "dimension", "artifact", "severity", "issue"])

    def bad_at(cid: str, dim: str, t: np.ndarray) -> np.ndarray:
        rows = diag[(diag["clip_id"] == cid) & (diag["dimension"] == dim)]
        out = np.zeros(len(t), bool)
        for r in rows.itertuples():
            out |= (t >= r.start) & (t < r.end)
        return out

    # ---------------------------------------------------------------- hand-crafted clip features
    def nz(scale=1.0):
        return rng.normal(0, noise * scale, n_clips)

    hc = pd.DataFrame({
        "clip_id": clip_ids,
        "lipsync__av_corr": q["lip_sync"] * 0.8 + nz(0.4),
        "lipsync__offset_abs_frames": (1 - q["lip_sync"]) * 8 + nz(4),
        "expression__blink_rate": 0.2 + q["expression"] * 0.3 + nz(0.2),
        "expression__jitter": (1 - q["expression"]) * 2 + nz(1.0),
        "audio__hnr_mean": 5 + 15 * q["audio_quality"] + nz(6),
        "audio__clipping_ratio": np.clip((1 - q["audio_quality"]) * 0.05 + nz(0.01), 0, None),
        "consistency__rate_corr": q["consistency"] + nz(0.5),
        "consistency__arousal_corr": q["consistency"] * 0.5 + nz(0.5),
        "visual__face_sharpness": 50 + 100 * q["visual_quality"] + nz(40),
    })
    feature_cols = [c for c in hc.columns if c != "clip_id"]
    mask = rng.random((n_clips, len(feature_cols))) < 0.05
    hc[feature_cols] = hc[feature_cols].mask(mask)
    write_parquet(hc, store.handcrafted, producer="synthetic", params_hash="synthetic")

    # ---------------------------------------------------------------- 1 s windows
    win_rows = []
    for i, cid in enumerate(clip_ids):
        for t0 in np.arange(0.0, durations[i] - 0.5, 1.0):
            t1 = float(min(t0 + 1.0, durations[i]))
            mid = np.array([(t0 + t1) / 2])
            win_rows.append({"clip_id": cid, "t_start": float(t0), "t_end": t1,
                             "lipsync__av_corr": float(q["lip_sync"][i] - 0.5 * bad_at(cid, "lip_sync", mid)[0]
                                                       + rng.normal(0, noise)),
                             "audio__rms_db": float(-25 + 5 * q["audio_quality"][i] + rng.normal(0, 2))})
    write_parquet(pd.DataFrame(win_rows), store.windows, producer="synthetic", params_hash="synthetic")

    # ---------------------------------------------------------------- experts (tokens + scalars)
    (store.root / "experts").mkdir(parents=True, exist_ok=True)
    for name, (modality, dim, scalar_names, carries) in SYNTHETIC_EXPERTS.items():
        direction = rng.normal(0, 1, dim)
        direction /= np.linalg.norm(direction)
        bad_dir = rng.normal(0, 1, dim)
        bad_dir /= np.linalg.norm(bad_dir)
        ids, starts, ends, embs, scalar_rows = [], [], [], [], []
        for i, cid in enumerate(clip_ids):
            t = np.arange(0.0, durations[i] - TOKEN_S / 2, TOKEN_S)
            mid = t + TOKEN_S / 2
            bad = bad_at(cid, carries, mid).astype(float)
            e = rng.normal(0, 0.5, (len(t), dim)) + np.outer(2 * q[carries][i] - 1, direction) * 2.0 \
                + np.outer(bad, bad_dir) * 1.5
            ids += [cid] * len(t)
            starts.append(t)
            ends.append(np.minimum(t + TOKEN_S, durations[i]))
            embs.append(e)
            row = {"clip_id": cid}
            for k, s in enumerate(scalar_names):
                row[f"{name}__{s}"] = float((1 - 2 * (k % 2)) * (q[carries][i] * 4 - 2) + rng.normal(0, noise * 2))
            scalar_rows.append(row)
        table = _tokens_table(ids, np.concatenate(starts), np.concatenate(ends), np.concatenate(embs))
        write_parquet(table, store.expert(name), f"experts.{name}", "synthetic", f"w-{name}-{seed}",
                      {"version": "synthetic-1", "dim": dim, "input_kind": "synthetic", "modality": modality})
        write_parquet(pd.DataFrame(scalar_rows), store.root / "experts" / f"{name}.scalars.parquet",
                      producer=f"experts.{name}", weights_hash=f"w-{name}-{seed}")

    # ---------------------------------------------------------------- labels
    mos = {}
    for d in PERCEPTUAL_DIMENSIONS:
        bias = np.array([spk_bias[s] for s in speakers])
        mos[d] = np.clip(1 + 4 * (q[d] + bias) + rng.normal(0, 0.15, n_clips), 1, 5)
    mos["overall"] = np.clip(np.mean([mos[d] for d in PERCEPTUAL_DIMENSIONS], axis=0) + rng.normal(0, 0.15, n_clips), 1, 5)
    split_of = {s: ("test" if k % 6 == 5 else "val" if k % 6 == 4 else "train")
                for k, s in enumerate(sorted(set(speakers)))}
    manifest = pd.DataFrame({"clip_id": clip_ids, "video": [f"videos/{c}.mp4" for c in clip_ids],
                             "speaker": speakers, "split": [split_of[s] for s in speakers]})
    for d, col in zip(DIMENSION_NAMES, LABEL_COLUMNS):
        manifest[col] = np.round(mos[d], 3)
    for d in PERCEPTUAL_DIMENSIONS:
        manifest[f"severity__{d}"] = np.round(1 - q[d], 3)
    labels_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(labels_dir / "manifest.csv", manifest.to_csv(index=False).encode())
    write_parquet(diag, labels_dir / "diagnostics.parquet", producer="synthetic")

    # ---------------------------------------------------------------- pairwise preferences
    pair_rows = []
    for _ in range(4 * n_clips):
        a, b = rng.choice(n_clips, 2, replace=False)
        d = DIMENSION_NAMES[int(rng.integers(len(DIMENSION_NAMES)))]
        p = 1 / (1 + np.exp(-(mos[d][a] - mos[d][b]) * 1.5))
        votes_a = int(rng.binomial(10, p))
        pair_rows.append({"clip_a": clip_ids[a], "clip_b": clip_ids[b], "dimension": d,
                          "votes_a": votes_a, "votes_b": 10 - votes_a})
    atomic_write_bytes(labels_dir / "pairs.csv", pd.DataFrame(pair_rows).to_csv(index=False).encode())
    return SyntheticPaths(store.root, labels_dir / "manifest.csv", labels_dir / "diagnostics.parquet",
                          labels_dir / "pairs.csv")
