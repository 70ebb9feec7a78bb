"""Single, unmistakable edits of a real clip, for `talkqa check`: what any viewer can judge at a glance
(a still photo, a stall, audio half a second off, another person's voice, heavy noise, a blurred face).

Each maker takes a `Sample` (frames at 25 fps, audio of exactly T * hop samples, landmarks when the
edit needs them, `donors` = other speakers' speech) and returns an `Edit`: the edited sample, the
frame span it changed (None: the whole clip) and the H.264 CRF to write it with. Makers reuse the
degrade artifacts and the synthetic renderer; they never modify their input. `VARIANT_KINDS` maps a
kind name (as written in configs/check/*.yaml) to its maker; parameters are keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from talkqa.config import PreprocessConfig
from talkqa.features.face import FaceDetector, FaceTracker

from .artifacts import ARTIFACTS, Sample, regions
from .artifacts.expression import hold_frames
from .artifacts.lipsync import shift_audio
from .render import TalkingHeadRenderer
from .speech import controls_from_audio

DEFAULT_CRF = 20  # what `talkqa degrade` writes: the clean clip is re-encoded like every variant


@dataclass
class Edit:
    sample: Sample
    span: tuple[int, int] | None = None  # frames the edit changed; None = the whole clip
    crf: int = DEFAULT_CRF


@dataclass(frozen=True)
class VariantKind:
    """A maker and what it reads besides frames and audio (a bool, or a function of the parameters)."""

    make: Callable[..., Edit]
    needs_landmarks: bool | Callable[[dict], bool] = False
    needs_donors: bool | Callable[[dict], bool] = False

    def needs(self, params: dict[str, Any]) -> tuple[bool, bool]:
        return tuple(bool(v(params) if callable(v) else v) for v in (self.needs_landmarks, self.needs_donors))


VARIANT_KINDS: dict[str, VariantKind] = {}


def _kind(needs_landmarks: bool | Callable[[dict], bool] = False, needs_donors: bool | Callable[[dict], bool] = False):
    def register(make: Callable[..., Edit]) -> Callable[..., Edit]:
        VARIANT_KINDS[make.__name__] = VariantKind(make, needs_landmarks, needs_donors)
        return make

    return register


@_kind()
def clean(sample: Sample, rng: np.random.Generator) -> Edit:
    """The clip as it is (decoded and re-encoded like every variant)."""
    return Edit(sample.copy())


def first_face_frame(frames: np.ndarray, run: int = 3) -> int:
    """The first frame that starts `run` consecutive frames in which talkqa's face pipeline
    (features.face: detector, then the mesh on the detected box) finds a face, each seen as if it were
    the whole clip; 0 if none does. A still made of a frame the scorer cannot read would test the face
    tracker, not the judgement; a face found only in isolated frames is on the edge of detection and
    is often lost once the still is encoded."""

    config = PreprocessConfig()
    detector = FaceDetector(config)
    found = 0
    try:
        for t, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame)
            boxes = detector.detect(frame)
            tracker = FaceTracker(config)  # fresh: a still clip shows this frame to a tracker with no history
            try:
                found = found + 1 if boxes and tracker.step(0, frame, boxes) else 0
            finally:
                tracker.close()
            if found == run:
                return t - run + 1
    finally:
        detector.close()
    return 0


@_kind()
def still_photo(sample: Sample, rng: np.random.Generator) -> Edit:
    """The first frame with a face for the whole clip, with the clip's own audio: a photo with a voice."""
    out = sample.copy()
    out.frames[:] = sample.frames[first_face_frame(sample.frames)]
    return Edit(out)


@_kind()
def stall(sample: Sample, rng: np.random.Generator, seconds: float = 1.5) -> Edit:
    """The picture freezes for `seconds` in the middle of the clip while the audio goes on."""
    n = min(sample.n_frames - 2, max(1, int(round(seconds * sample.fps))))
    a = (sample.n_frames - n) // 2
    return Edit(hold_frames(sample, (a, a + n)), (a, a + n))


@_kind()
def audio_shift(sample: Sample, rng: np.random.Generator, seconds: float = 0.5) -> Edit:
    """The whole soundtrack moved by `seconds` (positive: the sound comes after the lips); silence
    fills the gap at the start or the end."""
    out = sample.copy()
    out.audio = shift_audio(sample.audio, int(round(seconds * sample.sr)), 0, len(sample.audio))
    return Edit(out)


@_kind(needs_donors=True)
def other_voice(sample: Sample, rng: np.random.Generator) -> Edit:
    """The voice replaced by another speaker's speech (the first donor), at the same loudness."""
    if not sample.donors:
        raise ValueError("other_voice needs another speaker's audio (a donor)")
    donor = Sample(sample.frames, sample.audio, sample.landmarks, sample.donors[:1], sample.fps, sample.sr)
    return Edit(ARTIFACTS.create("audio_swap").apply(donor, 1.0, None, rng))


@_kind()
def white_noise(sample: Sample, rng: np.random.Generator, snr_db: float = 0.0) -> Edit:
    """White noise at `snr_db` against the clip's own speech."""
    out = sample.copy()
    out.audio = ARTIFACTS.create("noise_white").process(sample.audio, snr_db, sample, rng)
    return Edit(out)


@_kind(needs_landmarks=True)
def face_blur(sample: Sample, rng: np.random.Generator, sigma_iod: float = 0.12) -> Edit:
    """The face (hull of the landmarks, a little grown) blurred with a Gaussian of `sigma_iod`
    inter-ocular distances: a heavily smeared face on a sharp background."""
    if sample.landmarks is None:
        raise ValueError("face_blur needs the face landmarks (no face found in the clip)")
    out = sample.copy()
    for t in range(sample.n_frames):
        pts = sample.landmarks[t]
        iod = regions.inter_ocular(pts)
        blurred = cv2.GaussianBlur(sample.frames[t], (0, 0), max(1.0, sigma_iod * iod))
        mask = regions.region_mask(sample.frames[t].shape, [pts], 0.1 * iod, 0.1 * iod)
        out.frames[t] = regions.blend(sample.frames[t], blurred, mask)
    return Edit(out)


@_kind()
def compression(sample: Sample, rng: np.random.Generator, crf: int = 51) -> Edit:
    """The clip encoded at H.264 CRF `crf` (51: the coarsest quantiser, blocky and smeared)."""
    return Edit(sample.copy(), None, int(crf))


@_kind()
def mirror(sample: Sample, rng: np.random.Generator) -> Edit:
    """Left and right swapped: a viewer judges it exactly like the clip."""
    out = sample.copy()
    out.frames = np.ascontiguousarray(sample.frames[:, :, ::-1])
    return Edit(out)


@_kind()
def animated_still(sample: Sample, rng: np.random.Generator, size: int = 256) -> Edit:
    """The first frame with a face animated by the synthetic renderer, only the mouth driven by the
    audio (jaw from the speech envelope, as `talkqa synth` does); head, eyes, brows still: a talking photo."""

    jaw = controls_from_audio(sample.audio, sample.sr, sample.fps, rng=rng, n_frames=sample.n_frames)["jaw"]
    portrait = sample.frames[first_face_frame(sample.frames)]
    frames = TalkingHeadRenderer(portrait, size=size).render({"jaw": jaw})
    return Edit(Sample(frames, sample.audio.copy(), None, [], sample.fps, sample.sr))


@_kind(needs_landmarks=lambda p: ARTIFACTS.get(p["name"]).needs_landmarks,
       needs_donors=lambda p: ARTIFACTS.get(p["name"]).needs_donors)
def artifact(sample: Sample, rng: np.random.Generator, name: str, severity: float) -> Edit:
    """One degrade artifact over the whole clip at a graded severity (see talkqa.corpus.artifacts)."""
    cls = ARTIFACTS.get(name)
    if cls.needs_landmarks and sample.landmarks is None:
        raise ValueError(f"artifact {name} needs the face landmarks (no face found in the clip)")
    if cls.needs_donors and not sample.donors:
        raise ValueError(f"artifact {name} needs other speakers' audio (donors)")
    return Edit(ARTIFACTS.create(name).apply(sample, severity, None, rng))


def make_variant(kind: str, sample: Sample, rng: np.random.Generator, **params) -> Edit:
    """The `kind` edit of `sample` with `params` (see VARIANT_KINDS)."""
    if kind not in VARIANT_KINDS:
        raise ValueError(f"unknown variant kind {kind!r}; known: {', '.join(VARIANT_KINDS)}")
    return VARIANT_KINDS[kind].make(sample, rng, **params)


def severity_levels(name: str) -> tuple[float, ...]:
    """The graded severities of an artifact, mildest first (as `talkqa degrade` draws them)."""
    return ARTIFACTS.get(name).severities()


