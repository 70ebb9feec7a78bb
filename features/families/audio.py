"""audio: is the voice clean and natural?

Praat voice measures (F0, HNR, jitter, shimmer), openSMILE eGeMAPS v02 functionals, DNSMOS
(SIG/BAK/OVRL/P.808), SNR, clipping, spectral flatness, bandwidth and loudness. All of it reads the
raw decoded `audio`: loudness normalisation would hide level problems and can itself clip.

The eGeMAPS extractor and the DNSMOS ONNX sessions are built on first use and kept for the process
(a pool worker builds them once), never in a constructor.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

import numpy as np

from .. import signals as S
from ..dnsmos import dnsmos_scores
from ..loudness import integrated_loudness
from ..clip import PreprocessedClip
from .base import FAMILIES, FamilyOutput, FeatureFamily, FeatureLabel

VOICE = ("f0_mean", "f0_std", "f0_range", "hnr_db", "jitter_local", "shimmer_local")
QUALITY = (
    "snr_db",
    "snr_energy_split",
    "clipping_ratio",
    "spectral_flatness",
    "rolloff_hz",
    "bandwidth_hz",
    "loudness_lufs",
    "rms_dbfs",
    "speech_share",
)
DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")
SILENT_DBFS = -70.0

# eGeMAPS v02 (Eyben et al. 2016) names a functional as <descriptor>_<smoothing>_<functional>; these
# say what the descriptors and functionals are, so that all 88 names are read by one rule.
_EGEMAPS_DESCRIPTORS = (  # (pattern, words, unit of the descriptor)
    (r"F0semitoneFrom27\.5Hz", "pitch", "semitones"),
    (r"loudness", "loudness", "sone"),
    (r"spectralFlux(?P<region>V|UV)?", "spectral flux", ""),
    (r"mfcc(?P<k>\d)(?P<region>V)?", "MFCC {k}", ""),
    (r"jitterLocal", "jitter", ""),
    (r"shimmerLocaldB", "shimmer", "dB"),
    (r"HNRdBACF", "harmonics-to-noise ratio", "dB"),
    (r"logRelF0-H1-H2", "H1-H2 harmonic difference", "dB"),
    (r"logRelF0-H1-A3", "H1-A3 harmonic difference", "dB"),
    (r"F(?P<k>\d)frequency", "formant F{k} frequency", "Hz"),
    (r"F(?P<k>\d)bandwidth", "formant F{k} bandwidth", "Hz"),
    (r"F(?P<k>\d)amplitudeLogRelF0", "formant F{k} relative level", "dB"),
    (r"alphaRatio(?P<region>V|UV)", "alpha ratio", "dB"),
    (r"hammarbergIndex(?P<region>V|UV)", "Hammarberg index", "dB"),
    (r"slope(?P<region>V|UV)(?P<lo>\d+)-(?P<hi>\d+)", "spectral slope {lo}-{hi} Hz", ""),
)
_EGEMAPS_REGIONS = {None: "", "V": " (voiced)", "UV": " (unvoiced)"}
_EGEMAPS_FUNCTIONALS = (  # (pattern, words, keeps the descriptor's unit)
    (r"amean", "mean", True),
    (r"stddevNorm", "variation (std/mean)", False),
    (r"percentile(?P<p>\d+)\.0", "{p}th percentile", True),
    (r"pctlrange0-2", "range (20th-80th percentile)", True),
    (r"(?P<stat>mean|stddev)(?P<way>Rising|Falling)Slope", "{way} slope ({stat})", False),
)
_EGEMAPS_WHOLE = {  # temporal features named as a whole
    "loudnessPeaksPerSec": FeatureLabel("eGeMAPS loudness peaks per second", "/s", "{:.2f}"),
    "VoicedSegmentsPerSec": FeatureLabel("eGeMAPS voiced segments per second", "/s", "{:.2f}"),
    "MeanVoicedSegmentLengthSec": FeatureLabel("eGeMAPS voiced segment length (mean)", "s", "{:.2f}"),
    "StddevVoicedSegmentLengthSec": FeatureLabel("eGeMAPS voiced segment length (std)", "s", "{:.2f}"),
    "MeanUnvoicedSegmentLength": FeatureLabel("eGeMAPS unvoiced segment length (mean)", "s", "{:.2f}"),
    "StddevUnvoicedSegmentLength": FeatureLabel("eGeMAPS unvoiced segment length (std)", "s", "{:.2f}"),
    "equivalentSoundLevel_dBp": FeatureLabel("eGeMAPS equivalent sound level", "dB", "{:.1f}"),
}


@lru_cache(maxsize=1)
def smile():
    """The eGeMAPS v02 functionals extractor, built once per process."""
    import opensmile  # lazy: slow import, only on this path
    from audobject.core import utils as audobject_utils  # lazy: opensmile's own dependency, needed only here

    # Smile() records its parameters through audobject, which looks up the distribution that provides
    # the `opensmile` module in importlib.metadata.packages_distributions(): a scan of every installed
    # package (0.6-4 s of a cold `talkqa score`). Its answer is known; audobject keeps it in this cache.
    audobject_utils.PACKAGES_DISTRIBUTIONS.setdefault("opensmile", ["opensmile"])

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )


def egemaps_names() -> tuple[str, ...]:
    return tuple(f"egemaps_{n}" for n in smile().feature_names)


def egemaps_label(name: str) -> FeatureLabel | None:
    """A person's name for an openSMILE eGeMAPS v02 functional, by rule ("F0semitoneFrom27.5Hz_sma3nz_amean"
    -> "eGeMAPS pitch, mean" in semitones); None for a name the rule does not know."""
    if name in _EGEMAPS_WHOLE:
        return _EGEMAPS_WHOLE[name]
    parts = name.split("_")
    if len(parts) != 3 or not parts[1].startswith("sma3"):
        return None
    for pattern, words, unit in _EGEMAPS_DESCRIPTORS:
        d = re.fullmatch(pattern, parts[0])
        if d:
            what = words.format(**d.groupdict()) + _EGEMAPS_REGIONS[d.groupdict().get("region")]
            break
    else:
        return None
    for pattern, words, keeps_unit in _EGEMAPS_FUNCTIONALS:
        f = re.fullmatch(pattern, parts[2])
        if f:
            how = words.format(**{k: v.lower().replace("stddev", "std") for k, v in f.groupdict().items()})
            return FeatureLabel(f"eGeMAPS {what}, {how}", unit if keeps_unit else "", "{:.4g}")
    return None


def snr_db(
    power: np.ndarray,
    vad: np.ndarray | None,
    min_share: float = 0.1,
    min_gap_db: float = 2.0,
    max_loud_share: float = 0.3,
) -> tuple[float, bool]:
    """(SNR dB, energy split used) from per-frame power.

    Noise power is the median over non-speech frames; signal power is the mean over the *active*
    speech frames (louder than the noise by 3 robust sigmas: VAD hangover and pauses inside speech
    are noise, as in ITU-T P.56's active speech level) minus the noise. The VAD is trusted only when
    both classes hold `min_share` of the frames and its speech is louder than its non-speech (WebRTC
    takes steady tones or hum for speech and vice versa, or marks only the on- and offsets of steady
    bursts, leaving their loud middles as "non-speech"), and at most `max_loud_share` of its
    non-speech frames lie above the Otsu split of the log frame energy; otherwise that split decides."""
    db = S.to_db(power)
    loud = db > S.otsu_threshold(db)
    speech = None if vad is None else np.asarray(vad, bool)
    trusted = (
        speech is not None
        and min_share <= speech.mean() <= 1 - min_share
        and np.median(db[speech]) - np.median(db[~speech]) >= min_gap_db
        and loud[~speech].mean() <= max_loud_share
    )
    if not trusted:
        speech = loud
    if speech.all() or not speech.any():
        return float("nan"), not trusted
    noise_frames = power[~speech]
    noise = float(np.median(noise_frames))
    spread = 1.4826 * float(np.median(np.abs(noise_frames - noise)))
    active = speech & (power > noise + 3 * spread)
    signal = float(np.mean(power[active if active.any() else speech])) - noise
    return float(np.clip(10 * np.log10(max(signal, 1e-20) / max(noise, 1e-20)), -30.0, 100.0)), not trusted


def clipped_samples(x: np.ndarray, tol: float, top_q: float = 99.9) -> np.ndarray:
    """Samples on the waveform's peak plateau: within `tol` (relative) of the level that only
    (100 - top_q) % of samples exceed. Not the single maximum: after a lossy codec a clipped
    plateau ripples by several % and overshoots it, which a max-based rule reads as no clipping.
    Clean speech gives ~0.0015 here (the top 0.1 % and a little below it); a plateau gives 0.05+."""
    a = np.abs(np.asarray(x, np.float64))
    top = float(np.percentile(a, top_q)) if len(a) else 0.0
    return a >= top * (1 - tol) if top > 0 else np.zeros(len(a), bool)


def bandwidth_hz(spectrum: np.ndarray, sr: int, range_db: float = 60.0, fraction: float = 0.95) -> float:
    """Effective bandwidth: the 95 % roll-off of the long-term spectrum measured in dB above a floor
    `range_db` under its peak. On the log scale a weak but present 4-8 kHz band counts (a listener
    hears it), while everything under the floor, e.g. above a codec's low-pass, counts for nothing."""
    db = S.to_db(spectrum)
    level = np.maximum(db - (db.max() - range_db), 0.0)
    return float(S.rolloff_hz(level[None], sr, fraction)[0])


def praat_voice(x: np.ndarray, sr: int) -> dict[str, float]:
    """HNR (mean over voiced frames), local jitter and shimmer from Praat's periodic point process."""
    import parselmouth  # lazy: slow import, only on this path
    from parselmouth.praat import call  # lazy: slow import, only on this path

    snd = parselmouth.Sound(np.asarray(x, np.float64), sampling_frequency=sr)
    # A 40 ms step halves Praat's cost (0.3 -> 0.15 s per 20 s) and moves the mean by < 0.4 dB.
    hnr = snd.to_harmonicity_cc(time_step=0.04, minimum_pitch=75.0).values.ravel()
    hnr = hnr[hnr > -200]  # Praat marks unvoiced frames with -200 dB
    points = call(snd, "To PointProcess (periodic, cc)", 75.0, 500.0)
    return {
        "hnr_db": float(hnr.mean()) if len(hnr) else np.nan,
        "jitter_local": float(call(points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)),
        "shimmer_local": float(call([snd, points], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6)),
    }


def loudness_lufs(x: np.ndarray, sr: int) -> float:
    if len(x) < int(0.5 * sr):
        return float("nan")
    value = integrated_loudness(x, sr)
    return value if np.isfinite(value) else float("nan")


@FAMILIES.register
class Audio(FeatureFamily):
    name = "audio"
    modality = "audio"
    description = "voice and channel: F0, HNR, jitter, shimmer, SNR, clipping, bandwidth, loudness, DNSMOS, eGeMAPS"
    window_features = ("rms_db", "spectral_flatness", "rolloff_hz", "speech_share", "clipping_share", "f0_mean")
    defaults = {
        "egemaps": True,
        "dnsmos": True,
        "dnsmos_max_segments": 2,  # 9 s DNSMOS segments per clip (~0.25 s each); 0 = full 1 s sliding average
        "clip_tol": 0.05,  # relative distance below the top level (99.9th pct of |x|) still on the plateau
    }

    feature_labels = {
        "f0_mean": FeatureLabel("pitch (mean F0)", "Hz", "{:.0f}"),
        "f0_std": FeatureLabel("pitch variation (F0 std)", "Hz", "{:.0f}"),
        "f0_range": FeatureLabel("pitch range (F0, 5th-95th percentile)", "Hz", "{:.0f}"),
        "hnr_db": FeatureLabel("harmonics-to-noise ratio", "dB", "{:.1f}"),
        "jitter_local": FeatureLabel("voice jitter (local)", "%", "{:.2f}", 100),
        "shimmer_local": FeatureLabel("voice shimmer (local)", "%", "{:.1f}", 100),
        "snr_db": FeatureLabel("signal-to-noise ratio", "dB", "{:.1f}"),
        "snr_energy_split": FeatureLabel("SNR measured without a trusted voice detector (1 = yes)", fmt="{:.0f}"),
        "clipping_ratio": FeatureLabel("clipped samples", "% of samples", "{:.2f}", 100),
        "spectral_flatness": FeatureLabel("spectral flatness (0 = tone, 1 = noise)", fmt="{:.3f}"),
        "rolloff_hz": FeatureLabel("spectral roll-off (95 % of the power below)", "Hz", "{:.0f}"),
        "bandwidth_hz": FeatureLabel("audio bandwidth", "Hz", "{:.0f}"),
        "loudness_lufs": FeatureLabel("loudness", "LUFS", "{:.1f}"),
        "rms_dbfs": FeatureLabel("audio level (RMS)", "dBFS", "{:.1f}"),
        "speech_share": FeatureLabel("speech", "% of the time", "{:.0f}", 100),
        "dnsmos_sig": FeatureLabel("DNSMOS speech signal (1-5)", fmt="{:.2f}"),
        "dnsmos_bak": FeatureLabel("DNSMOS background (1-5)", fmt="{:.2f}"),
        "dnsmos_ovrl": FeatureLabel("DNSMOS overall (1-5)", fmt="{:.2f}"),
        "dnsmos_p808": FeatureLabel("DNSMOS P.808 (1-5)", fmt="{:.2f}"),
        "rms_db": FeatureLabel("audio level", "dB", "{:.1f}"),
        "clipping_share": FeatureLabel("clipped samples", "% of samples", "{:.2f}", 100),
    }

    def feature_label(self, name: str) -> FeatureLabel | None:
        if name.startswith("egemaps_"):
            return egemaps_label(name.removeprefix("egemaps_"))
        return super().feature_label(name)

    def clip_feature_names(self) -> tuple[str, ...]:
        names = VOICE + QUALITY
        if self.params["dnsmos"]:
            names += DNSMOS
        if self.params["egemaps"]:
            names += egemaps_names()
        return names

    def compute(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        out = FamilyOutput()
        if clip.audio is None:
            return out
        x = np.asarray(clip.audio, np.float64)
        T, hop, sr = clip.n_frames, clip.hop, clip.sr
        power = S.frame_power(x, T, hop)
        frame_db = S.to_db(power)
        speech = S.speech_mask(clip.vad, frame_db)
        out.clip["rms_dbfs"] = float(S.to_db(np.mean(x**2))) if len(x) else np.nan
        out.clip["speech_share"] = S.share(speech)
        out.windows.update(rms_db=S.window_reduce(frame_db, windows), speech_share=S.window_share(speech, windows))
        if not len(x) or out.clip["rms_dbfs"] < SILENT_DBFS:
            return out  # nothing else is measurable in silence

        snr, split = snr_db(power, clip.vad)
        clipped = clipped_samples(x, self.params["clip_tol"])
        spectra = S.frame_spectra(x, T, hop)
        flatness = S.spectral_flatness(spectra)
        active = speech if speech.sum() >= 3 else np.ones(T, bool)  # the voice's spectrum, not the pauses'
        long_term = spectra[active].mean(axis=0)
        f0 = S.f0_track(x, sr, T, clip.fps)
        out.clip.update(
            snr_db=snr,
            snr_energy_split=float(split),
            clipping_ratio=float(clipped.mean()),
            spectral_flatness=S.nanmean(flatness[active]),
            rolloff_hz=float(S.rolloff_hz(long_term[None], sr)[0]),
            bandwidth_hz=bandwidth_hz(long_term, sr),
            loudness_lufs=loudness_lufs(x, sr),
            f0_mean=S.nanmean(f0),
            f0_std=S.nanstd(f0),
            f0_range=S.nanpercentile(f0, 95) - S.nanpercentile(f0, 5),
        )
        out.clip.update(praat_voice(x, sr))
        if self.params["dnsmos"] and len(x) >= sr:
            out.clip.update(dnsmos_scores(x, sr, self.params["dnsmos_max_segments"]))
        if self.params["egemaps"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "segment too short": a sub-second clip gets NaN, as it should
                row = smile().process_signal(x.astype(np.float32), sr).iloc[0]
            out.clip.update({f"egemaps_{k}": float(v) for k, v in row.items()})

        clipped_frames = S.frame_audio(clipped.astype(np.float64), T, hop).mean(axis=1)
        out.windows.update(
            spectral_flatness=S.window_reduce(flatness, windows),
            rolloff_hz=np.array([S.rolloff_hz(spectra[s:e].mean(axis=0)[None], sr)[0] for s, e in windows]),
            clipping_share=S.window_reduce(clipped_frames, windows),
            f0_mean=S.window_reduce(f0, windows),
        )
        return out
