"""`talkqa embed`: run registered experts over the clips of a store.

For every clip with features (status ok / partial) the expert reads `tracks/<key>.npz` and writes
tokens; results are cached per clip under parts/ keyed on (track key, expert params, weights hash),
then gathered into `experts/<name>.parquet` (clip_id, t_start, t_end, emb: fixed-size list) and
`experts/<name>.scalars.parquet` (clip_id, <name>__<scalar> ...).

Out-of-fold readings (`out_of_fold=[DIR, ...]`, weights trained with `train-expert --fold K/N`): each clip is
read by the fold weights that never saw its speaker. Experts remember their training clips, so a model
stacked on an expert should learn from such readings: they look like the expert's readings of new footage.
The store then records the configured expert's weights hash (the readings stand in for it) and, under
`out_of_fold`, which fold weights read which speakers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from talkqa.config import config_path, load_config
from talkqa.engine import run_tasks
from talkqa.errors import UsageError
from talkqa.features.clip import PreprocessedClip
from talkqa.store import Store, cache_key, read_parquet, write_parquet

from .base import EXPERTS, Tokens, clip_group


def expert_config_path(name: str, config_dir: str | Path | None = None) -> Path:
    return Path(config_dir) / f"{name}.yaml" if config_dir else config_path("experts", f"{name}.yaml")


def create_expert(name: str, config_dir: str | Path | None = None, overrides: list[str] | None = None,
                  device: str = "cpu"):
    """Build an expert from configs/experts/<name>.yaml (+ overrides). Does no I/O beyond the YAML, which
    every expert must have: its settings are part of what a model records, never silent class defaults."""
    cls = EXPERTS.get(name)
    path = expert_config_path(name, config_dir)
    if not path.is_file():
        raise UsageError(f"expert {name!r} has no config file {path}; every expert needs one "
                         f"(configs/experts/{name}.yaml in talkqa, or --config-dir DIR with {name}.yaml)")
    return cls(load_config(cls.config_cls, path, overrides or []), device=device)


def tokens_table(clip_id: str, tokens, dim: int) -> pa.Table:
    emb = np.asarray(tokens.emb, dtype=np.float32).reshape(-1, dim)
    return pa.table({
        "clip_id": pa.array([clip_id] * len(emb), pa.string()),
        "t_start": pa.array(np.asarray(tokens.t_start, np.float64)),
        "t_end": pa.array(np.asarray(tokens.t_end, np.float64)),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel(), pa.float32()), dim),
    })


def write_tokens(table: pa.Table, path: Path, expert, extra: dict | None = None) -> None:
    write_parquet(table, path, f"experts.{expert.name}", expert.params_hash(), expert.weights_hash(),
                  {"version": expert.version, **(extra or {})})


@dataclass
class EmbedTask:
    clip_id: str
    track_key: str


_LOADED: dict[str, object] = {}


def _expert_in_worker(name: str, config_json: str, device: str):
    """Load each expert once per worker process (pool or Ray), not once per clip. Keyed on the config
    and the weights' content, so new weights under the same path are picked up."""
    cls = EXPERTS.get(name)
    expert = cls(cls.config_cls.model_validate_json(config_json), device=device)
    key = f"{name}:{expert.params_hash()}:{expert.weights_hash()}:{device}"
    if key not in _LOADED:
        _LOADED[key] = expert.load()
    return _LOADED[key]


def embed_clip(task: EmbedTask, name: str, config_json: str, device: str, store_root: str) -> dict:
    store = Store(store_root)
    expert = _expert_in_worker(name, config_json, device)
    key = cache_key(task.track_key, expert.params_hash(), expert.weights_hash())
    done = store.parts.read_json(key, f"{name}.json")
    if done is not None:
        return {**done, "cached": True, "part": key}
    try:
        clip = PreprocessedClip.load(store.track(task.track_key))
        # byte-identical videos share one track, which keeps the id of the clip extracted first; an
        # expert's error message must name this clip (the tokens already do, via task.clip_id)
        clip.clip_id = task.clip_id
        tokens = expert.embed(clip)
        write_tokens(tokens_table(task.clip_id, tokens, expert.dim), store.part(key, f"{name}.parquet"), expert)
        result = {"status": "ok", "message": "", "scalars": {f"{name}__{k}": float(v) for k, v in tokens.scalars.items()}}
    except Exception as exc:  # one bad clip never stops the batch
        result = {"status": "embed_error", "message": f"{type(exc).__name__}: {exc}", "scalars": {}}
    if result["status"] == "ok":
        store.parts.write_json(key, result, f"{name}.json")
    return {**result, "cached": False, "part": key}


def run_embed(store_dir: str | Path, name: str, config_dir: str | Path | None = None,
              overrides: list[str] | None = None, device: str = "cpu", engine: str = "local", workers: int = 1,
              ray_address: str | None = None, on_done: Callable[[dict], None] | None = None,
              out_of_fold: list[str | Path] | None = None) -> pd.DataFrame:
    store = Store(Path(store_dir))
    status = read_parquet(store.status)
    usable = status[status["status"].isin(["ok", "no_audio", "silent_audio"])]
    usable = usable[[store.track(k).exists() for k in usable["cache_key"]]]
    tasks = [EmbedTask(r.clip_id, r.cache_key) for r in usable.itertuples()]
    if not tasks:
        raise UsageError(f"{store.root}: no clips with tracks; run `talkqa extract` (with save_tracks: true) first")
    expert = create_expert(name, config_dir, overrides, device)
    results: dict[str, dict] = {}
    if out_of_fold:
        groups = [clip_group(r.clip_id, getattr(r, "speaker", "")) for r in usable.itertuples()]
        runs, results, extra = _fold_runs(name, config_dir, overrides, device, out_of_fold, tasks, groups)
        if on_done:
            for clip_id, res in results.items():
                on_done({"clip_id": clip_id, **res})
    else:
        runs, extra = [(tasks, expert.config.model_dump_json())], {}
    for batch, config_json in runs:
        for task, res in run_tasks(embed_clip, batch, (name, config_json, device, str(store.root)), engine,
                                   workers, ray_address):
            results[task.clip_id] = res
            if on_done:
                on_done({"clip_id": task.clip_id, **res})
    _gather(store, name, expert, tasks, results, extra)
    return pd.DataFrame([{"clip_id": t.clip_id, "status": results[t.clip_id]["status"],
                          "message": results[t.clip_id]["message"], "cached": results[t.clip_id]["cached"]}
                         for t in tasks])


@dataclass
class FoldWeights:
    """Weights trained with `train-expert --fold K/N`: which speaker groups they held out and trained on."""

    path: Path
    heldout_groups: list[str]
    train_groups: list[str]

    @classmethod
    def read(cls, name: str, folder: str | Path) -> "FoldWeights":
        folder = Path(folder)
        meta_path = folder / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        metrics = meta.get("metrics", {})
        if meta.get("name") != name or "train_groups" not in metrics:
            raise UsageError(f"--out-of-fold {folder}: not {name} weights whose meta.json names the speakers they "
                             f"trained on; train one per fold with `talkqa train-expert {name} --fold K/N --out DIR`")
        return cls(folder, list(metrics.get("heldout_groups", [])), list(metrics["train_groups"]))


def _fold_runs(name, config_dir, overrides, device, folders, tasks, groups) -> tuple[list, dict, dict]:
    """Out-of-fold embedding: (per fold: its clips and the expert config that reads them with the fold's
    weights; error rows for clips no fold can read; the store metadata naming the folds)."""
    folds = [FoldWeights.read(name, d) for d in folders]
    chosen = [_fold_for(folds, g) for g in groups]
    runs, described = [], []
    for fold in folds:
        fold_expert = create_expert(name, config_dir, [*(overrides or []), f"weights={json.dumps(str(fold.path))}"],
                                    device)
        runs.append(([t for t, c in zip(tasks, chosen) if c is fold], fold_expert.config.model_dump_json()))
        described.append({"weights": str(fold.path), "weights_hash": fold_expert.weights_hash(),
                          "heldout_groups": fold.heldout_groups})
    errors = {t.clip_id: {"status": "embed_error", "scalars": {}, "cached": False,
                          "message": f"speaker {g!r} is in the training clips of every fold "
                                     f"({', '.join(str(f.path) for f in folds)}): no out-of-fold reading"}
              for t, g, c in zip(tasks, groups, chosen) if c is None}
    return runs, errors, {"out_of_fold": described}


def _fold_for(folds: list[FoldWeights], group: str) -> FoldWeights | None:
    """The fold weights to read a speaker with: the fold that held it out, else one that never trained on it."""
    return next((f for f in folds if group in f.heldout_groups), None) or \
        next((f for f in folds if group not in f.train_groups), None)


def _gather(store: Store, name: str, expert, tasks, results, extra: dict | None = None) -> None:
    tables, rows = [], []
    for t in tasks:
        res = results[t.clip_id]
        row = {"clip_id": t.clip_id, **expert.empty_scalars(), **res.get("scalars", {})}
        rows.append(row)
        if res["status"] == "ok":
            tab = pq.read_table(store.part(res["part"], f"{name}.parquet"))
            tables.append(tab.set_column(0, "clip_id", pa.array([t.clip_id] * len(tab), pa.string())))
    meta = {"dim": expert.dim, "input_kind": expert.input_kind, "modality": expert.modality, **expert.store_metadata(),
            **(extra or {})}
    empty = tokens_table("", Tokens(np.zeros(0), np.zeros(0), np.zeros((0, expert.dim))), expert.dim)
    write_tokens(pa.concat_tables(tables) if tables else empty, store.expert(name), expert, meta)
    write_parquet(pd.DataFrame(rows, columns=["clip_id", *expert.columns()]), store.root / "experts" / f"{name}.scalars.parquet",
                  f"experts.{name}", expert.params_hash(), expert.weights_hash())
