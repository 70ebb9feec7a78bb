"""`motion` expert: is the face and head motion natural (evidence for the `expression` score)?

A 1-D temporal CNN over per-frame landmark-motion vectors (aligned points, velocities, AU proxies,
head pose; see experts/motion_features.py), trained to tell real motion from perturbed copies of it (frozen,
jittered, over-smoothed, time-warped, exaggerated, upper face frozen, a talking photo whose head and upper
face stay still while lips and chin move, a stall). Tokens are 0.2 s windows of its hidden features; the
clip scalar `naturalness_logit` is high for natural motion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import model_validator

from talkqa.features.clip import PreprocessedClip

from .base import EXPERTS, Expert, ExpertConfig, Tokens, steps_from_epochs
from .motion_features import FEATURE_DIM, PERTURBATIONS, fill_invalid, motion_features


class MotionConfig(ExpertConfig):
    hidden: int = 64
    window_frames: int = 64  # training crop length (2.56 s at 25 fps)
    steps: int = 1200
    min_valid_share: float = 0.5

    _legacy = model_validator(mode="before")(steps_from_epochs)


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

    def _new_model(self):
        from .nets.motion import MotionCNN  # lazy: torch, only to train, export or run without an ONNX export

        return MotionCNN(FEATURE_DIM, self.config.hidden)

    def onnx_graphs(self, model) -> dict:
        from .nets.motion import graphs  # lazy: torch, only to export or run without an ONNX export

        return graphs(model, FEATURE_DIM)

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

    def embed(self, clip: PreprocessedClip) -> Tokens:
        h, logit = self.run_graph("motion", self._inputs(clip)[None].astype(np.float32))
        step = max(1, int(round(self.config.token_s * clip.fps)))
        starts = np.arange(0, clip.n_frames, step)
        emb = np.stack([h[0, s : s + step].mean(0) for s in starts])
        return Tokens(starts / clip.fps, np.minimum(starts + step, clip.n_frames) / clip.fps, emb,
                      {"naturalness_logit": float(logit[0])})

    # ------------------------------------------------------------------------------------ training
    training_requirement = "clips with a face in half their frames and one training window of frames"

    def training_item(self, clip: PreprocessedClip, group: str) -> tuple | None:
        if clip.face_valid.mean() < self.config.min_valid_share or clip.n_frames < self.config.window_frames:
            return None
        return group, fill_invalid(clip.aligned, clip.face_valid), fill_invalid(clip.head_pose, clip.face_valid)

    def training_batch(self, items, rng, n: int):
        """Half real windows, half perturbed windows (a random perturbation family each)."""
        import torch  # lazy: training only

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
        from torch.nn.functional import binary_cross_entropy_with_logits  # lazy: torch, training only

        x, y = batch
        return binary_cross_entropy_with_logits(model.logit(model.frames(x)), y)

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
        return float(self.run_graph("motion", motion_features(a, p)[None].astype(np.float32))[1][0])
