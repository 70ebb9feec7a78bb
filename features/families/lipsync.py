"""lipsync: do the lips move with the speech?

Two mouth/audio pairings, each cross-correlated over lags +-max_lag frames:
  * inner-lip aperture (face units) against the frame level in dB (40 dB range, so background noise
    does not read as speech), both detrended (sigma 0.5 s): AV timing lives in the syllabic 2-8 Hz
    modulations, slow drifts only widen the peak;
  * opening velocity against audio onset strength (log-mel flux): a syllable starts as the lips part.
The AV offset is the lag of the maximum of their mean curve, positive when the sound comes after the
lips (audio delayed). On the real clips of ../shared/data the second pairing alone lands within
[-2, 4] frames about 2 times in 3, the first about 1 in 2; averaging keeps the failures of either
from deciding alone. Both component estimates are reported too.
"""

from __future__ import annotations

import numpy as np

from .. import geometry as G
from .. import signals as S
from ..clip import PreprocessedClip
from .base import FAMILIES, FamilyOutput, FeatureFamily, FeatureLabel


def av_signal_pairs(aperture: np.ndarray, env: np.ndarray, onset: np.ndarray, fps: float,
                    detrend_s: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The mouth/audio signal pairs whose lagged cross-correlation gives the AV offset: detrended
    aperture vs detrended envelope, and opening speed vs onset strength."""
    sigma = detrend_s * fps
    vel = np.gradient(aperture) * fps if len(aperture) > 1 else np.full(len(aperture), np.nan)
    return {
        "envelope": (S.detrend(aperture, sigma), S.detrend(env, sigma)),
        "onset": (np.maximum(vel, 0.0), onset),  # closing makes no sound: only opening counts
    }


@FAMILIES.register
class LipSync(FeatureFamily):
    name = "lipsync"
    description = "mouth aperture dynamics, mouth/audio cross-correlation and AV offset, mouth state in speech/silence"
    clip_features = (
        "aperture_mean",
        "aperture_std",
        "aperture_p95",
        "aperture_vel_std",
        "aperture_acc_std",
        "av_offset_frames",
        "av_peak_corr",
        "av_corr_lag0",
        "av_confidence",
        "envelope_offset_frames",
        "envelope_peak_corr",
        "onset_offset_frames",
        "onset_peak_corr",
        "speech_share",
        "closed_mouth_speech_share",
        "moving_mouth_silence_share",
    )
    window_features = (
        "aperture_mean",
        "aperture_std",
        "av_corr_lag0",
        "av_offset_frames",
        "av_peak_corr",
        "speech_share",
        "closed_mouth_speech_share",
        "moving_mouth_silence_share",
    )
    series_names = ("aperture", "audio_envelope_db", "onset_strength")
    feature_labels = {
        "aperture_mean": FeatureLabel("mouth opening (mean)", "× eye distance", "{:.3f}"),
        "aperture_std": FeatureLabel("mouth opening variation (std)", "× eye distance", "{:.3f}"),
        "aperture_p95": FeatureLabel("mouth opening (95th percentile)", "× eye distance", "{:.3f}"),
        "aperture_vel_std": FeatureLabel("mouth opening speed (std)", "eye distances/s", "{:.2f}"),
        "aperture_acc_std": FeatureLabel("mouth opening acceleration (std)", "eye distances/s²", "{:.1f}"),
        "av_offset_frames": FeatureLabel("AV offset (hand-crafted, + = sound after the lips)", "frames", "{:+.0f}"),
        "av_peak_corr": FeatureLabel("mouth/audio correlation at the best lag", fmt="{:.2f}"),
        "av_corr_lag0": FeatureLabel("mouth/audio correlation without shift", fmt="{:.2f}"),
        "av_confidence": FeatureLabel("AV offset confidence (hand-crafted)", fmt="{:.2f}"),
        "envelope_offset_frames": FeatureLabel("AV offset, mouth opening vs loudness", "frames", "{:+.0f}"),
        "envelope_peak_corr": FeatureLabel("mouth opening vs loudness, peak correlation", fmt="{:.2f}"),
        "onset_offset_frames": FeatureLabel("AV offset, lip opening vs sound onsets", "frames", "{:+.0f}"),
        "onset_peak_corr": FeatureLabel("lip opening vs sound onsets, peak correlation", fmt="{:.2f}"),
        "speech_share": FeatureLabel("speech", "% of the time", "{:.0f}", 100),
        "closed_mouth_speech_share": FeatureLabel("mouth closed while speaking", "% of speech", "{:.0f}", 100),
        "moving_mouth_silence_share": FeatureLabel("mouth moving in silence", "% of silence", "{:.0f}", 100),
    }
    defaults = {
        "max_lag": 15,  # frames searched either side for the AV offset
        "detrend_s": 0.5,  # sigma of the slow trend removed before correlating
        "max_gap_frames": 5,  # face-less gaps up to this long are interpolated
        "closed_aperture": 0.03,  # inner-lip gap / IOD under which the mouth counts as closed
        "moving_range": 0.05,  # aperture range / IOD within `moving_span` frames that counts as moving
        "moving_span": 7,
        "offset_context_s": 3.0,  # per-window offsets look at this much audio/video around the window
    }

    def compute(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        p = self.params
        fps, T = clip.fps, clip.n_frames
        aperture = S.fill_gaps(np.where(clip.face_valid, G.lip_aperture(clip.aligned), np.nan), p["max_gap_frames"])
        vel = np.gradient(aperture) * fps if T > 1 else np.full(T, np.nan)
        acc = np.gradient(vel) * fps if T > 1 else np.full(T, np.nan)
        out = FamilyOutput(series={"aperture": aperture})
        out.clip.update(
            aperture_mean=S.nanmean(aperture),
            aperture_std=S.nanstd(aperture),
            aperture_p95=S.nanpercentile(aperture, 95),
            aperture_vel_std=S.nanstd(vel),
            aperture_acc_std=S.nanstd(acc),
        )
        out.windows.update(
            aperture_mean=S.window_reduce(aperture, windows),
            aperture_std=S.window_reduce(aperture, windows, S.nanstd),
        )
        if clip.audio is None:
            return out

        audio = clip.audio_norm if clip.audio_norm is not None else clip.audio
        env = S.envelope_db(audio, T, clip.hop)
        onset = S.onset_strength(S.frame_spectra(audio, T, clip.hop), clip.sr)
        out.series.update(audio_envelope_db=env, onset_strength=onset)

        pairs, curves = self.offset_curves(aperture, env, onset, fps)
        lags = curves["envelope"][0]
        av = S.xcorr_peak(lags, (curves["envelope"][1] + curves["onset"][1]) / 2)
        env_pk, on_pk = S.xcorr_peak(*curves["envelope"]), S.xcorr_peak(*curves["onset"])

        speech = S.speech_mask(clip.vad, env)
        valid = np.isfinite(aperture)
        closed = aperture < p["closed_aperture"]
        moving = S.rolling_range(aperture, p["moving_span"]) > p["moving_range"]
        out.clip.update(
            av_offset_frames=av["offset"],
            av_peak_corr=av["peak"],
            av_corr_lag0=av["lag0"],
            av_confidence=av["confidence"],
            envelope_offset_frames=env_pk["offset"],
            envelope_peak_corr=env_pk["peak"],
            onset_offset_frames=on_pk["offset"],
            onset_peak_corr=on_pk["peak"],
            speech_share=S.share(speech),
            closed_mouth_speech_share=S.share(closed, speech & valid),
            moving_mouth_silence_share=S.share(moving, ~speech & valid),
        )
        mouth_env, audio_env = pairs["envelope"]
        local = self._local_offsets(pairs, windows, int(round(p["offset_context_s"] * fps)))
        out.windows.update(
            av_corr_lag0=np.array([S.pearson(mouth_env[s:e], audio_env[s:e], min_n=5) for s, e in windows]),
            av_offset_frames=local[:, 0],
            av_peak_corr=local[:, 1],
            speech_share=S.window_share(speech, windows),
            closed_mouth_speech_share=S.window_share(closed, windows, speech & valid),
            moving_mouth_silence_share=S.window_share(moving, windows, ~speech & valid),
        )
        return out

    def offset_curves(self, aperture: np.ndarray, env: np.ndarray, onset: np.ndarray, fps: float) -> tuple[dict, dict]:
        """The mouth/audio signal pairs and their lagged cross-correlation curves {name: (lags, corr)}; the
        clip's av_offset_frames is the peak of the curves' mean. Public so that a report can draw exactly
        the curve the family measured, from the series it saved (aperture, audio_envelope_db, onset_strength)."""
        pairs = av_signal_pairs(aperture, env, onset, fps, self.params["detrend_s"])
        return pairs, {k: S.lagged_xcorr(m, a, self.params["max_lag"]) for k, (m, a) in pairs.items()}

    def _local_offsets(self, pairs: dict, windows: np.ndarray, context: int) -> np.ndarray:
        """(W, 2) offset and peak of the mean correlation curve over `context` frames centred on each
        window, so the diagnostics can say where along the clip the sync drifts."""
        res = np.full((len(windows), 2), np.nan)
        n_frames = len(pairs["envelope"][0])
        for i, (s, e) in enumerate(windows):
            mid = (s + e) // 2
            a, b = max(0, mid - context // 2), min(n_frames, mid + context // 2 + 1)
            n = max(10, (b - a) // 2)  # a lag must still leave half the context to correlate
            lag = self.params["max_lag"]
            curves = [S.lagged_xcorr(m[a:b], au[a:b], lag, min_overlap=n) for m, au in pairs.values()]
            pk = S.xcorr_peak(curves[0][0], np.mean([c for _, c in curves], axis=0))
            res[i] = pk["offset"], pk["peak"]
        return res
