"""Speech degradations for training and evaluating the voice expert (16 kHz mono float32).

Each takes (audio, severity in (0, 1], rng) and returns a degraded copy of the same length; a
higher severity is a worse signal. These are for learning signal, kept separate from the
`talkqa degrade` corpus artifacts so that evaluation on that corpus stays out-of-sample.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

SR = 16000


def white_noise(x, sev, rng):
    snr_db = 25 - 25 * sev  # 25 dB (mild) .. 0 dB (severe)
    p = np.mean(x**2) + 1e-10
    return (x + rng.normal(0, np.sqrt(p / 10 ** (snr_db / 10)), len(x))).astype(np.float32)


def clipping(x, sev, rng):
    peak = np.max(np.abs(x)) + 1e-9
    level = peak * (1 - 0.95 * sev)
    return np.clip(x, -level, level).astype(np.float32) / level * min(peak, 0.99)


def low_pass(x, sev, rng):
    cutoff = 7000 - 5500 * sev  # 7 kHz .. 1.5 kHz
    from scipy import signal  # lazy: scoring imports this module but never degrades

    sos = signal.butter(8, cutoff, fs=SR, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def reverb(x, sev, rng):
    rt60 = 0.15 + 1.0 * sev
    n = int(rt60 * SR)
    ir = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0
    from scipy import signal  # lazy: slow import, only on this path

    y = signal.fftconvolve(x, ir)[: len(x)]
    return (y / (np.max(np.abs(y)) + 1e-9) * np.max(np.abs(x))).astype(np.float32)


def robotic(x, sev, rng):
    """Griffin-Lim resynthesis from the magnitude only: phase artefacts, the 'vocoder' sound."""
    import librosa  # lazy: slow import, only on this path

    mag = np.abs(librosa.stft(x, n_fft=512, hop_length=128))
    y = librosa.griffinlim(mag, n_iter=int(40 - 36 * sev), hop_length=128, n_fft=512, length=len(x))
    return y.astype(np.float32)


def bit_crush(x, sev, rng):
    bits = int(round(10 - 7 * sev))  # 10 .. 3 bits
    q = 2 ** (bits - 1)
    return (np.round(x * q) / q).astype(np.float32)


DEGRADATIONS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "white_noise": white_noise,
    "clipping": clipping,
    "low_pass": low_pass,
    "reverb": reverb,
    "robotic": robotic,
    "bit_crush": bit_crush,
}
