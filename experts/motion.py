"""`motion` expert: is the face and head motion natural (evidence for the `expression` score)?

A 1-D temporal CNN over per-frame landmark-motion vectors (aligned points, velocities, AU proxies,
head pose; see experts/motion_features.py), trained to tell real motion from perturbed copies of it (frozen,
jittered, over-smoothed, time-warped, exaggerated, upper face frozen). Tokens are 0.2 s windows of
its hidden features; the clip scalar `naturalness_logit` is high for natural motion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import model_validator
from torch import nn

from talkqa.features.clip import PreprocessedClip

from .base import EXPERTS, Expert, ExpertConfig, Tokens, steps_from_epochs
from .motion_features import FEATURE_DIM, PERTURBATIONS, fill_invalid, motion_features


class MotionConfig(ExpertConfig):
    hidden: int = 64
    window_frames: int = 64  # training crop length (2.56 s at 25 fps)
    steps: int = 1200
    min_valid_share: float = 0.5

    _legacy = model_validator(mode="before")(steps_from_epochs)


class MotionCNN(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.inp = nn.Sequential(nn.Conv1d(in_dim, hidden, 1), nn.GELU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(hidden, hidden, 5, padding=2 * d, dilation=d), nn.GroupNorm(8, hidden), nn.GELU())
            for d in (1, 2, 4)
        )
        self.head = nn.Linear(2 * hidden, 1)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, hidden) per-frame features."""
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = h + block(h)  # residual: keeps frame-level detail for the tokens
        return h.transpose(1, 2)

    def logit(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([h.mean(1), h.amax(1)], dim=-1)).squeeze(-1)


@EXPERTS.register
class MotionExpert(Expert):
    name = "motion"
    version = "1"
    input_kind = "landmarks"
    modality = "visual"
    scalar_names = ("naturalness_logit",)
    config_cls = MotionConfig
    display_name = "motion expert"

    def describe(self, scalars: dict[str, float]) -> str:
        # The logit separates real motion (> 0) from perturbed copies (< 0), the two classes it was trained on.
        logit = float(scalars.get("naturalness_logit", np.nan))
        if not np.isfinite(logit):
            return "no motion reading"
        verdict = "natural face and head motion" if logit > 0 else "face and head motion unlike real footage"
        return f"{verdict} (naturalness logit {logit:+.1f})"

    @property
    def dim(self) -> int:
        return self.config.hidden

    def _new_model(self) -> MotionCNN:
        return MotionCNN(FEATURE_DIM, self.config.hidden)

    training_data = ("real clips of the given stores (positives) and on-the-fly perturbations (negatives); "
                     "held-out source folders listed in the metrics")
    summary = ("Temporal 1-D CNN over landmark motion (aligned mesh subset, velocities, AU proxies, head pose), "
               "trained to tell real face/head motion from perturbed copies of it. Higher `naturalness_logit` = more "
               "natural motion. Tokens: 0.2 s windows of its hidden features.")
    limits = ("Trained on ~35 real clips of ../shared/data/real (news, interviews, MEAD/GRID crops), all mostly frontal. "
              "Negatives are synthetic perturbations of landmark tracks, not outputs of real generators, so it "
              "measures distance from natural motion statistics rather than human judgements. Time-warping is the "
              "hardest family. Faces found in under 50 % of frames are refused.")

    # ------------------------------------------------------------------------------------ inference
    def _inputs(self, clip: PreprocessedClip) -> np.ndarray:
        valid = clip.face_valid
        if valid.mean() < self.config.min_valid_share:
            raise ValueError(f"face found in only {valid.mean():.0%} of frames")
        aligned = fill_invalid(clip.aligned, valid)
        pose = fill_invalid(clip.head_pose, valid)
        return motion_features(aligned, pose, clip.face_crops.shape[1] if clip.face_crops.ndim == 4 else 96)

    @torch.no_grad()
    def embed(self, clip: PreprocessedClip) -> Tokens:
        x = torch.from_numpy(self._inputs(clip))[None].to(self.device)
        h = self.model_.frames(x)
        logit = float(self.model_.logit(h)[0])
        step = max(1, int(round(self.config.token_s * clip.fps)))
        starts = np.arange(0, clip.n_frames, step)
        emb = np.stack([h[0, s : s + step].mean(0).cpu().numpy() for s in starts])
        return Tokens(starts / clip.fps, np.minimum(starts + step, clip.n_frames) / clip.fps, emb,
                      {"naturalness_logit": logit})

    # ------------------------------------------------------------------------------------ training
    training_requirement = "clips with a face in half their frames and one training window of frames"

    def training_item(self, clip: PreprocessedClip, group: str) -> tuple | None:
        if clip.face_valid.mean() < self.config.min_valid_share or clip.n_frames < self.config.window_frames:
            return None
        return group, fill_invalid(clip.aligned, clip.face_valid), fill_invalid(clip.head_pose, clip.face_valid)

    def training_batch(self, items, rng, n: int):
        """Half real windows, half perturbed windows (a random perturbation family each)."""
        w = self.config.window_frames
        xs, ys = [], []
        for i in range(n):
            _, a, p = items[rng.integers(len(items))]
            s = int(rng.integers(0, len(a) - w + 1))
            a, p = a[s : s + w], p[s : s + w]
            if i % 2:
                fam = list(PERTURBATIONS)[rng.integers(len(PERTURBATIONS))]
                a, p = PERTURBATIONS[fam](a, p, rng)
                ys.append(0.0)
            else:
                ys.append(1.0)
            xs.append(motion_features(a, p))
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys)

    def training_loss(self, model, batch):
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(model.logit(model.frames(x)), y)

    @torch.no_grad()
    def evaluate(self, items, seed: int = 1, per_clip: int = 8) -> dict[str, Any]:
        """ROC-AUC, real windows vs each perturbation family, on the given (held-out) sequences."""
        from sklearn.metrics import roc_auc_score  # lazy: slow import, only on this path

        rng = np.random.default_rng(seed)
        w = self.config.window_frames
        real, fake = [], {f: [] for f in PERTURBATIONS}
        for _, a, p in items:
            for _ in range(per_clip):
                s = int(rng.integers(0, len(a) - w + 1))
                wa, wp = a[s : s + w], p[s : s + w]
                real.append(self._score(wa, wp))
                for fam, fn in PERTURBATIONS.items():
                    fake[fam].append(self._score(*fn(wa, wp, rng)))
        return {"heldout_auc": {fam: float(roc_auc_score([1] * len(real) + [0] * len(v), real + v))
                                for fam, v in fake.items()}}

    def _score(self, a, p) -> float:
        x = torch.from_numpy(motion_features(a, p))[None].to(self.device)
        return float(self.model_.logit(self.model_.frames(x))[0])
