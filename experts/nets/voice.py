"""The voice expert's networks (experts/voice.py): the log-mel CNN and HuBERT backbones, the quality head,
and the exported graph.

The log-mel CNN reads the waveform cut into reflect-padded 512-sample frames (experts/voice.py
`frame_signal`, the framing of `torch.stft(center=True)`); its Hann window and mel matrix are weights, and the
spectrum is a matrix product with a fixed DFT basis, so the whole front end is part of the graph and NumPy
only cuts the frames."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from talkqa.errors import TalkqaError
from talkqa.features.mel import mel_filterbank
from talkqa.onnx_model import Graph

from ..voice import N_FFT, SR
from ..voice import STFT_HOP as HOP


def _dft_basis() -> tuple[torch.Tensor, torch.Tensor]:
    k = np.arange(N_FFT)[:, None] * np.arange(N_FFT // 2 + 1)[None] * (2 * np.pi / N_FFT)
    return torch.tensor(np.cos(k), dtype=torch.float32), torch.tensor(-np.sin(k), dtype=torch.float32)


class LogMelCNN(nn.Module):
    """(B, N) waveform -> (B, T25, hidden) frame features at 25 Hz."""

    def __init__(self, n_mels: int, hidden: int):
        super().__init__()
        self.register_buffer("mel", torch.tensor(mel_filterbank(SR, N_FFT, n_mels), dtype=torch.float32))
        self.register_buffer("window", torch.hann_window(N_FFT))
        cos, sin = _dft_basis()  # not weights: fixed, and absent from checkpoints saved before them
        self.register_buffer("dft_cos", cos, persistent=False)
        self.register_buffer("dft_sin", sin, persistent=False)
        ch = 32
        self.conv = nn.Sequential(
            nn.Conv2d(1, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.GELU(), nn.MaxPool2d((2, 2)),
            nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.GELU(), nn.MaxPool2d((2, 2)),
            nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.GELU(),
        )
        self.proj = nn.Linear(ch * (n_mels // 4), hidden)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        frames = F.pad(wav[:, None], (N_FFT // 2, N_FFT // 2), mode="reflect")[:, 0].unfold(-1, N_FFT, HOP)
        return self.from_frames(frames)

    def from_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 512) frames (experts/voice.py frame_signal) -> (B, F // 4, hidden)."""
        x = frames * self.window
        spec = (x @ self.dft_cos) ** 2 + (x @ self.dft_sin) ** 2  # (B, F, 257) power, as |torch.stft|^2
        logmel = torch.log(self.mel @ spec.transpose(1, 2) + 1e-6)  # (B, mels, frames at 100 Hz)
        logmel = (logmel - logmel.mean(dim=(1, 2), keepdim=True)) / 4.0
        h = self.conv(logmel[:, None])  # (B, C, mels/4, frames/4) -> 25 Hz
        h = h.flatten(1, 2).transpose(1, 2)
        return self.proj(h)


class HubertBackbone(nn.Module):
    """HuBERT hidden states of one layer, pooled from 50 Hz to 25 Hz."""

    def __init__(self, path: str, layer: int):
        super().__init__()
        from transformers import HubertModel  # lazy: optional dependency

        try:
            self.model = HubertModel.from_pretrained(path)
        except Exception as exc:
            raise TalkqaError(f"voice expert: cannot load HuBERT from {path!r} ({type(exc).__name__}); give a local "
                              "folder with config.json and weights (hubert_path), or set backbone: logmel_cnn") from None
        self.layer = layer
        self.model.eval()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        wav = (wav - wav.mean(1, keepdim=True)) / (wav.std(1, keepdim=True) + 1e-6)
        out = self.model(wav, output_hidden_states=True)
        h = out.hidden_states[min(self.layer, len(out.hidden_states) - 1)]
        t = h.shape[1] // 2 * 2
        return h[:, :t].reshape(h.shape[0], t // 2, 2, h.shape[2]).mean(2)


class AudioQualityModel(nn.Module):
    def __init__(self, backbone: nn.Module, feat_dim: int, train_backbone: bool):
        super().__init__()
        self.backbone = backbone
        self.train_backbone = train_backbone
        self.head = nn.Sequential(nn.Linear(2 * feat_dim, 64), nn.GELU(), nn.Linear(64, 1))

    def frames(self, wav: torch.Tensor) -> torch.Tensor:
        if self.train_backbone:
            return self.backbone(wav)
        with torch.no_grad():
            return self.backbone(wav)

    def logit(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([h.mean(1), h.std(1)], dim=-1)).squeeze(-1)


class FramesAndLogit(nn.Module):
    """The backbone's 25 Hz features (B, T25, dim) and the quality logit (B,) of a log-mel CNN model from
    frame_signal frames (B, F, 512), or of a HuBERT model from the waveform (B, N)."""

    def __init__(self, model: AudioQualityModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        backbone = self.model.backbone
        h = backbone.from_frames(x) if isinstance(backbone, LogMelCNN) else self.model.frames(x)
        return h, self.model.logit(h)


def graphs(model: AudioQualityModel) -> dict[str, Graph]:
    example = np.zeros((1, 101, N_FFT), np.float32)  # 1 s
    return {"voice": Graph(FramesAndLogit(model), (example,), ["frames"], ["features", "logit"],
                           {"frames": {0: "batch", 1: "frames"}, "features": {0: "batch", 1: "time"},
                            "logit": {0: "batch"}})}
