"""The Parquet store: the contract between stages.

Layout of a store folder (all files written atomically: temp file + rename):

    extract.yaml            the ExtractConfig used (saved beside the data it produced)
    handcrafted.parquet     one row per clip: clip_id, <family>__<feature> ...
    windows.parquet         one row per clip x window: clip_id, t_start, t_end, <family>__<feature> ...
    status.parquet          one row per manifest clip: clip_id, status, message, ...
    tracks/<key>.npz        per-clip PreprocessedClip arrays + per-frame series (see features/clip.py)
    parts/<key>.*           per-clip results; what makes reruns resume and skip finished clips

<key> is the cache key: hash(video bytes + audio bytes + params hash + code version), never the path.
Parquet files carry `talkqa` metadata: producer, code version, params hash, weights hash, created.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import TalkqaError

META_KEY = b"talkqa"


# --------------------------------------------------------------------------- atomic writes
def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(Path(path), lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=str))


# --------------------------------------------------------------------------- parquet with metadata
def write_parquet(df: pd.DataFrame, path: str | Path, producer: str, params_hash: str = "", weights_hash: str = "",
                  extra: dict[str, Any] | None = None) -> None:
    meta = {
        "producer": producer,
        "code_version": __version__,
        "params_hash": params_hash,
        "weights_hash": weights_hash,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    _atomic_write(Path(path), lambda fh: pq.write_table(table, fh, compression="zstd"))


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise TalkqaError(f"{path} not found; run the stage that writes it first (e.g. `talkqa extract`)")
    return pq.read_table(path).to_pandas()


def parquet_meta(path: str | Path) -> dict[str, Any]:
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


# --------------------------------------------------------------------------- hashing
def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_key(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=12).hexdigest()


# --------------------------------------------------------------------------- store folder
@dataclass(frozen=True)
class Store:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def handcrafted(self) -> Path:
        return self.root / "handcrafted.parquet"

    @property
    def windows(self) -> Path:
        return self.root / "windows.parquet"

    @property
    def status(self) -> Path:
        return self.root / "status.parquet"

    @property
    def config(self) -> Path:
        return self.root / "extract.yaml"

    def track(self, key: str) -> Path:
        return self.root / "tracks" / f"{key}.npz"

    def part(self, key: str, what: str) -> Path:
        return self.root / "parts" / f"{key}.{what}"

    def expert(self, name: str) -> Path:
        return self.root / "experts" / f"{name}.parquet"

    def ensure(self) -> "Store":
        for sub in ("tracks", "parts"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self
