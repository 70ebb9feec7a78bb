"""The sample clips of ../shared/data: who is who, which clips are in sync, which speakers are held out.

One source of truth, `configs/shared_data.yaml` (package data), read by the benchmark scripts
(benchmarks/shared_manifest.py) and by the package (`talkqa check` scores the held-out clips):

  * speaker groups: the same person under several folders, so splits keep each person on one side;
  * per-clip sync verdicts: `in_sync`, `offset` (by `frames`) or `unknown`; only `in_sync` clips may
    serve as in-sync positives or clean references;
  * per-clip recording faults: a clip whose own sound or picture is poor is no clean reference on that
    dimension (a degraded copy of it cannot be labelled by how far it fell from 'clean');
  * the held-out speakers: never used to train anything (experts, models, fusion, stacking).

`shared_manifest("real")` turns MANIFEST.tsv into a talkqa manifest with `speaker`, `split`
(`train` / `heldout`), `meta__sync` and `meta__unlabelled` columns.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import Field, field_validator, model_validator

from .config import StrictModel, config_path
from .errors import UsageError
from .tasks import DIMENSION_NAMES, PERCEPTUAL_DIMENSIONS

SYNC_VERDICTS = ("in_sync", "offset", "unknown")
HELDOUT, TRAIN = "heldout", "train"


class SyncVerdict(StrictModel):
    verdict: Literal["in_sync", "offset", "unknown"]
    frames: float | None = Field(None, description="measured offset at 25 fps; positive = sound after the lips")
    why: str = ""

    @model_validator(mode="after")
    def _frames_with_offset(self):
        if (self.verdict == "offset") != (self.frames is not None):
            raise ValueError("`frames` is given exactly when the verdict is `offset`")
        return self


class RecordingFault(StrictModel):
    """Dimensions on which a real clip's own recording is poor, with the measurements that say so."""

    unlabelled: list[str] = Field(min_length=1, description="dimensions (not overall) whose clean label (4.5) "
                                                             "would be wrong for this clip")
    why: str

    @field_validator("unlabelled")
    @classmethod
    def _dimensions(cls, v):
        unknown = sorted(set(v) - set(PERCEPTUAL_DIMENSIONS))
        if unknown:
            raise ValueError(f"unlabelled names {', '.join(unknown)}; dimensions are {', '.join(PERCEPTUAL_DIMENSIONS)}")
        return v


class SharedDataSpec(StrictModel):
    same_person: dict[str, list[str]] = Field(default_factory=dict, description="group -> clip ids")
    folder_groups: dict[str, str] = Field(default_factory=dict, description="folder -> group for all its clips")
    sync_default: Literal["in_sync", "unknown"] = "in_sync"
    sync: dict[str, SyncVerdict] = Field(default_factory=dict, description="clip id -> verdict (others: sync_default)")
    recording: dict[str, RecordingFault] = Field(default_factory=dict,
                                                 description="clip id -> dimensions its own recording fails")
    heldout: dict[str, str] = Field(default_factory=dict, description="speaker group -> why it is held out")

    @model_validator(mode="after")
    def _one_group_per_clip(self):
        seen: dict[str, str] = {}
        for group, clips in self.same_person.items():
            for clip in clips:
                if clip in seen:
                    raise ValueError(f"clip {clip} is in two speaker groups ({seen[clip]}, {group})")
                seen[clip] = group
        return self

    def speaker_of(self, clip_id: str) -> str:
        """The speaker group of a clip id such as 'real/pcavs/Input__00002': a named group, the group of
        its folder, or 'folder/stem' for a person seen in one clip only."""
        for group, clips in self.same_person.items():
            if clip_id in clips:
                return group
        folder = clip_id.rsplit("/", 1)[0]
        if folder in self.folder_groups:
            return self.folder_groups[folder]
        parts = clip_id.split("/")
        return "/".join(parts[-2:]) if len(parts) >= 2 else clip_id

    def sync_of(self, clip_id: str) -> SyncVerdict:
        return self.sync.get(clip_id) or SyncVerdict(verdict=self.sync_default)

    def unlabelled_of(self, clip_id: str) -> list[str]:
        """The dimensions (in DIMENSION_NAMES order, `overall` last) a degraded copy of this clip gets no
        label on: those its recording fails, and overall with them (it combines every dimension)."""
        fault = self.recording.get(clip_id)
        if fault is None:
            return []
        return [d for d in DIMENSION_NAMES if d in fault.unlabelled] + ["overall"]

    def split_of(self, speaker: str) -> str:
        return HELDOUT if speaker in self.heldout else TRAIN


@functools.lru_cache(maxsize=4)
def _load(path: str) -> SharedDataSpec:
    try:
        return SharedDataSpec(**(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: invalid shared-data description ({exc})") from None


def load_shared_spec(path: str | Path | None = None) -> SharedDataSpec:
    """configs/shared_data.yaml (or `path`), validated."""
    return _load(str(path or config_path("shared_data.yaml")))


def find_shared_data(explicit: str | Path | None = None) -> Path | None:
    """The shared data folder (the one holding MANIFEST.tsv): `explicit`, else $TALKQA_SHARED_DATA, else
    ../shared/data from the working directory or from this checkout; None when none exists."""
    if explicit is not None:
        candidates = [Path(explicit)]
    elif os.environ.get("TALKQA_SHARED_DATA"):
        candidates = [Path(os.environ["TALKQA_SHARED_DATA"])]
    else:
        candidates = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[2] / "shared" / "data"]
    return next((p for p in candidates if (p / "MANIFEST.tsv").is_file()), None)


def shared_manifest(kind: str, shared: str | Path, spec: SharedDataSpec | None = None) -> pd.DataFrame:
    """A talkqa manifest of the `kind` ('real' or 'generated') clips listed in shared/MANIFEST.tsv.
    Real clips get `speaker` (groups), `split` (train / heldout), `meta__sync` (in_sync / offset /
    unknown / no_audio), `meta__sync_offset_frames` and `meta__unlabelled` (';'-joined dimensions its
    recording fails, '' for none: `talkqa degrade` leaves those labels of its variants empty)."""
    shared = Path(shared)
    spec = spec or load_shared_spec()
    listing = pd.read_csv(shared / "MANIFEST.tsv", sep="\t")
    rows = listing[listing["local_path"].str.startswith(f"{kind}/")]
    out = pd.DataFrame({
        "clip_id": rows["local_path"].str.rsplit(".", n=1).str[0].values,
        "video": [str(shared / p) for p in rows["local_path"]],
        "language": rows["language"].values,
    })
    has_audio = rows["has_audio"].values
    if kind == "real":
        out["speaker"] = out["clip_id"].map(spec.speaker_of)
        out["split"] = out["speaker"].map(spec.split_of)
        out["generator"] = "real"
        verdicts = [spec.sync_of(c) for c in out["clip_id"]]
        out["meta__sync"] = [v.verdict if a == "yes" else "no_audio" for v, a in zip(verdicts, has_audio)]
        out["meta__sync_offset_frames"] = [v.frames for v in verdicts]
        out["meta__unlabelled"] = [";".join(spec.unlabelled_of(c)) for c in out["clip_id"]]
        _check_names(spec, out, shared / "MANIFEST.tsv")
    else:
        out["generator"] = out["clip_id"].str.split("/").str[1]
    out["meta__has_audio"] = has_audio
    return out.reset_index(drop=True)


def unlabelled_dimensions(cell) -> tuple[str, ...]:
    """The dimensions a manifest's `meta__unlabelled` cell names (';'-joined, as shared_manifest writes it;
    empty, NaN or None: none). ValueError for a name that is not a dimension."""
    dims = tuple(d.strip() for d in cell.split(";") if d.strip()) if isinstance(cell, str) else ()
    unknown = sorted(set(dims) - set(DIMENSION_NAMES))
    if unknown:
        raise ValueError(f"meta__unlabelled names {', '.join(unknown)}; dimensions are {', '.join(DIMENSION_NAMES)}")
    return dims


def _check_names(spec: SharedDataSpec, real: pd.DataFrame, listing: Path) -> None:
    """A clip or speaker named in the YAML but absent from the data is a typo (or a renamed file): say so
    rather than silently hold out nobody."""
    clips, speakers = set(real["clip_id"]), set(real["speaker"])
    named = {c for group in spec.same_person.values() for c in group} | set(spec.sync) | set(spec.recording)
    problems = [f"clip {c}" for c in sorted(named - clips)] + [f"held-out speaker {s}" for s in sorted(set(spec.heldout) - speakers)]
    if problems:
        raise UsageError(f"configs/shared_data.yaml names what {listing} does not list: {', '.join(problems)}; "
                         "fix the name or remove the entry")


def heldout_manifest(shared: str | Path, in_sync_only: bool = True) -> pd.DataFrame:
    """The held-out real clips (with audio; by default only those whose sync verdict is in_sync)."""
    df = shared_manifest("real", shared)
    keep = (df["split"] == HELDOUT) & (df["meta__has_audio"] == "yes")
    if in_sync_only:
        keep &= df["meta__sync"] == "in_sync"
    return df[keep].reset_index(drop=True)
