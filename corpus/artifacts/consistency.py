"""Consistency artifacts: the voice no longer belongs to the face (another speaker, another tempo,
another energy, or no voice at all while the mouth moves)."""

from __future__ import annotations

import numpy as np

from .audio import _power
from .base import ARTIFACTS, Artifact


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, np.float32)
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _fade(n: int, sr: int, ms: float = 10.0) -> np.ndarray:
    """1 inside, raised-cosine ramps of `ms` at both ends (avoids clicks at segment edges)."""
    w = np.ones(n, np.float32)
    k = min(n // 2, int(sr * ms / 1000))
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
        w[:k], w[n - k:] = ramp, ramp[::-1]
    return w


class _SegmentAudio(Artifact):
    kind = "av"
    order = 30

    def process(self, x, param, sample, rng) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        lo, hi = out.sample_range(segment)
        param = self.parameter(severity)
        y, details = self.process(out.audio, lo, hi, param, sample, rng)
        w = _fade(hi - lo, out.sr)
        out.audio[lo:hi] = (1 - w) * out.audio[lo:hi] + w * _fit(y, hi - lo)
        self._note(out, severity, segment, **details)
        return out


@ARTIFACTS.register
class AudioSwap(_SegmentAudio):
    """Speech replaced by another speaker's; levels are how much of the original voice remains
    underneath (residual gain), so the mildest still carries the right words faintly."""

    name = "audio_swap"
    impacts = {"lip_sync": 3.0, "consistency": 3.0}
    levels = (0.5, 0.25, 0.0)
    unit = "residual gain"
    needs_donors = True

    def process(self, audio, lo, hi, param, sample, rng):
        i = int(rng.integers(len(sample.donors)))
        d = sample.donors[i]
        start = int(rng.integers(0, max(1, len(d) - (hi - lo))))
        d = np.resize(d[start:], hi - lo)
        seg = audio[lo:hi]
        d = d * np.sqrt(_power(seg) / (_power(d) + 1e-12))
        return param * seg + (1 - param) * d, {"donor": i, "issue": f"voice of another speaker (residual {param:g})"}


@ARTIFACTS.register
class TimeStretch(_SegmentAudio):
    """Audio played at `rate` x its speed (pitch kept, phase vocoder) from the segment start, so the
    drift against the lips grows through the segment; faster or slower drawn per application."""

    name = "time_stretch"
    impacts = {"lip_sync": 2.5, "consistency": 2.0}
    levels = (1.05, 1.12, 1.25)
    unit = "x speed"

    def process(self, audio, lo, hi, param, sample, rng):
        import librosa  # lazy: slow import, only on this path

        rate = param if rng.random() < 0.5 else 1 / param
        need = int(np.ceil((hi - lo) * rate)) + 1024
        src = audio[lo: lo + need]
        y = librosa.effects.time_stretch(np.ascontiguousarray(src, np.float32), rate=rate)
        return y, {"rate": rate, "issue": f"audio {'faster' if rate > 1 else 'slower'} than video ({rate:.3f}x)"}


@ARTIFACTS.register
class EnergyMismatch(_SegmentAudio):
    """An excited voice on a calm face: pitch raised, dynamics expanded (syllable peaks louder)
    and a slow gain modulation; levels are the pitch raise in semitones (expansion grows with it)."""

    name = "energy_mismatch"
    impacts = {"consistency": 2.5, "audio_quality": 0.5}
    levels = (2, 4, 7)
    unit = "semitones"

    def process(self, audio, lo, hi, param, sample, rng):
        import librosa  # lazy: slow import, only on this path

        seg = np.ascontiguousarray(audio[lo:hi], np.float32)
        y = librosa.effects.pitch_shift(seg, sr=sample.sr, n_steps=param)
        hop = sample.hop
        env = np.sqrt(np.convolve(y.astype(np.float64) ** 2, np.ones(hop) / hop, mode="same")) + 1e-6
        gamma = 0.15 * param  # expansion exponent
        y = y * (env / np.sqrt(_power(y) + 1e-12)) ** gamma
        t = np.arange(len(y)) / sample.sr
        y = y * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 4) * t))
        y = y * np.sqrt(_power(seg) / (_power(y) + 1e-12)) * 10 ** (param / 20 / 2)
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        if peak > 0.99:
            y = y * 0.99 / peak
        return y, {"issue": f"excited voice, calm face (+{param:g} semitones)"}


@ARTIFACTS.register
class Silence(_SegmentAudio):
    """The voice drops out (attenuated by `level` dB) while the mouth keeps moving."""

    name = "silence"
    impacts = {"consistency": 2.5, "lip_sync": 1.5, "audio_quality": 0.5}
    levels = (12, 24, 60)
    unit = "dB attenuation"

    def process(self, audio, lo, hi, param, sample, rng):
        return audio[lo:hi] * 10 ** (-param / 20), {"issue": f"voice muted by {param:g} dB while the mouth moves"}
