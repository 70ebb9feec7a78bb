"""Fusion networks. Both read a Batch and return {'pred': (B, n_tasks), 'diag': (B, W, n_dims) | None,
'audio': (B, d) | None, 'visual': (B, d) | None, 'av_valid': (B,) bool | None}.

cross_attention: per-expert linear projection to width d (+ expert and time embeddings); optional
self-attention per modality; cross-attention blocks where audio tokens query visual + audiovisual
tokens (or the reverse, or both); the hand-crafted vector as one extra token and every expert scalar
(sync offset, confidence, distance per lag, quality logits) and every expert's token statistics (mean and std
over time) as a token of its own, with self-attention
among them; attention pooling with a learned query; one MLP head per task; a per-window diagnostic head.
`encode` exposes the shared bottom (fusion/pretrain.py pre-trains it).
concat_mlp: the baseline without attention (masked mean/std of every expert's tokens + hand-crafted + scalars).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from talkqa.registry import Registry
from talkqa.tasks import DIMENSION_NAMES

from .batch import Batch
from .config import ModelConfig

MODELS: Registry[nn.Module] = Registry("fusion model")
QUERY_SIDE = {"audio": "audio", "visual": "visual", "audiovisual": "visual"}


def _mlp(d_in: int, d: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d_out))


class TaskHeads(nn.Module):
    def __init__(self, tasks: list[str], d: int, dropout: float):
        super().__init__()
        self.tasks = list(tasks)
        self.heads = nn.ModuleDict({t: _mlp(d, d, 1, dropout) for t in self.tasks})

    def forward(self, z):
        return torch.cat([self.heads[t](z) for t in self.tasks], 1)


def time_encoding(t: torch.Tensor, d: int) -> torch.Tensor:
    """Sinusoidal encoding of token time in seconds (periods 0.2 s .. ~60 s)."""
    k = torch.arange(d // 2, device=t.device, dtype=torch.float32)
    freq = (1 / 0.2) * (0.2 / 60.0) ** (k / max(1, d // 2 - 1))
    ang = 2 * math.pi * t[..., None] * freq
    return torch.cat([torch.sin(ang), torch.cos(ang)], -1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def padding_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """`key_padding_mask` for attention over tokens where `mask` is True: None when nothing is padded
    (one clip being scored), which gives the same attention and spares torch's mask checks, whose first
    call imports torch.fx and sympy (~0.4 s of a cold `talkqa score`). A traced graph (the ONNX export)
    always takes the mask: the example batch must not decide whether later batches are padded."""
    if torch.jit.is_tracing():
        return ~mask
    return None if bool(mask.all()) else ~mask


class CrossBlock(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ff = _mlp(d, 2 * d, d, dropout)

    def forward(self, q, kv, kv_mask):
        kvn = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kvn, kvn, key_padding_mask=padding_mask(kv_mask), need_weights=False)[0]
        return q + self.ff(self.norm_ff(q))


class AttentionPool(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, mask):
        q = self.query.expand(x.shape[0], -1, -1)
        return self.norm(self.attn(q, x, x, key_padding_mask=padding_mask(mask), need_weights=False)[0][:, 0])


class HandcraftedToken(nn.Module):
    def __init__(self, n_inputs: int, d: int):
        super().__init__()
        self.proj = nn.Linear(n_inputs, d) if n_inputs else None
        self.const = nn.Parameter(torch.zeros(d))

    def forward(self, hc: torch.Tensor) -> torch.Tensor:
        out = self.const.expand(hc.shape[0], -1)
        return out + self.proj(hc) if self.proj is not None else out


class ScalarTokens(nn.Module):
    """One token per expert scalar (FT-Transformer's numeric tokenizer): value * w_j + b_j, plus a learned
    vector when the value is missing. The sync expert's distance curve thus arrives as one token per lag."""

    def __init__(self, n_scalars: int, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_scalars, d) * 0.1)
        self.bias = nn.Parameter(torch.randn(n_scalars, d) * 0.02)
        self.missing = nn.Parameter(torch.zeros(n_scalars, d))

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:
        value, missing = scalars[..., 0:1], scalars[..., 1:2]
        return value * self.weight + self.bias + missing * self.missing


@dataclass
class Encoded:
    """The shared bottom's output for a batch (what pre-training and the heads both read)."""

    x: dict[str, torch.Tensor]  # side -> (B, T_side, d) tokens after the cross-attention blocks
    mask: dict[str, torch.Tensor]  # side -> (B, T_side) bool, True = a token (the side token included)
    real: dict[str, torch.Tensor]  # side -> (B, T_side) bool, True = an expert token
    time: dict[str, torch.Tensor]  # side -> (B, T_side) token centre (s), -1 for the side token
    spans: dict[str, tuple[str, int, int]]  # expert -> (side, start, stop) of its tokens in the side sequence
    pooled: torch.Tensor  # (B, d)
    align: dict[str, torch.Tensor]  # side -> (B, d) pooled projection for the audio/visual InfoNCE
    av_valid: torch.Tensor  # (B,) bool: the clip has tokens on both sides


@MODELS.register
class CrossAttentionFusion(nn.Module):
    name = "cross_attention"
    has_window_head = True

    def __init__(self, config: ModelConfig, experts: dict[str, dict], n_handcrafted: int, tasks: list[str],
                 window_dims: list[str] = DIMENSION_NAMES, n_scalars: int = 0):
        super().__init__()
        d, self.d = config.width, config.width
        self.config = config
        self.experts = dict(experts)
        self.side_of = {k: QUERY_SIDE[v["modality"]] for k, v in self.experts.items()}
        self.proj = nn.ModuleDict({k: nn.Linear(v["dim"], d) for k, v in self.experts.items()})
        self.expert_emb = nn.ParameterDict({k: nn.Parameter(torch.randn(d) * 0.02) for k in self.experts})
        # One learned token per side, always present: it keeps attention defined for clips with no
        # tokens on a side (no audio, or an ablation that dropped every expert of a modality).
        self.side_token = nn.ParameterDict({s: nn.Parameter(torch.randn(d) * 0.02) for s in ("audio", "visual")})
        make_enc = lambda n: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, config.heads, 2 * d, config.dropout, batch_first=True, norm_first=True),
            n, enable_nested_tensor=False)
        self.encoders = nn.ModuleDict({s: make_enc(config.encoder_layers) for s in ("audio", "visual")}) \
            if config.encoder_layers else None
        directions = {"audio_to_visual": [("audio", "visual")], "visual_to_audio": [("visual", "audio")],
                      "bidirectional": [("audio", "visual"), ("visual", "audio")]}[config.direction]
        self.directions = directions
        self.blocks = nn.ModuleList([
            nn.ModuleDict({f"{q}_from_{k}": CrossBlock(d, config.heads, config.dropout) for q, k in directions})
            for _ in range(config.layers)])
        self.handcrafted = HandcraftedToken(n_handcrafted, d)
        self.type_emb = nn.Parameter(torch.randn(3, d) * 0.02)  # audio side, visual side, hand-crafted
        # Scalar and statistics tokens, and their encoder, exist only for models trained with them, so
        # models saved before them load unchanged.
        self.n_scalars = n_scalars
        self.scalars = ScalarTokens(n_scalars, d) if n_scalars else None
        self.stats = nn.ModuleDict({k: nn.Linear(2 * v["dim"], d) for k, v in self.experts.items()}) \
            if config.stats_tokens else None
        n_clip_tokens = 1 + n_scalars + (len(self.experts) if config.stats_tokens else 0)
        self.tabular = make_enc(config.tabular_layers) if n_clip_tokens > 1 and config.tabular_layers else None
        self.pool = AttentionPool(d, config.heads)
        self.heads = TaskHeads(tasks, d, config.dropout)
        self.window_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, len(window_dims)))
        self.align = nn.ModuleDict({s: nn.Linear(d, d) for s in ("audio", "visual")})

    def _side(self, batch: Batch, side: str, replace: dict[str, tuple[torch.Tensor, torch.Tensor]] | None):
        B = batch.handcrafted.shape[0]
        dev = batch.handcrafted.device
        xs = [self.side_token[side].expand(B, 1, -1)]
        masks = [torch.ones(B, 1, dtype=torch.bool, device=dev)]
        times = [torch.full((B, 1), -1.0, device=dev)]
        spans, at = {}, 1
        for name in self.experts:
            if self.side_of[name] != side:
                continue
            t = batch.token_time[name]
            content = self.proj[name](batch.tokens[name])
            if replace and name in replace:  # masked-token pre-training: hide these tokens' content
                where, vector = replace[name]
                content = torch.where(where.unsqueeze(-1), vector.to(content.dtype), content)
            xs.append(content + self.expert_emb[name] + time_encoding(t, self.d))
            masks.append(batch.token_mask[name])
            times.append(torch.where(batch.token_mask[name], t, torch.full_like(t, -1.0)))
            spans[name] = (side, at, at + t.shape[1])
            at += t.shape[1]
        x, mask, tm = torch.cat(xs, 1), torch.cat(masks, 1), torch.cat(times, 1)
        x = x + self.type_emb[0 if side == "audio" else 1]
        if self.encoders is not None:
            x = self.encoders[side](x, src_key_padding_mask=~mask)
        return x, mask, tm, spans

    def _tabular(self, batch: Batch) -> torch.Tensor:
        """(B, n, d) clip-level tokens: the hand-crafted one, one per expert scalar, one per expert's token
        statistics (masked mean and std over time of its raw tokens)."""
        parts = [(self.handcrafted(batch.handcrafted) + self.type_emb[2]).unsqueeze(1)]
        if self.scalars is not None:
            parts.append(self.scalars(batch.scalars) + self.type_emb[2])
        if self.stats is not None:
            stats = []
            for name in self.experts:
                x, m = batch.tokens[name], batch.token_mask[name]
                mean = masked_mean(x, m)
                std = masked_mean((x - mean[:, None]) ** 2, m).clamp(min=0).sqrt()
                stats.append(self.stats[name](torch.cat([mean, std], -1)) + self.expert_emb[name])
            parts.append(torch.stack(stats, 1) + self.type_emb[2])
        x = torch.cat(parts, 1)
        return self.tabular(x) if self.tabular is not None else x

    def encode(self, batch: Batch, replace: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> Encoded:
        """`replace`: expert -> ((B, T) bool, (d,) vector): those tokens' content is replaced by the vector
        before anything else sees it (masked-token pre-training)."""
        sides = {s: self._side(batch, s, replace) for s in ("audio", "visual")}
        real = {s: sides[s][1].clone() for s in sides}
        for s in real:
            real[s][:, 0] = False  # the side token is not a real token
        align = {s: self.align[s](masked_mean(sides[s][0], real[s])) for s in sides}
        av_valid = real["audio"].any(1) & real["visual"].any(1)
        x = {s: sides[s][0] for s in sides}
        for block in self.blocks:
            x = {**x, **{q: block[f"{q}_from_{k}"](x[q], x[k], sides[k][1]) for q, k in self.directions}}
        tab = self._tabular(batch)
        all_x = torch.cat([x["audio"], x["visual"], tab], 1)
        all_mask = torch.cat([sides["audio"][1], sides["visual"][1],
                              torch.ones(tab.shape[:2], dtype=torch.bool, device=tab.device)], 1)
        spans = {k: v for s in sides for k, v in sides[s][3].items()}
        return Encoded(x, {s: sides[s][1] for s in sides}, real, {s: sides[s][2] for s in sides}, spans,
                       self.pool(all_x, all_mask), align, av_valid)

    def forward(self, batch: Batch) -> dict:
        enc = self.encode(batch)
        # per-window diagnostics: mean of the real fused tokens whose centre lies in the window
        tok = torch.cat([enc.x["audio"], enc.x["visual"]], 1)
        tmask = torch.cat([enc.real["audio"], enc.real["visual"]], 1)
        tt = torch.cat([enc.time["audio"], enc.time["visual"]], 1)
        w = batch.windows
        inside = (tt[:, None, :] >= w[:, :, :1]) & (tt[:, None, :] < w[:, :, 1:]) & tmask[:, None, :]
        weights = inside.float() / inside.float().sum(-1, keepdim=True).clamp(min=1.0)
        diag = self.window_head(weights @ tok + enc.pooled[:, None, :])
        return {"pred": self.heads(enc.pooled), "diag": diag, "audio": enc.align["audio"],
                "visual": enc.align["visual"], "av_valid": enc.av_valid}


@MODELS.register
class ConcatMLP(nn.Module):
    """Baseline: masked mean and std of each expert's raw tokens + the hand-crafted vector -> MLP."""

    name = "concat_mlp"
    has_window_head = False

    def __init__(self, config: ModelConfig, experts: dict[str, dict], n_handcrafted: int, tasks: list[str],
                 window_dims: list[str] = DIMENSION_NAMES, n_scalars: int = 0):
        super().__init__()
        self.experts = dict(experts)
        n_in = sum(2 * v["dim"] for v in self.experts.values()) + n_handcrafted + 2 * n_scalars
        d = config.width
        self.trunk = nn.Sequential(nn.Linear(max(n_in, 1), d), nn.GELU(), nn.Dropout(config.dropout),
                                   nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.heads = TaskHeads(tasks, d, config.dropout)

    def forward(self, batch: Batch) -> dict:
        parts = []
        for name in self.experts:
            x, m = batch.tokens[name], batch.token_mask[name]
            mean = masked_mean(x, m)
            var = masked_mean((x - mean[:, None]) ** 2, m)
            parts += [mean, var.clamp(min=0).sqrt()]
        parts += [batch.handcrafted, batch.scalars.flatten(1)]
        z = torch.cat(parts, 1)
        if z.shape[1] == 0:
            z = torch.zeros(len(z), 1, device=z.device)
        return {"pred": self.heads(self.trunk(z)), "diag": None, "audio": None, "visual": None, "av_valid": None}


def build_model(config: ModelConfig, experts: dict[str, dict], n_handcrafted: int, tasks: list[str],
                window_dims: list[str] = DIMENSION_NAMES, n_scalars: int = 0) -> nn.Module:
    """`window_dims`: the dimensions the per-window diagnostic head predicts (all of them for a new model;
    a saved model records its own, see FusionRegressor.load). `n_scalars`: expert-scalar inputs."""
    return MODELS.get(config.architecture)(config, experts, n_handcrafted, tasks, list(window_dims), n_scalars)
