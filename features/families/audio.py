"""audio: is the voice clean and natural?

Praat (parselmouth) voice measures, openSMILE eGeMAPS v02 functionals, DNSMOS (speechmos), an SNR
estimate from VAD speech vs non-speech energy, clipping, spectral flatness, effective bandwidth and
loudness — all on the raw (not loudness-normalised) signal.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import signals as S
from .base import FAMILIES, FamilyOutput, FeatureFamily

BASIC = (
    "f0_mean", "f0_std", "f0_range", "hnr_db", "jitter_local", "shimmer_local", "snr_db", "clipping_ratio",
    "spectral_flatness", "bandwidth_hz", "loudness_lufs", "rms_dbfs", "speech_share",
)
DNSMOS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")


@lru_cache(maxsize=1)
def _smile():
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)


def egemaps_names() -> tuple[str, ...]:
    return tuple(f"egemaps_{n}" for n in _smile().feature_names)


@FAMILIES.register
class Audio(FeatureFamily):
    name = "audio"
    description = "voice quality: HNR, jitter, shimmer, F0, SNR, clipping, bandwidth, DNSMOS, eGeMAPS"
    window_features = ("rms_db", "spectral_flatness", "rolloff_hz", "speech_share", "clipping_share", "f0_mean")
    defaults = {"dnsmos": True, "egemaps": True}

    def clip_feature_names(self) -> tuple[str, ...]:
        names = BASIC
        if self.params["dnsmos"]:
            names += DNSMOS
        if self.params["egemaps"]:
            names += egemaps_names()
        return names

    def compute(self, clip, windows) -> FamilyOutput:
        out = FamilyOutput()
        if clip.audio is None:
            return out
        x = clip.audio.astype(np.float64)
        sr = clip.sr
        frames = clip.audio_frames()
        power = np.mean(frames.astype(np.float64) ** 2, axis=1)
        vad = clip.vad.astype(bool)
        out.clip["rms_dbfs"] = float(10 * np.log10(np.mean(x**2) + 1e-12))
        out.clip["speech_share"] = float(vad.mean())
        out.clip["loudness_lufs"] = clip.loudness_lufs
        if not np.any(x):
            return out  # silent: nothing else is measurable
        out.clip["snr_db"] = snr_db(power, vad)
        peak = np.max(np.abs(x))
        at_peak = np.abs(x) >= 0.99 * peak
        out.clip["clipping_ratio"] = float(at_peak.mean())
        flat, rolloff = _spectral(x, sr, clip.hop, clip.n_frames)
        speechy = vad if vad.sum() >= 3 else np.ones_like(vad)
        out.clip["spectral_flatness"] = S.nan_stat(np.mean, flat[speechy])
        out.clip["bandwidth_hz"] = S.nan_stat(np.median, rolloff[speechy])
        f0_frames = _praat(x, sr, clip.n_frames, clip.fps, out.clip)
        if self.params["dnsmos"]:
            out.clip.update(dnsmos(x, sr))
        if self.params["egemaps"]:
            feats = _smile().process_signal(x.astype(np.float32), sr).iloc[0]
            out.clip.update({f"egemaps_{k}": float(v) for k, v in feats.items()})
        rms_db = 10 * np.log10(power + 1e-12)
        out.windows = {
            "rms_db": np.array([S.nan_stat(np.mean, rms_db[s:e]) for s, e in windows]),
            "spectral_flatness": np.array([S.nan_stat(np.mean, flat[s:e]) for s, e in windows]),
            "rolloff_hz": np.array([S.nan_stat(np.median, rolloff[s:e]) for s, e in windows]),
            "speech_share": np.array([vad[s:e].mean() for s, e in windows]),
            "clipping_share": np.array([at_peak[s * clip.hop : e * clip.hop].mean() for s, e in windows]),
            "f0_mean": np.array([S.nan_stat(np.mean, f0_frames[s:e]) for s, e in windows]),
        }
        return out


def snr_db(power: np.ndarray, speech: np.ndarray) -> float:
    """10 log10((P_speech - P_noise) / P_noise) from per-frame power. Speech/non-speech frames come
    from the VAD; when it leaves under 10 % in either class (a tone, constant noise), an energy split
    (Otsu on log power) decides instead."""
    speech = speech.astype(bool)
    if min(speech.mean(), 1 - speech.mean()) < 0.1:
        logp = 10 * np.log10(power + 1e-12)
        speech = logp > S.otsu_split(logp)
    if speech.all() or not speech.any():
        return np.nan
    p_s, p_n = power[speech].mean(), power[~speech].mean()
    if p_n <= 0:
        return 60.0
    return float(np.clip(10 * np.log10(max(p_s - p_n, 1e-12) / p_n), -20, 60))


def _spectral(x, sr, hop, n_frames):
    import librosa

    y = x.astype(np.float32)
    flat = librosa.feature.spectral_flatness(y=y, n_fft=1024, hop_length=hop, center=True)[0]
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=hop, center=True)) ** 2
    # 95 % roll-off, ignoring frames that are near-silent (their roll-off is noise)
    cum = np.cumsum(spec, axis=0)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=1024)
    rolloff = freqs[np.argmax(cum >= 0.95 * cum[-1:], axis=0)].astype(float)
    energy = spec.sum(0)
    rolloff[energy < 1e-4 * energy.max()] = np.nan
    return _fit(flat, n_frames), _fit(rolloff, n_frames)


def _fit(v, n):
    out = np.full(n, np.nan)
    out[: min(n, len(v))] = v[:n]
    return out


def _praat(x, sr, n_frames, fps, into: dict) -> np.ndarray:
    """Fill F0, HNR, jitter, shimmer; return F0 (Hz, NaN unvoiced) per video frame."""
    import parselmouth
    from parselmouth.praat import call

    snd = parselmouth.Sound(x, sampling_frequency=sr)
    pitch = snd.to_pitch(time_step=1.0 / fps, pitch_floor=75, pitch_ceiling=500)
    f0 = pitch.selected_array["frequency"]
    t = pitch.xs()
    f0_frames = np.full(n_frames, np.nan)
    idx = np.clip((t * fps).astype(int), 0, n_frames - 1)
    f0_frames[idx] = np.where(f0 > 0, f0, np.nan)
    voiced = f0[f0 > 0]
    if len(voiced) >= 3:
        into["f0_mean"] = float(voiced.mean())
        into["f0_std"] = float(voiced.std())
        into["f0_range"] = float(12 * np.log2(np.percentile(voiced, 95) / np.percentile(voiced, 5)))  # semitones
        hnr = snd.to_harmonicity_cc(time_step=0.02)
        values = hnr.values[hnr.values > -200]
        into["hnr_db"] = float(values.mean()) if len(values) else np.nan
        pp = call(snd, "To PointProcess (periodic, cc)", 75, 500)
        into["jitter_local"] = float(call(pp, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3))
        into["shimmer_local"] = float(call([snd, pp], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6))
    return f0_frames


@lru_cache(maxsize=1)
def _dnsmos_model():
    import os

    from speechmos import dnsmos as module

    models = os.path.join(os.path.dirname(module.__file__), "dnsmos_models")
    return module.DNSMOS(os.path.join(models, "sig_bak_ovr.onnx"), os.path.join(models, "model_v8.onnx"))


def dnsmos(x: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS P.835 (SIG/BAK/OVRL) and P.808, averaged over ~9 s segments that tile the clip.

    speechmos.dnsmos.run slides its 9.01 s window in 1 s steps, scoring each second about nine
    times; tiling gives the same kind of average at a fraction of the cost. Shorter clips are looped
    to 9 s by the model wrapper, as DNSMOS expects."""
    if len(x) < sr:  # DNSMOS needs at least a second
        return {}
    model = _dnsmos_model()
    x = np.clip(x, -1, 1).astype(np.float32)
    seg = 10 * sr  # the wrapper scores one 9.01 s window in a 10 s segment
    starts = [0] if len(x) <= seg else sorted({*range(0, len(x) - seg, int(9.01 * sr)), len(x) - seg})
    scores = [model(x[s : s + seg], sr, False) for s in starts]
    mean = {k: float(np.mean([r[k] for r in scores])) for k in ("ovrl_mos", "sig_mos", "bak_mos", "p808_mos")}
    return {"dnsmos_ovrl": mean["ovrl_mos"], "dnsmos_sig": mean["sig_mos"], "dnsmos_bak": mean["bak_mos"],
            "dnsmos_p808": mean["p808_mos"]}
