"""Batch scoring (`talkqa score --manifest`): every clip of a manifest into one Parquet table, in a
local process pool or on Ray, resumable.

Each finished clip is cached atomically under `<out>.parts/` keyed on the video and audio bytes, the
model and the talkqa version: a rerun after an interruption skips finished clips, and a different
model or a changed file recomputes. A clip that fails gets a row with its error; the batch goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from talkqa import __version__
from talkqa.config import stable_hash
from talkqa.engine import ENGINES, ray_session, run_tasks
from talkqa.errors import UsageError
from talkqa.features.extract import tasks_from_manifest
from talkqa.store import PartCache, cache_key, file_digest, write_parquet
from talkqa.tasks import DIMENSION_NAMES

from .bundle import DEFAULT_MODEL_DIR, load_bundle
from .result import Result, failed_result
from .scorer import Scorer


@dataclass
class ScoreTask:
    clip_id: str
    video: str
    audio: str | None = None
    key: str = ""


_SCORERS: dict[tuple, Scorer] = {}


def _scorer_in_worker(model_dir: str, device: str, threads: int) -> Scorer:
    """One Scorer per worker process (pool or Ray), not one per clip. Keyed on the model's content
    (model.json), not only its path, so a model retrained into the same folder is reloaded."""
    k = (model_dir, file_digest(Path(model_dir) / "model.json"), device, threads)
    if k not in _SCORERS:
        _SCORERS[k] = Scorer(model_dir, device, threads)
    return _SCORERS[k]


def _row(task: ScoreTask, result: Result) -> dict:
    return {"clip_id": task.clip_id, "status": "ok" if result.ok else (result.error_code or "internal_error"),
            "message": result.error or "", "result": result.to_dict(), "elapsed_s": round(result.elapsed_s, 3)}


def score_task(task: ScoreTask, model_dir: str, device: str = "cpu", threads: int = 1) -> dict:
    """Top-level (picklable) per-clip function for the local process pool."""
    return _row(task, _scorer_in_worker(model_dir, device, threads).score(task.video, task.audio))


class ScoreWorker:
    """A Ray actor: loads the model once, then scores clip after clip."""

    def __init__(self, model_dir: str, device: str = "cpu", threads: int = 1):
        self.scorer = Scorer(model_dir, device, threads)

    def score(self, task: ScoreTask) -> dict:
        return _row(task, self.scorer.score(task.video, task.audio))


def _run_ray(tasks: list[ScoreTask], model_dir: str, device: str, threads: int, workers: int, address: str | None):
    """One ScoreWorker actor per worker (the model loads once per actor), fed by Ray's ActorPool;
    results come back in manifest order. A Scorer never raises for a bad clip, so an error here is
    the actor itself failing: a model it cannot load stops the batch, anything else fails one clip."""
    from ray.util import ActorPool  # lazy: optional dependency

    if not tasks:
        return
    with ray_session(workers, address) as ray:
        actor_cls = ray.remote(num_cpus=1)(ScoreWorker)
        pool = ActorPool([actor_cls.remote(model_dir, device, threads) for _ in range(max(1, min(workers, len(tasks))))])
        for t in tasks:
            pool.submit(lambda actor, task: actor.score.remote(task), t)
        for t in tasks:
            try:
                res = pool.get_next()
            except ray.exceptions.RayError as exc:
                msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                if "UsageError" in str(exc) or "ModelMismatchError" in str(exc):
                    raise UsageError(msg) from None
                res = _row(t, failed_result(t.video, f"{t.video}: Ray worker failed ({msg})", "internal_error", {}))
            yield t, res


def batch_cache_dir(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".parts")


def run_batch(manifest: pd.DataFrame, out_path: str | Path, model_dir: str | Path | None = None,
              engine: str = "local", workers: int = 1, ray_address: str | None = None, device: str = "cpu",
              threads: int = 1, on_done: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Score every manifest clip into `out_path` (Parquet, one status row per clip, manifest order).

    Each finished clip is cached atomically in `<out>.parts/<key>.json`, key = hash(video and audio
    bytes, model.json, talkqa version): a rerun after an interruption skips finished clips, and a
    different model or a changed file recomputes."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    folder = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    bundle = load_bundle(folder, device)  # refuse a bad model before any work (exit 2)
    model = {"name": bundle.name, "version": bundle.version}
    model_hash = stable_hash(bundle.meta)
    del bundle
    parts = PartCache(batch_cache_dir(out_path))
    tasks = [ScoreTask(t.clip_id, t.video, t.audio) for t in tasks_from_manifest(manifest)]
    rows: dict[str, dict] = {}
    todo = []
    for t in tasks:
        try:
            t.key = cache_key(file_digest(t.video), file_digest(t.audio) if t.audio else "", model_hash, __version__)
        except OSError:
            t.key = ""  # missing / unreadable file: let the scorer produce its clear error row
        done = parts.read_json(t.key)
        if done is not None:
            rows[t.clip_id] = {**done, "clip_id": t.clip_id, "cached": True}
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
            parts.write_json(task.key, {k: v for k, v in res.items() if k != "cached"})
        rows[task.clip_id] = res
        if on_done:
            on_done(res)
    table = batch_table([rows[t.clip_id] for t in tasks], tasks, model)
    write_parquet(table, out_path, "talkqa.score", model_hash)
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
