"""Typed configuration: pydantic models loaded from YAML, overridable with `key.sub=value`
strings from the command line, and saved beside every store, model and report."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UsageError
from .store import atomic_write_text

C = TypeVar("C", bound=BaseModel)


class StrictModel(BaseModel):
    # Unknown keys are a typo more often than a wish: refuse them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PreprocessConfig(StrictModel):
    fps: float = Field(25.0, gt=0, description="analysis frame rate; every clip is resampled to it")
    sample_rate: int = Field(16000, description="analysis audio rate (mono)")
    analysis_max_side: int = Field(640, ge=128, description="frames are scaled so the long side is at most this")
    detector_model: int = Field(1, ge=0, le=1, description="MediaPipe face detection: 0 short range, 1 full range")
    detect_every: int = Field(3, ge=1, description="run face detection every N frames; tracks hold in between")
    min_detection_confidence: float = Field(0.5, ge=0, le=1)
    track_iou: float = Field(0.3, ge=0, le=1, description="IoU needed to continue a face track")
    max_faces: int = Field(4, ge=1)
    face_size: int = Field(96, ge=32, description="aligned face crop side (pixels)")
    mouth_size: tuple[int, int] = Field((48, 96), description="mouth crop (height, width)")
    black_threshold: float = Field(6.0, description="mean pixel value below which a frame counts as black")
    min_duration_s: float = Field(1.0, ge=0, description="shorter clips get status too_short")
    vad_aggressiveness: int = Field(2, ge=0, le=3)
    target_lufs: float = Field(-23.0, description="loudness-normalisation target for audio_norm")
    silence_dbfs: float = Field(-60.0, description="audio whose RMS is below this counts as silent")


class FeatureConfig(StrictModel):
    families: list[str] = Field(
        default_factory=lambda: ["lipsync", "expression", "audio", "consistency", "visual"],
        description="hand-crafted feature families to compute (see `talkqa features`)",
    )
    window_s: float = Field(1.0, gt=0, description="window length for windows.parquet")
    min_window_s: float = Field(0.5, gt=0, description="a trailing window shorter than this is dropped")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-family keyword arguments, e.g. {audio: {dnsmos: false}}"
    )


class ExtractConfig(StrictModel):
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    save_tracks: bool = Field(True, description="write per-clip tracks/<key>.npz for the experts")

    def params_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


def config_path(*parts: str) -> Path:
    """A shipped config file, e.g. config_path("experts", "sync.yaml"): the YAML files of configs/ are
    package data (`talkqa.configs`), so they are found the same way from a checkout or a wheel."""
    return Path(str(resources.files("talkqa.configs").joinpath(*parts)))


def stable_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def _parse_value(text: str) -> Any:
    # YAML parses numbers, booleans, lists and null the way people type them.
    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings to a nested dict (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(value)
    return data


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"config file {path} not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not valid YAML ({exc})") from None
    apply_overrides(data, overrides or [])
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid {cls.__name__}{where}: {problems}") from None


def save_config(config: BaseModel, path: str | Path) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
