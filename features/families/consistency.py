"""consistency: do voice and face agree in rhythm and intensity?

Rhythm: syllable nuclei (de Jong & Wempe: voiced intensity peaks) against mouth openings (prominent
peaks of the inner-lip aperture), both per second of speech (VAD), so pauses count for neither, and
the share of nuclei that have a mouth opening close by. Without audio the mouth rate is per second
of visible face. Intensity: per window, prosodic arousal (speech level + F0 variability) against
facial activity (landmark speed + head speed), each robustly z-scored within the clip, and their
correlation over the windows: an excited voice should come with a livelier face.
"""

from __future__ import annotations

import numpy as np

from .. import geometry as G
from .. import signals as S
from ..clip import PreprocessedClip
from ..filters import dilate1d
from .base import FAMILIES, FamilyOutput, FeatureFamily, FeatureLabel


def _mean_z(*parts: np.ndarray) -> np.ndarray:
    """Mean of robust z-scores, ignoring a part that is NaN in a window."""
    return S.nanmean(np.stack([S.robust_z(p) for p in parts]), axis=0)


@FAMILIES.register
class Consistency(FeatureFamily):
    name = "consistency"
    description = "speech rate vs mouth-opening rate; prosodic arousal vs facial activity over windows"
    clip_features = (
        "speech_rate",
        "mouth_rate",
        "rate_ratio",
        "rate_diff",
        "syllable_mouth_match",
        "arousal_activity_corr",
        "energy_activity_corr",
        "f0_activity_corr",
    )
    window_features = (
        "syllable_rate",
        "mouth_rate",
        "energy_db",
        "f0_std_st",
        "arousal",
        "landmark_speed",
        "head_speed",
        "facial_activity",
    )
    feature_labels = {
        "speech_rate": FeatureLabel("syllables per second of speech", "/s", "{:.1f}"),
        "mouth_rate": FeatureLabel("mouth openings per second (of speech, or of face without audio)", "/s", "{:.1f}"),
        "rate_ratio": FeatureLabel("mouth openings per syllable", fmt="{:.2f}"),
        "rate_diff": FeatureLabel("mouth openings minus syllables per second", "/s", "{:+.1f}"),
        "syllable_mouth_match": FeatureLabel("syllables with a mouth opening", "% of syllables", "{:.0f}", 100),
        "arousal_activity_corr": FeatureLabel("voice arousal vs facial activity (correlation)", fmt="{:.2f}"),
        "energy_activity_corr": FeatureLabel("voice loudness vs facial activity (correlation)", fmt="{:.2f}"),
        "f0_activity_corr": FeatureLabel("pitch variation vs facial activity (correlation)", fmt="{:.2f}"),
        "syllable_rate": FeatureLabel("syllables per second", "/s", "{:.1f}"),
        "energy_db": FeatureLabel("speech level", "dB", "{:.1f}"),
        "f0_std_st": FeatureLabel("pitch variation", "semitones", "{:.1f}"),
        "arousal": FeatureLabel("voice arousal (z-score in the clip)", fmt="{:+.2f}"),
        "landmark_speed": FeatureLabel("face motion speed", "eye distances/s", "{:.2f}"),
        "head_speed": FeatureLabel("head speed", "°/s", "{:.1f}"),
        "facial_activity": FeatureLabel("facial activity (z-score in the clip)", fmt="{:+.2f}"),
    }
    defaults = {
        "mouth_prominence": 0.04,  # IOD an opening must rise above the closures around it (mesh noise ~0.005)
        "min_opening_frames": 3,  # openings closer than this are one opening (8 per second at most)
        "match_frames": 3,  # a nucleus "has" a mouth opening within this many frames
        "min_windows": 4,  # fewer windows give no correlation
    }

    def compute(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        p = self.params
        fps, T = clip.fps, clip.n_frames
        valid = np.asarray(clip.face_valid, bool)
        aligned = np.where(valid[:, None, None], clip.aligned, np.nan).astype(np.float64)
        out = FamilyOutput()

        openings = self._mouth_openings(G.lip_aperture(aligned))
        per_frame_open = np.bincount(openings, minlength=T)[:T].astype(np.float64)
        face_s = valid.sum() / fps
        out.clip["mouth_rate"] = len(openings) / face_s if face_s > 0 else np.nan  # replaced below when speech is known

        speed = G.point_speed(aligned) * fps
        pose = np.where(valid[:, None], clip.head_pose, np.nan).astype(np.float64)
        head = np.full(T, np.nan)
        head[1:] = np.linalg.norm(np.diff(pose, axis=0), axis=1) * fps
        w_speed, w_head = S.window_reduce(speed, windows), S.window_reduce(head, windows)
        activity = _mean_z(w_speed, w_head)
        seconds = (windows[:, 1] - windows[:, 0]) / fps
        out.windows.update(
            mouth_rate=S.window_reduce(per_frame_open, windows, np.sum) / seconds,
            landmark_speed=w_speed,
            head_speed=w_head,
            facial_activity=activity,
        )
        if clip.audio is None:
            return out

        audio = clip.audio_norm if clip.audio_norm is not None else clip.audio
        frame_db = S.envelope_db(audio, T, clip.hop)
        speech = S.speech_mask(clip.vad, frame_db)
        f0 = S.f0_track(audio, clip.sr, T, fps)
        voiced = np.isfinite(f0)
        # de Jong & Wempe keep voiced peaks; without any pitch (whisper, heavy noise) the VAD decides.
        gate = dilate1d(voiced) if voiced.any() else speech
        nuclei = S.syllable_nuclei(audio, clip.sr, gate, fps)
        nucleus_frames = np.clip((nuclei * fps).astype(int), 0, T - 1)
        speech_s, seen_s = speech.sum() / fps, (speech & valid).sum() / fps
        speech_rate = len(nuclei) / speech_s if speech_s >= 0.5 else np.nan
        mouth_rate = np.sum(speech[openings]) / seen_s if seen_s >= 0.5 else np.nan
        near = np.abs(nucleus_frames[:, None] - openings[None, :]) <= p["match_frames"]

        energy = np.array([S.nanmean(frame_db[s:e][speech[s:e]]) if speech[s:e].any() else np.nan for s, e in windows])
        semis = S.semitones(f0)
        f0_var = S.window_reduce(semis, windows, lambda v: S.nanstd(v) if np.isfinite(v).sum() >= 3 else np.nan)
        arousal = _mean_z(energy, f0_var)
        out.clip.update(
            speech_rate=speech_rate,
            mouth_rate=mouth_rate,
            rate_ratio=mouth_rate / speech_rate if speech_rate > 0 else np.nan,
            rate_diff=mouth_rate - speech_rate,
            syllable_mouth_match=float(near.any(axis=1).mean()) if len(nuclei) else np.nan,
            **self._correlations(arousal, energy, f0_var, activity),
        )
        per_frame_nuclei = np.bincount(nucleus_frames, minlength=T)[:T].astype(np.float64)
        out.windows.update(
            syllable_rate=S.window_reduce(per_frame_nuclei, windows, np.sum) / seconds,
            energy_db=energy,
            f0_std_st=f0_var,
            arousal=arousal,
        )
        return out

    def _mouth_openings(self, aperture: np.ndarray) -> np.ndarray:
        """Frames of aperture peaks that rise `mouth_prominence` above the closures around them. Not
        smoothed: at 25 fps a 6 syllables/s mouth cycles in four frames, and any smoothing strong
        enough to matter flattens exactly those openings."""
        x = S.fill_gaps(aperture, max_gap=5)
        return S.count_peaks(x, self.params["mouth_prominence"], min_distance=self.params["min_opening_frames"])

    def _correlations(self, arousal, energy, f0_var, activity) -> dict[str, float]:
        if len(activity) < self.params["min_windows"]:
            return {}
        n = self.params["min_windows"]
        return {
            "arousal_activity_corr": S.pearson(arousal, activity, min_n=n),
            "energy_activity_corr": S.pearson(energy, activity, min_n=n),
            "f0_activity_corr": S.pearson(f0_var, activity, min_n=n),
        }
