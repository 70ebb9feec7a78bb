"""consistency: do voice and face agree in rhythm and intensity?

Speech rate (syllable nuclei per second of speech) against mouth-opening rate (aperture peaks per
second of speech); prosodic arousal per window (loudness and pitch variability) against facial
activity per window (landmark and head speed), and how well the two follow each other.
"""

from __future__ import annotations

import numpy as np

from .. import geometry as G
from .. import signals as S
from .base import FAMILIES, FamilyOutput, FeatureFamily


@FAMILIES.register
class Consistency(FeatureFamily):
    name = "consistency"
    description = "speech rate vs mouth rate, prosodic arousal vs facial activity"
    clip_features = ("speech_rate", "mouth_rate", "rate_ratio", "rate_diff", "arousal_mean", "activity_mean",
                     "arousal_activity_corr")
    window_features = ("arousal", "facial_activity")
    defaults = {"mouth_prominence": 0.04}

    def compute(self, clip, windows) -> FamilyOutput:
        out = FamilyOutput()
        valid = clip.face_valid
        a = np.where(valid[:, None, None], clip.aligned, np.nan)
        speed = G.landmark_speed(a)
        pose = np.where(valid[:, None], clip.head_pose, np.nan)
        head = np.concatenate([[np.nan], np.linalg.norm(np.diff(pose, axis=0), axis=1)])
        # landmark speed (IOD/frame) and head speed (deg/frame) brought to comparable ranges
        activity = np.array([S.nan_stat(np.mean, speed[s:e]) * 100 + S.nan_stat(np.mean, head[s:e]) for s, e in windows])
        out.windows["facial_activity"] = activity
        out.clip["activity_mean"] = S.nan_stat(np.mean, activity)
        if clip.audio is None or not np.any(clip.audio):
            return out
        aperture = np.where(valid, G.mouth_aperture(np.nan_to_num(clip.aligned)), np.nan)
        speech = clip.vad.astype(bool)
        speech_100 = np.repeat(speech, 4)  # 25 fps -> 10 ms steps
        nuclei = S.syllable_nuclei(clip.audio_norm, clip.sr, speech_100)
        seconds = speech.sum() / clip.fps
        if seconds >= 0.5:
            out.clip["speech_rate"] = len(nuclei) / seconds
            out.clip["mouth_rate"] = S.peak_rate(aperture, clip.fps, self.params["mouth_prominence"], mask=speech & valid)
            sr_, mr = out.clip["speech_rate"], out.clip["mouth_rate"]
            out.clip["rate_ratio"] = mr / sr_ if sr_ > 0 else np.nan
            out.clip["rate_diff"] = mr - sr_
        frames = clip.audio_frames(clip.audio_norm)
        level = S.to_db(S.rms_envelope(frames))
        f0 = _f0(clip)
        arousal = []
        for s, e in windows:
            f = f0[s:e]
            f = f[np.isfinite(f) & (f > 0)]
            f0_st = float(np.std(12 * np.log2(f / np.median(f)))) if len(f) >= 3 else 0.0
            lv = level[s:e][speech[s:e]] if speech[s:e].any() else level[s:e]
            arousal.append(np.std(lv) / 10 + f0_st / 5 + max(0.0, (np.mean(lv) + 60) / 60))
        arousal = np.array(arousal)
        out.windows["arousal"] = arousal
        out.clip["arousal_mean"] = S.nan_stat(np.mean, arousal)
        if len(windows) >= 3:
            _, c = S.lagged_corr(arousal, activity, 0)
            out.clip["arousal_activity_corr"] = float(c[0]) if len(c) else np.nan
        return out


def _f0(clip) -> np.ndarray:
    import parselmouth

    snd = parselmouth.Sound(clip.audio_norm.astype(np.float64), sampling_frequency=clip.sr)
    pitch = snd.to_pitch(time_step=1.0 / clip.fps, pitch_floor=75, pitch_ceiling=500)
    f0 = pitch.selected_array["frequency"]
    out = np.full(clip.n_frames, np.nan)
    idx = np.clip((pitch.xs() * clip.fps).astype(int), 0, clip.n_frames - 1)
    out[idx] = np.where(f0 > 0, f0, np.nan)
    return out
