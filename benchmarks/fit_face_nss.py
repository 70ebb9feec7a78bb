"""Fit the natural-face-statistics reference of the visual family (features/models/face_nss.npz).

The reference is a multivariate Gaussian over the NSS features (features/nss.py) of the inner face
of aligned crops of REAL clips of ../shared/data, fitted on a subset of speakers only so that the
other speakers stay free for evaluation:
  * the real clips whose manifest `split` is "train", when benchmarks/shared_manifest.py gives a split;
  * otherwise FIT_SHARE of the speaker groups (shared_manifest.speaker_of: one group per person,
    GRID as one group), drawn with numpy's default_rng(FIT_SEED) from the sorted group names.
The file's metadata lists the fitted clips and speakers, so an evaluation can leave them out
(benchmarks/visual_family_eval.py does).

Crops come from the track files of an extraction store (`talkqa extract ... --store STORE`, tracks
are kept by default), or, for clips the store lacks, from preprocessing the video here.

    TALKQA_SHARED_DATA=../shared/data .venv/bin/python benchmarks/fit_face_nss.py \\
        [--store STORE] [--out features/models/face_nss.npz]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from shared_manifest import shared_manifest  # noqa: E402

from talkqa import __version__  # noqa: E402
from talkqa.features.clip import PreprocessedClip  # noqa: E402
from talkqa.features.nss import NSSModel, default_model_path, face_nss_features  # noqa: E402
from talkqa.store import Store, read_parquet  # noqa: E402

FIT_SHARE, FIT_SEED = 0.4, 0
EVERY = 5  # every 5th face frame ...
MAX_FRAMES = 60  # ... and at most this many per clip, so long clips do not outweigh short ones


def fit_speakers(manifest: pd.DataFrame) -> tuple[list[str], str]:
    """(speaker groups to fit on, how they were chosen)."""
    if "split" in manifest.columns:
        chosen = sorted(manifest.loc[manifest["split"] == "train", "speaker"].unique())
        return chosen, "the speakers of the manifest's split == 'train' clips"
    groups = sorted(manifest["speaker"].unique())
    rng = np.random.default_rng(FIT_SEED)
    chosen = sorted(rng.choice(groups, int(round(FIT_SHARE * len(groups))), replace=False).tolist())
    return chosen, (f"{FIT_SHARE:.0%} of the {len(groups)} speaker groups of shared_manifest.speaker_of, drawn with "
                    f"numpy.random.default_rng({FIT_SEED}).choice from the sorted group names")


def load_clip(row, tracks: dict[str, Path]) -> PreprocessedClip:
    if row.clip_id in tracks:
        return PreprocessedClip.load(tracks[row.clip_id])
    from talkqa.features.preprocess import preprocess

    return preprocess(row.video, clip_id=row.clip_id)


def store_tracks(store_dir: Path | None) -> dict[str, Path]:
    """clip_id -> track file of an extraction store: from status.parquet, and from the per-clip status
    parts too, so a store whose extraction is still running can be read."""
    if store_dir is None:
        return {}
    store = Store(store_dir)
    rows = read_parquet(store.status).to_dict("records") if store.status.is_file() else []
    rows += [json.loads(p.read_text()) for p in store.parts.folder.glob("*.status.json")]
    out = {}
    for row in rows:
        path = store.track(row["cache_key"]) if row.get("cache_key") else None
        if path is not None and path.is_file():
            out[row["clip_id"]] = path
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="extraction store whose tracks/ hold the real clips")
    ap.add_argument("--out", type=Path, default=default_model_path())
    args = ap.parse_args()

    manifest = shared_manifest("real")
    speakers, how = fit_speakers(manifest)
    chosen = manifest[manifest["speaker"].isin(speakers)]
    tracks = store_tracks(args.store)
    rows, clips, face_size = [], [], None
    for i, row in enumerate(chosen.itertuples(), 1):
        clip = load_clip(row, tracks)
        t = np.flatnonzero(clip.face_valid)[::EVERY]
        if len(t) > MAX_FRAMES:
            t = t[np.linspace(0, len(t) - 1, MAX_FRAMES).round().astype(int)]
        if len(t) == 0:
            print(f"[{i}/{len(chosen)}] {row.clip_id}: no face, skipped")
            continue
        face_size = clip.face_crops.shape[1]
        rows.append(face_nss_features(clip.face_crops[t]))
        clips.append({"clip_id": row.clip_id, "speaker": row.speaker, "frames": int(len(t))})
        print(f"[{i}/{len(chosen)}] {row.clip_id}: {len(t)} frames")
    meta = {
        "fitted_on": "aligned face crops of real clips of ../shared/data (see benchmarks/fit_face_nss.py)",
        "speaker_selection": how, "speakers": speakers, "clips": clips, "face_size": face_size,
        "frames_every": EVERY, "max_frames_per_clip": MAX_FRAMES, "talkqa_version": __version__,
    }
    model = NSSModel.fit(np.concatenate(rows), meta)
    model.save(args.out)
    print(f"wrote {args.out}: {model.meta['n_frames']} frames of {len(clips)} clips, {len(speakers)} speakers")


if __name__ == "__main__":
    main()
