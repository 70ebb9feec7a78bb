"""Self-supervised pre-training of the fusion's shared bottom: learn audio-visual alignment before scores.

Two tasks on the expert token sequences, labelled clips or not (PretrainConfig):

* **in-sync vs shifted/swapped** (contrastive): for each clip, several candidate pairings of its
  audio-side tokens with its visual-side tokens are encoded: the real one, ones where the audio side is
  shifted in time against the visual side (the store has every token's time), and ones with another
  clip's audio. A linear scorer on the pooled representation must rank the real pairing first
  (InfoNCE over the candidates). Every candidate is cut to the same length and re-timed to start at 0,
  so neither the length nor the start time gives the answer away; audiovisual experts (the sync
  expert, computed on the real pairing) are left out of the candidates for the same reason.
* **masked-token prediction**: a share of each expert's tokens has its content replaced by a learned
  vector; a per-expert linear decoder must recover the (standardised) expert embedding from the
  encoded token, so each token learns from its neighbours and from the other modality.

Only the shared bottom is kept; the scorer, mask vectors and decoders are dropped after pre-training.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkqa.store_data import ExpertTokens, StoreData

from .batch import Featurizer
from .config import PretrainConfig


class PretrainHeads(nn.Module):
    def __init__(self, d: int, dims: dict[str, int]):
        super().__init__()
        self.scorer = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
        self.mask_vector = nn.ParameterDict({k: nn.Parameter(torch.randn(d) * 0.02) for k in dims})
        self.decoder = nn.ModuleDict({k: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, v)) for k, v in dims.items()})


@dataclasses.dataclass
class _Clip:
    tokens: dict[str, tuple[np.ndarray, np.ndarray]]  # expert -> (emb, t_mid), both sides
    duration: float  # the span every side covers (the shortest side's last token time)


def _clip(data: StoreData, cid: str, experts: list[str]) -> _Clip | None:
    tokens = {e: (data.experts[e].emb[cid], data.experts[e].t_mid[cid]) for e in experts
              if cid in data.experts[e].emb and len(data.experts[e].emb[cid])}
    if not tokens:
        return None
    return _Clip(tokens, float(min(t.max() for _, t in tokens.values())))


def _cut(emb: np.ndarray, t: np.ndarray, start: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    keep = (t >= start) & (t < start + length)
    return emb[keep], (t[keep] - start).astype(np.float32)


class CandidateSampler:
    """Builds the candidate pairings of a batch of clips as a small StoreData the Featurizer can pad."""

    def __init__(self, data: StoreData, audio: list[str], visual: list[str], cfg: PretrainConfig):
        self.data, self.audio, self.visual, self.cfg = data, audio, visual, cfg
        self.n_candidates = 1 + cfg.shifted_negatives + cfg.swapped_negatives

    def sample(self, clip_ids: list[str], rng: np.random.Generator) -> tuple[StoreData, list[str], np.ndarray]:
        """(candidate data, candidate ids: clip-major, n_candidates each, positive first; (B, K) bool valid)."""
        cfg = self.cfg
        clips = {c: _clip(self.data, c, self.audio + self.visual) for c in clip_ids}
        emb = {e: {} for e in self.audio + self.visual}
        tmid = {e: {} for e in self.audio + self.visual}
        ids, valid, source = [], np.zeros((len(clip_ids), self.n_candidates), bool), {}
        for i, cid in enumerate(clip_ids):
            clip = clips[cid]
            sides_ok = clip is not None and any(e in clip.tokens for e in self.audio) \
                and any(e in clip.tokens for e in self.visual)
            max_shift = min(cfg.shift_s[1], clip.duration / 2) if sides_ok else 0.0
            shifts = []
            if sides_ok and max_shift >= cfg.shift_s[0]:
                shifts = [float(rng.uniform(cfg.shift_s[0], max_shift)) * rng.choice([-1, 1])
                          for _ in range(cfg.shifted_negatives)]
            length = clip.duration - max([abs(s) for s in shifts], default=0.0) if sides_ok else 0.0
            donors = [c for c in clip_ids if c != cid and clips[c] is not None and clips[c].duration >= length
                      and any(e in clips[c].tokens for e in self.audio)]
            plan = [("self", 0.0)] + [("self", s) for s in shifts] \
                + [("swap", d) for d in (rng.choice(donors, min(len(donors), cfg.swapped_negatives), replace=False)
                                         if donors and sides_ok else [])]
            for k in range(self.n_candidates):
                cand = f"{cid}#{k}"
                ids.append(cand)
                source[cand] = cid
                if k >= len(plan) or not sides_ok or length <= 0:
                    continue
                kind, arg = plan[k]
                if kind == "self":
                    lo, hi = max(0.0, -arg), clip.duration - length - max(0.0, arg)
                    v0 = float(rng.uniform(lo, max(lo, hi)))
                    a0, audio_clip = v0 + arg, clip
                else:
                    v0 = float(rng.uniform(0.0, max(0.0, clip.duration - length)))
                    audio_clip = clips[arg]
                    a0 = float(rng.uniform(0.0, max(0.0, audio_clip.duration - length)))
                for e in self.visual:
                    if e in clip.tokens:
                        emb[e][cand], tmid[e][cand] = _cut(*clip.tokens[e], v0, length)
                for e in self.audio:
                    if e in audio_clip.tokens:
                        emb[e][cand], tmid[e][cand] = _cut(*audio_clip.tokens[e], a0, length)
                valid[i, k] = True
        src = [source[c] for c in ids]
        hc = self.data.handcrafted.reindex(src).set_axis(ids)
        sc = self.data.scalars.reindex(src).set_axis(ids)
        # the other experts (audiovisual ones) stay empty in every candidate
        experts = {e: ExpertTokens(v.info, emb.get(e, {}), tmid.get(e, {})) for e, v in self.data.experts.items()}
        return StoreData(self.data.root, ids, hc, experts, sc, {}), ids, valid


def _token_stats(data: StoreData, experts: list[str], clip_ids: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for e in experts:
        seqs = [data.experts[e].emb[c] for c in clip_ids if c in data.experts[e].emb and len(data.experts[e].emb[c])]
        x = np.concatenate(seqs) if seqs else np.zeros((1, data.experts[e].info.dim), np.float32)
        out[e] = (x.mean(0), np.where(x.std(0) > 1e-6, x.std(0), 1.0))
    return out


def pretrain(model: nn.Module, featurizer: Featurizer, data: StoreData, clip_ids: list[str], cfg: PretrainConfig,
             device, log=None, eval_ids: list[str] | None = None) -> list[dict]:
    """Pre-train `model`'s shared bottom in place on `clip_ids`; returns the per-epoch history (losses and
    the share of clips whose real pairing scored highest, on `eval_ids` too when given)."""
    if not hasattr(model, "encode"):
        if log:
            log({"pretrain": f"skipped: {type(model).__name__} has no token bottom to pre-train"})
        return []
    device = torch.device(device)
    experts = [e for e in featurizer.experts if e in data.experts]
    side = {e: data.experts[e].info.modality for e in experts}
    audio = [e for e in experts if side[e] == "audio"]
    visual = [e for e in experts if side[e] == "visual"]
    sampler = CandidateSampler(data, audio, visual, cfg)
    align_on = cfg.align_weight > 0 and bool(audio) and bool(visual) and sampler.n_candidates > 1
    mask_on = cfg.mask_weight > 0 and cfg.mask_ratio > 0 and bool(experts)
    if not (align_on or mask_on):
        if log:
            log({"pretrain": "skipped: no audio/visual expert pair to align and no tokens to mask"})
        return []
    stats = {e: tuple(torch.tensor(v, dtype=torch.float32, device=device) for v in s)
             for e, s in _token_stats(data, experts, clip_ids).items()}
    heads = PretrainHeads(model.d, {e: data.experts[e].info.dim for e in experts}).to(device)
    params = list(model.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    history = []
    ids = [c for c in clip_ids if c in set(data.clip_ids)]
    for epoch in range(cfg.epochs):
        model.train()
        heads.train()
        order = rng.permutation(len(ids))
        sums = {"align": 0.0, "mask": 0.0, "align_acc": 0.0}
        n_batches, n_acc = 0, 0
        for start in range(0, len(order), cfg.batch_size):
            chunk = [ids[i] for i in order[start:start + cfg.batch_size]]
            if len(chunk) < 2:
                continue
            loss = torch.zeros((), device=device)
            if align_on:
                align_loss, acc, n = _align_step(model, heads, featurizer, sampler, chunk, rng, cfg, device)
                loss = loss + cfg.align_weight * align_loss
                sums["align"] += float(align_loss.detach())
                sums["align_acc"] += acc * n
                n_acc += n
            if mask_on:
                mask_loss = _mask_step(model, heads, featurizer, data, chunk, stats, rng, cfg, device)
                loss = loss + cfg.mask_weight * mask_loss
                sums["mask"] += float(mask_loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            n_batches += 1
        row = {"epoch": epoch, "align_loss": round(sums["align"] / max(n_batches, 1), 5),
               "mask_loss": round(sums["mask"] / max(n_batches, 1), 5),
               "align_accuracy": round(sums["align_acc"] / max(n_acc, 1), 4) if align_on else None,
               "chance": round(1 / sampler.n_candidates, 4) if align_on else None}
        history.append(row)
        if log:
            log({"pretrain": row})
    if eval_ids and align_on:
        acc = _alignment_accuracy(model, heads, featurizer, sampler, [c for c in eval_ids if c in set(data.clip_ids)],
                                  cfg, device)
        history.append({"eval_align_accuracy": round(acc, 4), "eval_clips": len(eval_ids),
                        "chance": round(1 / sampler.n_candidates, 4)})
    model.eval()
    return history


def _align_step(model, heads, featurizer, sampler, chunk, rng, cfg, device):
    cand, cand_ids, valid = sampler.sample(chunk, rng)
    batch = featurizer.batch(cand, cand_ids).to(device)
    scores = heads.scorer(model.encode(batch).pooled).view(len(chunk), sampler.n_candidates)
    ok = torch.from_numpy(valid).to(device)
    scores = scores.masked_fill(~ok, float("-inf")) / cfg.temperature
    rows = ok[:, 0] & (ok[:, 1:].sum(1) > 0)  # a real pairing and at least one negative
    if not rows.any():
        return scores.new_zeros(()), 0.0, 0
    loss = F.cross_entropy(scores[rows], torch.zeros(int(rows.sum()), dtype=torch.long, device=device))
    acc = float((scores[rows].argmax(1) == 0).float().mean())
    return loss, acc, int(rows.sum())


def _mask_step(model, heads, featurizer, data, chunk, stats, rng, cfg, device):
    batch = featurizer.batch(data, chunk).to(device)
    replace = {}
    for e, m in batch.token_mask.items():
        hide = torch.from_numpy(rng.random(tuple(m.shape)) < cfg.mask_ratio).to(device) & m
        if hide.any():
            replace[e] = (hide, heads.mask_vector[e])
    if not replace:
        return torch.zeros((), device=device)
    enc = model.encode(batch, replace)
    losses = []
    for e, (hide, _) in replace.items():
        side, a, b = enc.spans[e]
        pred = heads.decoder[e](enc.x[side][:, a:b][hide])
        mean, std = stats[e]
        target = (batch.tokens[e][hide] - mean) / std
        losses.append(F.mse_loss(pred, target))
    return torch.stack(losses).mean()


@torch.no_grad()
def _alignment_accuracy(model, heads, featurizer, sampler, clip_ids, cfg, device, seed: int = 1) -> float:
    """Share of clips whose real pairing scores highest among its candidates (eval mode, fixed seed)."""
    model.eval()
    heads.eval()
    rng = np.random.default_rng(seed)
    hits, n = 0.0, 0
    for start in range(0, len(clip_ids), cfg.batch_size):
        chunk = clip_ids[start:start + cfg.batch_size]
        if len(chunk) < 2:
            continue
        _, acc, k = _align_step(model, heads, featurizer, sampler, chunk, rng, cfg, device)
        hits, n = hits + acc * k, n + k
    return hits / n if n else float("nan")
