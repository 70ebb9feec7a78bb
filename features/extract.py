"""`talkqa extract`: manifest -> preprocessing -> hand-crafted features -> Parquet store.

Each clip is processed independently by `process_clip` (a top-level function, so the local pool
and Ray can run it). Its results land in `parts/<key>.*` first; a rerun finds them by cache key and
skips the clip, so a killed run resumes and a parameter change recomputes. At the end the parts of
the manifest's clips are gathered into handcrafted.parquet, windows.parquet and status.parquet.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from talkqa import __version__
from talkqa.config import ExtractConfig, save_config
from talkqa.engine import run_tasks
from talkqa.errors import OK, PARTIAL_CODES, ClipError, TalkqaError
from talkqa.features.decode import check_file
from talkqa.features.families import FAMILIES, frame_windows
from talkqa.features.preprocess import preprocess
from talkqa.store import (
    Store,
    atomic_write_json,
    cache_key,
    file_digest,
    read_parquet,
    write_parquet,
)

PRODUCER = "talkqa.extract"


@dataclass
class ClipTask:
    clip_id: str
    video: str
    audio: str | None = None
    speaker: str = ""  # carried into status rows: training code groups held-out data by it


@dataclass
class ClipStatus:
    clip_id: str
    status: str
    message: str = ""
    video: str = ""
    speaker: str = ""
    cache_key: str = ""
    duration_s: float = float("nan")
    n_frames: int = 0
    n_windows: int = 0
    face_coverage: float = float("nan")
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    cached: bool = False

    @property
    def has_features(self) -> bool:
        return self.status == OK or self.status in PARTIAL_CODES


def clip_cache_key(task: ClipTask, config: ExtractConfig) -> str:
    parts = [file_digest(task.video), file_digest(task.audio) if task.audio else "", config.params_hash(), __version__]
    return cache_key(*parts)


def families_of(config: ExtractConfig) -> list:
    """The feature-family instances an extraction config asks for, in its order."""
    return [FAMILIES.create(name, **config.features.params.get(name, {})) for name in config.features.families]


def compute_features(clip, config: ExtractConfig, families: list | None = None):
    """Hand-crafted features of a preprocessed clip: (clip row dict, windows DataFrame, series dict).
    `families`: family instances to run (default: every family of the config)."""

    fc = config.features
    windows = frame_windows(clip.n_frames, clip.fps, fc.window_s, fc.min_window_s)
    row: dict[str, float] = {}
    win = {"t_start": windows[:, 0] / clip.fps, "t_end": windows[:, 1] / clip.fps}
    series: dict[str, np.ndarray] = {}
    for fam in families_of(config) if families is None else families:
        out = fam.extract(clip, windows)
        row.update(out.clip)
        win.update(out.windows)
        series.update(out.series)
    return row, pd.DataFrame(win), series


def status_of(clip) -> str:
    if clip.audio is None:
        return "no_audio"
    if clip.info.get("silent_audio"):
        return "silent_audio"
    return OK


def process_clip(task: ClipTask, config: ExtractConfig, store_root: str) -> ClipStatus:
    """Preprocess + features for one clip; never raises (errors become the status row)."""

    store = Store(store_root)
    t0 = time.perf_counter()
    status = ClipStatus(clip_id=task.clip_id, status=OK, video=str(task.video), speaker=task.speaker)
    try:
        check_file(task.video, "video")
        if task.audio:
            check_file(task.audio, "audio")
        key = clip_cache_key(task, config)
        status.cache_key = key
        done = store.part(key, "status.json")
        if done.exists():
            cached = ClipStatus(**json.loads(done.read_text()))
            cached.clip_id, cached.video, cached.speaker, cached.cached = task.clip_id, str(task.video), task.speaker, True
            cached.elapsed_s = time.perf_counter() - t0  # this run's cost: hashing the file
            return cached
        clip = preprocess(task.video, config.preprocess, clip_id=task.clip_id, audio_path=task.audio)
        row, windows, series = compute_features(clip, config)
        row = {"clip_id": task.clip_id, **row}
        windows.insert(0, "clip_id", task.clip_id)
        write_parquet(pd.DataFrame([row]), store.part(key, "clip.parquet"), PRODUCER, config.params_hash())
        write_parquet(windows, store.part(key, "windows.parquet"), PRODUCER, config.params_hash())
        if config.save_tracks:
            clip.save(store.track(key), series)
        status.status = status_of(clip)
        status.duration_s = clip.duration_s
        status.n_frames = clip.n_frames
        status.n_windows = len(windows)
        status.face_coverage = float(clip.info.get("face_coverage", np.nan))
        status.warnings = list(clip.warnings)
        status.message = "; ".join(clip.warnings)
    except ClipError as exc:
        status.status, status.message = exc.code, str(exc)
    except Exception as exc:  # a bug must not stop the batch; the row says it is ours
        status.status = "internal_error"
        status.message = f"internal error in talkqa ({type(exc).__name__}: {exc}); please report it with this clip"
        status.warnings = [traceback.format_exc(limit=6)]
    status.elapsed_s = time.perf_counter() - t0
    # Internal errors and missing files are not cached: a fix or a new file should be picked up.
    if status.cache_key and status.status not in ("internal_error", "missing_file"):
        atomic_write_json(store.part(status.cache_key, "status.json"), asdict(status))
    return status


def tasks_from_manifest(manifest: pd.DataFrame) -> list[ClipTask]:
    tasks = []
    for rec in manifest.to_dict("records"):
        audio = rec.get("audio")
        audio = None if audio is None or (isinstance(audio, float) and np.isnan(audio)) or pd.isna(audio) else str(audio)
        video = rec.get("video")
        speaker = rec.get("speaker")
        tasks.append(ClipTask(str(rec["clip_id"]), "" if video is None or pd.isna(video) else str(video), audio,
                              "" if speaker is None or pd.isna(speaker) else str(speaker)))
    return tasks


def run_extract(manifest: pd.DataFrame, store_dir: str | Path, config: ExtractConfig, engine: str = "local",
                workers: int = 1, ray_address: str | None = None,
                on_done: Callable[[ClipStatus], None] | None = None) -> pd.DataFrame:
    """Extract every manifest clip into the store; returns the status table (manifest order)."""
    store = Store(Path(store_dir)).ensure()
    save_config(config, store.config)
    tasks = tasks_from_manifest(manifest)
    results: dict[str, ClipStatus] = {}
    for task, status in run_tasks(process_clip, tasks, (config, str(store.root)), engine, workers, ray_address):
        results[task.clip_id] = status
        if on_done:
            on_done(status)
    statuses = [results[t.clip_id] for t in tasks]
    gather(store, statuses, config)
    return status_table(statuses)


def status_table(statuses: list[ClipStatus]) -> pd.DataFrame:
    rows = []
    for s in statuses:
        d = asdict(s)
        d["warnings"] = " | ".join(w for w in s.warnings if "Traceback" not in w)
        rows.append(d)
    return pd.DataFrame(rows)


def gather(store: Store, statuses: list[ClipStatus], config: ExtractConfig) -> None:
    """Collect per-clip parts into the stage datasets (atomic; manifest order)."""
    clip_rows, window_frames = [], []
    for s in statuses:
        if not s.has_features:
            continue
        part = store.part(s.cache_key, "clip.parquet")
        if not part.exists():
            continue
        row = read_parquet(part)
        row["clip_id"] = s.clip_id
        clip_rows.append(row)
        win = read_parquet(store.part(s.cache_key, "windows.parquet"))
        win["clip_id"] = s.clip_id
        window_frames.append(win)
    ph = config.params_hash()
    handcrafted = pd.concat(clip_rows, ignore_index=True) if clip_rows else pd.DataFrame({"clip_id": pd.Series(dtype=str)})
    windows = (pd.concat(window_frames, ignore_index=True) if window_frames
               else pd.DataFrame({"clip_id": pd.Series(dtype=str), "t_start": [], "t_end": []}))
    write_parquet(handcrafted, store.handcrafted, PRODUCER, ph)
    write_parquet(windows, store.windows, PRODUCER, ph)
    write_parquet(status_table(statuses), store.status, PRODUCER, ph)


def extract_one(video: str | Path, config: ExtractConfig | None = None, audio: str | Path | None = None):
    """Preprocess + features for a single file without a store (Python API / `make demo`).
    Raises ClipError with a clear message for bad input."""

    config = config or ExtractConfig()
    clip = preprocess(video, config.preprocess, clip_id=Path(video).stem, audio_path=audio)
    row, windows, series = compute_features(clip, config)
    return clip, row, windows, series


__all__ = ["ClipTask", "ClipStatus", "process_clip", "run_extract", "extract_one", "TalkqaError"]
