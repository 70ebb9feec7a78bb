"""lipsync: do the lips move with the speech?

Mouth aperture (inner-lip gap / inter-ocular distance) against the audio RMS envelope and onset
strength on the 25 fps clock; their cross-correlation over lags +-max_lag gives the AV offset
(positive when the sound comes after the lips), the peak and lag-0 correlation; plus how often the
mouth is closed during speech and moves during silence.
"""

from __future__ import annotations

import numpy as np

from .. import geometry as G
from .. import signals as S
from .base import FAMILIES, FamilyOutput, FeatureFamily


@FAMILIES.register
class LipSync(FeatureFamily):
    name = "lipsync"
    description = "mouth aperture vs audio envelope: AV offset, correlation, closed-mouth speech"
    clip_features = (
        "aperture_mean", "aperture_std", "aperture_velocity_std", "aperture_accel_std",
        "av_offset_frames", "av_peak_corr", "av_corr_lag0", "av_confidence", "onset_corr_lag0",
        "closed_mouth_speech_share", "moving_mouth_silence_share",
    )
    window_features = ("aperture_mean", "aperture_std", "corr_lag0", "speech_share", "closed_mouth_speech_share")
    series_names = ("aperture", "audio_envelope", "onset_strength")
    defaults = {"max_lag": 15, "closed_aperture": 0.05, "moving_velocity": 0.02}

    def compute(self, clip, windows) -> FamilyOutput:
        p = self.params
        aperture = np.where(clip.face_valid, G.mouth_aperture(np.nan_to_num(clip.aligned)), np.nan)
        velocity = np.diff(aperture, prepend=np.nan)
        out = FamilyOutput(series={"aperture": aperture})
        out.clip.update({
            "aperture_mean": S.nan_stat(np.mean, aperture),
            "aperture_std": S.nan_stat(np.std, aperture),
            "aperture_velocity_std": S.nan_stat(np.std, velocity),
            "aperture_accel_std": S.nan_stat(np.std, np.diff(velocity, prepend=np.nan)),
        })
        out.windows["aperture_mean"] = _per_window(aperture, windows, np.mean)
        out.windows["aperture_std"] = _per_window(aperture, windows, np.std)
        if clip.audio is None:
            return out
        env = S.rms_envelope(clip.audio_frames(clip.audio_norm))
        onset = S.onset_strength(clip.audio_norm, clip.sr, clip.hop, clip.n_frames)
        out.series.update({"audio_envelope": env, "onset_strength": onset})
        out.clip.update(S.av_offset(aperture, env, p["max_lag"], clip.fps))
        _, oc = S.lagged_corr(velocity, onset, 0)
        out.clip["onset_corr_lag0"] = float(oc[0])
        speech = clip.vad.astype(bool) & clip.face_valid
        silence = ~clip.vad.astype(bool) & clip.face_valid
        closed = aperture < p["closed_aperture"]
        moving = np.abs(velocity) > p["moving_velocity"]
        out.clip["closed_mouth_speech_share"] = float(closed[speech].mean()) if speech.any() else np.nan
        out.clip["moving_mouth_silence_share"] = float(moving[silence].mean()) if silence.any() else np.nan
        corr, sp, cms = [], [], []
        for s, e in windows:
            _, c = S.lagged_corr(aperture[s:e], env[s:e], 0) if e - s >= 8 else (None, [np.nan])
            corr.append(c[0])
            sp.append(clip.vad[s:e].mean())
            w_speech = speech[s:e]
            cms.append(closed[s:e][w_speech].mean() if w_speech.any() else np.nan)
        out.windows.update({"corr_lag0": np.array(corr), "speech_share": np.array(sp, float),
                            "closed_mouth_speech_share": np.array(cms, float)})
        return out


def _per_window(x: np.ndarray, windows: np.ndarray, fn) -> np.ndarray:
    return np.array([S.nan_stat(fn, x[s:e]) for s, e in windows])
