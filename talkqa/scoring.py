"""Scoring API: `Scorer(model_dir).score(path) -> Result`, and the batch runner behind `talkqa score --manifest`.

A Scorer loads a model folder (talkqa/model_bundle.py) once, with the experts it lists, and scores a
clip in memory: preprocessing + hand-crafted features (with the model's own extraction
config) -> every expert's tokens -> fusion + stacking -> the per-dimension score (`combine`), the AV
offset, and diagnostics. A clip that cannot be scored gives a Result with `error` set (one sentence)
and null scores; Scorer never raises for bad input. A model folder this installation cannot reproduce
is refused when the Scorer is built (ModelMismatchError, a UsageError).

Diagnostics come from two sources:
  * the fusion model's per-window diagnostic head: a 1 s window is flagged for a dimension when its
    problem probability exceeds that dimension's threshold in model.json (chosen on the validation
    speakers at training time, see configs/train/default.yaml); adjacent flagged windows merge into
    one segment whose severity is the highest probability in it;
  * clear hand-crafted evidence (EVIDENCE below), thresholds fixed so that they fire only on
    unambiguous cases: frozen face, mouth moving in silence, mouth shut during speech, clipping.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import ClipError, TalkqaError, UsageError
from .tasks import DIMENSION_NAMES

# Dimensions that cannot be judged without a voice: null (with a warning) for clips with no audio track.
NEEDS_AUDIO = ("lip_sync", "audio_quality", "consistency")

# What a model-flagged window means, in words.
ISSUE_TEXT = {
    "lip_sync": "lips out of sync with the speech",
    "expression": "unnatural face or head motion",
    "audio_quality": "degraded voice (noise, distortion or artefacts)",
    "consistency": "voice and face out of step",
    "overall": "overall quality drops",
}


@dataclass(frozen=True)
class Evidence:
    """A hand-crafted window rule: flag windows where `column` >= `at_least` (and `when` holds)."""

    dimension: str
    issue: str
    column: str
    at_least: float
    when: tuple[tuple[str, str, float], ...] = ()  # (column, "<=" | ">=", value)


EVIDENCE = (
    # 90 % of a window's frames repeat the previous one: a frozen picture, not a calm face
    Evidence("expression", "face frozen", "expression__frozen_share", 0.9),
    # mostly silent window (<= 10 % speech) where the mouth keeps moving in >= 60 % of the frames
    Evidence("lip_sync", "mouth moves during silence", "lipsync__moving_mouth_silence_share", 0.6,
             (("lipsync__speech_share", "<=", 0.1),)),
    # mostly speech (>= 50 %) while the mouth stays shut in >= 80 % of those frames
    Evidence("lip_sync", "mouth closed while speaking", "lipsync__closed_mouth_speech_share", 0.8,
             (("lipsync__speech_share", ">=", 0.5),)),
    # >= 1 % of samples on the clipping plateau
    Evidence("audio_quality", "audio clipping", "audio__clipping_share", 0.01),
)


# ------------------------------------------------------------------------------------------ result
@dataclass
class Result:
    clip: str
    scores: dict[str, float | None]
    sync: dict[str, float | None]
    diagnostics: list[dict]
    warnings: list[str]
    error: str | None
    model: dict[str, str]
    windows: list[dict] = field(default_factory=list)  # t_start, t_end, per-dimension problem probability
    error_code: str | None = None  # one of talkqa.errors.ERROR_CODES when error is set
    elapsed_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict, repr=False)  # for the HTML report (keep_details)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """The documented JSON object (keys in this order)."""
        return {
            "clip": self.clip,
            "scores": {d: self.scores.get(d) for d in DIMENSION_NAMES},
            "sync": {"offset_frames": self.sync.get("offset_frames"), "confidence": self.sync.get("confidence")},
            "diagnostics": [{k: d[k] for k in ("start", "end", "dimension", "issue", "severity")} for d in self.diagnostics],
            "warnings": list(self.warnings),
            "error": self.error,
            "model": {"name": self.model.get("name"), "version": self.model.get("version")},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


def _num(v, digits: int = 4) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, digits) if np.isfinite(v) else None


def failed_result(clip: str, message: str, code: str, model: dict) -> Result:
    return Result(str(clip), {d: None for d in DIMENSION_NAMES}, {"offset_frames": None, "confidence": None}, [], [],
                  message, dict(model), error_code=code)


# ------------------------------------------------------------------------------------------ segments
def _segments(mask: np.ndarray, t0: np.ndarray, t1: np.ndarray, value: np.ndarray) -> list[tuple[float, float, float]]:
    """Merge runs of flagged consecutive windows: [(start, end, max value)]."""
    from features.signals import runs

    return [(float(t0[a]), float(t1[b - 1]), float(np.max(value[a:b]))) for a, b in runs(mask)]


def _offset_words(frames: float) -> str:
    n = int(round(abs(frames)))
    return f"audio lags the lips by {n} frame{'s' * (n != 1)}" if frames > 0 else \
        f"audio leads the lips by {n} frame{'s' * (n != 1)}"


def _model_diagnostics(probs: pd.DataFrame, thresholds: dict[str, float], win_feats: pd.DataFrame,
                       skip: set[str]) -> list[dict]:
    out = []
    t0, t1 = probs["t_start"].to_numpy(float), probs["t_end"].to_numpy(float)
    for dim in DIMENSION_NAMES:
        if dim in skip or dim not in probs or dim not in thresholds:
            continue
        p = probs[dim].to_numpy(float)
        for start, end, sev in _segments(p > thresholds[dim], t0, t1, p):
            issue = ISSUE_TEXT[dim]
            inside = win_feats[(win_feats["t_start"] >= start - 1e-6) & (win_feats["t_end"] <= end + 1e-6)]
            if dim == "lip_sync" and "lipsync__av_offset_frames" in inside:
                off = np.nanmedian(inside["lipsync__av_offset_frames"]) if inside["lipsync__av_offset_frames"].notna().any() else np.nan
                if np.isfinite(off) and abs(off) >= 2:
                    issue = f"{issue}: {_offset_words(off)}"
            out.append({"start": round(start, 2), "end": round(end, 2), "dimension": dim, "issue": issue,
                        "severity": round(sev, 2)})
    return out


def _evidence_diagnostics(win_feats: pd.DataFrame, skip: set[str]) -> list[dict]:
    out = []
    if win_feats.empty:
        return out
    t0, t1 = win_feats["t_start"].to_numpy(float), win_feats["t_end"].to_numpy(float)
    for rule in EVIDENCE:
        if rule.dimension in skip or rule.column not in win_feats:
            continue
        v = win_feats[rule.column].to_numpy(float)
        mask = np.nan_to_num(v, nan=-np.inf) >= rule.at_least
        for col, op, ref in rule.when:
            w = win_feats[col].to_numpy(float) if col in win_feats else np.full(len(v), np.nan)
            mask &= (w <= ref) if op == "<=" else (w >= ref)
        for start, end, sev in _segments(mask, t0, t1, np.nan_to_num(v)):
            out.append({"start": round(start, 2), "end": round(end, 2), "dimension": rule.dimension,
                        "issue": rule.issue, "severity": round(min(1.0, sev), 2)})
    return out


# ------------------------------------------------------------------------------------------ scorer
class Scorer:
    """Load a model folder once; score many clips. `model_dir=None` = the shipped default model."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", threads: int | None = None):
        from .model_bundle import load_bundle

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.device = device
        self.bundle = load_bundle(model_dir, device)
        self.experts = self.bundle.create_experts(device)
        for expert in self.experts.values():
            expert.weights_hash_ = expert.weights_hash()  # hashed once, not per clip
        self.model = {"name": self.bundle.name, "version": self.bundle.version}

    # ------------------------------------------------------------------ in-memory store of one clip
    def _store_data(self, cid: str, path: Path, row: dict, windows: pd.DataFrame, tokens: dict):
        from fusion.data import ExpertInfo, ExpertTokens, StoreData

        hc = pd.DataFrame([{k: v for k, v in row.items() if "__" in k}], index=pd.Index([cid], name="clip_id"))
        hc = hc.astype(np.float64)
        experts, scalars = {}, {}
        for name, expert in self.experts.items():
            entry = self.bundle.meta["experts"][name]
            info = ExpertInfo(name, int(entry["dim"]), entry["modality"], expert.version, expert.weights_hash_)
            tok = tokens.get(name)
            if tok is not None and len(tok.t_start):
                mid = ((np.asarray(tok.t_start) + np.asarray(tok.t_end)) / 2).astype(np.float32)
                experts[name] = ExpertTokens(info, {cid: tok.emb.astype(np.float32)}, {cid: mid})
            else:
                experts[name] = ExpertTokens(info, {}, {})
            for col in expert.columns():
                scalars[col] = np.nan
            if tok is not None:
                scalars.update({f"{name}__{k}": float(v) for k, v in tok.scalars.items()})
        sc = pd.DataFrame([scalars], index=pd.Index([cid], name="clip_id")).astype(np.float64)
        win = windows[["t_start", "t_end"]].to_numpy(np.float32)
        return StoreData(path, [cid], hc, experts, sc, {cid: win})

    def _sync(self, data, cid: str, has_audio: bool) -> dict[str, float | None]:
        if not has_audio:
            return {"offset_frames": None, "confidence": None}
        for src in self.bundle.config.sync_sources:
            vals = []
            for col in (src.offset, src.confidence):
                table = data.scalars if col in data.scalars else data.handcrafted if col in data.handcrafted else None
                vals.append(np.nan if table is None else float(table.loc[cid, col]))
            if np.isfinite(vals[0]):
                return {"offset_frames": _num(vals[0], 2), "confidence": _num(vals[1], 4)}
        return {"offset_frames": None, "confidence": None}

    def _combine(self, fused: pd.Series, stacked: pd.Series | None) -> dict[str, float | None]:
        how = self.bundle.meta["combine"]
        out = {}
        for dim in DIMENSION_NAMES:
            f = float(fused.get(dim, np.nan))
            s = float(stacked.get(dim, np.nan)) if stacked is not None else np.nan
            if how == "fusion":
                v = f
            elif how == "stacking":
                v = s if np.isfinite(s) else f
            else:
                v = np.nanmean([f, s]) if np.isfinite([f, s]).any() else np.nan
            out[dim] = _num(np.clip(v, 1.0, 5.0) if np.isfinite(v) else np.nan, 4)
        return out

    def _analyse(self, clip):
        """Hand-crafted features and expert tokens of a preprocessed clip, in two lanes: the audio-only
        families and experts on a second thread, the rest on this one. openSMILE, ONNX Runtime (DNSMOS),
        torch and NumPy release the GIL, so on 2 cores the lanes overlap; each lane runs its parts in
        the usual order, so the values are those of a sequential run (`talkqa extract` + `talkqa embed`).
        Returns (row, windows, series, tokens, failed experts {name: exception})."""
        from concurrent.futures import ThreadPoolExecutor

        from .extract import _families, compute_features

        config = self.bundle.extract_config
        families = _families(config)

        tokens, failed = {}, {}  # each lane writes only its own experts' keys

        def lane(audio_side: bool):
            features = compute_features(clip, config, [f for f in families if (f.modality == "audio") == audio_side])
            for name, expert in self.experts.items():
                if (expert.modality == "audio") == audio_side:
                    try:
                        tokens[name] = expert.embed(clip)
                    except Exception as exc:
                        failed[name] = exc
            return features

        with ThreadPoolExecutor(1, thread_name_prefix="talkqa-audio") as pool:
            audio_lane = pool.submit(lane, True)
            row_v, win_v, series_v = lane(False)
            row_a, win_a, series_a = audio_lane.result()
        # Back in the order a sequential run gives: families of the config, experts of the model.
        row = {**row_v, **row_a}
        row = {c: row[c] for f in families for c in f.columns()}
        win = pd.concat([win_v, win_a.drop(columns=["t_start", "t_end"])], axis=1)
        windows = win[["t_start", "t_end", *[c for f in families for c in f.window_columns()]]]
        order = list(self.experts)
        return (row, windows, {**series_v, **series_a}, {n: tokens[n] for n in order if n in tokens},
                {n: failed[n] for n in order if n in failed})

    def score(self, path: str | Path, audio: str | Path | None = None, keep_details: bool = False) -> Result:
        """Score one clip; never raises for bad input (the Result carries the error)."""
        from features.preprocess import preprocess

        t0 = time.perf_counter()
        clip_name = str(path)
        try:
            clip = preprocess(path, self.bundle.extract_config.preprocess, clip_id=Path(path).stem, audio_path=audio)
            cid = clip.clip_id
            warnings = list(clip.warnings)
            row, windows, series, tokens, failed = self._analyse(clip)
            for name, exc in failed.items():  # the expert cannot read this clip: the model scores without it
                if clip.has_audio or self.experts[name].modality == "visual":
                    warnings.append(f"expert {name} could not run ({exc}); scored without it")
            data = self._store_data(cid, Path(path), row, windows, tokens)
            fused = self.bundle.fusion.predict(data, [cid]).iloc[0]
            stacked = self.bundle.stacking.predict(data, [cid]).iloc[0]
            scores = self._combine(fused, stacked)
            skip: set[str] = set()
            if not clip.has_audio:
                skip = set(NEEDS_AUDIO)
                for d in NEEDS_AUDIO:
                    scores[d] = None
                warnings.append(f"no audio track: {', '.join(NEEDS_AUDIO)} are not scored")
            probs = self.bundle.fusion.predict_windows(data, [cid]).get(cid)
            diags = _evidence_diagnostics(windows, skip)
            if probs is not None and len(probs):
                diags = _model_diagnostics(probs, self.bundle.thresholds(), windows, skip) + diags
            diags.sort(key=lambda d: (d["start"], DIMENSION_NAMES.index(d["dimension"])))
            win_rows = [] if probs is None else [
                {k: _num(v, 4) for k, v in r.items()} for r in probs.to_dict("records")]
            if skip:
                for r in win_rows:
                    for d in skip:
                        r[d] = None
            result = Result(clip_name, scores, self._sync(data, cid, clip.has_audio), diags, warnings, None,
                            dict(self.model), win_rows)
            if keep_details:
                result.details = {"data": data, "clip_id": cid, "series": series, "windows": windows, "row": row,
                                  "fps": clip.fps, "duration_s": clip.duration_s, "has_audio": clip.has_audio,
                                  "fusion": fused.to_dict(), "stacking": stacked.to_dict(),
                                  "thresholds": self.bundle.thresholds(), "scorer": self}
        except ClipError as exc:
            result = failed_result(clip_name, str(exc), exc.code, self.model)
        except TalkqaError as exc:
            result = failed_result(clip_name, str(exc), "internal_error", self.model)
        except Exception as exc:  # a bug must not stop a batch; the message says it is ours
            result = failed_result(clip_name, f"{clip_name}: internal error in talkqa ({type(exc).__name__}: {exc}); "
                                              "please report it with this clip", "internal_error", self.model)
            result.details = {"traceback": traceback.format_exc(limit=8)}
        result.elapsed_s = time.perf_counter() - t0
        return result


def score(path: str | Path, audio: str | Path | None = None, model_dir: str | Path | None = None) -> Result:
    """Score one clip with the shipped default model (or `model_dir`). Loads the model on each call:
    build a `Scorer` once to score many clips."""
    return Scorer(model_dir).score(path, audio)


# ------------------------------------------------------------------------------------------ batch
@dataclass
class ScoreTask:
    clip_id: str
    video: str
    audio: str | None = None
    key: str = ""


_SCORERS: dict[tuple, Scorer] = {}


def _scorer_in_worker(model_dir: str | None, device: str, threads: int) -> Scorer:
    """One Scorer per worker process (pool or Ray), not one per clip."""
    k = (model_dir, device, threads)
    if k not in _SCORERS:
        _SCORERS[k] = Scorer(model_dir, device, threads)
    return _SCORERS[k]


def _row(task: ScoreTask, result: Result) -> dict:
    return {"clip_id": task.clip_id, "status": "ok" if result.ok else (result.error_code or "internal_error"),
            "message": result.error or "", "result": result.to_dict(), "elapsed_s": round(result.elapsed_s, 3)}


def score_task(task: ScoreTask, model_dir: str | None, device: str = "cpu", threads: int = 1) -> dict:
    """Top-level (picklable) per-clip function for the local process pool."""
    scorer = _scorer_in_worker(model_dir, device, threads)
    return _row(task, scorer.score(task.video, task.audio))


class ScoreWorker:
    """A Ray actor: loads the model once, then scores clip after clip."""

    def __init__(self, model_dir: str | None, device: str = "cpu", threads: int = 1):
        self.scorer = Scorer(model_dir, device, threads)

    def score(self, task: ScoreTask) -> dict:
        return _row(task, self.scorer.score(task.video, task.audio))


def _run_ray(tasks: list[ScoreTask], model_dir, device, threads, workers, address):
    from .engine import ray_session

    with ray_session(workers, address) as ray:
        actor_cls = ray.remote(num_cpus=1)(ScoreWorker)
        actors = [actor_cls.remote(model_dir, device, threads) for _ in range(max(1, min(workers, len(tasks))))]
        todo = list(tasks)
        pending = {}
        for actor in actors:  # two in flight per actor: the next clip is ready when one finishes
            for _ in range(2):
                if todo:
                    t = todo.pop(0)
                    pending[actor.score.remote(t)] = (t, actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task, actor = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    if "UsageError" in str(exc) or "ModelMismatchError" in str(exc):
                        raise UsageError(msg) from None
                    res = _row(task, failed_result(task.video, f"{task.video}: Ray worker failed ({msg})",
                                                   "internal_error", {}))
                yield task, res
                if todo:
                    t = todo.pop(0)
                    pending[actor.score.remote(t)] = (t, actor)


def batch_cache_dir(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".parts")


def _tasks(manifest: pd.DataFrame) -> list[ScoreTask]:
    from .extract import tasks_from_manifest

    return [ScoreTask(t.clip_id, t.video, t.audio) for t in tasks_from_manifest(manifest)]


def run_batch(manifest: pd.DataFrame, out_path: str | Path, model_dir: str | Path | None = None,
              engine: str = "local", workers: int = 1, ray_address: str | None = None, device: str = "cpu",
              threads: int = 1, on_done: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Score every manifest clip into `out_path` (Parquet, one status row per clip, manifest order).

    Each finished clip is cached atomically in `<out>.parts/<key>.json`, key = hash(video and audio
    bytes, model.json, talkqa version): a rerun after an interruption skips finished clips, and a
    different model or a changed file recomputes."""
    from . import __version__
    from .config import stable_hash
    from .engine import ENGINES, run_tasks
    from .model_bundle import DEFAULT_MODEL_DIR, load_bundle
    from .store import atomic_write_bytes, atomic_write_json, cache_key, file_digest

    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    folder = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    bundle = load_bundle(folder, device)  # refuse a bad model before any work (exit 2)
    model = {"name": bundle.name, "version": bundle.version}
    model_hash = stable_hash(bundle.meta)
    del bundle
    parts = batch_cache_dir(out_path)
    parts.mkdir(parents=True, exist_ok=True)
    tasks = _tasks(manifest)
    rows: dict[str, dict] = {}
    todo = []
    for t in tasks:
        try:
            t.key = cache_key(file_digest(t.video), file_digest(t.audio) if t.audio else "", model_hash, __version__)
        except OSError:
            t.key = ""  # missing / unreadable file: let the scorer produce its clear error row
        done = parts / f"{t.key}.json"
        if t.key and done.is_file():
            rows[t.clip_id] = {**json.loads(done.read_text()), "clip_id": t.clip_id, "cached": True}
            if on_done:
                on_done(rows[t.clip_id])
        else:
            todo.append(t)
    runner = (_run_ray(todo, str(folder), device, threads, workers, ray_address) if engine == "ray"
              else run_tasks(score_task, todo, (str(folder), device, threads), "local", workers))
    for task, res in runner:
        res = {**res, "clip_id": task.clip_id, "cached": False}
        # missing files and our own bugs are not cached: a new file or a fix should be picked up
        if task.key and res["status"] not in ("internal_error", "missing_file"):
            atomic_write_json(parts / f"{task.key}.json", {k: v for k, v in res.items() if k != "cached"})
        rows[task.clip_id] = res
        if on_done:
            on_done(res)
    table = batch_table([rows[t.clip_id] for t in tasks], tasks, model)
    import io

    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    atomic_write_bytes(Path(out_path), buf.getvalue())
    return table


def batch_table(rows: list[dict], tasks: list[ScoreTask], model: dict) -> pd.DataFrame:
    recs = []
    for t, r in zip(tasks, rows):
        res = r["result"]
        rec = {"clip_id": t.clip_id, "video": t.video, "status": r["status"], "message": r["message"]}
        rec.update({f"score_{d}": res["scores"][d] for d in DIMENSION_NAMES})
        rec.update({"sync_offset_frames": res["sync"]["offset_frames"], "sync_confidence": res["sync"]["confidence"],
                    "n_diagnostics": len(res["diagnostics"]), "diagnostics": json.dumps(res["diagnostics"]),
                    "warnings": " | ".join(res["warnings"]), "model_name": model["name"],
                    "model_version": model["version"], "elapsed_s": r.get("elapsed_s", 0.0),
                    "cached": bool(r.get("cached", False))})
        recs.append(rec)
    df = pd.DataFrame(recs)
    for d in DIMENSION_NAMES:
        df[f"score_{d}"] = df[f"score_{d}"].astype("float64")
    for c in ("sync_offset_frames", "sync_confidence"):
        df[c] = df[c].astype("float64")
    return df


__all__ = ["Scorer", "Result", "score", "run_batch", "NEEDS_AUDIO", "EVIDENCE", "ISSUE_TEXT"]
