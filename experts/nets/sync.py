"""The sync expert's two towers (experts/sync.py): SyncNet-style, convolutional along time with a receptive
field of exactly 5 frames; the InfoNCE training loss; the exported graphs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from talkqa.onnx_model import Graph

MEL_PER_FRAME = 4  # mel frames per video frame (100 Hz log-mel, 25 fps)


def temporal_head(dim: int, dropout: float) -> nn.Sequential:
    """Two valid width-3 convolutions over per-frame features (5 frames in, 1 window out), then a
    projection."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Conv1d(128, 128, 3), nn.BatchNorm1d(128), nn.GELU(),
        nn.Dropout(dropout), nn.Conv1d(128, 128, 3), nn.BatchNorm1d(128), nn.GELU(),
        nn.Conv1d(128, dim, 1),
    )


class VisualTower(nn.Module):
    """(B, T, h, w) standardised mouth frames -> (B, T - 4, D): a per-frame CNN, then two valid
    temporal convolutions of width 3, so output i sees exactly frames i..i+4."""

    def __init__(self, dim: int, frame_hw: tuple[int, int], dropout: float):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.GELU())

        self.frame = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), block(64, 96))
        h, w = (frame_hw[0] + 15) // 16, (frame_hw[1] + 15) // 16
        self.proj = nn.Linear(96 * h * w, 128)  # flatten, not pool: where the lips are matters
        self.time = temporal_head(dim, dropout)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # flatten / unflatten rather than reshape(b * t, ...): a traced graph keeps B and T variable
        h = self.frame(frames.flatten(0, 1).unsqueeze(1)).flatten(1)
        h = F.gelu(self.proj(h)).unflatten(0, (frames.shape[0], -1)).transpose(1, 2)
        return F.normalize(self.time(h).transpose(1, 2), dim=-1)


class AudioTower(nn.Module):
    """(B, n_mels, 4T) log-mel -> (B, T - 4, D): mel bands are mixed per mel frame, a stride-4
    convolution turns 4 mel frames into one video frame, then two valid temporal convolutions of width 3
    cover exactly 0.2 s."""

    def __init__(self, dim: int, n_mels: int, dropout: float):
        super().__init__()
        self.mel = nn.Sequential(
            nn.Conv1d(n_mels, 96, 1), nn.BatchNorm1d(96), nn.GELU(),
            nn.Conv1d(96, 128, MEL_PER_FRAME, stride=MEL_PER_FRAME), nn.BatchNorm1d(128), nn.GELU(),
        )
        self.time = temporal_head(dim, dropout)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.time(self.mel(mel)).transpose(1, 2), dim=-1)


class SyncNetLite(nn.Module):
    def __init__(self, dim: int, n_mels: int, frame_hw: tuple[int, int], dropout: float):
        super().__init__()
        self.visual = VisualTower(dim, frame_hw, dropout)
        self.audio = AudioTower(dim, n_mels, dropout)


def graphs(model: SyncNetLite, n_mels: int, frame_hw: tuple[int, int]) -> dict[str, Graph]:
    """Each tower is a graph of its own: a clip is encoded once per side, in chunks of any length."""
    frames = np.zeros((1, 9, *frame_hw), np.float32)
    mel = np.zeros((1, n_mels, 9 * MEL_PER_FRAME), np.float32)
    return {
        "visual": Graph(model.visual, (frames,), ["frames"], ["emb"],
                        {"frames": {0: "batch", 1: "frames"}, "emb": {0: "batch", 1: "windows"}}),
        "audio": Graph(model.audio, (mel,), ["mel"], ["emb"],
                       {"mel": {0: "batch", 2: "mel_frames"}, "emb": {0: "batch", 1: "windows"}}),
    }


def info_nce_loss(model: SyncNetLite, vis: torch.Tensor, mel: torch.Tensor, windows: int, max_lag: int,
                  lags: np.ndarray, min_negative_lag: int, temperature: float) -> torch.Tensor:
    """InfoNCE: each visual window against its in-sync audio window, the audio windows of the same
    strip shifted by min_negative_lag..max_lag frames, and the in-sync audio of the other strips."""
    W, L = windows, max_lag
    v = model.visual(vis)  # (B, W, D)
    a = model.audio(mel)  # (B, W + 2L, D); visual window i is in sync with audio window i + L
    B = v.shape[0]
    lags = torch.as_tensor(lags)
    idx = torch.arange(W)[:, None] + L + lags[None]  # (W, n_lags)
    keep = (lags == 0) | (lags.abs() >= min_negative_lag)
    idx = idx[:, keep]
    zero = int(torch.nonzero(lags[keep] == 0)[0])
    cand = a[:, idx]  # (B, W, n, D)
    same = (v[:, :, None] * cand).sum(-1)  # (B, W, n)
    sync = a[:, L : L + W]  # (B, W, D) in-sync audio of each strip
    other = torch.einsum("bwd,cwd->bwc", v, sync)  # (B, W, B): column b is the positive again
    other = other.masked_fill(torch.eye(B, dtype=torch.bool)[:, None, :], float("-inf"))
    logits = torch.cat([same, other], dim=-1) / temperature
    target = torch.full((B * W,), zero, dtype=torch.long)
    return F.cross_entropy(logits.reshape(B * W, -1), target)
