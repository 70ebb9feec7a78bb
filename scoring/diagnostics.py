"""Diagnostics: the time segments where a problem was found, with what it is and how severe.

They come from four sources:
  * the fusion model's per-window diagnostic head: a 1 s window is flagged for a dimension when its
    problem probability exceeds that dimension's threshold in model.json (chosen on the validation
    speakers at training time, see configs/train/default.yaml); adjacent flagged windows merge into
    one segment whose severity is the highest probability in it;
  * clear hand-crafted evidence (EVIDENCE below), thresholds fixed so that they fire only on
    unambiguous cases: mouth moving in silence, mouth shut during speech, clipping;
  * a frozen picture (`frozen_diagnostics`): every stretch of at least FROZEN_MIN_S in which the picture
    is held, with its own start and end;
  * the clip's own AV offset (`offset_diagnostic`): a clip scored poor on lip sync whose sync expert places
    an offset gets one segment over the whole clip naming it, when no lip-sync window was flagged — a
    constant offset is in every window alike, and a window head trained on partial faults may see none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from talkqa.features.signals import runs
from talkqa.tasks import DIMENSIONS, DIMENSION_NAMES

_PROBLEM = {d.name: d.problem for d in DIMENSIONS}

@dataclass(frozen=True)
class Evidence:
    """A hand-crafted window rule: flag windows where `column` >= `at_least` (and `when` holds)."""

    dimension: str
    issue: str
    column: str
    at_least: float
    when: tuple[tuple[str, str, float], ...] = ()  # (column, "<=" | ">=", value)


EVIDENCE = (
    # mostly silent window (<= 10 % speech) where the mouth keeps moving in >= 60 % of the frames
    Evidence("lip_sync", "mouth moves during silence", "lipsync__moving_mouth_silence_share", 0.6,
             (("lipsync__speech_share", "<=", 0.1),)),
    # mostly speech (>= 50 %) while the mouth stays shut in >= 80 % of those frames
    Evidence("lip_sync", "mouth closed while speaking", "lipsync__closed_mouth_speech_share", 0.8,
             (("lipsync__speech_share", ">=", 0.5),)),
    # >= 1 % of samples on the clipping plateau
    Evidence("audio_quality", "audio clipping", "audio__clipping_share", 0.01),
)


# A frozen picture is named by its run of held frames (the expression family's per-frame `held` series:
# frozen as frozen_share counts it, or the picture changing by less than 0.05 of 255 on average over 0.2 s),
# not by 1 s windows: a 1 s stall lands across two windows and often neither is 90 % frozen, and an encoder
# without lookahead keeps refining a held frame so that single frames do not read as frozen. Measured on
# training clips only (benchmarks/frozen_diagnostics.py): stalls of the two corpora of the default model
# named with at least half covered, 64 of 64 of 1-2 s (the former window rule: 51) and 0 of 26 of 0.48 s;
# 1.5 s stalls of 49 training sources encoded as `talkqa check` encodes, 46 of 49 (window rule and frozen
# frames alone: 1); clean clips flagged 0 of 100; clips whose faults do not freeze the picture 16 of 734:
# 14 compressed (12 by compression alone, at QP 36-44), where the coder stopped updating the picture for half
# a second, and 2 of one source (hyperlips/video2) whose last half-second barely changes (0.01-0.05 per frame;
# its clean clip falls just short of half a second).
FROZEN_MIN_S = 0.5
FROZEN_ISSUE = "picture frozen"


def frozen_diagnostics(held: np.ndarray | None, fps: float, skip: set[str],
                       min_s: float = FROZEN_MIN_S) -> list[dict]:
    """One expression segment per run of at least `min_s` seconds of held frames (`held`: the expression
    family's series, 1 held, 0 not, NaN unjudged; unjudged frames break a run). Severity 1: nothing moves."""
    if held is None or "expression" in skip or not fps > 0:
        return []
    mask = np.nan_to_num(np.asarray(held, np.float64), nan=0.0) >= 0.5
    out = []
    for a, b in runs(mask):
        if b - a >= min_s * fps - 1e-9:
            out.append({"start": round(a / fps, 2), "end": round(b / fps, 2), "dimension": "expression",
                        "issue": f"{FROZEN_ISSUE} for {(b - a) / fps:.1f} s", "severity": 1.0})
    return out


def quiet_dimensions(scores: dict[str, float | None], only_below: float | None) -> set[str]:
    """Dimensions whose window segments are not listed: those the clip scores at or above `only_below`
    (none when it is None; a dimension without a score is left to the caller's skip set)."""
    if only_below is None:
        return set()
    return {d for d, v in scores.items() if v is not None and np.isfinite(v) and v >= only_below}


def segments(mask: np.ndarray, t0: np.ndarray, t1: np.ndarray, value: np.ndarray) -> list[tuple[float, float, float]]:
    """Merge runs of flagged consecutive windows: [(start, end, max value)]."""
    return [(float(t0[a]), float(t1[b - 1]), float(np.max(value[a:b]))) for a, b in runs(mask)]


def _offset_words(frames: float) -> str:
    n = int(round(abs(frames)))
    return f"audio lags the lips by {n} frame{'s' * (n != 1)}" if frames > 0 else \
        f"audio leads the lips by {n} frame{'s' * (n != 1)}"


def model_diagnostics(probs: pd.DataFrame, thresholds: dict[str, float], win_feats: pd.DataFrame,
                       skip: set[str], clip_offset: float | None = None) -> list[dict]:
    """Segments where a dimension's window probability of a problem passes its threshold. A lip-sync
    segment names the AV offset: the clip's reading from the preferred sync source (`clip_offset`, the
    sync expert's over the whole clip) when there is one, else the median of the hand-crafted window
    readings inside the segment — one-second windows see too few frames to place an offset of 0.5 s, and
    their median can even take the wrong sign. A NaN `clip_offset` (a reading too weak to trust) names none."""
    out = []
    t0, t1 = probs["t_start"].to_numpy(float), probs["t_end"].to_numpy(float)
    for dim in DIMENSION_NAMES:
        if dim in skip or dim not in probs or dim not in thresholds:
            continue
        p = probs[dim].to_numpy(float)
        for start, end, sev in segments(p > thresholds[dim], t0, t1, p):
            issue = _PROBLEM[dim]
            inside = win_feats[(win_feats["t_start"] >= start - 1e-6) & (win_feats["t_end"] <= end + 1e-6)]
            if dim == "lip_sync":
                off = np.nan
                if clip_offset is not None:
                    off = clip_offset
                elif "lipsync__av_offset_frames" in inside and inside["lipsync__av_offset_frames"].notna().any():
                    off = np.nanmedian(inside["lipsync__av_offset_frames"])
                if np.isfinite(off) and abs(off) >= 2:
                    issue = f"{issue}: {_offset_words(off)}"
            out.append({"start": round(start, 2), "end": round(end, 2), "dimension": dim, "issue": issue,
                        "severity": round(sev, 2)})
    return out


def offset_diagnostic(scores: dict[str, float | None], clip_offset: float | None, win_feats: pd.DataFrame,
                      listed: list[dict], skip: set[str]) -> list[dict]:
    """One lip-sync segment over the whole clip naming its AV offset, when the clip's lip_sync score says
    the sync is poor (`skip` holds the dimensions not to list: unscored, or scored good under
    `diagnostics.only_below`; a model without that gate lists it whatever the score, as it lists every
    window segment), the sync expert names an offset (`clip_offset`: None or NaN when it has
    none to name, see SyncExpert.named_offset) and no lip-sync segment is `listed` already. Its severity
    is the score's distance below the scale's top, as a share (a lip_sync of 1 is severity 1)."""
    score = scores.get("lip_sync")
    if "lip_sync" in skip or score is None or not np.isfinite(score) or clip_offset is None \
            or not np.isfinite(clip_offset) or abs(clip_offset) < 2 or win_feats.empty \
            or any(d["dimension"] == "lip_sync" for d in listed):
        return []
    lo, hi = next(d.scale for d in DIMENSIONS if d.name == "lip_sync")
    return [{"start": round(float(win_feats["t_start"].min()), 2), "end": round(float(win_feats["t_end"].max()), 2),
             "dimension": "lip_sync", "issue": f"{_PROBLEM['lip_sync']}: {_offset_words(clip_offset)} (whole clip)",
             "severity": round(float(np.clip((hi - score) / (hi - lo), 0.0, 1.0)), 2)}]


def evidence_diagnostics(win_feats: pd.DataFrame, skip: set[str]) -> list[dict]:
    out = []
    if win_feats.empty:
        return out
    t0, t1 = win_feats["t_start"].to_numpy(float), win_feats["t_end"].to_numpy(float)
    for rule in EVIDENCE:
        if rule.dimension in skip or rule.column not in win_feats:
            continue
        v = win_feats[rule.column].to_numpy(float)
        mask = np.nan_to_num(v, nan=-np.inf) >= rule.at_least
        for col, op, ref in rule.when:
            w = win_feats[col].to_numpy(float) if col in win_feats else np.full(len(v), np.nan)
            mask &= (w <= ref) if op == "<=" else (w >= ref)
        for start, end, sev in segments(mask, t0, t1, np.nan_to_num(v)):
            out.append({"start": round(start, 2), "end": round(end, 2), "dimension": rule.dimension,
                        "issue": rule.issue, "severity": round(min(1.0, sev), 2)})
    return out
