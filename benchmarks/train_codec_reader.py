"""Train the codec reader (features/codec_reader.py) on the default model's training corpora.

Patches: every 5th analysis frame with a face, up to 12 frames a clip, three 48 px luma patches each
(features.codec_reader.frame_patches), from
  * every clip of the labelled stores (`make default-model`'s real_store and balanced_store) that is clean on
    the coder: target 0 (they were written at CRF 20);
  * their clips compressed by the `compression` artifact alone: target = its severity (QP 28 .. 44 = 0.2 .. 1);
  * the clean clips of the main corpus written again at CRF 32 / 38 / 44 / 48 (ffmpeg, into
    CORPUS/codec_reencoded): target clip((CRF - 24) / 20, 0, 1).
Clips where compression is mixed with other faults, and face blurs (severity >= 0.5, a blur is not a coder),
are left out. Only train-split speakers are in these corpora: never a clip `talkqa check` scores.

--evaluate first trains on the speakers of one half (a CRC of the speaker name) and reads the other half, and
the other way round, and prints per group the ROC-AUC that its clips read higher than the clean clips and than every clip
clean on the coder (clean, talking photos, stalls, the rest); the figures go into the weights' metadata. A
clip reads both ways, as extraction reads a frame (`CodecReader.read_frame`): the median logit of its patches
and that of its frames' mirror images' patches, averaged (extraction averages per frame and the visual family
takes the frames' median: close, not identical); the one-way figures are printed and kept beside them.

    .venv/bin/python benchmarks/train_codec_reader.py --evaluate          # ~25 min on 2 cores
    .venv/bin/python benchmarks/train_codec_reader.py --evaluate-only     # the folds alone, 13-25 min
    .venv/bin/python benchmarks/train_codec_reader.py --out /tmp/reader.npz
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pandas as pd
import torch
from torch import nn

from talkqa.config import ExtractConfig, load_config
from talkqa.features.clip import PreprocessedClip
from talkqa.features.codec_reader import (LAYERS, PATCH, CodecReader, default_path, frame_patches, mirror_patches,
                                          normalise)
from talkqa.features.decode import DecodeStats, iter_video
from talkqa.features.frame_stats import EVERY
from talkqa.store import Store, read_parquet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_evidence import auc  # noqa: E402  P(a value of the first set > one of the second), ties half

STORES = (("real_store", "real_degraded"), ("balanced_store", "balanced_degraded"))
REENCODE_CRF = (32, 38, 44, 48)
FRAMES = 12  # analysis frames per clip, every EVERY-th (as preprocessing measures frame statistics)
EPOCHS, BATCH, LR, POSITIVE_WEIGHT = 20, 256, 2e-3, 3.0


def clip_patches(job: tuple[str, str, Path, float, int]) -> tuple[str, np.ndarray, np.ndarray]:
    """The clip's patches on the analysis frames its store was extracted on (fps, long side), and those of the
    same frames' mirror images (read only, never trained on: training flips patches instead)."""
    clip_id, video, track, fps, max_side = job
    clip = PreprocessedClip.load(track)
    out, mirrored, frames = [], [], 0
    for t, frame in enumerate(iter_video(video, fps, max_side, DecodeStats())):
        if t >= clip.n_frames or frames >= FRAMES:
            break
        if t % EVERY or not clip.face_valid[t]:
            continue
        points = clip.landmarks[t][:, :2]
        if not np.isfinite(points).all():
            continue
        frames += 1
        out.append(frame_patches(frame, points))
        mirrored.append(mirror_patches(frame, points))

    def stacked(parts):
        return (np.concatenate(parts) if parts else np.zeros((0, PATCH, PATCH), np.float32)).astype(np.float16)
    return clip_id, stacked(out), stacked(mirrored)


def target_of(row) -> float | None:
    """The clip's target, or None when it is left out."""
    if row.severity__face_blur >= 0.5:
        return None
    if row.severity__compression > 0:
        only = re.fullmatch(r"compression s=[^;]*\)", str(row.artifacts))  # alone, over the whole clip
        return float(row.severity__compression) if only else None
    return 0.0


def collect(corpus: Path, workers: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One row per clip (clip_id, speaker, target, group, n patches, n_mirror patches), its patches, and its
    frames' mirror images' patches, each clip's in a block in row order."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    rows, jobs = [], []
    for store_name, labels in STORES:
        store = Store(corpus / store_name)
        pre = load_config(ExtractConfig, store.config).preprocess
        clock = (pre.fps, pre.analysis_max_side)
        manifest = pd.read_csv(corpus / labels / "manifest.csv")
        status = read_parquet(store.status)
        status = status[status.status == "ok"][["clip_id", "cache_key", "video"]]
        table = manifest.drop(columns="video").merge(status, on="clip_id")
        for r in table.itertuples():
            target = target_of(r)
            if target is None:
                continue
            track = store.track(r.cache_key)
            rows.append((r.clip_id, r.speaker, target, "compression" if target > 0 else r.artifacts.split(" ")[0]))
            jobs.append((r.clip_id, r.video, track, *clock))
            if r.artifacts == "clean" and store_name == "real_store":
                for crf in REENCODE_CRF:
                    out = corpus / "codec_reencoded" / f"{r.clip_id.replace('/', '_')}_crf{crf}.mp4"
                    if not out.is_file():
                        out.parent.mkdir(parents=True, exist_ok=True)
                        tmp = out.with_suffix(".part.mp4")
                        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", r.video, "-c:v", "libx264", "-crf",
                                        str(crf), "-pix_fmt", "yuv420p", "-an", str(tmp)], check=True)
                        tmp.replace(out)
                    target = float(np.clip((crf - 24) / 20, 0, 1))
                    rows.append((f"{r.clip_id}#crf{crf}", r.speaker, target, f"crf{crf}"))
                    jobs.append((f"{r.clip_id}#crf{crf}", str(out), track, *clock))
    meta = pd.DataFrame(rows, columns=["clip_id", "speaker", "target", "group"])
    t0, patches, mirrored = time.perf_counter(), {}, {}
    with ProcessPoolExecutor(workers) as pool:
        for i, (clip_id, p, m) in enumerate(pool.map(clip_patches, jobs, chunksize=4)):
            patches[clip_id], mirrored[clip_id] = p, m
            if (i + 1) % 200 == 0 or i + 1 == len(jobs):
                print(f"patches: {i + 1}/{len(jobs)} clips, {time.perf_counter() - t0:.0f} s", flush=True)
    meta["n"] = [len(patches[c]) for c in meta.clip_id]
    meta["n_mirror"] = [len(mirrored[c]) for c in meta.clip_id]
    return (meta, np.concatenate([patches[c] for c in meta.clip_id]),
            np.concatenate([mirrored[c] for c in meta.clip_id]))


def network() -> nn.Sequential:
    layers, channels = [], 1
    for out, stride in LAYERS:
        layers += [nn.Conv2d(channels, out, 3, stride=stride, padding=1), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1))


def fit(x: np.ndarray, y: np.ndarray, seed: int = 0, label: str = "") -> nn.Sequential:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = network()
    opt = torch.optim.Adam(net.parameters(), LR)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xt = torch.from_numpy(normalise(x))[:, None]
    yt = torch.tensor(y, dtype=torch.float32)
    wt = torch.where(yt > 0, POSITIVE_WEIGHT, 1.0)
    t0 = time.perf_counter()
    for epoch in range(EPOCHS):
        order, total = torch.randperm(len(xt)), 0.0
        for start in range(0, len(order), BATCH):
            j = order[start:start + BATCH]
            xb = xt[j].flip(3) if rng.random() < 0.5 else xt[j]  # a mirrored face is the same face
            loss = nn.functional.binary_cross_entropy_with_logits(net(xb)[:, 0], yt[j], reduction="none")
            loss = (loss * wt[j]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(j)
        schedule.step()
        print(f"{label}epoch {epoch + 1}/{EPOCHS}: loss {total / len(order):.4f}, {time.perf_counter() - t0:.0f} s",
              flush=True)
    return net.eval()


def to_reader(net: nn.Sequential, meta: dict) -> CodecReader:
    convs = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    return CodecReader([(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in convs], meta)


def clip_logits(reader: CodecReader, counts: np.ndarray, x: np.ndarray, rows) -> np.ndarray:
    """Median logit of each clip's block of patches (`counts` per clip, in order); NaN for an empty block."""
    start = np.r_[0, np.cumsum(counts)]
    return np.array([np.median(reader.logits(x[start[i]:start[i + 1]])) if counts[i] else np.nan for i in rows])


def evaluate(meta: pd.DataFrame, x: np.ndarray, x_mirror: np.ndarray) -> dict:
    fold = np.array([zlib.crc32(s.encode()) % 2 for s in meta.speaker])
    start = np.r_[0, np.cumsum(meta.n.to_numpy())]
    one_way, mirror = np.full(len(meta), np.nan), np.full(len(meta), np.nan)
    for held in (0, 1):
        train = np.flatnonzero(fold != held)
        xi = np.concatenate([np.arange(start[i], start[i + 1]) for i in train])
        yi = np.concatenate([np.full(meta.n.iloc[i], meta.target.iloc[i]) for i in train])
        reader = to_reader(fit(x[xi], yi, label=f"fold {held + 1}/2 "), {})
        rows = np.flatnonzero(fold == held)
        one_way[rows] = clip_logits(reader, meta.n.to_numpy(), x, rows)
        mirror[rows] = clip_logits(reader, meta.n_mirror.to_numpy(), x_mirror, rows)
    # both ways, averaged as read_frame does; one way where a clip has no mirror patch (or the reverse)
    reading = np.where(np.isnan(mirror), one_way, np.where(np.isnan(one_way), mirror, (one_way + mirror) / 2))
    figures = group_figures(meta, reading)
    one_way_figures = group_figures(meta, one_way)
    print(pd.DataFrame(figures).T.join(pd.DataFrame(one_way_figures).T, rsuffix="_one_way").to_string(), flush=True)
    return {**figures, "one_way": one_way_figures}


def group_figures(meta: pd.DataFrame, reading: np.ndarray) -> dict:
    """Per group of clips: how many, their median reading, and the ROC-AUC that they read above the clean clips
    and above every other clip clean on the coder."""
    group = meta.group.to_numpy()
    heavy = (meta.group == "compression") & (meta.target >= 0.7)
    group = np.where(heavy, "compression_heavy", np.where(meta.group == "compression", "compression_light", group))
    clean_coder = meta.target.to_numpy() == 0
    figures = {}
    for g in ("crf32", "crf38", "crf44", "crf48", "compression_heavy", "compression_light", "still_portrait",
              "photo_animation", "stall", "frame_stutter"):
        r = reading[group == g]
        if len(r):
            figures[g] = {"clips": int(len(r)), "median_logit": round(float(np.nanmedian(r)), 2),
                          "auc_vs_clean": round(auc(r, reading[group == "clean"]), 3),
                          "auc_vs_clean_on_coder": round(auc(r, reading[clean_coder & (group != g)]), 3)}
    clean = reading[group == "clean"]
    figures["clean"] = {"clips": int(len(clean)), "median_logit": round(float(np.nanmedian(clean)), 2)}
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("build/default-model"),
                    help="folder of `make default-model`'s stores and degrade manifests")
    ap.add_argument("--out", type=Path, default=default_path(), help="weights file (default: the shipped one)")
    ap.add_argument("--evaluate", action="store_true",
                    help="two speaker folds first; their figures go into the metadata")
    ap.add_argument("--evaluate-only", action="store_true", help="the two speaker folds alone; no weights written")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    missing = [args.corpus / s / "status.parquet" for s, _ in STORES]
    missing = [path for path in missing if not path.is_file()]
    if missing:
        print(f"error: {', '.join(map(str, missing))} not found; build the corpora with `make default-model` "
              "(or give --corpus)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.workers)
    meta, x, x_mirror = collect(args.corpus, args.workers)
    print(f"{len(meta)} clips, {len(x)} patches, {meta.speaker.nunique()} speakers; "
          f"{(meta.target > 0).sum()} coded harder than CRF 24", flush=True)
    info = {"trained_on": f"{args.corpus}: {', '.join(s for s, _ in STORES)} (train-split speakers of ../shared/data) "
                          f"and their clean clips at CRF {'/'.join(map(str, REENCODE_CRF))}",
            "speakers": sorted(meta.speaker.unique().tolist()), "clips": int(len(meta)), "patches": int(len(x)),
            "epochs": EPOCHS, "seed": 0}
    if args.evaluate or args.evaluate_only:
        info["heldout_speaker_folds"] = evaluate(meta, x, x_mirror)
        if args.evaluate_only:
            return 0
    y = np.concatenate([np.full(n, t) for n, t in zip(meta.n, meta.target)])
    net = fit(x, y, label="all speakers ")
    reader = to_reader(net, info)
    probe = x[: 64].astype(np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(normalise(probe))[:, None])[:, 0].numpy()
    gap = float(np.abs(reader.logits(probe) - reference).max())
    if gap > 1e-3:
        print(f"error: the numpy network differs from torch's by {gap:.2g}; weights not written", file=sys.stderr)
        return 1
    reader.save(args.out)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
