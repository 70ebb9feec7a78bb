"""Pseudo-MOS for degraded clips: a documented, monotone severity -> score mapping.

Each artifact declares `impacts = {dimension: max_drop}` (the MOS points it costs a dimension at
severity 1.0, see talkqa/corpus/artifacts). For one variant with artifacts j = 1..n applied at
severity s_j in (0, 1] over a share c_j in (0, 1] of the clip's frames:

    drop_d(j)  = impacts_j[d] * s_j * c_j ** coverage_exponent        (coverage_exponent = 0.5)
    mos_d      = max(floor, clean - sum_j drop_d(j))                   (clean = 4.5, floor = 1.0)
    D_d        = sum_j drop_d(j)                 for every d but overall (tasks.PERCEPTUAL_DIMENSIONS)
    mos_overall = max(floor, clean - (max_d D_d + secondary * (sum_d D_d - max_d D_d)))   (secondary = 0.4)

Why: the clean clip scores 4.5, not 5 (real clips are compressed, and raters rarely give every clip 5);
drops add up inside a dimension (two audio faults are worse than one); a segment fault weighs the
square root of its time share, because raters remember a short glitch more than its share suggests;
`overall` follows the worst dimension and adds a fraction of the others. Every mos_* is
non-increasing in every severity and every coverage, and equals `clean` with no artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from talkqa.tasks import DIMENSION_NAMES, PERCEPTUAL_DIMENSIONS as PERCEPTUAL
from .artifacts import ARTIFACTS


@dataclass(frozen=True)
class LabelRule:
    clean: float = 4.5
    floor: float = 1.0
    coverage_exponent: float = 0.5
    secondary: float = 0.4


@dataclass(frozen=True)
class Applied:
    """One artifact as applied to one variant."""

    artifact: str
    severity: float  # (0, 1]
    coverage: float = 1.0  # share of the clip's frames


def artifact_drops(applied: Applied, rule: LabelRule = LabelRule()) -> dict[str, float]:
    cls = ARTIFACTS.get(applied.artifact)
    w = applied.severity * max(0.0, min(1.0, applied.coverage)) ** rule.coverage_exponent
    return {d: cls.impacts.get(d, 0.0) * w for d in PERCEPTUAL}


def pseudo_mos(applied: Iterable[Applied], rule: LabelRule = LabelRule()) -> dict[str, float]:
    """{'mos_lip_sync': .., ..., 'mos_overall': ..} for the artifacts of one variant."""
    total = {d: 0.0 for d in PERCEPTUAL}
    for a in applied:
        for d, v in artifact_drops(a, rule).items():
            total[d] += v
    out = {f"mos_{d}": round(max(rule.floor, rule.clean - total[d]), 4) for d in PERCEPTUAL}
    worst = max(total.values())
    combined = worst + rule.secondary * (sum(total.values()) - worst)
    out["mos_overall"] = round(max(rule.floor, rule.clean - combined), 4)
    return {f"mos_{d}": out[f"mos_{d}"] for d in DIMENSION_NAMES}
