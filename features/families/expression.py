"""expression: are face and head motion natural and alive?

Blinks (eye aspect ratio dropping well below its own baseline), brow and head-pose variability,
head jerk, landmark jitter (high-frequency residual), left/right symmetry of motion, upper-face vs
mouth motion energy, frozen frames; and the AU-proxy time series the expression expert reads.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from .. import geometry as G
from .. import landmarks as L
from .. import signals as S
from .base import FAMILIES, FamilyOutput, FeatureFamily


@FAMILIES.register
class Expression(FeatureFamily):
    name = "expression"
    description = "blinks, brow and head motion, jitter, symmetry, frozen frames, AU proxies"
    clip_features = (
        "blink_rate_per_min", "blink_duration_s", "ear_mean", "brow_raise_std",
        "head_yaw_std", "head_pitch_std", "head_roll_std", "head_jerk", "jitter", "motion_symmetry",
        "upper_mouth_energy_ratio", "frozen_share", "motion_energy",
    ) + tuple(f"{a}_std" for a in G.AU_NAMES)
    window_features = ("motion_energy", "head_speed", "blinks", "jitter") + tuple(f"{a}_mean" for a in G.AU_NAMES)
    series_names = G.AU_NAMES + ("ear", "motion_energy")
    # blink: EAR below (1 - blink_drop) x its median for 1..max_blink_frames frames
    defaults = {"blink_drop": 0.35, "max_blink_frames": 15, "frozen_speed": 0.002, "frozen_pixels": 0.3}

    def compute(self, clip, windows) -> FamilyOutput:
        p = self.params
        valid = clip.face_valid
        a = np.where(valid[:, None, None], clip.aligned, np.nan)
        out = FamilyOutput()
        if valid.sum() < 3:
            return out
        aus = G.au_proxies(a)
        ear = G.eye_aspect_ratio(a)
        speed = G.landmark_speed(a)  # NaN where either frame lacks a face
        for i, name in enumerate(G.AU_NAMES):
            out.series[name] = aus[:, i]
            out.clip[f"{name}_std"] = S.nan_stat(np.std, aus[:, i])
            out.windows[f"{name}_mean"] = np.array([S.nan_stat(np.mean, aus[s:e, i]) for s, e in windows])
        out.series.update({"ear": ear, "motion_energy": speed})

        blinks = _blinks(ear, valid, p["blink_drop"], p["max_blink_frames"])
        minutes = valid.sum() / clip.fps / 60
        out.clip["blink_rate_per_min"] = len(blinks) / minutes
        out.clip["blink_duration_s"] = float(np.mean([e - s for s, e in blinks]) / clip.fps) if blinks else 0.0
        out.clip["ear_mean"] = S.nan_stat(np.mean, ear)
        out.clip["brow_raise_std"] = S.nan_stat(np.std, G.brow_height(a))

        pose = np.where(valid[:, None], clip.head_pose, np.nan)
        for i, axis in enumerate(("yaw", "pitch", "roll")):
            out.clip[f"head_{axis}_std"] = S.nan_stat(np.std, pose[:, i])
        jerk = np.diff(pose, n=3, axis=0)
        out.clip["head_jerk"] = S.nan_stat(np.mean, np.linalg.norm(jerk, axis=1))
        head_speed = np.concatenate([[np.nan], np.linalg.norm(np.diff(pose, axis=0), axis=1)])

        # jitter: what a 5-frame moving average removes, relative to face size
        smooth = uniform_filter1d(np.nan_to_num(a), size=5, axis=0, mode="nearest")
        resid = np.linalg.norm(a - smooth, axis=2).mean(1) / G.iod(np.nan_to_num(a) + 0)
        inner = np.zeros(len(a), bool)
        inner[2:-2] = valid[:-4] & valid[1:-3] & valid[2:-2] & valid[3:-1] & valid[4:]
        out.clip["jitter"] = S.nan_stat(np.median, resid[inner])

        pair_corr = []
        for left, right in L.SYMMETRIC_PAIRS:
            sl, sr = G.landmark_speed(a, [left]), G.landmark_speed(a, [right])
            _, c = S.lagged_corr(sl, sr, 0)
            pair_corr.append(c[0])
        out.clip["motion_symmetry"] = S.nan_stat(np.mean, pair_corr)
        upper = G.landmark_speed(a, L.UPPER_FACE)
        mouth = G.landmark_speed(a, L.MOUTH)
        out.clip["upper_mouth_energy_ratio"] = S.nan_stat(np.mean, upper) / (S.nan_stat(np.mean, mouth) + 1e-6)
        out.clip["motion_energy"] = S.nan_stat(np.mean, speed)

        # Frozen = the picture did not change; the mesh jitters a little even on a still image.
        if clip.frame_diff is not None:
            frozen = np.nan_to_num(clip.frame_diff, nan=np.inf) < p["frozen_pixels"]
        else:
            frozen = speed < p["frozen_speed"]
        out.clip["frozen_share"] = float(frozen[1:][valid[1:]].mean()) if valid[1:].any() else np.nan

        blink_frames = np.zeros(len(a))
        for s, _ in blinks:
            blink_frames[s] = 1
        out.windows.update({
            "motion_energy": np.array([S.nan_stat(np.mean, speed[s:e]) for s, e in windows]),
            "head_speed": np.array([S.nan_stat(np.mean, head_speed[s:e]) for s, e in windows]),
            "blinks": np.array([blink_frames[s:e].sum() for s, e in windows]),
            "jitter": np.array([S.nan_stat(np.median, resid[s:e][inner[s:e]]) for s, e in windows]),
        })
        return out


def _blinks(ear: np.ndarray, valid: np.ndarray, drop: float, max_frames: int) -> list[tuple[int, int]]:
    """Runs of frames whose EAR is below (1 - drop) x the clip's median EAR, 1..max_frames long.
    Relative to each person's own open-eye EAR, so narrow eyes are not read as closed ones."""
    base = S.nan_stat(np.median, ear[valid])
    if not np.isfinite(base) or base <= 0:
        return []
    closed = np.nan_to_num(ear, nan=base) < (1 - drop) * base
    runs, start = [], None
    for t, c in enumerate(np.append(closed, False)):
        if c and start is None:
            start = t
        elif not c and start is not None:
            if t - start <= max_frames:
                runs.append((start, t))
            start = None
    return runs
