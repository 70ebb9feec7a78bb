"""Audio-quality artifacts: noise at an SNR, clipping, band-limiting, low-bitrate codec, robotic
(Griffin-Lim phase) speech, reverberation. None of them moves the audio in time (codec delay is
measured and removed), so they never add an unlabelled AV offset."""

from __future__ import annotations

import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, sosfiltfilt

from .base import ARTIFACTS, Artifact


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, np.float64) ** 2)) if len(x) else 0.0


def add_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + g * noise with 10 log10(P(clean) / P(g * noise)) == snr_db over the given span."""
    pc, pn = _power(clean), _power(noise)
    if pc <= 0 or pn <= 0:
        return clean.copy()
    g = np.sqrt(pc / (pn * 10 ** (snr_db / 10)))
    return (clean + g * noise).astype(np.float32)


class _AudioArtifact(Artifact):
    kind = "audio"
    order = 40

    def process(self, x: np.ndarray, param: float, sample, rng) -> np.ndarray:
        raise NotImplementedError

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        lo, hi = out.sample_range(segment)
        param = self.parameter(severity)
        seg = out.audio[lo:hi]
        y = np.asarray(self.process(seg, param, sample, rng), np.float32)
        out.audio[lo:hi] = y[: hi - lo] if len(y) >= hi - lo else np.pad(y, (0, hi - lo - len(y)))
        self._note(out, severity, segment, issue=self.issue(param), **getattr(self, "_details", {}))
        return out

    def issue(self, param: float) -> str:
        return f"{self.name.replace('_', ' ')} ({param:g} {self.unit})"


@ARTIFACTS.register
class NoiseWhite(_AudioArtifact):
    """White Gaussian noise at an SNR measured against the segment's own signal power."""

    name = "noise_white"
    impacts = {"audio_quality": 3.0}
    levels = (20, 10, 5, 0)
    unit = "dB SNR"

    def process(self, x, param, sample, rng):
        return add_at_snr(x, rng.standard_normal(len(x)).astype(np.float32), param)


@ARTIFACTS.register
class NoiseBabble(_AudioArtifact):
    """Babble: 3-5 other speakers' speech summed (random offsets), added at an SNR."""

    name = "noise_babble"
    impacts = {"audio_quality": 2.5, "consistency": 0.5}
    levels = (20, 10, 5, 0)
    unit = "dB SNR"
    needs_donors = True

    def process(self, x, param, sample, rng):
        babble = np.zeros(len(x), np.float32)
        k = min(len(sample.donors), int(rng.integers(3, 6)))
        for i in rng.choice(len(sample.donors), size=k, replace=False):
            d = sample.donors[i]
            d = d / (np.sqrt(_power(d)) + 1e-9)
            start = int(rng.integers(0, len(d)))
            babble += np.resize(np.roll(d, -start), len(x)).astype(np.float32)
        return add_at_snr(x, babble, param)


@ARTIFACTS.register
class Clipping(_AudioArtifact):
    """Hard clipping at a fraction of the clip's peak, made up by gain so loudness stays similar."""

    name = "clipping"
    impacts = {"audio_quality": 2.5}
    levels = (0.5, 0.25, 0.1)
    unit = "of peak"

    def process(self, x, param, sample, rng):
        peak = float(np.max(np.abs(sample.audio))) or 1.0
        thr = param * peak
        return np.clip(x, -thr, thr) * (min(1.0, peak) / thr) * 0.9


@ARTIFACTS.register
class BandLimit(_AudioArtifact):
    """Low-pass (8th-order Butterworth, zero phase). At 16 kHz an 8 kHz limit is the Nyquist
    frequency and changes nothing, so the levels are the 4 kHz of 8 kHz-sampled speech and below."""

    name = "band_limit"
    impacts = {"audio_quality": 2.0}
    levels = (4000, 2000, 1000)
    unit = "Hz"

    def process(self, x, param, sample, rng):
        if len(x) < 64:
            return x
        sos = butter(8, param, btype="low", fs=sample.sr, output="sos")
        return sosfiltfilt(sos, x)


def _ffmpeg() -> str:
    import imageio_ffmpeg  # lazy: slow import, only on this path

    return imageio_ffmpeg.get_ffmpeg_exe()


def codec_roundtrip(x: np.ndarray, sr: int, codec: str, kbps: float) -> np.ndarray:
    """Encode with ffmpeg (libopus or aac) at `kbps` and decode back to `sr`, delay removed."""
    ext = {"libopus": "ogg", "aac": "m4a"}[codec]
    with tempfile.TemporaryDirectory() as tmp:
        src, enc, dec = (os.path.join(tmp, n) for n in ("in.wav", f"enc.{ext}", "out.wav"))
        sf.write(src, x, sr, subtype="FLOAT")
        common = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
        subprocess.run(common + ["-i", src, "-c:a", codec, "-b:a", f"{int(kbps)}k", "-ac", "1", enc], check=True)
        subprocess.run(common + ["-i", enc, "-ar", str(sr), "-ac", "1", dec], check=True)
        y, _ = sf.read(dec, dtype="float32")
    return align_to(y, x)


def align_to(y: np.ndarray, ref: np.ndarray, max_lag: int = 4000) -> np.ndarray:
    """`y` shifted so that it best matches `ref` (cross-correlation), cut / padded to len(ref)."""
    n = len(ref)
    yy = np.pad(y, (0, max(0, n + max_lag - len(y))))[: n + max_lag]
    if n < 32 or not np.any(ref):
        return yy[:n]
    m = 1 << int(np.ceil(np.log2(2 * n + max_lag)))
    xc = np.fft.irfft(np.fft.rfft(yy, m) * np.conj(np.fft.rfft(ref, m)), m)
    lags = np.r_[np.arange(0, max_lag + 1)]
    lag = int(lags[np.argmax(xc[lags])])
    return yy[lag: lag + n]


@ARTIFACTS.register
class Codec(_AudioArtifact):
    """Low-bitrate lossy codec round trip (libopus or AAC, drawn per application)."""

    name = "codec"
    impacts = {"audio_quality": 2.5}
    levels = (16, 10, 6)
    unit = "kbps"

    def process(self, x, param, sample, rng):
        codec = "libopus" if rng.random() < 0.5 else "aac"
        self._details = {"codec": codec}
        return codec_roundtrip(x, sample.sr, codec, param)

    def issue(self, param):
        return f"{self._details.get('codec', 'codec')} at {param:g} kbps"


@ARTIFACTS.register
class Robotic(_AudioArtifact):
    """Phase discarded and rebuilt with Griffin-Lim (n_fft 512): fewer iterations, more robotic."""

    name = "robotic"
    impacts = {"audio_quality": 3.0}
    levels = (32, 8, 2)
    unit = "Griffin-Lim iterations"

    def process(self, x, param, sample, rng):
        import librosa  # lazy: slow import, only on this path

        spec = np.abs(librosa.stft(x, n_fft=512, hop_length=128))
        y = librosa.griffinlim(spec, n_iter=int(param), hop_length=128, n_fft=512, length=len(x),
                               init="random", random_state=int(rng.integers(2 ** 31)))
        return y * (np.sqrt(_power(x) / (_power(y) + 1e-12)))


@ARTIFACTS.register
class Reverb(_AudioArtifact):
    """Convolution with a synthetic room: direct path at lag 0 + exponentially decaying noise tail
    (-60 dB after RT60), level-matched; the direct path keeps the audio in sync."""

    name = "reverb"
    impacts = {"audio_quality": 2.0}
    levels = (0.3, 0.6, 1.2)
    unit = "s RT60"

    def process(self, x, param, sample, rng):
        n = int(param * sample.sr)
        t = np.arange(n) / sample.sr
        tail = rng.standard_normal(n) * np.exp(-6.908 * t / param)
        tail[: int(0.005 * sample.sr)] = 0  # first reflections after 5 ms
        ir = tail / np.sqrt(np.sum(tail ** 2)) * 1.0
        ir[0] = 1.0
        y = fftconvolve(x, ir)[: len(x)]
        return y * np.sqrt(_power(x) / (_power(y) + 1e-12))
