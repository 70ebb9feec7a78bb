"""The picture expert's network (experts/picture.py): a CNN per crop (face, mouth) at full resolution and a
temporal convolution; its training loss; the exported graphs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from talkqa.onnx_model import Graph

from ..picture import HEADS


class CropBranch(nn.Module):
    """(N, 6, H, W) frame + difference to the frame before -> (N, 5 C) per-frame features: the mean of
    the last feature map over the 2 x 2 quadrants (where: upper vs lower face) and its maximum (a local
    seam or smear anywhere)."""

    def __init__(self, channels: list[int]):
        super().__init__()
        layers, c_in = [], 6
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 4 if i == 0 else 3, 2, 1), nn.GELU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.out_dim = 5 * c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return torch.cat([F.adaptive_avg_pool2d(h, 2).flatten(1), h.amax((2, 3))], 1)


def crop_inputs(cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) crops and the crops of the frame before -> (N, 6, H, W) float: the picture as
    it is (a fixed scale, no per-image normalisation that would hide colour offsets) and the change."""
    cur = cur.permute(0, 3, 1, 2).float() / 255.0
    prev = prev.permute(0, 3, 1, 2).float() / 255.0
    return torch.cat([cur - 0.5, 4.0 * (cur - prev)], 1)


class PictureModel(nn.Module):
    def __init__(self, channels: list[int], hidden: int):
        super().__init__()
        self.face = CropBranch(channels)
        self.mouth = CropBranch(channels)
        self.face_head = nn.Linear(self.face.out_dim, 1)
        self.mouth_head = nn.Linear(self.mouth.out_dim, 1)
        self.proj = nn.Sequential(nn.Linear(self.face.out_dim + self.mouth.out_dim, hidden), nn.GELU())
        self.temporal = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, dilation=d) for d in (1, 2))
        self.head = nn.Linear(hidden, 2)  # quality, artifact

    def encode(self, face_cur, face_prev, mouth_cur, mouth_prev) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 crops of N frames (and of the frame before each) -> face and mouth features (N, D)."""
        return self.face(crop_inputs(face_cur, face_prev)), self.mouth(crop_inputs(mouth_cur, mouth_prev))

    def sequence(self, f: torch.Tensor, m: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, P, D) face and mouth features of P frames -> per-frame hidden features (B, P, hidden) and
        per-frame logits (B, P): quality, artifact, face, mouth."""
        h = self.proj(torch.cat([f, m], -1)).transpose(1, 2)
        for conv in self.temporal:
            d = conv.dilation[0]
            h = h + F.gelu(conv(F.pad(h, (d, d), mode="replicate")))
        h = h.transpose(1, 2)
        q = self.head(h)
        return {"hidden": h, "quality": q[..., 0], "artifact": q[..., 1], "face": self.face_head(f).squeeze(-1),
                "mouth": self.mouth_head(m).squeeze(-1)}

    def forward(self, face_cur, face_prev, mouth_cur, mouth_prev) -> dict[str, torch.Tensor]:
        """uint8 (B, P, H, W, 3) windows -> window logits (B,) per head (means over the P frames)."""
        b, p = face_cur.shape[:2]
        f, m = self.encode(face_cur.flatten(0, 1), face_prev.flatten(0, 1), mouth_cur.flatten(0, 1),
                           mouth_prev.flatten(0, 1))
        out = self.sequence(f.view(b, p, -1), m.view(b, p, -1))
        return {k: out[k].mean(1) for k in HEADS}


class SequenceOutputs(nn.Module):
    """PictureModel.sequence as a tuple (hidden, quality, artifact, face, mouth): what the graph returns."""

    def __init__(self, model: PictureModel):
        super().__init__()
        self.model = model

    def forward(self, f: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.sequence(f, m)
        return tuple(out[k] for k in SEQUENCE_OUTPUTS)


class Encode(nn.Module):
    def __init__(self, model: PictureModel):
        super().__init__()
        self.model = model

    def forward(self, face_cur, face_prev, mouth_cur, mouth_prev) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(face_cur, face_prev, mouth_cur, mouth_prev)


SEQUENCE_OUTPUTS = ("hidden", *HEADS)


def graphs(model: PictureModel) -> dict[str, Graph]:
    """`encode`: uint8 crops of N frames (and of the frame before each) -> face and mouth features;
    `sequence`: the features of a clip's P frames -> per-frame hidden features and logits."""
    face, mouth = np.zeros((3, 96, 96, 3), np.uint8), np.zeros((3, 48, 96, 3), np.uint8)
    f = np.zeros((1, 5, model.face.out_dim), np.float32)
    m = np.zeros((1, 5, model.mouth.out_dim), np.float32)
    crops = ["face_cur", "face_prev", "mouth_cur", "mouth_prev"]
    return {
        "encode": Graph(Encode(model), (face, face, mouth, mouth), crops, ["face", "mouth"],
                        {**{c: {0: "frames"} for c in crops}, "face": {0: "frames"}, "mouth": {0: "frames"}}),
        "sequence": Graph(SequenceOutputs(model), (f, m), ["face", "mouth"], list(SEQUENCE_OUTPUTS),
                          {"face": {0: "batch", 1: "frames"}, "mouth": {0: "batch", 1: "frames"},
                           **{k: {0: "batch", 1: "frames"} for k in SEQUENCE_OUTPUTS}}),
    }


def balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE with both classes weighted equally, whatever their shares in the batch."""
    pos = target.mean().clamp(1e-3, 1 - 1e-3)
    weight = torch.where(target > 0.5, 0.5 / pos, 0.5 / (1 - pos))
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def picture_loss(model: PictureModel, batch: tuple, severities: int, rank_margin: float, rank_weight: float,
                 branch_weight: float) -> torch.Tensor:
    """Balanced BCE of the quality and artifact heads (and, weighted, of the two crop branches) plus a margin
    ranking loss over each group of rows: the clean window first, then its copies in increasing severity."""
    *crops, y_quality, y_artifact, y_face, y_mouth, generation = batch
    out = model(*crops)
    bce = sum(balanced_bce(out[h], y) for h, y in (("quality", y_quality), ("artifact", y_artifact)))
    branch = balanced_bce(out["face"], y_face) + balanced_bce(out["mouth"], y_mouth)
    k1 = severities + 1
    i, j = torch.triu_indices(k1, k1, 1)

    def rank(logits, weight):
        pairs = F.relu(rank_margin - (logits.view(-1, k1)[:, i] - logits.view(-1, k1)[:, j]))
        return (pairs * weight[:, None]).sum() / (weight.sum() * len(i)).clamp(min=1)

    ranked = rank(out["quality"], torch.ones_like(generation[::k1])) + rank(out["artifact"], generation[::k1])
    return bce + branch_weight * branch + rank_weight * ranked
