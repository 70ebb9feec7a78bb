"""Delivery artifacts: what encoding and playback do to a finished video. The picture re-encoded at
a coarse quantiser (compression), and a playback stall (the picture freezes, the sound goes on).
Both are anchored on human ratings (benchmarks/fit_label_rule.py) and applied after every edit of
the content, as a real pipeline would."""

from __future__ import annotations

from talkqa.features.codec import h264_roundtrip

from .base import ARTIFACTS, Artifact, Saturating


@ARTIFACTS.register
class Compression(Artifact):
    """The picture re-encoded with H.264 at a constant quantiser: detail smeared, 8x8 / macroblock
    edges and ringing as QP grows. Levels are x264 QPs (51 is the coarsest); the corpus's own
    encode (CRF 20, about QP 22) is the origin of the response: no cost there."""

    name = "compression"
    kind = "video"
    impacts = {"visual_quality": 3.5}  # fitted: benchmarks/fit_label_rule.py
    responses = {"qp": Saturating(17.8, 1.95, origin=24)}
    levels = (28, 32, 36, 40, 44)
    unit = "x264 QP"
    order = 50  # after every content edit: a pipeline encodes the finished picture

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        qp = int(round(self.parameter(severity)))
        out.frames[a:b] = h264_roundtrip(sample.frames[a:b], qp, sample.fps)
        self._note(out, severity, segment, parameter=float(qp), issue=f"compressed picture (H.264 QP {qp})")
        return out


@ARTIFACTS.register
class Stall(Artifact):
    """A playback stall: the picture stops on one frame for `level` seconds while the sound goes on,
    then the video continues in sync, the frames of the stall dropped (the way a live player or a
    video call catches up). Chosen over a rebuffering pause (sound paused too, then resumed) because
    it keeps the clip's length and its sound untouched: the only fault is the frozen picture against
    running speech, every other artifact of the variant stays where it was, and the stall's frames
    are exactly the diagnostic span. Where it falls is drawn: at the start of the range (mode
    'start' when that is within the clip's first second) or centred in it ('middle'); people
    forgive a stall near the start more. A stall longer than its range is cut to the range and
    labelled with the length it got."""

    name = "stall"
    kind = "video"
    impacts = {"expression": 1.73, "lip_sync": 1.38, "overall": 0.52}  # fitted: benchmarks/fit_label_rule.py
    responses = {"middle": Saturating(0.602, 0.92), "start": Saturating(1.36, 0.92)}
    levels = (0.5, 1.0, 2.0)
    unit = "s frozen"
    coverage_scaled = False  # the level is the stall's length: a longer clip does not dilute it
    min_segment_s = 2.5
    order = 60  # a player stalls on the delivered picture
    start_window_s = 1.0  # a stall that begins this early is a 'start' stall

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        out.landmarks = None if sample.landmarks is None else sample.landmarks.copy()
        a, b = out.frame_range(segment)
        length = min(b - a, int(round(self.parameter(severity) * sample.fps)))
        first = a if rng.random() < 0.5 else a + (b - a - length) // 2
        stop = first + length
        out.frames[first:stop] = sample.frames[first]
        if out.landmarks is not None:
            out.landmarks[first:stop] = sample.landmarks[first]
        mode = "start" if first < self.start_window_s * sample.fps else "middle"
        seconds = length / sample.fps
        self._note(out, severity, (first, stop), mode=mode, parameter=seconds,
                   issue=f"playback stall: picture frozen {seconds:.2f} s while the sound goes on ({mode})")
        out.log[-1]["effective"] = length >= 2  # one frame shown for one frame is no stall
        return out
