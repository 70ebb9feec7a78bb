"""How well each feature of the visual family tells real from generated clips of ../shared/data.

Reads the tracks of an extraction store (`talkqa extract MANIFEST --store STORE`, tracks kept by
default), runs the visual family on every real and generated clip, and prints per feature the
ROC-AUC of real against generated, oriented so that > 0.5 means the feature points the way it was
designed to (sharper, fewer seams, ... for real clips), on two sets:
  * all: every clip with a face;
  * disjoint: without the real clips of the speakers the shipped NSS reference was fitted on
    (features/models/face_nss.npz lists them), nor the generated clips made from those clips
    (MANIFEST.tsv notes name their source), so nss_distance is measured on faces it has not seen.
It then lists, per feature, the generators against which it loses (AUC < 0.5 against all real
clips of the disjoint set). Real and generated clips here differ in capture as much as in method
(the real ones are mostly smaller, older, more compressed videos), so last comes a paired check that
holds the capture fixed: each generated clip whose MANIFEST note names the real clip it was made
from against that clip, as the share of pairs in which the generated clip is the worse one. --refresh-frame-stats measures the analysis-frame statistics again from
the videos with the stored face meshes (no face tracking), for tracks written by an older talkqa.

    TALKQA_SHARED_DATA=../shared/data .venv/bin/python benchmarks/visual_family_eval.py --store STORE \\
        [--out visual_eval.json]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from fit_face_nss import store_tracks  # noqa: E402
from shared_manifest import SHARED, shared_manifest, speaker_of  # noqa: E402

from talkqa.features.clip import PreprocessedClip  # noqa: E402
from talkqa.features.families import FAMILIES, frame_windows  # noqa: E402
from talkqa.features.nss import load_model  # noqa: E402

# +1: real clips should score higher; -1: lower. What each feature was built to show.
DIRECTION = {
    "face_lapvar": 1, "face_grad_energy": 1, "face_blur_effect": -1, "mouth_lapvar": 1, "mouth_grad_energy": 1,
    "mouth_blur_effect": -1, "mouth_face_detail_ratio": 1, "face_fine_share": 1, "mouth_fine_share": 1,
    "mouth_face_fine_ratio": 1, "face_iod_px": 1, "seam_strength": -1, "seam_strength_p90": -1, "blockiness": -1,
    "flicker": -1, "texture_instability": -1, "teeth_detail": 1, "inner_mouth_contrast": 1,
    "neck_chroma_delta": -1, "neck_luma_delta": -1, "color_drift": -1, "texture_drift": -1, "nss_distance": -1,
}


def sources_of_generated(shared: Path) -> dict[str, list[str]]:
    """generated clip_id -> the real clip_ids its MANIFEST note names as its source."""
    listing = pd.read_csv(shared / "MANIFEST.tsv", sep="\t")
    out = {}
    for path, note in zip(listing["local_path"], listing["notes"].fillna("")):
        if path.startswith("generated/"):
            named = re.findall(r"real/[\w\-./]+?\.(?:mp4|mpg|mov)", note)
            out[path.rsplit(".", 1)[0]] = [m.rsplit(".", 1)[0] for m in named]
    return out


def refresh_frame_stats(clip: PreprocessedClip, video: str, every: int) -> None:
    """Measure clip.frame_stats again on the video's analysis frames with the clip's own meshes."""
    from talkqa.config import PreprocessConfig
    from talkqa.features.decode import DecodeStats, iter_video
    from talkqa.features.frame_stats import FRAME_STATS, block_period, frame_stats

    cfg = PreprocessConfig()
    stats = DecodeStats()
    values = np.full((clip.n_frames, len(FRAME_STATS)), np.nan, np.float32)
    period = None
    for t, frame in enumerate(iter_video(video, cfg.fps, cfg.analysis_max_side, stats)):
        if t >= clip.n_frames:
            break
        if period is None:
            period = block_period(frame.shape[1], stats.display_size[0])
        if t % every == 0 and clip.face_valid[t]:
            values[t] = frame_stats(frame, clip.landmarks[t], period)
    clip.frame_stats = {name: values[:, i] for i, name in enumerate(FRAME_STATS)}


def features_of(manifest: pd.DataFrame, tracks: dict[str, Path], refresh_every: int | None = None) -> pd.DataFrame:
    fam = FAMILIES.create("visual")
    rows = []
    for i, row in enumerate(manifest.itertuples(), 1):
        if row.clip_id not in tracks:
            print(f"[{i}/{len(manifest)}] {row.clip_id}: no track in the store, skipped")
            continue
        clip = PreprocessedClip.load(tracks[row.clip_id])
        if refresh_every:
            refresh_frame_stats(clip, row.video, refresh_every)
        out = fam.extract(clip, frame_windows(clip.n_frames, clip.fps))
        rows.append({"clip_id": row.clip_id, **{k.split("__", 1)[1]: v for k, v in out.clip.items()}})
        print(f"[{i}/{len(manifest)}] {row.clip_id}", flush=True)
    return pd.DataFrame(rows).set_index("clip_id")


def oriented_auc(real: pd.Series, generated: pd.Series, direction: int) -> tuple[float, int, int]:
    r, g = real.dropna(), generated.dropna()
    if len(r) < 2 or len(g) < 2:
        return float("nan"), len(r), len(g)
    y = np.r_[np.ones(len(r)), np.zeros(len(g))]
    auc = roc_auc_score(y, direction * np.r_[r.values, g.values])
    return float(auc), len(r), len(g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="extraction store with tracks/ (required unless --features)")
    ap.add_argument("--features", type=Path, help="reuse the .features.csv of an earlier run instead")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--refresh-frame-stats", action="store_true", help="measure them again from the videos")
    args = ap.parse_args()

    real, gen = shared_manifest("real"), shared_manifest("generated")
    manifest = pd.concat([real, gen], ignore_index=True)
    from talkqa.features.frame_stats import EVERY

    every = EVERY if args.refresh_frame_stats else None
    if args.features:
        feats = pd.read_csv(args.features, index_col="clip_id")
    elif args.store:
        feats = features_of(manifest, store_tracks(args.store), every)
    else:
        ap.error("give --store or --features")
    kind = manifest.set_index("clip_id")["generator"].reindex(feats.index)

    meta = load_model().meta
    fit_speakers = set(meta["speakers"])
    fit_clips = {c["clip_id"] for c in meta["clips"]}
    sources = sources_of_generated(SHARED)
    seen_real = {cid for cid in real["clip_id"] if speaker_of(cid) in fit_speakers}
    disjoint = [cid for cid in feats.index
                if cid not in seen_real and not any(s in seen_real for s in sources.get(cid, []))]
    assert not fit_clips & set(disjoint)

    report = {"n_real_all": int((kind == "real").sum()), "n_generated_all": int((kind != "real").sum()),
              "n_real_disjoint": int((kind[disjoint] == "real").sum()),
              "n_generated_disjoint": int((kind[disjoint] != "real").sum()), "features": {}}
    print(f"\n{'feature':26s} {'AUC all':>8s} {'AUC disj':>9s}  loses against (disjoint set, AUC < 0.5)")
    for name in FAMILIES.create("visual").clip_feature_names():
        d = DIRECTION[name]
        col = feats[name]
        auc_all = oriented_auc(col[kind == "real"], col[kind != "real"], d)
        sub, sub_kind = col[disjoint], kind[disjoint]
        auc_dis = oriented_auc(sub[sub_kind == "real"], sub[sub_kind != "real"], d)
        per_gen = {g: oriented_auc(sub[sub_kind == "real"], sub[sub_kind == g], d)[0]
                   for g in sorted(set(sub_kind) - {"real"})}
        loses = {g: round(a, 2) for g, a in per_gen.items() if np.isfinite(a) and a < 0.5}
        report["features"][name] = {
            "direction": d, "auc_all": auc_all[0], "auc_disjoint": auc_dis[0], "n_all": auc_all[1:],
            "n_disjoint": auc_dis[1:], "per_generator_disjoint": per_gen,
            "median_real": float(col[kind == "real"].median()), "median_generated": float(col[kind != "real"].median())}
        print(f"{name:26s} {auc_all[0]:8.3f} {auc_dis[0]:9.3f}  "
              + ", ".join(f"{g} {a}" for g, a in sorted(loses.items(), key=lambda ga: ga[1])))
    print(f"\nall: {report['n_real_all']} real vs {report['n_generated_all']} generated; disjoint: "
          f"{report['n_real_disjoint']} real vs {report['n_generated_disjoint']} generated")

    pairs = [(g, r) for g, srcs in sources.items() for r in srcs if g in feats.index and r in feats.index]
    report["pairs"] = [list(p) for p in pairs]
    print(f"\npaired (generated vs the real clip it was made from, {len(pairs)} pairs): share of pairs where "
          "the generated clip is worse")
    for name in FAMILIES.create("visual").clip_feature_names():
        d = DIRECTION[name]
        diff = np.array([d * (feats.at[r, name] - feats.at[g, name]) for g, r in pairs], dtype=float)
        diff = diff[np.isfinite(diff)]
        share = float((diff > 0).mean()) if len(diff) else float("nan")
        report["features"][name]["paired_worse_share"] = share
        report["features"][name]["paired_n"] = int(len(diff))
        print(f"{name:26s} {share:6.2f} of {len(diff)}")
    if args.out:
        from talkqa.store import atomic_write_json, atomic_write_text

        atomic_write_text(args.out.with_suffix(".features.csv"), feats.to_csv())
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
