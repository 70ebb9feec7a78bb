"""The behavioural checks of issue #13, asked of the labels: `talkqa check` expects a trained model to
score a still photo, audio half a second off, another voice ... the way any viewer would, and a model
learns what its labels say, so the pseudo-MOS of the degrade variant that IS each check's edit has to
pass the check itself (tests/test_degrade.py asserts it; benchmarks/fit_label_rule.py fits the
human-anchored artifacts under these checks as constraints).

Each check names the variant(s) as Applied lists (whole clip) and what is expected, with the keys of
the model-level checks (configs/check): `max` {dimension: highest score}, `min_drop` {dimension: least
drop below the clean clip}, and for a ladder (variants mildest first, the clean clip before them)
`non_increasing` dimensions. Which artifact makes which edit:

    still photo (first frame, own audio)     frame_stutter at full severity (hold inf)
    talking photo (only the mouth moves)     still_portrait at full severity (hold inf: frame 0 but
                                             the lower face, which keeps the clip's own mouth), and
                                             photo_animation at full severity (frame 0 warped by the
                                             renderer, jaw from the speech: what `talkqa check` makes)
    audio shifted by +-s seconds             av_offset lips_first / sound_first at s
    another speaker's voice                  audio_swap at full severity (no original voice left)
    stall in the middle                      stall 'middle' at 1, 1.5 and 2 s
    0 dB white noise, H.264 QP 44            noise_white at full severity, compression at QP 44
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .artifacts import Artifact
from .labels import Applied, LabelRule, pseudo_mos


def whole(artifact: str, mode: str | None = None, parameter: float | None = None,
          severity: float = 1.0) -> tuple[Applied, ...]:
    """One artifact over the whole clip."""
    return (Applied(artifact, severity, 1.0, mode, parameter),)


def describe(variant: tuple[Applied, ...]) -> str:
    return " + ".join(f"{a.artifact}{' ' + a.mode if a.mode else ''}{'' if a.parameter is None else f' {a.parameter:g}'}"
                      for a in variant)


@dataclass(frozen=True)
class LabelCheck:
    name: str
    says: str
    variants: tuple[tuple[Applied, ...], ...]
    max: Mapping[str, float] = field(default_factory=dict)
    min_drop: Mapping[str, float] = field(default_factory=dict)
    non_increasing: tuple[str, ...] = ()  # a ladder: clean, then the variants in order

    def shortfalls(self, rule: LabelRule = LabelRule(), artifacts: Mapping[str, type[Artifact]] | None = None,
                   margin: float = 0.0) -> list[tuple[str, float]]:
        """(what, by how much the labels miss it; <= 0 when met, by at least `margin` when <= -margin)."""
        clean = pseudo_mos([], rule, artifacts, ndigits=None)
        rows = [pseudo_mos(v, rule, artifacts, ndigits=None) for v in self.variants]
        out = []
        for v, mos in zip(self.variants, rows):
            what = describe(v)
            out += [(f"{what}: {d} <= {hi:g}", mos[f"mos_{d}"] - hi + margin) for d, hi in self.max.items()]
            out += [(f"{what}: {d} >= {drop:g} below clean", mos[f"mos_{d}"] - (clean[f"mos_{d}"] - drop) + margin)
                    for d, drop in self.min_drop.items()]
        ladder = [clean, *rows]
        out += [(f"{d} non-increasing, step {i}", b[f"mos_{d}"] - a[f"mos_{d}"])
                for d in self.non_increasing for i, (a, b) in enumerate(zip(ladder, ladder[1:]), 1)]
        return out

    def failures(self, rule: LabelRule = LabelRule(),
                 artifacts: Mapping[str, type[Artifact]] | None = None) -> list[str]:
        return [f"{self.name}: {what} (misses by {miss:.3f})"
                for what, miss in self.shortfalls(rule, artifacts) if miss > 1e-9]

    def artifacts(self) -> set[str]:
        return {a.artifact for v in self.variants for a in v}


def _shifts(mode: str, seconds: tuple[float, ...]) -> tuple[tuple[Applied, ...], ...]:
    return tuple(whole("av_offset", mode, s) for s in seconds)


LABEL_CHECKS: tuple[LabelCheck, ...] = (
    LabelCheck("still_photo", "a still photo with a voice has neither natural motion nor lip sync",
               (whole("frame_stutter"),), max={"expression": 2.0, "lip_sync": 2.0}),
    LabelCheck("talking_photo", "a still photo whose mouth alone moves with the speech is not natural motion",
               (whole("still_portrait"), whole("photo_animation")), max={"expression": 2.5}, min_drop={"expression": 1.5}),
    LabelCheck("audio_off_0.5s", "half a second between lips and sound is bad lip sync, early or late",
               _shifts("lips_first", (0.5,)) + _shifts("sound_first", (0.5,)), max={"lip_sync": 2.0}),
    LabelCheck("audio_off_0.2s", "a fifth of a second off is clearly worse lip sync than in sync",
               _shifts("lips_first", (0.2,)) + _shifts("sound_first", (0.2,)), min_drop={"lip_sync": 1.0}),
    LabelCheck("audio_later_ladder", "the later the sound, the worse the lip sync (0, 0.2, 0.5, 1 s)",
               _shifts("lips_first", (0.2, 0.5, 1.0)), non_increasing=("lip_sync", "overall")),
    LabelCheck("audio_earlier_ladder", "the earlier the sound, the worse the lip sync (0, 0.2, 0.5, 1 s)",
               _shifts("sound_first", (0.2, 0.5, 1.0)), non_increasing=("lip_sync", "overall")),
    LabelCheck("other_voice", "another person's voice fits neither these lips nor this face",
               (whole("audio_swap"),), max={"lip_sync": 2.0, "consistency": 2.5}),
    LabelCheck("stall", "a picture that freezes for 1-2 s in the middle while the voice goes on is unnatural",
               tuple(whole("stall", "middle", s) for s in (1.0, 1.5, 2.0)),
               min_drop={"expression": 1.0, "overall": 1.0}),
    LabelCheck("heavy_noise", "speech under noise as loud as the voice (0 dB SNR) is bad audio",
               (whole("noise_white"),), max={"audio_quality": 2.0}),
    LabelCheck("heavy_compression", "very strong H.264 compression (QP 44) is bad picture quality",
               (whole("compression", None, 44.0),), max={"visual_quality": 2.5}),
)
