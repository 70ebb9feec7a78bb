"""A whole store read into memory: what fusion, stacking and training share (they read the store,
never an expert or a feature family).

`load_store` gathers hand-crafted features, expert token sequences + metadata, expert scalars and
the 1 s window grid; `merge_store_data` joins several stores. `StoreData.view(...)` gives the same data
without some experts or without the hand-crafted features (ablations) without copying arrays.
Labels for a store's clips are in talkqa/labels.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .errors import TalkqaError, UsageError
from .store import Store, parquet_meta, read_parquet

MODALITIES = ("audio", "visual", "audiovisual")


@dataclass(frozen=True)
class ExpertInfo:
    name: str
    dim: int
    modality: str
    version: str
    weights_hash: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ExpertTokens:
    info: ExpertInfo
    emb: dict[str, np.ndarray]  # clip_id -> (n_tokens, dim) float32
    t_mid: dict[str, np.ndarray]  # clip_id -> (n_tokens,) token centre in seconds


@dataclass
class StoreData:
    root: Path
    clip_ids: list[str]
    handcrafted: pd.DataFrame  # index clip_id, float columns <family>__<feature>
    experts: dict[str, ExpertTokens]
    scalars: pd.DataFrame  # index clip_id, <expert>__<scalar>
    windows: dict[str, np.ndarray]  # clip_id -> (n_windows, 2) [t_start, t_end]
    use_handcrafted: bool = True

    @property
    def feature_columns(self) -> list[str]:
        return list(self.handcrafted.columns) if self.use_handcrafted else []

    @property
    def expert_names(self) -> list[str]:
        return list(self.experts)

    def view(self, drop_experts: tuple[str, ...] | list[str] = (), use_handcrafted: bool = True) -> "StoreData":
        unknown = set(drop_experts) - set(self.experts)
        if unknown:
            raise UsageError(f"cannot drop unknown expert(s) {sorted(unknown)}; the store has {self.expert_names}")
        experts = {k: v for k, v in self.experts.items() if k not in set(drop_experts)}
        scalar_cols = [c for c in self.scalars.columns if c.split("__", 1)[0] in experts]
        return dataclasses.replace(self, experts=experts, scalars=self.scalars[scalar_cols],
                                   use_handcrafted=self.use_handcrafted and use_handcrafted)

    def schema(self) -> dict:
        """What a model trained on this data expects from a store."""
        return {"feature_columns": self.feature_columns,
                "experts": {k: v.info.as_dict() for k, v in self.experts.items()}}


def _expert_names(store: Store) -> list[str]:
    folder = store.root / "experts"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".parquet")] for p in folder.glob("*.parquet") if not p.name.endswith(".scalars.parquet"))


def _read_tokens(path: Path, name: str) -> ExpertTokens:
    meta = parquet_meta(path)
    for key in ("dim", "modality"):
        if key not in meta:
            raise TalkqaError(f"{path}: metadata has no {key!r}; rerun `talkqa embed {name}` to rewrite it")
    if meta["modality"] not in MODALITIES:
        raise TalkqaError(f"{path}: modality {meta['modality']!r} is not one of {MODALITIES}")
    info = ExpertInfo(name, int(meta["dim"]), meta["modality"], str(meta.get("version", "")),
                      str(meta.get("weights_hash", "")))
    table = pq.read_table(path)
    clip = table.column("clip_id").to_numpy(zero_copy_only=False)
    mid = (table.column("t_start").to_numpy() + table.column("t_end").to_numpy()) / 2
    flat = table.column("emb").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    emb = np.asarray(flat, np.float32).reshape(len(clip), info.dim)
    emb_by, mid_by = {}, {}
    if len(clip):
        order = np.argsort(clip, kind="stable")
        clip_sorted = clip[order]
        bounds = np.flatnonzero(np.r_[True, clip_sorted[1:] != clip_sorted[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            idx = order[a:b]
            idx = idx[np.argsort(mid[idx], kind="stable")]
            emb_by[clip_sorted[a]] = emb[idx]
            mid_by[clip_sorted[a]] = mid[idx].astype(np.float32)
    return ExpertTokens(info, emb_by, mid_by)


def load_store(store_dir: str | Path, experts: list[str] | None = None) -> StoreData:
    store = Store(Path(store_dir))
    if not store.root.is_dir():
        raise UsageError(f"store {store.root} not found; run `talkqa extract` (and `talkqa embed`) first")
    hc = read_parquet(store.handcrafted)
    hc["clip_id"] = hc["clip_id"].astype(str)
    hc = hc.set_index("clip_id")
    hc = hc[[c for c in hc.columns if "__" in c]].astype(np.float64)
    names = _expert_names(store) if experts is None else list(experts)
    tokens, scalars = {}, []
    for name in names:
        path = store.expert(name)
        if not path.is_file():
            raise UsageError(f"{path} not found; run `talkqa embed {name}` first")
        tokens[name] = _read_tokens(path, name)
        spath = store.root / "experts" / f"{name}.scalars.parquet"
        if spath.is_file():
            sc = read_parquet(spath)
            sc["clip_id"] = sc["clip_id"].astype(str)
            scalars.append(sc.set_index("clip_id").astype(np.float64))
    clip_ids = list(hc.index)
    scal = pd.concat(scalars, axis=1).reindex(clip_ids) if scalars else pd.DataFrame(index=clip_ids)
    windows: dict[str, np.ndarray] = {}
    if store.windows.is_file():
        w = pq.read_table(store.windows, columns=["clip_id", "t_start", "t_end"]).to_pandas()
        for cid, g in w.groupby("clip_id", sort=False):
            windows[str(cid)] = g[["t_start", "t_end"]].to_numpy(np.float32)
    return StoreData(store.root, clip_ids, hc, tokens, scal, windows)


def merge_store_data(parts: list[StoreData]) -> StoreData:
    """Several stores as one (e.g. the real degrade corpus + the synthetic one), for training on both.

    The stores must agree on what a clip looks like: the same hand-crafted columns and the same experts
    (name, version, weights); a clip_id may appear in only one of them."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for other in parts[1:]:
        if list(other.handcrafted.columns) != list(first.handcrafted.columns):
            diff = sorted(set(other.handcrafted.columns) ^ set(first.handcrafted.columns))
            raise UsageError(f"stores {first.root} and {other.root} have different hand-crafted columns "
                             f"({', '.join(diff[:3]) or 'same names, different order'}); extract both with one config")
        if {k: v.info for k, v in other.experts.items()} != {k: v.info for k, v in first.experts.items()}:
            raise UsageError(f"stores {first.root} and {other.root} have different experts "
                             f"({_describe_experts(first)} vs {_describe_experts(other)}); embed both with the same "
                             "experts (`talkqa embed --store DIR --experts ...`)")
    clip_ids = [cid for p in parts for cid in p.clip_ids]
    seen: dict[str, Path] = {}
    for p in parts:
        for cid in p.clip_ids:
            if cid in seen:
                raise UsageError(f"clip_id {cid!r} is in both {seen[cid]} and {p.root}; clip ids must be unique "
                                 "across the stores trained on together")
            seen[cid] = p.root
    experts = {name: ExpertTokens(info.info, {k: v for p in parts for k, v in p.experts[name].emb.items()},
                                  {k: v for p in parts for k, v in p.experts[name].t_mid.items()})
               for name, info in first.experts.items()}
    scalars = pd.concat([p.scalars for p in parts], axis=0)
    windows = {k: v for p in parts for k, v in p.windows.items()}
    return StoreData(first.root, clip_ids, pd.concat([p.handcrafted for p in parts], axis=0), experts,
                     scalars, windows, use_handcrafted=all(p.use_handcrafted for p in parts))


def _describe_experts(data: StoreData) -> str:
    return ", ".join(f"{k} {v.info.version} {v.info.weights_hash[:8]}" for k, v in data.experts.items()) or "none"
