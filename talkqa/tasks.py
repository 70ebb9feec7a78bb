"""The five quality dimensions, declared once.

Heads, losses, metrics, manifest label columns and report columns are all built from DIMENSIONS,
so adding or reweighting a dimension is a change here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dimension:
    name: str
    description: str
    scale: tuple[float, float] = (1.0, 5.0)
    loss: str = "smooth_l1"
    weight: float = 1.0

    @property
    def label_column(self) -> str:
        return f"mos_{self.name}"


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("lip_sync", "do the lips move with the speech?"),
    Dimension("expression", "are face and head motion natural and alive?"),
    Dimension("audio_quality", "is the voice clean and natural?"),
    Dimension("consistency", "do voice and face agree in rhythm and intensity?"),
    Dimension("overall", "overall quality as one opinion"),
)

DIMENSION_NAMES: tuple[str, ...] = tuple(d.name for d in DIMENSIONS)
LABEL_COLUMNS: tuple[str, ...] = tuple(d.label_column for d in DIMENSIONS)
MOS_RANGE: tuple[float, float] = (1.0, 5.0)
