"""The six quality dimensions, declared once.

Heads, losses, metrics, manifest label columns, report columns, diagnostics wording and plot colours
are all built from DIMENSIONS, so adding or reweighting a dimension is a change here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dimension:
    name: str
    description: str  # what a rater judges
    problem: str  # what a flagged diagnostic window of this dimension means, in words
    colour: str  # in plots and reports
    needs_audio: bool = False  # not judged (null, with a warning) for a clip without an audio track
    combines_others: bool = False  # `overall`: one opinion over the others, not a perceptual axis of its own
    scale: tuple[float, float] = (1.0, 5.0)
    loss: str = "smooth_l1"
    weight: float = 1.0

    @property
    def label_column(self) -> str:
        return f"mos_{self.name}"


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("lip_sync", "do the lips move with the speech?", "lips out of sync with the speech", "#4472c4",
              needs_audio=True),
    Dimension("expression", "are face and head motion natural and alive (blinks, brows, head sway)?",
              "unnatural face or head motion", "#ed7d31"),
    Dimension("visual_quality", "is the picture clean and natural: sharp face and mouth, stable texture, no blur, "
              "smear, seams, blockiness, flicker, warping, teeth or eye artifacts?",
              "degraded picture (blur, seams, blockiness or flicker)", "#c00000"),
    Dimension("audio_quality", "is the voice clean and natural?", "degraded voice (noise, distortion or artefacts)",
              "#70ad47", needs_audio=True),
    Dimension("consistency", "do voice and face agree in rhythm and intensity?", "voice and face out of step",
              "#7030a0", needs_audio=True),
    Dimension("overall", "overall quality as one opinion", "overall quality drops", "#595959", combines_others=True),
)

DIMENSION_NAMES: tuple[str, ...] = tuple(d.name for d in DIMENSIONS)
LABEL_COLUMNS: tuple[str, ...] = tuple(d.label_column for d in DIMENSIONS)
AUDIO_DIMENSIONS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS if d.needs_audio)
PERCEPTUAL_DIMENSIONS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS if not d.combines_others)
MOS_RANGE: tuple[float, float] = (1.0, 5.0)


def overall_drop_parts(weighted_drops: dict[str, float], secondary: float) -> dict[str, float]:
    """How `overall` combines the perceptual dimensions, declared once for the label rule
    (corpus/labels.py) and for models that score overall from their dimension scores
    (scoring/overall_rule.py): each dimension's part of overall's drop, given its weighted drop — the
    worst whole, every other one times `secondary` (a raters' clip is as bad as its worst side, and the
    rest adds a little). The parts sum to the drop."""
    if not weighted_drops:
        return {}
    worst = max(weighted_drops, key=weighted_drops.get)
    return {d: w if d == worst else secondary * w for d, w in weighted_drops.items()}
