"""Reading the Parquet store (and only the store) into arrays that fusion and stacking share.

`load_store` gathers hand-crafted features, expert token sequences + metadata, expert scalars and
the 1 s window grid; `load_labels` reads a manifest (or a human-label table) and, when one sits
beside it, `diagnostics.parquet`. `StoreData.view(...)` gives the same data without some experts or
without the hand-crafted features (ablations) without copying arrays.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from talkqa.errors import TalkqaError, UsageError
from talkqa.store import Store, parquet_meta, read_parquet
from talkqa.tasks import DIMENSION_NAMES, LABEL_COLUMNS, MOS_RANGE

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


# ------------------------------------------------------------------------------------------- labels
@dataclass
class Labels:
    table: pd.DataFrame  # index clip_id; columns speaker + mos_* (NaN where unlabelled)
    diagnostics: pd.DataFrame | None = None  # clip_id, start, end, dimension, ... (None: not available)
    pairs: pd.DataFrame | None = None  # clip_a, clip_b, dimension, votes_a, votes_b
    source: Path | None = None

    @property
    def dimensions(self) -> list[str]:
        return [d for d, c in zip(DIMENSION_NAMES, LABEL_COLUMNS) if c in self.table and self.table[c].notna().any()]

    def y(self, clip_ids: list[str]) -> np.ndarray:
        """(n, n_dimensions) labels in DIMENSIONS order; NaN where missing."""
        t = self.table.reindex(clip_ids)
        return np.stack([t[c].to_numpy(np.float64) if c in t else np.full(len(t), np.nan) for c in LABEL_COLUMNS], 1)

    def groups(self, clip_ids: list[str]) -> np.ndarray:
        return self.table.reindex(clip_ids)["speaker"].to_numpy()


def load_labels(path: str | Path, diagnostics: str | Path | None = None, pairs: str | Path | None = None) -> Labels:
    """Read labels from a manifest or a human-label table (clip_id + any mos_* columns, speaker optional).

    `diagnostics.parquet` next to the file is picked up unless another path is given."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"label file {path} not found")
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, sep=None, engine="python")
    if "clip_id" not in df:
        raise UsageError(f"{path}: needs a clip_id column")
    present = [c for c in LABEL_COLUMNS if c in df]
    if not present:
        raise UsageError(f"{path}: no label column; expected some of {', '.join(LABEL_COLUMNS)}")
    lo, hi = MOS_RANGE
    for c in present:
        bad = df.index[(df[c] < lo) | (df[c] > hi)]
        if len(bad):
            raise UsageError(f"{path}: row {int(bad[0]) + 1}, column {c!r}: MOS outside {lo}-{hi}")
    df["clip_id"] = df["clip_id"].astype(str)
    if df["clip_id"].duplicated().any():
        raise UsageError(f"{path}: clip_id {df['clip_id'][df['clip_id'].duplicated()].iloc[0]!r} appears twice")
    if "speaker" not in df:
        df["speaker"] = df["clip_id"]  # every clip its own group
    df["speaker"] = df["speaker"].fillna(df["clip_id"]).astype(str)
    table = df.set_index("clip_id")[["speaker", *present]]
    diag_path = Path(diagnostics) if diagnostics else path.parent / "diagnostics.parquet"
    diag = read_parquet(diag_path) if diag_path.is_file() else None
    if diagnostics and diag is None:
        raise UsageError(f"diagnostics file {diag_path} not found")
    pair_table = load_pairs(pairs) if pairs else None
    return Labels(table, diag, pair_table, path)


def merge_labels(parts: list[Labels]) -> Labels:
    """Label tables of several corpora as one; a clip_id may be labelled in only one of them."""
    if len(parts) == 1:
        return parts[0]
    table = pd.concat([p.table for p in parts], axis=0)
    if table.index.duplicated().any():
        cid = table.index[table.index.duplicated()][0]
        raise UsageError(f"clip_id {cid!r} is labelled in more than one of "
                         f"{', '.join(str(p.source) for p in parts)}; clip ids must be unique across label files")
    # A corpus without diagnostics would otherwise read as "no problem anywhere": keep None unless all have them.
    diags = [p.diagnostics for p in parts]
    diagnostics = pd.concat(diags, ignore_index=True) if all(d is not None for d in diags) else None
    pairs = [p.pairs for p in parts if p.pairs is not None]
    return Labels(table, diagnostics, pd.concat(pairs, ignore_index=True) if pairs else None, parts[0].source)


def load_pairs(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"pairs file {path} not found")
    df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, sep=None, engine="python")
    need = {"clip_a", "clip_b", "dimension", "votes_a", "votes_b"}
    if missing := need - set(df.columns):
        raise UsageError(f"{path}: pairs table lacks column(s) {sorted(missing)}")
    unknown = set(df["dimension"]) - set(DIMENSION_NAMES)
    if unknown:
        raise UsageError(f"{path}: unknown dimension(s) {sorted(unknown)}; known: {', '.join(DIMENSION_NAMES)}")
    df["clip_a"] = df["clip_a"].astype(str)
    df["clip_b"] = df["clip_b"].astype(str)
    return df


def window_targets(labels: Labels, data: StoreData, clip_ids: list[str]) -> dict[str, np.ndarray]:
    """clip_id -> (n_windows, n_dimensions) 0/1 targets: a window is positive for a dimension when a
    diagnostic segment of that dimension overlaps it. Clips without diagnostics are left out (masked)."""
    if labels.diagnostics is None:
        return {}
    diag = labels.diagnostics
    diag = diag[diag["dimension"].isin(DIMENSION_NAMES)]
    by_clip = {cid: g for cid, g in diag.groupby("clip_id")}
    out = {}
    for cid in clip_ids:
        win = data.windows.get(cid)
        if win is None or cid not in labels.table.index:
            continue
        target = np.zeros((len(win), len(DIMENSION_NAMES)), np.float32)
        g = by_clip.get(cid)
        if g is not None:
            for r in g.itertuples():
                hit = (win[:, 0] < r.end) & (win[:, 1] > r.start)
                target[hit, DIMENSION_NAMES.index(r.dimension)] = 1.0
        out[cid] = target
    return out


def common_clips(data: StoreData, labels: Labels) -> list[str]:
    """Clips present in the store and labelled on at least one dimension, in store order."""
    y = labels.y(data.clip_ids)
    keep = [cid for cid, row in zip(data.clip_ids, y) if cid in labels.table.index and np.isfinite(row).any()]
    if not keep:
        raise UsageError(f"no clip of store {data.root} has labels in {labels.source}; do the clip_ids match?")
    return keep
