"""Pseudo-MOS for degraded clips: a documented, monotone severity -> score mapping, anchored on people
where a published study rated the same fault.

Each artifact declares `impacts = {dimension: drop}` (talkqa/corpus/artifacts/base.py). For one variant
with artifacts j = 1..n applied at severity s_j in (0, 1] over a share c_j in (0, 1] of the clip's frames:

    r_j        = s_j                                  most artifacts: linear in severity
               = curve_j[mode_j](x_j)                 anchored artifacts (av_offset, stall, compression): a
                                                      Saturating curve of the physical level x_j actually applied
                                                      (offset or stall in seconds, x264 QP) and of the mode the
                                                      artifact logged (sound_first / lips_first, start / middle)
    w_j        = r_j * c_j ** coverage_exponent       (c_j ** 0.5; 1 for an artifact with coverage_scaled = False)
    drop_d(j)  = impacts_j[d] * w_j
    D_d        = sum_j drop_d(j)                      for every d but overall (tasks.PERCEPTUAL_DIMENSIONS)
    mos_d      = max(floor, clean - D_d)                                              (clean 4.5, floor 1.0)
    mos_overall = max(floor, clean - (max_d D_d + secondary * (sum_d D_d - max_d D_d)
                                      + sum_j impacts_j[overall] * w_j))              (secondary 0.4)

Why: the clean clip scores 4.5, not 5 (real clips are compressed, and raters rarely give every clip 5);
drops add up inside a dimension (two audio faults are worse than one); a segment fault weighs the
square root of its time share, because raters remember a short glitch more than its share suggests (a
stall's level is already its length, so a longer clip does not dilute it); `overall` follows the worst
dimension, adds a fraction of the others, and adds an artifact's own `overall` impact where the fault
annoys beyond any dimension (a stall interrupts). The curves rise from 0 at their origin and saturate,
so every mos_* is non-increasing in every severity, level and coverage, and equals `clean` with no
artifact (tests/test_degrade.py checks it over every artifact and mode).

Human anchors. THQA-NTIRE (NTIRE 2025 talking-head quality challenge, ../shared/anchors): 50 videos per
distortion and level, one overall MOS per video on 0-5, mapped to 1-5 as 1 + 0.8 x MOS. Each anchor
constrains `mos_overall` of a whole clip with that fault; how the drop divides over the dimensions is
a stated design choice (benchmarks/fit_label_rule.py, SPECS): av_offset lip_sync 1 : consistency 0.25;
stall expression 1 : lip_sync 0.8 : overall 0.3; compression visual_quality only. The fit (weighted
least squares, scipy) sets one scale of the impacts per artifact and a curve per mode; two soft priors
fix the small-offset end (ITU-R BT.1359 detectability: sound 45 ms first, lips 125 ms first cost 0.1).

    distortion     level  talkqa                        people  before  after  residual
    audio_lead     0.5 s  av_offset sound_first 0.5 s    2.47    1.48    2.48   +0.01
    audio_lead     1 s    av_offset sound_first 1 s      2.12    1.18    2.11   -0.01
    video_lead     0.5 s  av_offset lips_first 0.5 s     3.17    1.48    3.17   -0.00
    video_lead     1 s    av_offset lips_first 1 s       2.05    1.18    2.09   +0.04
    pause_middle   1 s    stall middle 1 s               2.54    4.50    2.53   -0.01
    pause_middle   2 s    stall middle 2 s               2.16    4.50    2.15   -0.01
    pause_start    1 s    stall start 1 s                3.20    4.50    3.19   -0.01
    pause_start    2 s    stall start 2 s                2.63    4.50    2.62   -0.01
    qp_level       6      compression QP 44              1.97    4.50    2.00   +0.03
    qp_level       7      compression QP 40              2.55    4.50    2.55   -0.00
    qp_level       8      compression QP 36              3.27    4.50    3.20   -0.07
    qp_level       9      compression QP 32              3.78    4.50    3.84   +0.06
    RMSE over the 12 anchors: before 1.64, after 0.030 (max |residual| 0.072; anchor standard errors 0.02-0.07)

"Before" is the rule at commit 8f1b4e8: av_offset linear in severity over 2-15 frames whatever its
direction (harsher than people at 0.5 s, and blind to the sound-first / lips-first asymmetry); no stall
or compression artifact existed, so such clips were labelled clean. What the curves give between the
anchors (mos_overall, whole clip): av_offset sound_first 0.08/0.16/0.32 s -> 4.16/3.73/2.98, lips_first
-> 4.49/4.45/4.07 (people do not notice lips leading by a few frames); stall 0.5 s middle 3.09, start
3.69; compression QP 28 -> 4.31. Compression is where the fit loses most: a 3-parameter curve through
4 points whose steps are uneven (+-0.07).

Assumptions and what is not fitted. The study's qp_level L is taken as x264 QP 68 - 4 L (its mapping is
not published), with the curve's origin at QP 24, the corpus's own CRF-20 encode (22-25.5 measured);
qt_level and stream_level are ladders of unknown kind and are only listed by the fit script. The stall
model (picture frozen, sound goes on, frames dropped to catch up) and 'start' = begins within the
first second are ours. `clean` is not fitted: the study has no clean versions, and since every
anchored artifact has its own amplitude, moving `clean` changes the drops, never the residuals; 4.5 is
kept for real footage (the study's best generators average 4.0 on this scale). `secondary` and
`coverage_exponent` are not fitted: every anchor is one fault over the whole clip, so none says how
faults combine or how a segment weighs. Impacts of the other artifacts are not anchored (yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from talkqa.tasks import DIMENSION_NAMES, PERCEPTUAL_DIMENSIONS as PERCEPTUAL
from .artifacts import ARTIFACTS, Artifact
from .artifacts.base import OVERALL


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
    mode: str | None = None  # which of the artifact's responses (e.g. 'sound_first'), as its apply logged it
    parameter: float | None = None  # physical level actually applied (s, QP, ...); None: the severity's level


def artifact_drops(applied: Applied, rule: LabelRule = LabelRule(),
                   artifacts: Mapping[str, type[Artifact]] | None = None) -> dict[str, float]:
    """MOS points one applied artifact costs each perceptual dimension, plus `overall` (its direct
    share, added after the dimensions are combined). `artifacts` swaps in other declarations (the fit)."""
    cls = artifacts[applied.artifact] if artifacts is not None else ARTIFACTS.get(applied.artifact)
    cover = max(0.0, min(1.0, applied.coverage)) ** rule.coverage_exponent if cls.coverage_scaled else 1.0
    w = cls.response(applied.severity, applied.mode, applied.parameter) * cover
    return {d: cls.impacts.get(d, 0.0) * w for d in (*PERCEPTUAL, OVERALL)}


def pseudo_mos(applied: Iterable[Applied], rule: LabelRule = LabelRule(),
               artifacts: Mapping[str, type[Artifact]] | None = None, ndigits: int | None = 4) -> dict[str, float]:
    """{'mos_lip_sync': .., ..., 'mos_overall': ..} for the artifacts of one variant."""
    total = {d: 0.0 for d in (*PERCEPTUAL, OVERALL)}
    for a in applied:
        for d, v in artifact_drops(a, rule, artifacts).items():
            total[d] += v
    direct = total.pop(OVERALL)
    worst = max(total.values())
    combined = worst + rule.secondary * (sum(total.values()) - worst) + direct
    out = {f"mos_{d}": max(rule.floor, rule.clean - total[d]) for d in PERCEPTUAL}
    out[f"mos_{OVERALL}"] = max(rule.floor, rule.clean - combined)
    return {f"mos_{d}": out[f"mos_{d}"] if ndigits is None else round(out[f"mos_{d}"], ndigits)
            for d in DIMENSION_NAMES}
