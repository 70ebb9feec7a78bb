"""The fusion network as one ONNX graph (fusion/train.py saves it beside weights.pt; scoring runs it with
ONNX Runtime, without torch).

The graph reads a Batch as flat arrays — per expert `tokens.<name>` (B, T, dim), `mask.<name>` (B, T) bool,
`time.<name>` (B, T); then `handcrafted` (B, 2F), `scalars` (B, S, 2), `windows` (B, W, 2) — with B, every T and
W free, and returns `pred` (B, n_tasks) and, for models with a window head, `diag` (B, W, n_window_dims).
Inputs a model does not read (e.g. the window grid of concat_mlp) are left out of its graph."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from talkqa.onnx_model import Graph

from .batch import Batch, input_names


class FlatFusion(nn.Module):
    """A fusion network called with flat tensors in `input_names` order instead of a Batch."""

    def __init__(self, model: nn.Module, experts: list[str]):
        super().__init__()
        self.model, self.experts = model, list(experts)

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = len(self.experts)
        per = lambda k: dict(zip(self.experts, flat[k * n : (k + 1) * n]))
        hc, scalars, windows = flat[3 * n :]
        out = self.model(Batch(per(0), per(1), per(2), hc, scalars, windows, None, None, None, None))
        return (out["pred"],) if out["diag"] is None else (out["pred"], out["diag"])


class TraceableAttention(nn.Module):
    """nn.MultiheadAttention's inference arithmetic (same weights) in operations whose shapes a trace keeps
    free: torch's own attention bakes the traced sequence length into a reshape of the ONNX graph."""

    def __init__(self, attn: nn.MultiheadAttention):
        super().__init__()
        assert attn.batch_first and attn._qkv_same_embed_dim and attn.in_proj_bias is not None
        self.attn, self.heads, self.batch_first = attn, attn.num_heads, True

    def forward(self, query, key, value, key_padding_mask=None, need_weights=False, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        w, b = self.attn.in_proj_weight.chunk(3), self.attn.in_proj_bias.chunk(3)
        split = lambda x, i: nn.functional.linear(x, w[i], b[i]).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        q, k, v = split(query, 0), split(key, 1), split(value, 2)  # (B, H, T, d_head)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.attn.head_dim)
        if key_padding_mask is not None:
            m = key_padding_mask[:, None, None, :]
            scores = scores.masked_fill(m, float("-inf")) if m.dtype == torch.bool else scores + m
        out = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
        return self.attn.out_proj(out), None


def fusion_graph(model: nn.Module, experts: dict[str, dict], n_handcrafted: int, n_scalars: int) -> Graph:
    """The network to export (a copy whose attention layers trace with free lengths) on an example batch
    of 2 clips with different token counts per expert."""
    traced = copy.deepcopy(model).eval()
    for name, module in list(traced.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(module, child_name, TraceableAttention(child))
    names = list(experts)
    rng = np.random.default_rng(0)
    tokens = [rng.normal(size=(2, 3 + i, int(experts[e]["dim"]))).astype(np.float32) for i, e in enumerate(names)]
    masks = [np.ones((2, 3 + i), bool) for i in range(len(names))]
    times = [np.tile(np.arange(3 + i, dtype=np.float32) * 0.2 + 0.1, (2, 1)) for i in range(len(names))]
    example = (*tokens, *masks, *times, np.zeros((2, n_handcrafted), np.float32),
               np.zeros((2, n_scalars, 2), np.float32), np.array([[[0, 1], [1, 2]]] * 2, np.float32))
    outputs = ["pred", "diag"] if getattr(model, "has_window_head", False) else ["pred"]
    dynamic = {f"{k}.{e}": {0: "batch", 1: f"tokens_{e}"} for e in names for k in ("tokens", "mask", "time")}
    dynamic.update({"handcrafted": {0: "batch"}, "scalars": {0: "batch"}, "windows": {0: "batch", 1: "windows"},
                    "pred": {0: "batch"}, "diag": {0: "batch", 1: "windows"}})
    return Graph(FlatFusion(traced, names), example, input_names(names), outputs,
                 {k: v for k, v in dynamic.items() if k in input_names(names) or k in outputs})
