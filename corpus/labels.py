"""Pseudo-MOS for degraded clips: a documented, monotone severity -> score mapping, anchored on people
where a published study rated the same fault, and held to the behavioural checks of issue #13.

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
    W_d        = weight_d * D_d                       weight_lip_sync 0.38 (fitted), every other 1
    mos_overall = max(floor, clean - (max_d W_d + secondary * (sum_d W_d - max_d W_d)
                                      + sum_j impacts_j[overall] * w_j))              (secondary 0.4)

Why: the clean clip scores 4.5, not 5 (real clips are compressed, and raters rarely give every clip 5);
drops add up inside a dimension (two audio faults are worse than one); a segment fault weighs the
square root of its time share, because raters remember a short glitch more than its share suggests (a
stall's level is already its length, so a longer clip does not dilute it); `overall` follows the worst
dimension, adds a fraction of the others, and adds an artifact's own `overall` impact where the fault
annoys beyond any dimension (a stall interrupts). People judge a clip whose picture and sound are fine
more kindly overall than its lip sync: lips first by 0.5 s is 3.17 overall for people, while any
viewer calls its lip sync bad (<= 2), so a lip-sync drop counts in overall with a weight below 1.
`overall` weighs each dimension's whole drop D_d, also where mos_d already sits at the floor: lip sync
half a second off is as bad as the scale goes, one second off is worse still for the viewer. The
curves rise from 0 at their origin and saturate, the weights are positive, so every mos_* is
non-increasing in every severity, level and coverage, and equals `clean` with no artifact
(tests/test_degrade.py checks it over every artifact and mode).

Human anchors. THQA-NTIRE (NTIRE 2025 talking-head quality challenge, ../shared/anchors): 50 videos per
distortion and level, one overall MOS per video on 0-5, mapped to 1-5 as 1 + 0.8 x MOS. Each anchor
constrains `mos_overall` of a whole clip with that fault; how the drop divides over the dimensions is
a stated design choice (benchmarks/fit_label_rule.py, SPECS): av_offset lip_sync 1 : consistency 0.06;
stall expression 1 : lip_sync 0.8 : overall 0.3; compression visual_quality only. The fit (weighted
least squares, scipy) sets each artifact's asymptotic overall drop and a curve per mode; two soft
priors fix the small-offset end (ITU-R BT.1359 detectability: sound 45 ms first, lips 125 ms first
cost 0.1). The label checks (corpus/label_checks.py: a still photo, a talking photo, audio 0.2 / 0.5 s
off either way and the ladder to 1 s, another voice, a 1-2 s stall, 0 dB noise, QP 44) are hard
constraints of the fit, met with a 0.05 margin.

    distortion     level  talkqa                        people  before  after  residual
    audio_lead     0.5 s  av_offset sound_first 0.5 s    2.47    1.48    2.48   +0.01
    audio_lead     1 s    av_offset sound_first 1 s      2.12    1.18    2.13   +0.01
    video_lead     0.5 s  av_offset lips_first 0.5 s     3.17    1.48    3.14   -0.03
    video_lead     1 s    av_offset lips_first 1 s       2.05    1.18    2.06   +0.01
    pause_middle   1 s    stall middle 1 s               2.54    4.50    2.54   +0.00
    pause_middle   2 s    stall middle 2 s               2.16    4.50    2.16   +0.00
    pause_start    1 s    stall start 1 s                3.20    4.50    3.20   -0.00
    pause_start    2 s    stall start 2 s                2.63    4.50    2.63   +0.00
    qp_level       6      compression QP 44              1.97    4.50    2.00   +0.03
    qp_level       7      compression QP 40              2.55    4.50    2.55   -0.00
    qp_level       8      compression QP 36              3.27    4.50    3.20   -0.07
    qp_level       9      compression QP 32              3.78    4.50    3.84   +0.06
    RMSE over the 12 anchors: before 1.64, after 0.030 (max |residual| 0.072; anchor standard errors 0.02-0.07)

    audio off (whole clip)   lip_sync           consistency        overall
                             before -> after    before -> after    before -> after
    lips first  0.2 s        2.81 -> 3.45       4.05 -> 4.44       2.63 -> 4.07
    lips first  0.5 s        1.77 -> 1.14       3.77 -> 4.30       1.48 -> 3.14
    lips first  1 s          1.50 -> 1.00       3.70 -> 4.14       1.18 -> 2.06
    sound first 0.2 s        2.81 -> 2.37       4.05 -> 4.37       2.63 -> 3.64
    sound first 0.5 s        1.77 -> 1.00       3.77 -> 4.20       1.48 -> 2.48
    sound first 1 s          1.50 -> 1.00       3.70 -> 4.15       1.18 -> 2.13

"Before" is the rule at commit 8f1b4e8: av_offset linear in severity over 2-15 frames whatever its
direction (harsher than people at 0.5 s, and blind to the sound-first / lips-first asymmetry), overall
taking every dimension's whole drop; no stall or compression artifact existed, so such clips were
labelled clean. Lips first costs next to nothing up to the detectability point (origin 56 ms; 0.08 /
0.125 s -> overall 4.45 / 4.31) and then rises steeply, so that 0.2 s costs lip sync 1.05; sound first
is noticed earlier and levels off at 0.68 of the lips-first asymptote (people: 2.47 -> 2.12 from 0.5 to
1 s, where lips first falls 3.17 -> 2.05). Where lip sync has reached the floor (sound first from
0.32 s, lips first from 0.52 s), its label no longer orders the offsets; overall does. Stall 0.5 s
middle -> overall 3.10, start 3.69; compression QP 28 -> 4.31. Compression is where the fit loses most:
a 3-parameter curve through 4 points whose steps are uneven (+-0.07).

The lip-sync weight. Overall depends on the weight only through its product with the lip-sync drop,
so the anchors alone cannot fix it; the checks bound it from above (the smaller the weight, the larger
the lip-sync drop that comes with the same overall). It is the largest weight, in 0.01 steps, whose
constrained fit of av_offset costs the anchors and priors at most 1 more chi-square than the fit
without checks (chi-square 0.92 at 0.38, 1.20 at 0.39, 2.24 at 0.42): overall follows lip sync as far
as people's ratings allow. Every other weight is 1: no anchor says otherwise. The weight applies to
every lip-sync fault, anchored or not: at full severity over a whole clip, overall (before -> after)
mouth_freeze 1.00 -> 2.64, mouth_swap 1.30 -> 3.16, mouth_jitter 2.10 -> 3.20, mouth_blur 2.80 ->
3.73; faults that also cost another dimension much change little (audio_swap 1.00 -> 1.04).

Assumptions and what is not fitted. The study's qp_level L is taken as x264 QP 68 - 4 L (its mapping is
not published), with the curve's origin at QP 24, the corpus's own CRF-20 encode (22-25.5 measured);
qt_level and stream_level are ladders of unknown kind and are only listed by the fit script. The stall
model (picture frozen, sound goes on, frames dropped to catch up) and 'start' = begins within the
first second are ours. An offset grown without bound takes overall to the floor (its asymptote is not
fitted). `clean` is not fitted: the study has no clean versions, and since every anchored artifact has
its own amplitude, moving `clean` changes the drops, never the residuals; 4.5 is kept for real footage
(the study's best generators average 4.0 on this scale). `secondary` and `coverage_exponent` are not
fitted: every anchor is one fault over the whole clip, so none says how faults combine or how a
segment weighs. Impacts of the other artifacts are not anchored (yet); the still photo (frame_stutter
at full severity) and the talking photo (still_portrait at full severity) are set by hand to pass
their checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from talkqa.tasks import DIMENSION_NAMES, PERCEPTUAL_DIMENSIONS as PERCEPTUAL, overall_drop_parts
from .artifacts import ARTIFACTS, Artifact
from .artifacts.base import OVERALL

# fitted: benchmarks/fit_label_rule.py (the largest lip-sync weight the behavioural checks allow)
OVERALL_WEIGHTS = {"lip_sync": 0.38}


@dataclass(frozen=True)
class LabelRule:
    clean: float = 4.5
    floor: float = 1.0
    coverage_exponent: float = 0.5
    secondary: float = 0.4
    # the share of a dimension's drop that `overall` takes; 1 for a dimension not named
    overall_weights: Mapping[str, float] = field(default_factory=lambda: dict(OVERALL_WEIGHTS))

    def __post_init__(self):
        bad = {d: w for d, w in self.overall_weights.items() if d not in PERCEPTUAL or not 0 < float(w) <= 1}
        if bad:
            raise ValueError(f"overall_weights: {bad} — each must name a dimension other than overall "
                             f"({', '.join(PERCEPTUAL)}) and be in (0, 1]")

    def weight(self, dimension: str) -> float:
        return float(self.overall_weights.get(dimension, 1.0))


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
    # each dimension's whole drop, floor or not, is what overall weighs: a lip sync already at the
    # bottom of its scale still gets worse for the viewer as the offset grows
    weighted = {d: rule.weight(d) * v for d, v in total.items()}
    combined = sum(overall_drop_parts(weighted, rule.secondary).values()) + direct
    out = {f"mos_{d}": max(rule.floor, rule.clean - total[d]) for d in PERCEPTUAL}
    out[f"mos_{OVERALL}"] = max(rule.floor, rule.clean - combined)
    return {f"mos_{d}": out[f"mos_{d}"] if ndigits is None else round(out[f"mos_{d}"], ndigits)
            for d in DIMENSION_NAMES}
