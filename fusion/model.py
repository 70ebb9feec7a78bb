"""Fusion networks. Both read a Batch and return {'pred': (B, n_tasks), 'diag': (B, W, n_dims) | None,
'audio': (B, d) | None, 'visual': (B, d) | None, 'av_valid': (B,) bool | None}.

cross_attention: per-expert linear projection to width d (+ expert and time embeddings); optional
self-attention per modality; cross-attention blocks where audio tokens query visual + audiovisual
tokens (or the reverse, or both); the hand-crafted vector as one extra token; attention pooling
with a learned query; one MLP head per task; a per-window diagnostic head.
concat_mlp: the baseline without attention (masked mean/std of every expert's tokens + hand-crafted).
"""

from __future__ import annotations

import math

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


class CrossBlock(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ff = _mlp(d, 2 * d, d, dropout)

    def forward(self, q, kv, kv_mask):
        kvn = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kvn, kvn, key_padding_mask=~kv_mask, need_weights=False)[0]
        return q + self.ff(self.norm_ff(q))


class AttentionPool(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, mask):
        q = self.query.expand(len(x), -1, -1)
        return self.norm(self.attn(q, x, x, key_padding_mask=~mask, need_weights=False)[0][:, 0])


class HandcraftedToken(nn.Module):
    def __init__(self, n_inputs: int, d: int):
        super().__init__()
        self.proj = nn.Linear(n_inputs, d) if n_inputs else None
        self.const = nn.Parameter(torch.zeros(d))

    def forward(self, hc: torch.Tensor) -> torch.Tensor:
        out = self.const.expand(len(hc), -1)
        return out + self.proj(hc) if self.proj is not None else out


@MODELS.register
class CrossAttentionFusion(nn.Module):
    name = "cross_attention"
    has_window_head = True

    def __init__(self, config: ModelConfig, experts: dict[str, dict], n_handcrafted: int, tasks: list[str],
                 window_dims: list[str] = DIMENSION_NAMES):
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
        make_enc = lambda: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, config.heads, 2 * d, config.dropout, batch_first=True, norm_first=True),
            config.encoder_layers, enable_nested_tensor=False)
        self.encoders = nn.ModuleDict({s: make_enc() for s in ("audio", "visual")}) if config.encoder_layers else None
        directions = {"audio_to_visual": [("audio", "visual")], "visual_to_audio": [("visual", "audio")],
                      "bidirectional": [("audio", "visual"), ("visual", "audio")]}[config.direction]
        self.directions = directions
        self.blocks = nn.ModuleList([
            nn.ModuleDict({f"{q}_from_{k}": CrossBlock(d, config.heads, config.dropout) for q, k in directions})
            for _ in range(config.layers)])
        self.handcrafted = HandcraftedToken(n_handcrafted, d)
        self.type_emb = nn.Parameter(torch.randn(3, d) * 0.02)  # audio side, visual side, hand-crafted
        self.pool = AttentionPool(d, config.heads)
        self.heads = TaskHeads(tasks, d, config.dropout)
        self.window_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, len(window_dims)))
        self.align = nn.ModuleDict({s: nn.Linear(d, d) for s in ("audio", "visual")})

    def _side(self, batch: Batch, side: str):
        B = len(batch.handcrafted)
        dev = batch.handcrafted.device
        xs = [self.side_token[side].expand(B, 1, -1)]
        masks = [torch.ones(B, 1, dtype=torch.bool, device=dev)]
        times = [torch.full((B, 1), -1.0, device=dev)]
        for name in self.experts:
            if self.side_of[name] != side:
                continue
            t = batch.token_time[name]
            xs.append(self.proj[name](batch.tokens[name]) + self.expert_emb[name] + time_encoding(t, self.d))
            masks.append(batch.token_mask[name])
            times.append(torch.where(batch.token_mask[name], t, torch.full_like(t, -1.0)))
        x, mask, tm = torch.cat(xs, 1), torch.cat(masks, 1), torch.cat(times, 1)
        x = x + self.type_emb[0 if side == "audio" else 1]
        if self.encoders is not None:
            x = self.encoders[side](x, src_key_padding_mask=~mask)
        return x, mask, tm

    def forward(self, batch: Batch) -> dict:
        sides = {s: self._side(batch, s) for s in ("audio", "visual")}
        real = {s: sides[s][1].clone() for s in sides}
        for s in real:
            real[s][:, 0] = False  # the side token is not a real token
        align = {s: self.align[s](masked_mean(sides[s][0], real[s])) for s in sides}
        av_valid = real["audio"].any(1) & real["visual"].any(1)
        x = {s: sides[s][0] for s in sides}
        for block in self.blocks:
            x = {**x, **{q: block[f"{q}_from_{k}"](x[q], x[k], sides[k][1]) for q, k in self.directions}}
        hc = (self.handcrafted(batch.handcrafted) + self.type_emb[2]).unsqueeze(1)
        all_x = torch.cat([x["audio"], x["visual"], hc], 1)
        all_mask = torch.cat([sides["audio"][1], sides["visual"][1], torch.ones_like(hc[:, :, 0], dtype=torch.bool)], 1)
        pooled = self.pool(all_x, all_mask)
        # per-window diagnostics: mean of the real fused tokens whose centre lies in the window
        tok = torch.cat([x["audio"], x["visual"]], 1)
        tmask = torch.cat([real["audio"], real["visual"]], 1)
        tt = torch.cat([sides["audio"][2], sides["visual"][2]], 1)
        w = batch.windows
        inside = (tt[:, None, :] >= w[:, :, :1]) & (tt[:, None, :] < w[:, :, 1:]) & tmask[:, None, :]
        weights = inside.float() / inside.float().sum(-1, keepdim=True).clamp(min=1.0)
        diag = self.window_head(weights @ tok + pooled[:, None, :])
        return {"pred": self.heads(pooled), "diag": diag, "audio": align["audio"], "visual": align["visual"],
                "av_valid": av_valid}


@MODELS.register
class ConcatMLP(nn.Module):
    """Baseline: masked mean and std of each expert's raw tokens + the hand-crafted vector -> MLP."""

    name = "concat_mlp"
    has_window_head = False

    def __init__(self, config: ModelConfig, experts: dict[str, dict], n_handcrafted: int, tasks: list[str],
                 window_dims: list[str] = DIMENSION_NAMES):
        super().__init__()
        self.experts = dict(experts)
        n_in = sum(2 * v["dim"] for v in self.experts.values()) + n_handcrafted
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
        parts.append(batch.handcrafted)
        z = torch.cat(parts, 1)
        if z.shape[1] == 0:
            z = torch.zeros(len(z), 1, device=z.device)
        return {"pred": self.heads(self.trunk(z)), "diag": None, "audio": None, "visual": None, "av_valid": None}


def build_model(config: ModelConfig, experts: dict[str, dict], n_handcrafted: int, tasks: list[str],
                window_dims: list[str] = DIMENSION_NAMES) -> nn.Module:
    """`window_dims`: the dimensions the per-window diagnostic head predicts (all of them for a new model;
    a saved model records its own, see FusionRegressor.load)."""
    return MODELS.get(config.architecture)(config, experts, n_handcrafted, tasks, list(window_dims))
