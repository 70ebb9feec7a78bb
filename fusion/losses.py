"""Losses of the fusion model. Regression losses come from each Dimension's declared `loss`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from talkqa.tasks import DIMENSIONS

_DIM = {d.name: d for d in DIMENSIONS}


def _smooth_l1(pred, target, beta):
    return F.smooth_l1_loss(pred, target, beta=beta, reduction="none")


REGRESSION_LOSSES = {
    "smooth_l1": _smooth_l1,
    "l1": lambda p, t, beta: (p - t).abs(),
    "mse": lambda p, t, beta: (p - t) ** 2,
}


def regression_losses(pred: torch.Tensor, target: torch.Tensor, tasks: list[str], beta: float) -> dict[str, torch.Tensor]:
    """pred, target: (B, n_tasks), targets scaled to [-1, 1], NaN = unlabelled."""
    out = {}
    for k, t in enumerate(tasks):
        valid = torch.isfinite(target[:, k])
        if valid.any():
            fn = REGRESSION_LOSSES[_DIM[t].loss]
            out[t] = fn(pred[valid, k], target[valid, k], beta).mean()
        else:
            out[t] = pred[:, k].sum() * 0.0
    return out


def pairwise_ranking_loss(pred: torch.Tensor, target: torch.Tensor, min_gap: float, scale: float) -> torch.Tensor:
    """Logistic loss over in-batch pairs whose labels differ by more than `min_gap` (same units as target)."""
    losses = []
    for k in range(pred.shape[1]):
        valid = torch.isfinite(target[:, k])
        p, y = pred[valid, k], target[valid, k]
        if len(p) < 2:
            continue
        dy = y[:, None] - y[None, :]
        dp = p[:, None] - p[None, :]
        sel = dy > min_gap
        if sel.any():
            losses.append(F.softplus(-scale * dp[sel]).mean())
    return torch.stack(losses).mean() if losses else pred.sum() * 0.0


def contrastive_alignment_loss(audio: torch.Tensor, visual: torch.Tensor, valid: torch.Tensor,
                               temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: a clip's pooled audio and visual embeddings should match each other best."""
    a, v = audio[valid], visual[valid]
    if len(a) < 2:
        return audio.sum() * 0.0
    a, v = F.normalize(a, dim=-1), F.normalize(v, dim=-1)
    logits = a @ v.T / temperature
    idx = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, idx) + F.cross_entropy(logits.T, idx))


def diagnostic_loss(logits: torch.Tensor, target: torch.Tensor, window_mask: torch.Tensor) -> torch.Tensor:
    """BCE over supervised windows only. logits/target: (B, W, n_dims); window_mask: (B, W)."""
    if not window_mask.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[window_mask], target[window_mask])
