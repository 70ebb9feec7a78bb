"""Labels of a store's clips: MOS per dimension (from a manifest or a human-label table), the
frame-exact diagnostic segments of a degrade corpus (`diagnostics.parquet` beside it) and pairwise
human preferences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UsageError
from .store import read_parquet
from .store_data import StoreData
from .tasks import DIMENSION_NAMES, LABEL_COLUMNS, MOS_RANGE


@dataclass
class Labels:
    table: pd.DataFrame  # index clip_id; columns speaker, source + mos_* (NaN where unlabelled)
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

    def sources(self, clip_ids: list[str]) -> np.ndarray:
        """The source clip each clip was made from (`source_clip` of a degrade corpus), else the clip itself."""
        t = self.table.reindex(clip_ids)
        return (t["source"] if "source" in t else pd.Series(clip_ids, index=t.index)).fillna(
            pd.Series(clip_ids, index=t.index)).astype(str).to_numpy()


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
    df["source"] = (df["source_clip"].fillna(df["clip_id"]) if "source_clip" in df else df["clip_id"]).astype(str)
    table = df.set_index("clip_id")[["speaker", "source", *present]]
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
