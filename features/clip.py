"""The preprocessed clip: the contract between preprocessing, hand-crafted features and experts.

Everything is resampled to a common clock: `fps` video frames (25 by default) and `sr` audio
samples per second (16 kHz mono). Frame t covers [t/fps, (t+1)/fps) and audio samples
[t*hop, (t+1)*hop) with hop = sr/fps (640 at 16 kHz / 25 fps).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkqa.store import atomic_write_bytes

N_LANDMARKS = 478


@dataclass
class PreprocessedClip:
    clip_id: str
    fps: float
    n_frames: int
    # --- visual, one entry per analysis frame; invalid frames are NaN (floats) or 0 (crops)
    face_valid: np.ndarray  # (T,) bool: the main speaker's face was found and meshed
    landmarks: np.ndarray  # (T, 478, 3) float32: x, y in analysis-frame pixels, z in the same units
    aligned: np.ndarray  # (T, 478, 2) float32: landmarks in the canonical face-crop frame (face_size px)
    head_pose: np.ndarray  # (T, 3) float32: yaw, pitch, roll in degrees
    face_crops: np.ndarray  # (T, S, S, 3) uint8: similarity-aligned face
    mouth_crops: np.ndarray  # (T, h, w, 3) uint8: aligned mouth region
    bbox: np.ndarray  # (T, 4) float32: main-track box x0, y0, x1, y1 in analysis-frame pixels
    frame_size: tuple[int, int]  # analysis frame (width, height)
    # (T,) mean absolute change of a 64x64 grey thumbnail of the whole frame vs the previous frame
    # (0-255 scale; NaN for frame 0). Landmarks jitter even on a still image, pixels do not.
    frame_diff: np.ndarray | None = None
    # Picture statistics of the analysis frame around the face (features/frame_stats.py), one (T,)
    # float32 series per name in FRAME_STATS; NaN without a face and between measured frames
    # (every frame_stats.EVERY-th). None for clips from before they existed (old track files).
    frame_stats: dict[str, np.ndarray] | None = None
    # --- audio; None when the file has no audio track
    sr: int = 16000
    audio: np.ndarray | None = None  # (N,) float32 in [-1, 1], as decoded (mono mix, resampled)
    audio_norm: np.ndarray | None = None  # (N,) float32, loudness-normalised copy of `audio`
    vad: np.ndarray | None = None  # (T,) bool: speech in frame t (WebRTC VAD)
    loudness_lufs: float = float("nan")
    # --- provenance and quality of the decode (src_fps, n_corrupt, n_black, face_coverage, ...)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def hop(self) -> int:
        """Audio samples per video frame."""
        return int(round(self.sr / self.fps))

    def frame_times(self) -> np.ndarray:
        return np.arange(self.n_frames, dtype=np.float64) / self.fps

    def audio_frames(self, signal: np.ndarray | None = None) -> np.ndarray:
        """Audio cut into (T, hop) frames aligned with the video frames (zero-padded at the end)."""
        x = self.audio if signal is None else signal
        if x is None:
            raise ValueError(f"{self.clip_id}: no audio")
        need = self.n_frames * self.hop
        if len(x) < need:
            x = np.pad(x, (0, need - len(x)))
        return x[:need].reshape(self.n_frames, self.hop)

    # ------------------------------------------------------------------ persistence (tracks/<key>.npz)
    def save(self, path: str | Path, series: dict[str, np.ndarray] | None = None) -> None:
        """Write the clip (and optional per-frame feature series) as one compressed .npz, atomically."""

        arrays: dict[str, np.ndarray] = {
            "face_valid": self.face_valid,
            "landmarks": self.landmarks.astype(np.float32),
            "aligned": self.aligned.astype(np.float32),
            "head_pose": self.head_pose.astype(np.float32),
            "face_crops": self.face_crops,
            "mouth_crops": self.mouth_crops,
            "bbox": self.bbox.astype(np.float32),
        }
        if self.frame_diff is not None:
            arrays["frame_diff"] = self.frame_diff.astype(np.float32)
        for name, value in (self.frame_stats or {}).items():
            arrays[f"frame_stats__{name}"] = np.asarray(value, np.float32)
        if self.audio is not None:
            arrays["audio"] = self.audio.astype(np.float32)
            arrays["audio_norm"] = (self.audio_norm if self.audio_norm is not None else self.audio).astype(np.float32)
            arrays["vad"] = self.vad if self.vad is not None else np.zeros(self.n_frames, bool)
        for name, value in (series or {}).items():
            arrays[f"series__{name}"] = np.asarray(value)
        meta = {
            "clip_id": self.clip_id,
            "fps": self.fps,
            "n_frames": self.n_frames,
            "frame_size": list(self.frame_size),
            "sr": self.sr,
            "loudness_lufs": self.loudness_lufs,
            "info": self.info,
            "warnings": self.warnings,
        }
        arrays["meta_json"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "PreprocessedClip":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta_json"]).decode())
            has_audio = "audio" in z.files
            stats = {k.split("__", 1)[1]: z[k] for k in z.files if k.startswith("frame_stats__")}
            return cls(
                clip_id=meta["clip_id"],
                fps=meta["fps"],
                n_frames=meta["n_frames"],
                face_valid=z["face_valid"],
                landmarks=z["landmarks"],
                aligned=z["aligned"],
                head_pose=z["head_pose"],
                face_crops=z["face_crops"],
                mouth_crops=z["mouth_crops"],
                bbox=z["bbox"],
                frame_diff=z["frame_diff"] if "frame_diff" in z.files else None,
                frame_stats=stats or None,
                frame_size=tuple(meta["frame_size"]),
                sr=meta["sr"],
                audio=z["audio"] if has_audio else None,
                audio_norm=z["audio_norm"] if has_audio else None,
                vad=z["vad"] if has_audio else None,
                loudness_lufs=meta["loudness_lufs"],
                info=meta["info"],
                warnings=meta["warnings"],
            )

    @staticmethod
    def load_series(path: str | Path) -> dict[str, np.ndarray]:
        """The per-frame feature series saved beside a clip (AU proxies, aperture, envelope, ...)."""
        with np.load(path, allow_pickle=False) as z:
            return {k.split("__", 1)[1]: z[k] for k in z.files if k.startswith("series__")}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj))


def empty_visual(n_frames: int, face_size: int, mouth_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Arrays for a clip in which no face was found yet (all invalid)."""
    h, w = mouth_size
    return {
        "face_valid": np.zeros(n_frames, bool),
        "landmarks": np.full((n_frames, N_LANDMARKS, 3), np.nan, np.float32),
        "aligned": np.full((n_frames, N_LANDMARKS, 2), np.nan, np.float32),
        "head_pose": np.full((n_frames, 3), np.nan, np.float32),
        "face_crops": np.zeros((n_frames, face_size, face_size, 3), np.uint8),
        "mouth_crops": np.zeros((n_frames, h, w, 3), np.uint8),
        "bbox": np.full((n_frames, 4), np.nan, np.float32),
    }
