"""Experts: learned components that read a preprocessed clip and emit a token sequence.

An expert declares, before it runs: its `name` (registry key = config file stem = Parquet file stem
= column prefix), `version`, `input_kind`, embedding `dim` and `scalar_names`. It implements
`embed(clip) -> Tokens`, and `fit` / `save` / `load` for its weights. The base owns everything else:
reading tracks from the store, caching per clip, status rows, writing `experts/<name>.parquet`
(tokens) and `experts/<name>.scalars.parquet` (one row per clip) with producer / version / params /
weights-hash metadata.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from talkqa.features.clip import PreprocessedClip
from talkqa.registry import Registry

EXPERTS: Registry["Expert"] = Registry("expert", column_prefix=True)

PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


class ExpertConfig(BaseModel):
    """Common expert settings; each expert subclasses this with its own typed fields."""

    model_config = ConfigDict(extra="forbid")
    weights: str | None = None  # folder with trained weights; None = the shipped default (experts/weights/<name>)
    token_s: float = 0.2  # token length in seconds
    batch_size: int = 64


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
        self.model_ = None  # set by load() / fit()

    # ---- declared before running -------------------------------------------------------------
    @property
    def dim(self) -> int:
        raise NotImplementedError

    def columns(self) -> list[str]:
        return [f"{self.name}__{s}" for s in self.scalar_names]

    # ---- implemented by each expert ------------------------------------------------------------
    def embed(self, clip: PreprocessedClip) -> Tokens:
        raise NotImplementedError

    def fit(self, stores: list[str | Path], seed: int = 0) -> dict[str, Any]:
        """Train on the tracks of the given stores; returns held-out metrics for the model card."""
        raise NotImplementedError

    def _new_model(self):
        """An untrained network of the configured shape (what load() fills with weights)."""
        raise NotImplementedError

    # ---- weights: one checkpoint format and model card for every expert (experts/checkpoint.py) --
    summary: ClassVar[str] = ""  # model card: what it is and what its scalars mean
    limits: ClassVar[str] = ""  # model card: known limits
    training_data: ClassVar[str] = ""  # model card: what fit() trains on

    def load(self) -> "Expert":
        from .checkpoint import load_checkpoint

        model = self._new_model()
        load_checkpoint(self.weights_dir(), model, self.name)
        self.model_ = model.to(self.device).eval()
        return self

    def card_extras(self) -> dict[str, Any]:
        """Expert-specific model-card fields (e.g. the voice expert's backbone)."""
        return {}

    def store_metadata(self) -> dict[str, Any]:
        """Expert-specific fields for the Parquet metadata of `experts/<name>.parquet` (e.g. the backbone)."""
        return {}

    def save(self, folder: str | Path) -> None:
        from .checkpoint import save_checkpoint

        metrics = getattr(self, "metrics_", {})
        save_checkpoint(folder, self.model_, self.config, {
            "name": self.name, "version": self.version, "metrics": metrics, "summary": self.summary,
            "limits": self.limits, "seed": metrics.get("seed"), **self.card_extras(),
            "training_data": self.training_data,
            "command": metrics.get("command", f"talkqa train-expert {self.name} --store STORE"),
        })

    # ---- shared ---------------------------------------------------------------------------------
    def weights_dir(self) -> Path:
        return Path(self.config.weights) if self.config.weights else PACKAGE_WEIGHTS / self.name

    def weights_hash(self) -> str:
        folder = self.weights_dir()
        h = hashlib.blake2b(digest_size=8)
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    h.update(p.name.encode())
                    h.update(p.read_bytes())
        return h.hexdigest()

    def params_hash(self) -> str:
        from talkqa.config import stable_hash

        return stable_hash({"name": self.name, "version": self.version, **self.config.model_dump(mode="json")})

    def empty_scalars(self) -> dict[str, float]:
        return {c: float("nan") for c in self.columns()}


def training_clips(stores: list[str | Path]) -> list[tuple[str, Path, str]]:
    """(clip_id, track path, group) for every usable clip of the stores. The group is the speaker
    when the manifest named one, else the clip's folder: held-out evaluation leaves out whole groups."""
    from talkqa.store import Store, read_parquet

    rows = []
    for root in stores:
        store = Store(Path(root))
        status = read_parquet(store.status)
        for r in status.itertuples():
            if r.status in ("ok", "no_audio", "silent_audio") and store.track(r.cache_key).exists():
                speaker = getattr(r, "speaker", "") or ""
                group = speaker or (r.clip_id.rsplit("/", 1)[0] if "/" in r.clip_id else r.clip_id)
                rows.append((r.clip_id, store.track(r.cache_key), group))
    return rows


def split_by_group(items: list[tuple], share: float, rng: np.random.Generator) -> tuple[list, list, list[str]]:
    """Hold out whole groups (item[0] is the group): (train items, held-out items, held-out groups).
    Same-person clips never sit on both sides, so held-out figures are speaker-disjoint."""
    groups = sorted({item[0] for item in items})
    held = set(rng.choice(groups, max(1, int(round(share * len(groups)))), replace=False))
    return [i for i in items if i[0] not in held], [i for i in items if i[0] in held], sorted(held)
