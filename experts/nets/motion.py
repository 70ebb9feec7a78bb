"""The motion expert's temporal 1-D CNN (experts/motion.py) and its exported graph."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from talkqa.onnx_model import Graph


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


class FramesAndLogit(nn.Module):
    """(B, T, D) motion features -> per-frame features (B, T, hidden) and the naturalness logit (B,)."""

    def __init__(self, model: MotionCNN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.model.frames(x)
        return h, self.model.logit(h)


def graphs(model: MotionCNN, in_dim: int) -> dict[str, Graph]:
    return {"motion": Graph(FramesAndLogit(model), (np.zeros((1, 32, in_dim), np.float32),), ["features"],
                            ["frames", "logit"], {"features": {0: "batch", 1: "time"}, "frames": {0: "batch", 1: "time"},
                                                  "logit": {0: "batch"}})}
