"""Diagnostic segments: where the model sees a problem, and the words that name it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from talkqa.scoring.diagnostics import EVIDENCE, FROZEN_ISSUE, model_diagnostics
from talkqa.tasks import DIMENSION_NAMES


def _windows(n: int, window_offset: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    t0 = np.arange(n, dtype=float)
    probs = pd.DataFrame({"t_start": t0, "t_end": t0 + 1, **{d: np.full(n, 0.1) for d in DIMENSION_NAMES}})
    probs.loc[1:3, "lip_sync"] = 0.9  # windows 1-3 out of sync
    feats = pd.DataFrame({"t_start": t0, "t_end": t0 + 1, "lipsync__av_offset_frames": np.full(n, window_offset)})
    return probs, feats


def test_a_lip_sync_segment_names_the_clip_offset_of_the_sync_expert():
    # one-second windows misread a 0.5 s delay (12 frames) as audio 6 frames early; the expert reads the clip
    probs, feats = _windows(5, -6.0)
    thresholds = {d: 0.5 for d in DIMENSION_NAMES}
    [seg] = model_diagnostics(probs, thresholds, feats, skip=set(), clip_offset=12.0)
    assert (seg["dimension"], seg["start"], seg["end"]) == ("lip_sync", 1.0, 4.0)
    assert seg["issue"].endswith("audio lags the lips by 12 frames")
    assert seg["severity"] == 0.9


def test_without_a_clip_reading_the_windows_name_the_offset_and_small_offsets_are_not_named():
    probs, feats = _windows(5, -6.0)
    thresholds = {d: 0.5 for d in DIMENSION_NAMES}
    [seg] = model_diagnostics(probs, thresholds, feats, skip=set(), clip_offset=None)
    assert seg["issue"].endswith("audio leads the lips by 6 frames")
    [seg] = model_diagnostics(probs, thresholds, feats, skip=set(), clip_offset=1.0)
    assert "frame" not in seg["issue"]  # within a frame of sync: no offset to name
    [seg] = model_diagnostics(probs, thresholds, feats, skip=set(), clip_offset=float("nan"))
    assert "frame" not in seg["issue"]  # the expert's reading is too weak (a still mouth): no offset to name
    assert model_diagnostics(probs, thresholds, feats, skip={"lip_sync"}) == []


def test_the_sync_expert_names_only_offsets_it_can_place_and_calls_out_of_sync():
    from talkqa.experts.sync import SyncExpert

    name = SyncExpert.named_offset
    assert name(14.0, 0.10) == 14.0  # sound 0.5 s late, a clear curve
    assert name(-6.0, 0.10) == -6.0
    assert np.isnan(name(8.0, 0.006))  # a still mouth: the curve is flat, no offset to name
    assert np.isnan(name(2.0, 0.10))  # within ITU-R BT.1359's detectability window: in sync


def test_a_dimension_the_clip_scores_good_on_lists_no_window_segment():
    from talkqa.scoring.diagnostics import quiet_dimensions

    scores = {"lip_sync": 4.2, "expression": 2.1, "visual_quality": 3.5, "audio_quality": None,
              "consistency": float("nan"), "overall": 3.49}
    assert quiet_dimensions(scores, 3.5) == {"lip_sync", "visual_quality"}  # at the gate counts as good
    assert quiet_dimensions(scores, None) == set()  # a model without the gate lists every segment
    probs, feats = _windows(5, 0.0)
    probs.loc[1:3, "expression"] = 0.9
    thresholds = {d: 0.5 for d in DIMENSION_NAMES}
    listed = model_diagnostics(probs, thresholds, feats, skip=quiet_dimensions(scores, 3.5))
    assert [d["dimension"] for d in listed] == ["expression"]  # lip_sync's windows pass, its score says good
    assert {d["dimension"] for d in model_diagnostics(probs, thresholds, feats, skip=set())} == {"lip_sync", "expression"}


def test_the_scorer_gates_window_segments_by_the_clip_score(score_inputs, bundle):
    from talkqa.scoring.scorer import Scorer

    scorer = Scorer(bundle)
    clip = score_inputs["good"][0]
    diags = scorer.bundle.config.diagnostics
    scorer.bundle.config.diagnostics = diags.model_copy(update={"only_below": None})
    scorer.bundle.meta["diagnostic_thresholds"] = {d: {"threshold": 0.0} for d in DIMENSION_NAMES}  # every window
    open_result = scorer.score(clip)
    assert open_result.error is None
    flagged = {d["dimension"] for d in open_result.diagnostics}
    assert flagged, "with a zero threshold every scored dimension has a segment"
    scorer.bundle.config.diagnostics = diags.model_copy(update={"only_below": 1.0})  # every score is >= 1
    gated = scorer.score(clip)
    assert gated.scores == open_result.scores
    evidence = {(d["dimension"], d["issue"]) for d in open_result.diagnostics
                if d["issue"] in {e.issue for e in EVIDENCE} or d["issue"].startswith(FROZEN_ISSUE)}
    assert {(d["dimension"], d["issue"]) for d in gated.diagnostics} == evidence  # only hand-crafted evidence left


def test_frozen_runs_of_half_a_second_or_more_become_segments():
    from talkqa.scoring.diagnostics import frozen_diagnostics

    fps = 25.0
    frozen = np.zeros(200)
    frozen[10:22] = 1  # 0.48 s: too short to name
    frozen[50:63] = 1  # 0.52 s
    frozen[100:150] = 1  # 2 s ...
    frozen[120] = np.nan  # ... broken by a frame without a face: unjudged is not frozen
    segs = frozen_diagnostics(frozen, fps, skip=set())
    assert [(d["start"], d["end"]) for d in segs] == [(2.0, 2.52), (4.0, 4.8), (4.84, 6.0)]
    assert {d["dimension"] for d in segs} == {"expression"} and {d["severity"] for d in segs} == {1.0}
    assert [d["issue"] for d in segs] == ["picture frozen for 0.5 s", "picture frozen for 0.8 s",
                                          "picture frozen for 1.2 s"]
    still_photo = frozen_diagnostics(np.ones(200), fps, skip=set())
    assert [(d["start"], d["end"]) for d in still_photo] == [(0.0, 8.0)]
    assert frozen_diagnostics(None, fps, set()) == [] and frozen_diagnostics(np.zeros(50), fps, set()) == []


def test_a_clip_scored_out_of_sync_names_its_offset_when_no_window_was_flagged():
    from talkqa.scoring.diagnostics import offset_diagnostic

    t0 = np.arange(6, dtype=float)
    feats = pd.DataFrame({"t_start": t0, "t_end": t0 + 1})
    poor = {"lip_sync": 1.0, "expression": 4.2}
    [seg] = offset_diagnostic(poor, 12.0, feats, listed=[], skip=set())
    assert (seg["dimension"], seg["start"], seg["end"], seg["severity"]) == ("lip_sync", 0.0, 6.0, 1.0)
    assert seg["issue"] == "lips out of sync with the speech: audio lags the lips by 12 frames (whole clip)"
    assert offset_diagnostic({"lip_sync": 3.0}, -8.0, feats, [], set())[0]["severity"] == 0.5
    assert "leads the lips by 8 frames" in offset_diagnostic({"lip_sync": 3.0}, -8.0, feats, [], set())[0]["issue"]
    window_segment = {"dimension": "lip_sync", "start": 1.0, "end": 3.0}
    assert offset_diagnostic(poor, 12.0, feats, [window_segment], set()) == []  # the window segment names it
    assert offset_diagnostic(poor, 12.0, feats, [], {"lip_sync"}) == []  # scored good (gated) or not scored
    assert offset_diagnostic(poor, float("nan"), feats, [], set()) == []  # the expert places no offset
    assert offset_diagnostic(poor, None, feats, [], set()) == []  # no clip reading
    assert offset_diagnostic(poor, 1.0, feats, [], set()) == []  # within a frame: nothing to name
    assert offset_diagnostic({"lip_sync": None}, 12.0, feats, [], set()) == []
