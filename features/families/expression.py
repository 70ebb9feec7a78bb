"""expression: are face and head motion natural and alive?

Blinks, brow and head-pose variability, head jerk, landmark jitter, left/right motion symmetry,
upper-face vs mouth motion, frozen frames and the longest held picture; and the AU-proxy series the expression
expert reads.

Blinks are dips of the eye aspect ratio below its own running baseline. The dip must be deeper than
both a share of the open-eye EAR (`blink_drop`) and `blink_noise_k` times the clip's own EAR noise,
so a shaky mesh produces no blinks however long the clip, and a narrow-eyed face is not read as
blinking all the time.
"""

from __future__ import annotations

import numpy as np

from .. import geometry as G
from .. import landmarks as L
from .. import signals as S
from ..cadence import clock_repeats, source_motion
from ..clip import PreprocessedClip
from ..filters import median_filter1d
from .base import FAMILIES, FamilyOutput, FeatureFamily, FeatureLabel

_UPPER = np.array(sorted(set(L.UPPER_FACE)))
# The action-unit proxies of features/geometry.py, as a person names them.
_AU_WORDS = {"au_brow_raise": ("brow raise (AU1+2 proxy)", "× eye distance"),
             "au_brow_lower": ("brow lowering (AU4 proxy)", "× eye distance"),
             "au_lip_corner_pull": ("lip-corner pull (AU12 proxy)", "× eye distance"),
             "au_jaw_drop": ("jaw drop (AU26 proxy)", "× eye distance"),
             "au_eye_closure": ("eye closure (AU43 proxy)", "")}
_MOUTH = np.array(sorted(set(L.MOUTH)))
# A held picture (the `held` series, for the frozen-picture diagnostic): the mean thumbnail change over
# 0.2 s below 0.05 of 255. Module constants, not parameters: a parameter with a default would change the
# extraction config's hash and refuse models trained before it. Chosen on training clips only
# (benchmarks/frozen_diagnostics.py): with it, 46 of 49 stalls encoded the way `talkqa check` encodes get
# named (1 of 49 by the frozen frames alone) and no clean clip (0 of 100).
HOLD_FRAMES = 5
HOLD_PIXELS = 0.05
# A repeated frame that the encoder keeps refining (x264 without its macroblock tree, as `talkqa check` writes its
# variants, refines it for about a second) changes the thumbnail by up to ~0.2 per frame, over the frozen limit, so
# a stall read 0.46-1.04 of its frozen share (median 0.63) where the corpora's encoder gives all of it. Over 0.2 s
# the face above the mouth still changes by only 0.07-0.46 there (frame_stats upper_change), against 1.9 and more on
# moving clean frames; so a frame is frozen too inside a run of at least REFINED_HOLD_S where upper_change stays
# under REFINED_HOLD_CHANGE and the lips do not move (a talking photo's lips do). On the default model's training
# clips such a run lasts 0.44 s at most on a clean clip (README, "Frozen frames an encoder refines").
REFINED_HOLD_CHANGE = 1.0
REFINED_HOLD_S = 0.5
# Lips that do not move (still_lips_share): the lipsync family's defaults for a moving mouth and its
# gap filling, as module constants for the same reason.
LIPS_STILL_SPAN = 7
LIPS_STILL_RANGE = 0.05
LIPS_GAP_FRAMES = 5
# A still picture (still_picture = 1): picture and lips hold still for at least this share of the frames. On the
# default model's training clips no reading falls between 0.65 and 1.0: every clip at 1.0 is a still picture with
# a voice (or a face as still), every talking photo reads 0.63 or less; still photos encoded the way `talkqa check`
# encodes them read 0.94-1.0. A 0/1 reading gives an evidence ceiling one step, so no reading in the gap takes the
# still photos' cap, as it would on the share itself (README, version 40).
STILL_PICTURE_SHARE = 0.9


def detect_blinks(
    ear: np.ndarray, fps: float, drop: float = 0.25, noise_k: float = 4.0, baseline_s: float = 1.0, max_s: float = 0.6
) -> np.ndarray:
    """(B, 2) [start, end) frames of blinks in an EAR series (NaN = no face).

    A blink is a run where EAR sits more than half the required depth under the running median and
    reaches the full depth somewhere; the required depth is max(drop x open EAR, noise_k x noise),
    with the noise measured robustly (MAD) on the deviations from the baseline. Runs longer than
    `max_s` are eyes closed on purpose (or a lost eye), not blinks. The baseline is a running median
    over `baseline_s`: long enough that a blink does not pull it down, short enough to follow a
    glance down (which lowers the EAR for a second or so) so that a blink during it stays a short run."""
    ear = S.fill_gaps(ear, max_gap=3)
    ok = np.isfinite(ear)
    if ok.sum() < 5:
        return np.zeros((0, 2), int)
    size = max(3, int(round(baseline_s * fps)) | 1)
    baseline = median_filter1d(np.where(ok, ear, np.nanmedian(ear)), size)
    dev = np.where(ok, baseline - ear, 0.0)  # > 0 when the eye is closing
    noise = 1.4826 * np.median(np.abs(dev[ok] - np.median(dev[ok])))
    depth = max(drop * float(np.median(baseline[ok])), noise_k * noise)
    found = [(s, e) for s, e in S.runs(dev > depth / 2) if dev[s:e].max() >= depth and e - s <= max_s * fps]
    return np.array(found, int).reshape(-1, 2)


@FAMILIES.register
class Expression(FeatureFamily):
    name = "expression"
    modality = "visual"
    description = ("blinks, brow and head motion, jitter, symmetry, frozen frames and held picture, upper-face motion, "
                   "AU proxies")
    clip_features = (
        "blink_count",
        "blink_rate_per_min",
        "blink_duration_s",
        "ear_open",
        "brow_raise_std",
        "brow_raise_range",
        "head_yaw_std",
        "head_pitch_std",
        "head_roll_std",
        "head_speed",
        "head_jerk",
        "jitter",
        "landmark_speed",
        "lr_motion_corr",
        "lr_energy_ratio",
        "upper_face_speed",
        "mouth_speed",
        "upper_mouth_energy_ratio",
        "frozen_share",
        "upper_change",
        "face_valid_share",
    ) + tuple(f"{a}_std" for a in G.AU_NAMES) + ("held_longest_s", "still_lips_share", "still_picture")
    window_features = (
        "blink_count",
        "jitter",
        "landmark_speed",
        "head_speed",
        "frozen_share",
    ) + tuple(f"{a}_{stat}" for a in G.AU_NAMES for stat in ("mean", "std"))
    series_names = G.AU_NAMES + ("ear", "landmark_speed", "jitter", "held")
    feature_labels = {
        "blink_count": FeatureLabel("blinks", fmt="{:.0f}"),
        "blink_rate_per_min": FeatureLabel("blinks per minute", fmt="{:.1f}"),
        "blink_duration_s": FeatureLabel("blink duration", "s", "{:.2f}"),
        "ear_open": FeatureLabel("open-eye aspect ratio", fmt="{:.2f}"),
        "brow_raise_std": FeatureLabel("brow movement (std)", "× eye distance", "{:.3f}"),
        "brow_raise_range": FeatureLabel("brow movement range", "× eye distance", "{:.3f}"),
        "head_yaw_std": FeatureLabel("head turning (yaw std)", "°", "{:.1f}"),
        "head_pitch_std": FeatureLabel("head nodding (pitch std)", "°", "{:.1f}"),
        "head_roll_std": FeatureLabel("head tilting (roll std)", "°", "{:.1f}"),
        "head_speed": FeatureLabel("head speed", "°/s", "{:.1f}"),
        "head_jerk": FeatureLabel("head jerkiness (RMS jerk)", "°/s³", "{:.0f}"),
        "jitter": FeatureLabel("landmark jitter", "× eye distance", "{:.4f}"),
        "landmark_speed": FeatureLabel("face motion speed", "eye distances/s", "{:.2f}"),
        "lr_motion_corr": FeatureLabel("left/right motion agreement (correlation)", fmt="{:.2f}"),
        "lr_energy_ratio": FeatureLabel("left/right motion balance (weaker/stronger side)", fmt="{:.2f}"),
        "upper_face_speed": FeatureLabel("upper-face motion speed", "eye distances/s", "{:.2f}"),
        "mouth_speed": FeatureLabel("mouth motion speed", "eye distances/s", "{:.2f}"),
        "upper_mouth_energy_ratio": FeatureLabel("upper-face vs mouth motion energy", fmt="{:.2f}"),
        "frozen_share": FeatureLabel("frozen frames", "% of frames", "{:.0f}", 100),
        "upper_change": FeatureLabel("picture change of eyes, brows and nose bridge over 0.2 s (median)",
                                     "grey levels", "{:.2f}"),
        "face_valid_share": FeatureLabel("face found", "% of frames", "{:.0f}", 100),
        "held_longest_s": FeatureLabel("longest held picture", "s", "{:.2f}"),
        "still_lips_share": FeatureLabel("held picture with still lips", "% of frames", "{:.0f}", 100),
        "still_picture": FeatureLabel("still picture (frame and lips hold still throughout; 1 = yes)", fmt="{:.0f}"),
        **{f"{au}_std": FeatureLabel(f"{words} variation (std)", unit, "{:.3f}") for au, (words, unit) in _AU_WORDS.items()},
        **{f"{au}_mean": FeatureLabel(f"{words} (mean)", unit, "{:.3f}") for au, (words, unit) in _AU_WORDS.items()},
    }
    defaults = {
        "blink_drop": 0.25,  # a blink closes the eye by at least this share of its open EAR ...
        "blink_noise_k": 4.0,  # ... and by more than this many robust EAR-noise sigmas
        "blink_baseline_s": 1.0,  # running-median EAR baseline (2 s merged blinks into glances down)
        "blink_max_s": 0.6,
        "frozen_speed": 0.003,  # median point displacement / IOD per frame under which a frame is frozen ...
        "frozen_pixels": 0.03,  # ... or mean thumbnail change (0-255) under which it repeats the last one
    }

    def blinks(self, ear: np.ndarray, fps: float) -> np.ndarray:
        """(n, 2) [start, stop) frames of the blinks in an eye-aspect-ratio series, with this family's
        parameters; public so that a report shades exactly the blinks the family counted."""
        p = self.params
        return detect_blinks(ear, fps, p["blink_drop"], p["blink_noise_k"], p["blink_baseline_s"], p["blink_max_s"])

    def compute(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        fps = clip.fps
        valid = np.asarray(clip.face_valid, bool)
        aligned = np.where(valid[:, None, None], clip.aligned, np.nan).astype(np.float64)
        out = FamilyOutput()
        out.clip["face_valid_share"] = S.share(valid)
        if valid.sum() < 3:
            return out

        aus = G.au_proxies(aligned)
        ear = G.eye_aspect_ratio(aligned)
        # Speeds, jitter and jerk of the motion the source recorded: a frame the clock repeats (a source below
        # 25 fps) would read as a stop and a jump, a jerk no viewer sees (features/cadence.py).
        repeats = clock_repeats(clip.frame_diff, len(aligned))
        moving = source_motion(aligned, repeats)
        speed = G.point_speed(moving) * fps  # IOD per second
        jitter = G.hf_residual(moving)
        out.series.update(aus)
        out.series.update(ear=ear, landmark_speed=speed, jitter=jitter)
        for name, series in aus.items():
            out.clip[f"{name}_std"] = S.nanstd(series)
            out.windows[f"{name}_mean"] = S.window_reduce(series, windows)
            out.windows[f"{name}_std"] = S.window_reduce(series, windows, S.nanstd)

        blinks = self.blinks(ear, fps)
        minutes = valid.sum() / fps / 60.0
        starts = np.zeros(len(ear))
        starts[blinks[:, 0]] = 1.0
        brow = aus["au_brow_raise"]
        out.clip.update(
            blink_count=float(len(blinks)),
            blink_rate_per_min=len(blinks) / minutes,
            blink_duration_s=float(np.mean(blinks[:, 1] - blinks[:, 0]) / fps) if len(blinks) else np.nan,
            ear_open=S.nanpercentile(ear, 75),
            brow_raise_std=S.nanstd(brow),
            brow_raise_range=S.nanpercentile(brow, 95) - S.nanpercentile(brow, 5),
        )

        pose = source_motion(np.where(valid[:, None], clip.head_pose, np.nan).astype(np.float64), repeats)
        head_speed = np.full(len(pose), np.nan)
        head_speed[1:] = np.linalg.norm(np.diff(pose, axis=0), axis=1) * fps  # deg/s
        jerk = np.linalg.norm(np.diff(pose, n=3, axis=0), axis=1) * fps**3 if len(pose) > 3 else np.full(1, np.nan)
        for i, axis in enumerate(("yaw", "pitch", "roll")):
            out.clip[f"head_{axis}_std"] = S.nanstd(pose[:, i])
        out.clip["head_speed"] = S.nanmean(head_speed)
        out.clip["head_jerk"] = float(np.sqrt(S.nanmean(jerk**2)))  # deg/s^3, RMS

        upper = G.point_speed(moving, _UPPER) * fps
        mouth = G.point_speed(moving, _MOUTH) * fps
        frozen, judged = self._frozen(clip, aligned)
        out.clip.update(
            jitter=S.nanmean(jitter),
            landmark_speed=S.nanmean(speed),
            upper_face_speed=S.nanmean(upper),
            mouth_speed=S.nanmean(mouth),
            upper_mouth_energy_ratio=S.nanmean(upper**2) / max(S.nanmean(mouth**2), 1e-12),
            frozen_share=S.share(frozen, judged),
            upper_change=self._upper_change(clip),
            **self._symmetry(moving),
        )
        out.windows.update(
            blink_count=S.window_reduce(starts, windows, np.sum),
            jitter=S.window_reduce(jitter, windows),
            landmark_speed=S.window_reduce(speed, windows),
            head_speed=S.window_reduce(head_speed, windows),
            frozen_share=S.window_share(frozen, windows, judged),
        )
        # per frame for the diagnostics, which name a frozen stretch by its own start and end: 1 s windows
        # cut a 1 s stall in two and neither half reads as frozen
        out.series["held"] = held = self._held(clip, frozen, judged)
        # A stall is one long hold, which the frozen share dilutes by the clip's length (a 1.5 s stall in 10 s
        # is 0.15, like a clip that is mildly frozen throughout); its longest run says "frozen for 1.5 s".
        out.clip["held_longest_s"] = S.longest_run(held == 1.0) / fps
        out.clip["still_lips_share"] = lips = self._still_lips_share(aligned, held)
        out.clip["still_picture"] = float(lips >= STILL_PICTURE_SHARE) if np.isfinite(lips) else np.nan
        return out

    @staticmethod
    def _still_lips_share(aligned: np.ndarray, held: np.ndarray) -> float:
        """Share of the judged frames whose picture is held (the `held` series: frozen, or changing by less than
        HOLD_PIXELS over 0.2 s, so that an encoder refining a repeated frame still counts) and in which the lips
        do not move either (inner-lip aperture range over LIPS_STILL_SPAN frames under LIPS_STILL_RANGE eye
        distances, the lipsync family's 'moving mouth'). A still photo with a voice reads about 1; a talking
        photo, whose head holds still while the mouth opens and closes, reads as frozen by the mesh's median
        point and by a whole-frame thumbnail, but not here (README, version 40)."""
        moving, _ = Expression._moving_lips(aligned)
        judged = np.isfinite(held)
        return S.share((held == 1.0) & ~moving, judged)

    @staticmethod
    def _moving_lips(aligned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(moving, measured) per frame: the inner-lip aperture's range over LIPS_STILL_SPAN frames exceeds
        LIPS_STILL_RANGE eye distances (the lipsync family's 'moving mouth'), after filling gaps of up to
        LIPS_GAP_FRAMES; `measured` where the aperture is known."""
        aperture = S.fill_gaps(G.lip_aperture(aligned), LIPS_GAP_FRAMES)
        return S.rolling_range(aperture, LIPS_STILL_SPAN) > LIPS_STILL_RANGE, np.isfinite(aperture)

    @staticmethod
    def _upper_change(clip: PreprocessedClip) -> float:
        """Median over the measured frames of how much the picture above the mouth changed in 0.2 s
        (frame_stats upper_change): ~0 where only the mouth is animated on a still photo, while the
        frozen share stays low there because the mouth moves. NaN for tracks from before it existed."""
        change = (clip.frame_stats or {}).get("upper_change")
        if change is None or not np.isfinite(change).any():
            return float("nan")
        return float(np.nanmedian(change))

    @staticmethod
    def _held(clip: PreprocessedClip, frozen: np.ndarray, judged: np.ndarray) -> np.ndarray:
        """(T,) 1 where the picture is held, 0 where it moves, NaN unjudged: a frozen frame (as counted in
        frozen_share), or a frame in the middle of HOLD_FRAMES whose picture changes by less than
        HOLD_PIXELS on average. An encoder without lookahead keeps refining a held frame (single frames
        then change by up to ~0.17 on the thumbnail's 0-255 scale, over the 0.03 a frozen frame may), but
        over 0.2 s the change stays far below that of moving footage."""
        held = frozen.astype(np.float64)
        if clip.frame_diff is not None and len(clip.frame_diff) == len(held):
            change = S.moving_mean(clip.frame_diff, HOLD_FRAMES)
            held = np.maximum(held, (np.nan_to_num(change, nan=np.inf) < HOLD_PIXELS).astype(np.float64))
            judged = judged | np.isfinite(clip.frame_diff)
        return np.where(judged, held, np.nan)

    def _frozen(self, clip: PreprocessedClip, aligned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frozen, judged) per frame. A repeated frame shows as a still mesh, or, because MediaPipe's
        tracker re-centres on its own last output and so jitters even on a still image, as a still
        picture (`frame_diff`, when preprocessing measured it): an encoded still image changes by
        ~0.005 per frame on that 0-255 scale, while on real talking clips of ../shared/data 95 % of
        frames change by more than 0.05. And, since a coder without lookahead keeps refining a repeated frame over
        that limit, as a run of a still face above the mouth with still lips (`_refined_hold`). A frame frozen
        alone, between two that move, is a lower frame rate and not counted (`_longer_than_one_frame`)."""
        mesh_speed = G.point_speed(aligned, reduce=np.median)
        frozen = mesh_speed < self.params["frozen_speed"]
        judged = np.isfinite(mesh_speed)
        if clip.frame_diff is not None:
            diff = np.asarray(clip.frame_diff, np.float64)
            frozen |= diff < self.params["frozen_pixels"]
            judged |= np.isfinite(diff)
        refined = self._refined_hold(clip, aligned)
        return _longer_than_one_frame((frozen | refined) & judged), judged

    @staticmethod
    def _refined_hold(clip: PreprocessedClip, aligned: np.ndarray) -> np.ndarray:
        """(T,) frames inside a run of at least REFINED_HOLD_S where the face above the mouth changes by less than
        REFINED_HOLD_CHANGE over 0.2 s (frame_stats upper_change, measured every few frames over the frames since
        the last measurement: each frame takes the next measurement's value) and the lips do not move: a held
        picture an encoder is still refining. All False for tracks without upper_change."""
        n = len(aligned)
        change = (clip.frame_stats or {}).get("upper_change")
        if change is None or len(change) != n:
            return np.zeros(n, bool)
        change = np.asarray(change, np.float64)
        measured = np.flatnonzero(np.isfinite(change))
        if not len(measured):
            return np.zeros(n, bool)
        # frame f lies in the window of the first measurement at or after it; after the last one, none
        nxt = np.searchsorted(measured, np.arange(n))
        covered = nxt < len(measured)
        window = np.where(covered, change[measured[np.minimum(nxt, len(measured) - 1)]], np.nan)
        moving, measured = Expression._moving_lips(aligned)
        candidate = (np.nan_to_num(window, nan=np.inf) < REFINED_HOLD_CHANGE) & measured & ~moving
        hold = np.zeros(n, bool)
        for a, b in S.runs(candidate):
            if b - a >= REFINED_HOLD_S * clip.fps:
                hold[a:b] = True
        return hold

    @staticmethod
    def _symmetry(aligned: np.ndarray) -> dict[str, float]:
        """Left/right motion symmetry over mirrored point pairs: correlation of the left velocity with
        the mirrored right one (x negated), and the ratio of the weaker to the stronger side's energy.
        Real expressions move both sides together; a warped half-face does not."""
        rigid = G.point_velocity(aligned).mean(axis=1, keepdims=True)  # alignment residue moves both sides alike
        left = G.point_velocity(aligned, [a for a, _ in L.SYMMETRIC_PAIRS]) - rigid
        right = (G.point_velocity(aligned, [b for _, b in L.SYMMETRIC_PAIRS]) - rigid) * np.array([-1.0, 1.0])
        corr = [S.pearson(left[:, i].ravel(), right[:, i].ravel(), min_n=10) for i in range(left.shape[1])]
        e_left, e_right = S.nanmean(left**2), S.nanmean(right**2)
        return {
            "lr_motion_corr": S.nanmean(np.array(corr)),
            "lr_energy_ratio": min(e_left, e_right) / max(e_left, e_right, 1e-12),
        }


def _longer_than_one_frame(frozen: np.ndarray) -> np.ndarray:
    """The frozen frames less those frozen alone, between two frames that move. A picture repeated for one
    frame only is a lower frame rate, not a frozen face: a 15 fps source on the 25 fps clock repeats 2 frames
    in 5 (hellomeme/nice read 40 % frozen, 18 % after re-encoding, where any viewer sees a face moving), a
    22-24 fps one 1 in 8-25 (the styletalk clips). A stall, a still photo and a stutter holding each frame 3x
    or more hold for 2 frames and longer, and stay frozen."""
    frozen = np.asarray(frozen, bool).copy()
    found = S.runs(frozen)
    frozen[found[found[:, 1] - found[:, 0] == 1, 0]] = False
    return frozen
