"""Experts: learned components that read a preprocessed clip and emit a token sequence.

An expert declares, before it runs: its `name` (registry key = config file stem = Parquet file stem
= column prefix), `version`, `input_kind`, embedding `dim` and `scalar_names`. It implements only its
computation:

    _new_model()                          the untrained network
    embed(clip) -> Tokens                 inference
    training_item(clip, group)            what one training clip contributes (item[0] is its group), or None
    training_batch(items, rng, n)         a batch of tensors drawn from items
    training_loss(model, batch)           the loss of one batch
    evaluate(items, seed) -> dict         held-out figures for the model card
    describe(scalars) -> str              optional: what it saw in one clip, in words (explained scores)

The base owns the rest: the fit loop (seed, speaker-disjoint held-out split, optimiser, schedule, time
budget, early stopping), weights (load/save, the model card), and, with experts/embed.py, reading tracks
from the store, caching per clip and writing `experts/<name>.parquet` (tokens) and
`experts/<name>.scalars.parquet` with producer / version / params / weights-hash metadata.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from talkqa.config import stable_hash
from talkqa.features.clip import PreprocessedClip
from talkqa.onnx_model import Graph, export_graph, is_export_file, is_exportable, load_exports, run_module, \
    write_exports_manifest
from talkqa.registry import Registry
from talkqa.splits import group_folds, hold_out_groups
from talkqa.store import Store, read_parquet

from .checkpoint import load_checkpoint, save_checkpoint

EXPERTS: Registry["Expert"] = Registry("expert", column_prefix=True)

PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


class ExpertConfig(BaseModel):
    """Common expert settings (inference and the base's fit loop); each expert subclasses this with its
    own typed fields and sets its defaults in configs/experts/<name>.yaml."""

    model_config = ConfigDict(extra="forbid")
    weights: str | None = None  # folder with trained weights; None = the shipped default (experts/weights/<name>)
    token_s: float = 0.2  # token length in seconds
    batch_size: int = 64
    # training (Expert.fit)
    steps: int = Field(1000, ge=1, description="optimiser steps")
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: Literal["constant", "cosine", "onecycle"] = "cosine"
    eval_share: float = Field(0.25, ge=0, lt=1, description="share of speaker groups held out for evaluation")
    max_train_seconds: float | None = Field(None, description="stop early rather than overrun a CPU budget")
    patience: int = Field(0, ge=0, description="early stopping: validation checks without improvement before "
                                               "stopping (0 = off); validation groups come out of the training side")
    val_every: int = Field(100, ge=1, description="steps between validation-loss checks when patience > 0")
    # Fields added after weights were shipped: left out of params_hash while at their default, so that a new
    # option does not orphan every store and model embedded before it existed.
    hash_omits_default: ClassVar[tuple[str, ...]] = ()

    def hashed(self) -> dict[str, Any]:
        """The settings params_hash covers: every field, less those of hash_omits_default at their default."""
        data = self.model_dump(mode="json")
        for name in self.hash_omits_default:
            if getattr(self, name) == type(self).model_fields[name].get_default(call_default_factory=True):
                data.pop(name, None)
        return data


def steps_from_epochs(data):
    """Expert configs recorded before talkqa 0.3 (in model.json and weights folders) give training
    length as epochs x steps_per_epoch; the fit loop counts steps."""
    if isinstance(data, dict) and ("epochs" in data or "steps_per_epoch" in data):
        data = dict(data)
        data["steps"] = int(data.pop("epochs", 1)) * int(data.pop("steps_per_epoch", 1))
    return data


@dataclass
class Tokens:
    t_start: np.ndarray  # (N,) seconds
    t_end: np.ndarray  # (N,) seconds
    emb: np.ndarray  # (N, dim) float32
    scalars: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        emb = np.asarray(self.emb, dtype=np.float32)
        # (N, dim) stays as it is (N may be 0); a flat array is split into N rows
        self.emb = emb if emb.ndim == 2 and len(emb) == len(self.t_start) else emb.reshape(len(self.t_start), -1)


class Expert:
    name: ClassVar[str]
    version: ClassVar[str] = "0"
    input_kind: ClassVar[str]  # what it reads from the clip: "mouth+audio", "landmarks", "audio"
    # Which side of the fusion's cross-attention its tokens join: "audio" tokens query "visual" ones;
    # "audiovisual" tokens (e.g. sync) join the visual side.
    modality: ClassVar[str]
    scalar_names: ClassVar[tuple[str, ...]] = ()
    config_cls: ClassVar[type[ExpertConfig]] = ExpertConfig

    def __init__(self, config: ExpertConfig | dict | None = None, device: str = "cpu"):
        if config is None or isinstance(config, dict):
            config = self.config_cls.model_validate(config or {})
        self.config = config
        self.device = device
        self.model_ = None  # the torch network: set by fit(), or by load() when there is no ONNX export
        self.sessions_ = None  # ONNX Runtime sessions per graph: set by load() from a fresh export

    # ---- declared before running -------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def columns(self) -> list[str]:
        return [f"{self.name}__{s}" for s in self.scalar_names]

    # ---- implemented by each expert ------------------------------------------------------------
    def embed(self, clip: PreprocessedClip) -> Tokens:
        raise NotImplementedError

    # ---- training: the expert's parts ----------------------------------------------------------
    min_training_items: ClassVar[int] = 4
    training_requirement: ClassVar[str] = "usable clips"  # says what training_item accepts, for errors

    def training_item(self, clip: PreprocessedClip, group: str) -> tuple | None:
        """What one clip contributes to training, as a tuple whose first element is its group (speaker),
        or None when the clip cannot be used."""
        raise NotImplementedError

    def training_batch(self, items: list[tuple], rng: np.random.Generator, n: int) -> tuple:
        raise NotImplementedError

    def training_loss(self, model, batch: tuple):
        raise NotImplementedError

    def evaluate(self, items: list[tuple], seed: int = 1) -> dict[str, Any]:
        """Held-out figures for the model card (the trained network is self.model_)."""
        return {}

    def trainable_parameters(self, model) -> list:
        return [p for p in model.parameters() if p.requires_grad]

    # ---- training: the loop, the same for every expert ------------------------------------------
    def fit(self, stores: list[str | Path], seed: int = 0, fold: tuple[int, int] | None = None) -> dict[str, Any]:
        """Train on the tracks of the given stores; returns held-out metrics for the model card."""
        items = []
        for _, track, group in training_clips(stores):
            item = self.training_item(PreprocessedClip.load(track), group)
            if item is not None:
                items.append(item)
        return {**self.fit_items(items, seed, fold), "stores": [str(s) for s in stores]}

    def fit_items(self, items: list[tuple], seed: int = 0, fold: tuple[int, int] | None = None) -> dict[str, Any]:
        """Train on in-memory training items: whole groups are held out for evaluation (and, with early
        stopping, for validation), so every held-out figure is speaker-disjoint. `fold=(k, n)` holds out
        the k-th of n speaker folds instead of a random share: n such experts together read every speaker
        with weights that never saw it (`talkqa embed --out-of-fold`)."""
        import torch  # lazy: slow import, only on this path

        cfg = self.config
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        if len(items) < self.min_training_items:
            raise ValueError(f"{self.name}: need at least {self.min_training_items} {self.training_requirement}; "
                             f"found {len(items)}")
        train, test, held = _fold_split(items, *fold, seed) if fold else _split(items, cfg.eval_share, seed)
        val: list[tuple] = []
        if cfg.patience:
            train, val, _ = _split(train, cfg.eval_share, seed + 1)
        model = self._new_model().to(self.device)
        opt = torch.optim.AdamW(self.trainable_parameters(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = {"constant": lambda: None,
                 "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps),
                 "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps,
                                                                         pct_start=0.1)}[cfg.schedule]()
        val_batches = [self.training_batch(val, np.random.default_rng(seed + 2), cfg.batch_size) for _ in range(4)] \
            if val else []
        best, best_state, bad, stopped = np.inf, None, 0, "steps"
        t0 = time.perf_counter()
        losses: list[float] = []
        model.train()
        for step in range(1, cfg.steps + 1):
            batch = self.training_batch(train, rng, cfg.batch_size)
            loss = self.training_loss(model, tuple(x.to(self.device) for x in batch))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
            if cfg.max_train_seconds and time.perf_counter() - t0 > cfg.max_train_seconds:
                stopped = "time budget"
                break
            if val_batches and step % cfg.val_every == 0:
                model.eval()
                with torch.no_grad():
                    v = float(np.mean([float(self.training_loss(model, tuple(x.to(self.device) for x in b)))
                                       for b in val_batches]))
                model.train()
                if v < best - 1e-4:
                    best, bad = v, 0
                    best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
                else:
                    bad += 1
                    if bad >= cfg.patience:
                        stopped = "early stop"
                        break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.model_, self.sessions_ = model.eval(), None
        with torch.no_grad():
            heldout = self.evaluate(test, seed + 1)
        self.metrics_ = {
            "train_clips": len(train), "val_clips": len(val), "heldout_clips": len(test), "heldout_groups": held,
            "train_groups": sorted({item[0] for item in train + val}),  # which speakers its readings may flatter
            **({"fold": f"{fold[0]}/{fold[1]}"} if fold else {}),
            "train_seconds": round(time.perf_counter() - t0, 1), "steps": step, "stopped_by": stopped,
            "final_loss": float(np.mean(losses[-50:])), "seed": seed, **heldout,
        }
        return self.metrics_

    def _new_model(self):
        """An untrained network of the configured shape (what load() fills with weights)."""
        raise NotImplementedError

    # ---- weights: one checkpoint format and model card for every expert (experts/checkpoint.py) --
    summary: ClassVar[str] = ""  # model card: what it is and what its scalars mean
    limits: ClassVar[str] = ""  # model card: known limits
    training_data: ClassVar[str] = ""  # model card: what fit() trains on

    weights_file: ClassVar[str] = "model.pt"  # what experts/checkpoint.py writes; ONNX exports are tied to it

    def load(self) -> "Expert":
        """Ready to embed: the weights folder's ONNX exports when they are fresh (and the device is the CPU),
        else the torch network with the weights (a clear error when there are none)."""
        folder = self.weights_dir()
        if self.device == "cpu" and (folder / self.weights_file).is_file():
            self.sessions_ = load_exports(folder, [self.weights_file])
            if self.sessions_ is not None:
                self.model_ = None
                return self
        self.model_ = self._load_network()
        return self

    def _load_network(self):
        model = self._new_model()
        load_checkpoint(self.weights_dir(), model, self.name)
        return model.to(self.device).eval()

    def network(self):
        """The torch network; after a load() that found ONNX exports, it is read from the weights now."""
        if self.model_ is None:
            self.model_ = self._load_network()
        return self.model_

    # ---- inference through ONNX Runtime or torch: the same graphs either way -------------------------
    def onnx_graphs(self, model) -> dict[str, Graph]:
        """The networks embed() runs (experts/nets/<name>.py), each a Graph: exported by save(), run by
        run_graph() through ONNX Runtime or, without a fresh export, through torch. {} = no export."""
        return {}

    def run_graph(self, name: str, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run one of the expert's graphs on NumPy inputs; returns its outputs as NumPy arrays."""
        if self.sessions_ is not None:
            return self.sessions_[name].run(*inputs)
        model = self.network()
        built = getattr(self, "torch_graphs_", None)
        if built is None or built[0] is not model:  # built once per network (fit() makes a new one)
            self.torch_graphs_ = built = (model, self.onnx_graphs(model))
        return run_module(built[1][name].module, *inputs, device=self.device)

    def export_onnx(self, folder: str | Path | None = None) -> list[str]:
        """Write the ONNX graphs of the weights in `folder` (default: the expert's weights) beside them, with
        onnx.json tying them to the weights; returns the graph names ([] when the expert has none or the
        `onnx` package is not installed). The network exported is the one load() reads back from the
        weights file (float16 weights), so the ONNX and torch paths give the same numbers."""
        folder = Path(folder) if folder is not None else self.weights_dir()
        if not is_exportable():
            return []
        model = self._new_model()
        load_checkpoint(folder, model, self.name)
        graphs = self.onnx_graphs(model.eval())
        if not graphs:
            return []
        for name, graph in graphs.items():
            export_graph(graph, folder / f"{name}.onnx")
        write_exports_manifest(folder, [self.weights_file], {name: f"{name}.onnx" for name in graphs},
                               {"expert": self.name, "version": self.version})
        return list(graphs)

    def card_extras(self) -> dict[str, Any]:
        """Expert-specific model-card fields (e.g. the voice expert's backbone)."""
        return {}

    def store_metadata(self) -> dict[str, Any]:
        """Expert-specific fields for the Parquet metadata of `experts/<name>.parquet` (e.g. the backbone)."""
        return {}

    def save(self, folder: str | Path) -> None:
        """Weights, config, model card and (when `onnx` is installed) the ONNX exports."""
        metrics = getattr(self, "metrics_", {})
        save_checkpoint(folder, self.network(), self.config, {
            "name": self.name, "version": self.version, "metrics": metrics, "summary": self.summary,
            "limits": self.limits, "seed": metrics.get("seed"), **self.card_extras(),
            "training_data": self.training_data,
            "command": metrics.get("command", f"talkqa train-expert {self.name} --store STORE"),
        })
        self.export_onnx(folder)

    # ---- shared ---------------------------------------------------------------------------------
    def weights_dir(self) -> Path:
        return Path(self.config.weights) if self.config.weights else PACKAGE_WEIGHTS / self.name

    def weights_hash(self) -> str:
        folder = self.weights_dir()
        h = hashlib.blake2b(digest_size=8)
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if p.is_file() and not is_export_file(p):  # exports derive from the weights
                    h.update(p.name.encode())
                    h.update(p.read_bytes())
        return h.hexdigest()

    def params_hash(self) -> str:
        return stable_hash({"name": self.name, "version": self.version, **self.config.hashed()})

    def empty_scalars(self) -> dict[str, float]:
        return {c: float("nan") for c in self.columns()}

    # ---- how a person reads it: an explained score names the expert and says what it saw ------------
    display_name: ClassVar[str] = ""  # e.g. "lip-sync expert"; empty = "<name> expert"

    def title(self) -> str:
        return self.display_name or f"{self.name} expert"

    def describe(self, scalars: dict[str, float]) -> str:
        """What this expert saw in one clip, in words with its own readings, from its scalars (unprefixed
        names, NaN when not measured), e.g. "audio and lips agree — offset 0 frames, confidence 0.12".
        The default lists the first few finite scalars; experts override it with words."""
        readings = [f"{k.replace('_', ' ')} {float(v):.2f}" for k, v in scalars.items()
                    if k in self.scalar_names and v is not None and np.isfinite(v)][:3]
        return ", ".join(readings) if readings else "no reading for this clip"


def training_clips(stores: list[str | Path]) -> list[tuple[str, Path, str]]:
    """(clip_id, track path, group) for every usable clip of the stores. The group is the speaker
    when the manifest named one, else the clip's folder: held-out evaluation leaves out whole groups."""
    rows = []
    for root in stores:
        store = Store(Path(root))
        status = read_parquet(store.status)
        for r in status.itertuples():
            if r.status in ("ok", "no_audio", "silent_audio") and store.track(r.cache_key).exists():
                rows.append((r.clip_id, store.track(r.cache_key), clip_group(r.clip_id, getattr(r, "speaker", ""))))
    return rows


def clip_group(clip_id: str, speaker) -> str:
    """A clip's speaker group: the manifest's speaker, else the clip's folder."""
    speaker = speaker if isinstance(speaker, str) else ""
    return speaker or (clip_id.rsplit("/", 1)[0] if "/" in clip_id else clip_id)


def _fold_split(items: list[tuple], k: int, n: int, seed: int) -> tuple[list, list, list[str]]:
    """Hold out the k-th (1-based) of n speaker folds, shuffled with `seed`: the same seed and stores give
    the same folds, so folds 1..n of one seed cover every group exactly once."""
    if not 1 <= k <= n or n < 2:
        raise ValueError(f"fold {k}/{n}: need 2 <= n and 1 <= k <= n")
    groups = [item[0] for item in items]
    if len(set(groups)) < n:
        raise ValueError(f"fold {k}/{n}: the training clips have only {len(set(groups))} speaker groups")
    train, held = group_folds(groups, n, seed)[k - 1]
    return [items[i] for i in train], [items[i] for i in held], sorted({groups[i] for i in held})


def _split(items: list[tuple], share: float, seed: int) -> tuple[list, list, list[str]]:
    """Hold out whole groups (item[0] is the group): (train items, held-out items, held-out groups)."""
    groups = [item[0] for item in items]
    train, held = hold_out_groups(groups, share, seed)
    return [items[i] for i in train], [items[i] for i in held], sorted({groups[i] for i in held})
