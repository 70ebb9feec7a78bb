"""The five quality dimensions, declared once.

Heads, losses, metrics, manifest label columns and report columns are all built from DIMENSIONS,
so adding or reweighting a dimension is a change here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dimension:
    name: str
    description: str  # what a rater judges
    problem: str  # what a flagged diagnostic window of this dimension means, in words
    needs_audio: bool = False  # not judged (null, with a warning) for a clip without an audio track
    scale: tuple[float, float] = (1.0, 5.0)
    loss: str = "smooth_l1"
    weight: float = 1.0

    @property
    def label_column(self) -> str:
        return f"mos_{self.name}"


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("lip_sync", "do the lips move with the speech?", "lips out of sync with the speech", needs_audio=True),
    Dimension("expression", "are face and head motion natural and alive?", "unnatural face or head motion"),
    Dimension("audio_quality", "is the voice clean and natural?", "degraded voice (noise, distortion or artefacts)",
              needs_audio=True),
    Dimension("consistency", "do voice and face agree in rhythm and intensity?", "voice and face out of step",
              needs_audio=True),
    Dimension("overall", "overall quality as one opinion", "overall quality drops"),
)

DIMENSION_NAMES: tuple[str, ...] = tuple(d.name for d in DIMENSIONS)
LABEL_COLUMNS: tuple[str, ...] = tuple(d.label_column for d in DIMENSIONS)
AUDIO_DIMENSIONS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS if d.needs_audio)
MOS_RANGE: tuple[float, float] = (1.0, 5.0)
