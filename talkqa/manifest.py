"""Manifests: one row per clip. Built from a folder, validated on load.

A manifest is CSV or Parquet with the columns below. Paths may be relative to the manifest's own
folder. Validation reports every problem with its row number and reason; nothing is dropped
silently. Structural problems (unknown column, duplicate id, label outside 1-5) refuse the whole
manifest; a missing video is only a warning here, because extraction then writes a `missing_file`
status row for that clip and the batch goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import UsageError
from .tasks import LABEL_COLUMNS, MOS_RANGE

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".wmv")

REQUIRED = ("clip_id", "video")
OPTIONAL = ("audio", "speaker", "generator", "split", "source_clip", "language", "source", "duration_s", "artifacts")
# Free-form columns are allowed under these prefixes (degrade writes severity__*, users meta__*).
FREE_PREFIXES = ("severity__", "meta__")
# heldout: speakers never used to train anything (configs/shared_data.yaml); only for evaluation and checks
SPLITS = ("train", "val", "test", "heldout")


@dataclass(frozen=True)
class ManifestProblem:
    row: int | None  # 1-based data row; None for header-level problems
    column: str
    reason: str
    fatal: bool = True

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "header"
        return f"{where}, column {self.column!r}: {self.reason}"


class ManifestError(UsageError):
    def __init__(self, path: Path, problems: list[ManifestProblem]):
        self.path = path
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s) in the manifest; fix them and rerun:\n  {shown}{more}")


def known_columns() -> tuple[str, ...]:
    return REQUIRED + OPTIONAL + LABEL_COLUMNS


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise UsageError(f"manifest {path} not found; build one with `talkqa manifest DIR --out {path}`")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; pass a manifest file (build one with `talkqa manifest {path}`)")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"clip_id": str, "video": str, "audio": str, "speaker": str}, keep_default_na=True)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise UsageError(f"{path}: cannot read it as a {'Parquet' if path.suffix == '.parquet' else 'CSV'} manifest ({exc})") from None


def validate(df: pd.DataFrame, base: Path) -> tuple[pd.DataFrame, list[ManifestProblem]]:
    """Return the manifest with absolute paths, and every problem found."""
    problems: list[ManifestProblem] = []
    known = set(known_columns())
    for col in df.columns:
        if col not in known and not col.startswith(FREE_PREFIXES):
            problems.append(ManifestProblem(None, col, "unknown column; rename it with a meta__ prefix to keep it, "
                                                      f"or use one of {', '.join(known_columns())}"))
    for col in REQUIRED:
        if col not in df.columns:
            problems.append(ManifestProblem(None, col, "required column is missing"))
    if any(p.fatal for p in problems if p.row is None and p.column in REQUIRED):
        return df, problems

    df = df.copy()
    df["clip_id"] = df["clip_id"].astype("string")
    seen: dict[str, int] = {}
    for i, row in enumerate(df.itertuples(index=False), start=1):
        rec = row._asdict()
        cid = rec["clip_id"]
        if cid is None or pd.isna(cid) or not str(cid).strip():
            problems.append(ManifestProblem(i, "clip_id", "empty clip_id"))
        elif cid in seen:
            problems.append(ManifestProblem(i, "clip_id", f"duplicate clip_id {cid!r} (first seen in row {seen[cid]})"))
        else:
            seen[cid] = i
        for col in ("video", "audio"):
            value = rec.get(col)
            if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip()):
                if col == "video":
                    problems.append(ManifestProblem(i, col, "empty video path"))
                continue
            p = Path(str(value))
            if not p.is_absolute():
                p = base / p
            df.at[df.index[i - 1], col] = str(p)
            if not p.exists():
                problems.append(ManifestProblem(i, col, f"file {p} does not exist; the clip gets a missing_file status row", fatal=False))
        for col in LABEL_COLUMNS:
            if col not in df.columns:
                continue
            value = rec.get(col)
            if value is None or pd.isna(value):
                continue
            try:
                v = float(value)
            except (TypeError, ValueError):
                problems.append(ManifestProblem(i, col, f"label {value!r} is not a number"))
                continue
            if not (MOS_RANGE[0] <= v <= MOS_RANGE[1]):
                problems.append(ManifestProblem(i, col, f"label {v} is outside {MOS_RANGE[0]:g}-{MOS_RANGE[1]:g}"))
        split = rec.get("split")
        if split is not None and not pd.isna(split) and split not in SPLITS:
            problems.append(ManifestProblem(i, "split", f"split {split!r} is not one of {', '.join(SPLITS)}"))
    return df, problems


def load_manifest(path: str | Path, strict: bool = True) -> tuple[pd.DataFrame, list[ManifestProblem]]:
    """Load and validate. Raises ManifestError when any fatal problem exists; returns warnings."""
    path = Path(path)
    df = read_table(path)
    df, problems = validate(df, path.parent.resolve())
    fatal = [p for p in problems if p.fatal]
    if fatal and strict:
        raise ManifestError(path, fatal)
    return df, [p for p in problems if not p.fatal]


def single_clip_manifest(video: str | Path, audio: str | Path | None = None) -> pd.DataFrame:
    video = Path(video)
    return pd.DataFrame([{"clip_id": video.stem or str(video), "video": str(video.absolute()),
                          "audio": str(Path(audio).absolute()) if audio else None}])


def _level(rel: Path, level: int) -> str | None:
    folders = rel.parent.parts
    try:
        return folders[level]
    except IndexError:
        return None


def build_manifest(root: str | Path, speaker_from: int | None = None, generator_from: int | None = None) -> pd.DataFrame:
    """One row per video under `root`; clip_id is the relative path without extension.

    `speaker_from` / `generator_from` take that folder level of the relative path as the speaker /
    generator: 0 is the first folder under root, -1 the folder holding the file.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; pass the folder that holds your videos")
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            rel = p.relative_to(root)
            row = {"clip_id": rel.with_suffix("").as_posix(), "video": rel.as_posix()}
            if speaker_from is not None:
                row["speaker"] = _level(rel, speaker_from)
            if generator_from is not None:
                row["generator"] = _level(rel, generator_from)
            rows.append(row)
    if not rows:
        raise UsageError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under {root}")
    return pd.DataFrame(rows)
