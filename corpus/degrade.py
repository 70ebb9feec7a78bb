"""`talkqa degrade`: labelled corpora from real clips by controlled degradation.

For every source clip, `variants` variants are written: variant 00 is the clean clip (decoded and
re-encoded like the others, so "clean" differs from a degraded one only by the artifact), the rest
carry one to three artifacts (see talkqa/corpus/artifacts) at graded severities, over the whole clip
or a frame-aligned segment. Labels come from talkqa/corpus/labels.py.

Layout of out_dir:

    videos/<source_clip>/vNN.mp4      25 fps H.264 + 16 kHz mono AAC
    labels/<source_clip>/vNN.json     sidecar: manifest row + diagnostics (written after the video;
                                      a variant with both files is skipped on a rerun)
    manifest.csv                      clip_id, video, speaker, split, source_clip, artifacts, mos_*, severity__*
    diagnostics.parquet               clip_id, start, end, dimension, artifact, severity, issue
                                      (seconds, multiples of 1/25: frame-exact)
    status.parquet                    one row per source clip: ok or an error code + message
    recipe.yaml                       the recipe used

Every plan is a pure function of (seed, source clip_id, variant index) and the clip's content, so a
rerun reproduces it. Splits are assigned per speaker (seeded, greedy toward the target shares): no
speaker is in two splits. A source without a `speaker` is its own speaker.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, Field, field_validator

from talkqa.config import config_path
from talkqa.engine import run_tasks
from talkqa.errors import UsageError
from talkqa.features.face import quiet_native_stderr
from talkqa.store import atomic_write_bytes, atomic_write_text, write_parquet
from talkqa.shared_data import unlabelled_dimensions
from talkqa.tasks import DIMENSION_NAMES, LABEL_COLUMNS, PERCEPTUAL_DIMENSIONS

from .artifacts import ARTIFACTS, FPS, SR, Sample
from .labels import Applied, LabelRule, pseudo_mos
from .media import write_clip

DEFAULT_RECIPE = config_path("degrade", "default.yaml")
DIAGNOSTIC_COLUMNS = ("clip_id", "start", "end", "dimension", "artifact", "severity", "issue")
SPLIT_ORDER = ("train", "val", "test")


class DegradeRecipe(BaseModel):
    """What to apply and how often. Loaded from configs/degrade/<name>.yaml."""

    artifacts: dict[str, float] = Field(default_factory=lambda: {n: 1.0 for n in ARTIFACTS.names()})
    variants: int = 10  # per source, including the clean one
    clean_variant: bool = True
    n_artifacts_p: list[float] = [0.7, 0.25, 0.05]  # P(1, 2, 3 artifacts) per degraded variant
    segment_p: float = 0.4  # chance an artifact covers a segment rather than the whole clip
    # per-artifact override of segment_p: faults that real generators show over the whole clip (a
    # still photo, no blinks at all) or that place themselves in the clip (a stall) use 0
    segment_p_by_artifact: dict[str, float] = {}
    max_segment_share: float = 0.6
    max_source_s: float = 20.0  # decode at most this much of a source
    max_variant_s: float = 10.0  # variants are windows of at most this length
    min_variant_s: float = 1.0
    max_side: int = 512
    donors: int = 6  # other speakers' clips decoded for babble / swaps
    split_shares: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}
    # LabelRule's fields; the ones a recipe leaves out keep the rule's (fitted) defaults, so the
    # recipe written next to a corpus records every value its labels were made with
    labels: dict[str, Any] = Field(default_factory=lambda: dict(LabelRule().__dict__))
    # The dimensions this corpus labels (null: all). A corpus made to teach one fault labels what that fault
    # moves and leaves the rest empty: its picture and sound are the real clips' again, which the main corpora
    # teach already; labelled clean there, version 14's stalls pulled the compressed clips' visual scores up
    # out of fold (README, "Version 15").
    labelled: list[str] | None = None
    crf: int = 20

    @field_validator("artifacts")
    @classmethod
    def _known(cls, v):
        for name in v:
            if name not in ARTIFACTS:
                raise ValueError(f"unknown artifact {name!r}; known: {', '.join(ARTIFACTS.names())}")
        if not any(w > 0 for w in v.values()):
            raise ValueError("at least one artifact needs a positive weight")
        return v

    @field_validator("segment_p_by_artifact")
    @classmethod
    def _segment_p(cls, v):
        for name, p in v.items():
            if name not in ARTIFACTS:
                raise ValueError(f"segment_p_by_artifact: unknown artifact {name!r}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"segment_p_by_artifact[{name}] must be in [0, 1], got {p}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v):
        unknown = set(v) - set(LabelRule.__dataclass_fields__)
        if unknown:
            raise ValueError(f"labels: unknown {sorted(unknown)}; known: {', '.join(LabelRule.__dataclass_fields__)}")
        merged = {**LabelRule().__dict__, **v}
        LabelRule(**merged)  # its own checks (overall weights name real dimensions)
        return {k: dict(w) if isinstance(w, dict) else w for k, w in merged.items()}

    @field_validator("labelled")
    @classmethod
    def _labelled(cls, v):
        if v is not None:
            unknown = [d for d in v if d not in DIMENSION_NAMES]
            if unknown or not v:
                raise ValueError(f"labelled: name at least one of {', '.join(DIMENSION_NAMES)}"
                                 + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        return v

    @field_validator("split_shares")
    @classmethod
    def _splits(cls, v):
        if set(v) - set(SPLIT_ORDER) or not math.isclose(sum(v.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"split_shares must use {SPLIT_ORDER} and sum to 1")
        return v

    @classmethod
    def load(cls, path: str | Path | None = None) -> "DegradeRecipe":
        path = Path(path) if path else DEFAULT_RECIPE
        if not path.is_file():
            raise UsageError(f"degrade recipe {path} not found")
        try:
            return cls(**(yaml.safe_load(path.read_text()) or {}))
        except Exception as exc:
            raise UsageError(f"{path}: invalid degrade recipe ({exc})") from None

    def rule(self) -> LabelRule:
        return LabelRule(**self.labels)

    def params_hash(self) -> str:
        return hashlib.sha1(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:12]


class SourceError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------- decoding
def decode_source(path: str | Path, max_s: float = 20.0, max_side: int = 512, fps: float = FPS,
                  sr: int = SR, video: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Frames at `fps` (nearest source frame by timestamp; long side <= max_side, even sizes) and
    mono float32 audio at `sr` aligned to the first video frame, exactly T * sr/fps samples."""

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise SourceError("decode_error", f"cannot open {path}: {exc}") from None
    with container:
        if not container.streams.audio:
            raise SourceError("no_audio", f"{path} has no audio track")
        t0 = 0.0
        frames = None
        if video:
            if not container.streams.video:
                raise SourceError("no_video", f"{path} has no video track")
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            imgs, times = [], []
            for f in container.decode(vs):
                t = float(f.time) if f.time is not None else len(times) / fps
                if times and t - times[0] > max_s:
                    break
                w, h = f.width, f.height
                k = min(1.0, max_side / max(w, h))
                nw, nh = max(2, int(round(w * k / 2)) * 2), max(2, int(round(h * k / 2)) * 2)
                imgs.append(f.to_ndarray(width=nw, height=nh, format="rgb24"))
                times.append(t)
            if len(imgs) < 2:
                raise SourceError("too_short", f"{path}: fewer than 2 video frames")
            times = np.array(times)
            order = np.argsort(times, kind="stable")
            times = times[order]
            t0 = times[0]
            step = np.median(np.diff(times)) if len(times) > 1 else 1 / fps
            n = int(math.floor((times[-1] - t0 + step) * fps + 1e-6))
            grid = t0 + np.arange(n) / fps
            j = np.clip(np.searchsorted(times, grid), 1, len(times) - 1)
            nearest = np.where(np.abs(times[j - 1] - grid) <= np.abs(times[j] - grid), j - 1, j)
            frames = np.stack([imgs[order[i]] for i in nearest])
        container.seek(0)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks, a0 = [], None
        for f in container.decode(container.streams.audio[0]):
            if a0 is None:
                a0 = float(f.time) if f.time is not None else 0.0
            for r in resampler.resample(f):
                chunks.append(r.to_ndarray().reshape(-1))
            if sum(len(c) for c in chunks) > (max_s + 1) * sr:
                break
        for r in resampler.resample(None):
            chunks.append(r.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if not video:
        return None, audio[: int(max_s * sr)]
    lead = int(round(((a0 or 0.0) - t0) * sr))
    audio = np.pad(audio, (lead, 0)) if lead > 0 else audio[-lead:]
    hop = int(round(sr / fps))
    need = len(frames) * hop
    audio = np.pad(audio, (0, max(0, need - len(audio))))[:need]
    if not np.any(np.abs(audio) > 1e-4):
        raise SourceError("silent_audio", f"{path}: the audio track is silent")
    return frames, audio


def face_landmarks(frames: np.ndarray) -> np.ndarray:
    """(T, 478, 2) MediaPipe FaceMesh landmarks in frame pixels, NaN where no face was found.
    The one place the corpus measures faces for its edits (degrade, the `talkqa check` variants)."""
    import mediapipe as mp  # lazy: slow import, only on this path

    h, w = frames.shape[1:3]
    out = np.full((len(frames), 478, 2), np.nan, np.float32)
    with quiet_native_stderr():
        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True, max_num_faces=1)
    with mesh:
        for t, frame in enumerate(frames):
            if t == 0:
                with quiet_native_stderr():
                    res = mesh.process(np.ascontiguousarray(frame))
            else:
                res = mesh.process(np.ascontiguousarray(frame))
            if res.multi_face_landmarks:
                out[t] = [[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark]
    return out


def fill_landmarks(pts: np.ndarray, min_share: float = 0.5) -> np.ndarray | None:
    """Gaps interpolated linearly in time; None when a face was found in fewer than `min_share` frames."""
    ok = ~np.isnan(pts[:, 0, 0])
    if ok.mean() < min_share:
        return None
    if ok.all():
        return pts
    t = np.arange(len(pts))
    flat = pts.reshape(len(pts), -1).copy()
    for c in range(flat.shape[1]):
        flat[~ok, c] = np.interp(t[~ok], t[ok], flat[ok, c])
    return flat.reshape(pts.shape)


# ---------------------------------------------------------------------------- planning
def _stable(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def plan_variant(source: str, j: int, recipe: DegradeRecipe, seed: int, n_frames: int,
                 has_landmarks: bool, has_donors: bool) -> dict:
    """{'window': (start, stop) frames, 'artifacts': [(name, severity, segment or None)]}."""
    rng = np.random.default_rng([seed, _stable(source) % (2 ** 63), j])
    n = min(n_frames, int(recipe.max_variant_s * FPS))
    w0 = int(rng.integers(0, n_frames - n + 1))
    plan = {"window": (w0, w0 + n), "artifacts": []}
    if j == 0 and recipe.clean_variant:
        return plan
    eligible = [a for a, wt in sorted(recipe.artifacts.items()) if wt > 0
                and (has_landmarks or not ARTIFACTS.get(a).needs_landmarks)
                and (has_donors or not ARTIFACTS.get(a).needs_donors)]
    if not eligible:
        missing = "a face (no landmarks were found)" if not has_landmarks else "other speakers' audio (donors)"
        raise SourceError("no_artifact", f"{source}: none of the recipe's artifacts can be applied: they need "
                                         f"{missing}; add artifacts that do not, or drop the clip")
    weights = np.array([recipe.artifacts[a] for a in eligible], float)
    # the primary artifact cycles through a per-source weighted permutation: balanced coverage
    src_rng = np.random.default_rng([seed, _stable(source) % (2 ** 63)])
    perm = list(src_rng.choice(eligible, size=len(eligible), replace=False, p=weights / weights.sum()))
    k = 1 + int(rng.choice(len(recipe.n_artifacts_p), p=np.array(recipe.n_artifacts_p) / sum(recipe.n_artifacts_p)))
    first = perm[(j - int(recipe.clean_variant)) % len(perm)]
    names = [first]
    rest = [a for a in eligible if a != first]
    if k > 1 and rest:
        p = np.array([recipe.artifacts[a] for a in rest], float)
        names += list(rng.choice(rest, size=min(k - 1, len(rest)), replace=False, p=p / p.sum()))
    for name in names:
        cls = ARTIFACTS.get(name)
        severity = float(rng.choice(cls.severities()))
        min_len = int(math.ceil(cls.min_segment_s * FPS))
        segment = None
        if rng.random() < recipe.segment_p_by_artifact.get(name, recipe.segment_p) and n >= 2 * min_len:
            length = int(rng.integers(min_len, max(min_len, int(recipe.max_segment_share * n)) + 1))
            start = int(rng.integers(0, n - length + 1))
            segment = (start, start + length)
        plan["artifacts"].append((str(name), severity, segment))
    plan["artifacts"].sort(key=lambda x: (ARTIFACTS.get(x[0]).order, x[0]))
    return plan


def assign_splits(speaker_counts: dict[str, int], shares: dict[str, float], seed: int = 0) -> dict[str, str]:
    """Speaker -> split. Speakers in seeded random order, each to the split furthest below its
    target share (counted in clips), so every speaker is in exactly one split."""
    rng = np.random.default_rng(seed)
    speakers = sorted(speaker_counts)
    total = sum(speaker_counts.values())
    have = {s: 0.0 for s in shares}
    out = {}
    for i in rng.permutation(len(speakers)):
        spk = speakers[i]
        split = max(shares, key=lambda s: (shares[s] * total - have[s], shares[s]))
        out[spk] = split
        have[split] += speaker_counts[spk]
    return out


# ---------------------------------------------------------------------------- one source
def _variant_paths(out_dir: Path, source: str, j: int) -> tuple[Path, Path, str]:
    rel = f"videos/{source}/v{j:02d}.mp4"
    return out_dir / rel, out_dir / "labels" / source / f"v{j:02d}.json", rel


def _apply_plan(sample: Sample, plan: dict, rng: np.random.Generator) -> Sample:
    out = sample
    for name, severity, segment in plan["artifacts"]:
        out = ARTIFACTS.create(name).apply(out, severity, segment, rng)
    return out


def _label(clip_id: str, log: list[dict], n_frames: int, recipe: DegradeRecipe) -> tuple[dict, list[dict]]:
    applied, text, diags = [], [], []
    severities = {f"severity__{a}": 0.0 for a in sorted(recipe.artifacts)}
    for e in log:
        if not e.get("effective", True):
            continue
        a, b = e["start_frame"], e["stop_frame"]
        applied.append(Applied(e["artifact"], e["severity"], (b - a) / n_frames, e.get("mode"), e.get("parameter")))
        severities[f"severity__{e['artifact']}"] = max(severities[f"severity__{e['artifact']}"], e["severity"])
        span = "" if (a, b) == (0, n_frames) else f" {a / FPS:.2f}-{b / FPS:.2f}s"
        text.append(f"{e['artifact']} s={e['severity']:.2f} ({e.get('issue', '')}){span}")
        # diagnostics name the dimensions that suffer; an artifact's direct share of `overall` is no window fault
        for dim in (d for d in ARTIFACTS.get(e["artifact"]).impacts if d in PERCEPTUAL_DIMENSIONS):
            diags.append({"clip_id": clip_id, "start": a / FPS, "end": b / FPS, "dimension": dim,
                          "artifact": e["artifact"], "severity": e["severity"], "issue": e.get("issue", "")})
    row = {"artifacts": "; ".join(text) if text else "clean", **pseudo_mos(applied, recipe.rule()), **severities}
    return row, diags


def degrade_source(task: dict, out_dir: str, recipe_dict: dict, seed: int) -> dict:
    """Write every missing variant of one source; returns rows, diagnostics and a status row.
    Never raises: a failing source becomes a status row."""
    out = Path(out_dir)
    recipe = DegradeRecipe(**recipe_dict)
    source = task["source_clip"]
    rows, diags = [], []
    status = {"source_clip": source, "status": "ok", "message": "", "written": 0, "skipped": 0}
    try:
        pending = []
        for j in range(task["variants"]):
            video, side, _ = _variant_paths(out, source, j)
            if video.is_file() and side.is_file():
                rec = json.loads(side.read_text())
                rows.append(rec["row"])
                diags += rec["diagnostics"]
                status["skipped"] += 1
            else:
                pending.append(j)
        if pending:
            frames, audio = decode_source(task["video"], recipe.max_source_s, recipe.max_side)
            if len(frames) < recipe.min_variant_s * FPS:
                raise SourceError("too_short", f"{len(frames) / FPS:.2f} s is shorter than {recipe.min_variant_s} s")
            landmarks = fill_landmarks(face_landmarks(frames))
            donors: list[np.ndarray] | None = None
            for j in pending:
                plan = plan_variant(source, j, recipe, seed, len(frames), landmarks is not None, bool(task["donors"]))
                if donors is None and any(ARTIFACTS.get(a).needs_donors for a, _, _ in plan["artifacts"]):
                    donors = _donor_audio(task["donors"], recipe.max_source_s)
                a, b = plan["window"]
                sample = Sample(frames[a:b], audio[a * 640:b * 640].copy(),
                                None if landmarks is None else landmarks[a:b].copy(), donors or [])
                rng = np.random.default_rng([seed, _stable(source) % (2 ** 63), j, 1])
                result = _apply_plan(sample, plan, rng)
                clip_id = f"{source}/v{j:02d}"
                label, d = _label(clip_id, result.log, b - a, recipe)
                peak = float(np.max(np.abs(result.audio))) if len(result.audio) else 0.0
                audio_out = result.audio * (0.99 / peak) if peak > 0.99 else result.audio
                video, side, rel = _variant_paths(out, source, j)
                write_clip(video, result.frames, FPS, audio_out, SR, crf=recipe.crf)
                row = {"clip_id": clip_id, "video": rel, "speaker": task["speaker"], "source_clip": source,
                       "duration_s": (b - a) / FPS, "meta__window_start_s": a / FPS, **label}
                atomic_write_text(side, json.dumps({"row": row, "diagnostics": d, "plan": plan,
                                                    "log": result.log}, default=_json_default))
                rows.append(row)
                diags += d
                status["written"] += 1
    except SourceError as exc:
        status.update(status=exc.code, message=str(exc))
    except Exception as exc:  # one bad source never stops the batch
        status.update(status="error", message=f"{type(exc).__name__}: {exc}")
    return {"rows": rows, "diagnostics": diags, "status": status}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _donor_audio(paths: list[str], max_s: float) -> list[np.ndarray]:
    """Speech of other speakers for babble and swaps. A donor without usable audio is skipped:
    it must not fail the source clip it was drawn for."""
    donors = []
    for p in paths:
        try:
            audio = decode_source(p, max_s, video=False)[1]
        except SourceError:
            continue
        if audio is not None and np.any(audio):
            donors.append(audio)
    return donors


# ---------------------------------------------------------------------------- the corpus
def unlabelled_sources(manifest_df: pd.DataFrame) -> dict[str, list[str]]:
    """Source clip -> the dimensions its variants get no label on, from the manifest's optional
    `meta__unlabelled` column (';'-joined dimension names, as talkqa.shared_data writes it)."""
    if "meta__unlabelled" not in manifest_df:
        return {}
    out = {}
    for clip, cell in zip(manifest_df["clip_id"].astype(str), manifest_df["meta__unlabelled"]):
        try:
            dims = unlabelled_dimensions(cell)
        except ValueError as exc:
            raise UsageError(f"manifest row {clip}: {exc}") from None
        if dims:
            out[clip] = list(dims)
    return out


def degrade_corpus(manifest_df: pd.DataFrame, out_dir: str | Path, recipe: DegradeRecipe | None = None,
                   seed: int = 0, variants: int | None = None, progress: Callable[[int, int], None] | None = None,
                   workers: int = 1) -> pd.DataFrame:
    """Degrade every clip of `manifest_df` (columns clip_id, video, optional speaker) into
    `variants` labelled variants under out_dir; returns the variant manifest (as in manifest.csv).
    Failed sources are listed in out_dir/status.parquet and `result.attrs['failures']`."""

    recipe = recipe or DegradeRecipe.load()
    variants = variants or recipe.variants
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if manifest_df.empty:
        raise UsageError("the manifest has no clips to degrade")
    df = manifest_df.copy()
    df["clip_id"] = df["clip_id"].astype(str)
    speakers = (df["speaker"] if "speaker" in df else pd.Series([None] * len(df), index=df.index))
    df["speaker"] = [str(s) if isinstance(s, str) and s else c for s, c in zip(speakers, df["clip_id"])]
    tasks = []
    for i, r in enumerate(df.itertuples(index=False)):
        rng = np.random.default_rng([seed, _stable(r.clip_id) % (2 ** 63), 7])
        others = df[df["speaker"] != r.speaker]["video"].tolist()
        donors = [others[k] for k in rng.permutation(len(others))[: recipe.donors]] if others else []
        tasks.append({"source_clip": r.clip_id, "video": str(r.video), "speaker": r.speaker,
                      "variants": variants, "donors": donors})
    atomic_write_text(out / "recipe.yaml", yaml.safe_dump(recipe.model_dump(), sort_keys=True))
    rows, diags, statuses = [], [], []
    if progress:
        progress(0, len(tasks))
    for _, res in run_tasks(degrade_source, tasks, args=(str(out), recipe.model_dump(), seed),
                            workers=max(1, min(workers, len(tasks)))):
        rows += res["rows"]
        diags += res["diagnostics"]
        statuses.append(res["status"])
        if progress:
            progress(len(statuses), len(tasks))
    if not rows:
        first = next((s for s in statuses if s["status"] != "ok"), {"message": "no variants"})
        raise UsageError(f"no variant could be written; first failure: {first['source_clip']}: {first['message']}")
    manifest = pd.DataFrame(rows)
    counts = manifest.groupby("speaker")["source_clip"].nunique().to_dict()
    split = assign_splits(counts, recipe.split_shares, seed)
    manifest["split"] = manifest["speaker"].map(split)
    front = ["clip_id", "video", "speaker", "split", "source_clip", "artifacts", *LABEL_COLUMNS, "duration_s"]
    sev = sorted(c for c in manifest.columns if c.startswith("severity__"))
    manifest = manifest[front + sev + [c for c in manifest.columns if c not in front + sev]]
    manifest[sev] = manifest[sev].fillna(0.0)
    for source, dims in unlabelled_sources(df).items():
        # a source whose own recording is poor on a dimension is no 'clean' to fall from: its variants
        # get no label there (recorded in configs/shared_data.yaml `recording`; applied to cached rows too)
        manifest.loc[manifest["source_clip"] == source, [f"mos_{d}" for d in dims]] = np.nan
    if recipe.labelled is not None:
        manifest[[f"mos_{d}" for d in DIMENSION_NAMES if d not in recipe.labelled]] = np.nan
    manifest = manifest.sort_values("clip_id").reset_index(drop=True)
    atomic_write_bytes(out / "manifest.csv", manifest.to_csv(index=False).encode())
    diag = pd.DataFrame(diags, columns=list(DIAGNOSTIC_COLUMNS))
    diag = diag[diag["clip_id"].isin(set(manifest["clip_id"]))].sort_values(["clip_id", "start", "dimension"])
    write_parquet(diag.reset_index(drop=True), out / "diagnostics.parquet", producer="degrade",
                  params_hash=recipe.params_hash(), extra={"seed": seed, "fps": FPS})
    write_parquet(pd.DataFrame(statuses), out / "status.parquet", producer="degrade", params_hash=recipe.params_hash())
    manifest.attrs["failures"] = [f"{s['source_clip']}: {s['status']}: {s['message']}" for s in statuses if s["status"] != "ok"]
    return manifest
