"""The file of a small fitted model shipped as package data (face_nss.npz, codec_reader.npz): named arrays
and a JSON metadata record (what it was fitted on, its format) in one compressed .npz, written atomically
and read without pickles."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from talkqa.store import atomic_write_bytes

META_KEY = "meta_json"


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    buf = io.BytesIO()
    record = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    np.savez_compressed(buf, **arrays, **{META_KEY: record})
    atomic_write_bytes(Path(path), buf.getvalue())


def read_npz(path: str | Path, what: str, remedy: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) of a file written by write_npz; a missing file is a FileNotFoundError that names
    `what` the file holds and the `remedy` (how to make one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found; {remedy} or reinstall talkqa (it ships one)")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z[META_KEY]).decode())
        return {k: z[k] for k in z.files if k != META_KEY}, meta
