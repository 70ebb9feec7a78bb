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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import pandas as pd
import pyarrow as pa

from . import __version__
from .errors import TalkqaError

META_KEY = b"talkqa"


# --------------------------------------------------------------------------- atomic writes
def _file_mode() -> int:
    """What a plain `open(path, "w")` would give: 0666 less the umask. mkstemp creates 0600, which would
    hide every store, corpus and report from other users, web servers and containers."""
    try:  # the umask is read from /proc where it can be; setting it (the portable way) is not thread-safe
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary name beside `path` (same suffix, or `suffix`, so writers that go by the extension
    work) that becomes `path` only when the block completes: a killed run never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix or path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write through `write(file handle)` to a temporary file, fsync it, then rename it over `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


# --------------------------------------------------------------------------- parquet with metadata
def write_parquet(data: pd.DataFrame | pa.Table, path: str | Path, producer: str, params_hash: str = "",
                  weights_hash: str = "", extra: dict[str, Any] | None = None) -> None:
    """Every Parquet file talkqa writes goes through here, so each carries the metadata contract:
    producer, code version, params hash, weights hash, created (+ `extra`)."""
    meta = {
        "producer": producer,
        "code_version": __version__,
        "params_hash": params_hash,
        "weights_hash": weights_hash,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    import pyarrow.parquet as pq  # lazy: 0.15 s import; scoring a clip writes and reads no Parquet

    atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise TalkqaError(f"{path} not found; run the stage that writes it first (e.g. `talkqa extract`)")
    import pyarrow.parquet as pq  # lazy: 0.15 s import; scoring a clip writes and reads no Parquet

    return pq.read_table(path).to_pandas()


def parquet_meta(path: str | Path) -> dict[str, Any]:
    import pyarrow.parquet as pq  # lazy: 0.15 s import; scoring a clip writes and reads no Parquet

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


# --------------------------------------------------------------------------- per-clip cache
@dataclass(frozen=True)
class PartCache:
    """Per-clip results in one folder, named `<key>.<what>` where the key hashes everything the result
    depends on (file contents, parameters, weights, code version), never a path: a rerun finds finished
    clips and skips them, and a changed input or parameter misses the cache and recomputes.
    Extraction, embedding and batch scoring all keep their per-clip results this way."""

    folder: Path

    def path(self, key: str, what: str) -> Path:
        return Path(self.folder) / f"{key}.{what}"

    def read_json(self, key: str, what: str = "json") -> dict | None:
        path = self.path(key, what)
        return json.loads(path.read_text()) if key and path.is_file() else None

    def write_json(self, key: str, obj: Any, what: str = "json") -> None:
        atomic_write_json(self.path(key, what), obj)


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

    @property
    def parts(self) -> PartCache:
        return PartCache(self.root / "parts")

    def part(self, key: str, what: str) -> Path:
        return self.parts.path(key, what)

    def expert(self, name: str) -> Path:
        return self.root / "experts" / f"{name}.parquet"

    def ensure(self) -> "Store":
        for sub in ("tracks", "parts"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        return self
