"""`picture` expert: is the picture clean and natural (evidence for the `visual_quality` score)?

A small CNN reads every `frame_stride`-th aligned face crop (96 x 96) and mouth crop (48 x 96), each
with its difference to the frame before, at full resolution (the first convolution is strided, never
preceded by pooling or colour normalisation, so it sees blur, blocks, grain and colour seams), then a
temporal convolution over frames (flicker, ghosting and unstable texture live in time). Trained on
real footage against graded picture degradations applied to the crops on the fly
(experts/picture_degradations.py): clean-vs-degraded BCE plus a margin ranking loss that orders copies
of one window at increasing severity. Half the clean windows first get a `source` degradation (blur, a
low-resolution frame, JPEG blocks, as real footage from a small or compressed source has), which counts
against `quality_logit` but not against `artifact_logit`: that head learns to find what generators leave
(a soft or pasted mouth, flicker, ghosting, grain, plastic restored skin, smeared teeth, warping) whatever
the source quality.

Tokens: 0.2 s windows of the temporal features. Clip scalars (high = clean picture): `quality_logit`
(the whole picture), `artifact_logit` (generation artefacts only, source quality ignored), `face_logit`
and `mouth_logit` (each crop's branch alone) and `quality_logit_p10` (the 10th percentile over tokens:
a short bad stretch). Frames without a face are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from talkqa.features.clip import PreprocessedClip

from .base import EXPERTS, Expert, ExpertConfig, Tokens
from .picture_degradations import DEGRADATIONS, GENERATION, SOURCE_FAMILIES

EVAL_SEVERITIES = (0.25, 0.5, 0.75, 1.0)
HEADS = ("quality", "artifact", "face", "mouth")


class PictureConfig(ExpertConfig):
    channels: list[int] = Field(default_factory=lambda: [16, 32, 48], min_length=1,
                                description="convolution widths of each crop branch (each halves the resolution)")
    hidden: int = 48
    frame_stride: int = Field(2, ge=1, description="the 2-D CNN reads every k-th frame (and its difference to the "
                                                   "frame before it, so flicker between any two frames is seen)")
    min_face_share: float = Field(0.25, ge=0, le=1, description="fewer frames with a face is an error")
    chunk_frames: int = Field(128, ge=1, description="frames per 2-D CNN call at inference (bounds memory)")
    # training
    window_frames: int = Field(16, ge=2, description="training window in frames (all with a face)")
    max_clip_frames: int = Field(400, description="frames kept in memory per training clip")
    severities: int = Field(3, ge=1, description="severities of one degradation per clean training window")
    source_share: float = Field(0.5, ge=0, le=1, description="share of clean training windows given a source "
                                                             "degradation first (see artifact_logit)")
    rank_margin: float = 0.5
    rank_weight: float = 1.0
    branch_weight: float = 0.5
    eval_windows: int = Field(4, ge=2, description="windows per held-out clip in evaluate() (half of them with a "
                                                   "source degradation)")
    steps: int = 800
    batch_size: int = 24
    lr: float = 3e-3


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


@EXPERTS.register
class PictureExpert(Expert):
    name = "picture"
    version = "1"
    input_kind = "face+mouth crops"
    modality = "visual"
    scalar_names = ("quality_logit", "artifact_logit", "face_logit", "mouth_logit", "quality_logit_p10")
    config_cls = PictureConfig
    summary = ("Picture-quality expert: a small CNN over aligned face (96 px) and mouth (48 x 96 px) crops at full "
               "resolution, each frame with its difference to the frame before, then a temporal convolution; trained "
               "to tell clean real footage from graded degradations of it with BCE plus a severity ranking loss. "
               "Higher = cleaner: `quality_logit` counts every degradation (blur, low-resolution frame, JPEG blocks, "
               "low-resolution mouth, pasted lower-face box, flicker, ghosting, grain/checkerboard, restored "
               "(smoothed then sharpened) skin, teeth smear, warping); `artifact_logit` only the generation ones, trained to ignore source quality (blur, "
               "resolution, blocks); `face_logit` and `mouth_logit` are the two crop branches alone; "
               "`quality_logit_p10` the worst tenth of its 0.2 s tokens.")
    limits = ("Negatives are synthetic degradations of real crops, not outputs of real generators: it measures "
              "distance from clean real footage. `quality_logit` ranks real footage from small or compressed "
              "sources (224-256 px) below sharp generated video, as a viewer judging sharpness would; use "
              "`artifact_logit` for generation artefacts. It does not tell real from generated clips of "
              "../shared/data (ROC-AUC about 0.45-0.57 for its scalars, intervals spanning 0.5: real_vs_generated in "
              "the metrics): those generators leave little of what the synthetic families draw, and their 512 px "
              "faces are sharper than many real sources. Ghosting and warping are the weakest families. Scene cuts "
              "look like flicker. Faces found in under a quarter of the frames are refused.")
    training_data = ("real clips of the given stores (clean windows) against on-the-fly degradations of the same "
                     "windows (experts/picture_degradations.py); the clips used and held out are listed in the metrics")

    @property
    def dim(self) -> int:
        return self.config.hidden

    def _new_model(self) -> PictureModel:
        return PictureModel(list(self.config.channels), self.config.hidden)

    # ------------------------------------------------------------------------------------ inference
    def _frames(self, clip: PreprocessedClip) -> tuple[np.ndarray, np.ndarray]:
        """(frame index of each crop to read, with frames without a face replaced by the nearest face
        frame; valid mask), or a ValueError when too few frames have a face."""
        valid = np.asarray(clip.face_valid, bool)
        need = max(2, int(np.ceil(self.config.min_face_share * clip.n_frames)))
        if valid.sum() < need:
            raise ValueError(f"face found in {int(valid.sum())} of {clip.n_frames} frames; the picture expert needs a "
                             f"face in at least {need} ({self.config.min_face_share:.0%})")
        idx = np.flatnonzero(valid)
        nearest = idx[np.clip(np.searchsorted(idx, np.arange(clip.n_frames)), 0, len(idx) - 1)]
        before = idx[np.clip(np.searchsorted(idx, np.arange(clip.n_frames), side="right") - 1, 0, len(idx) - 1)]
        closer = np.where(np.abs(before - np.arange(clip.n_frames)) <= np.abs(nearest - np.arange(clip.n_frames)),
                          before, nearest)
        return np.where(valid, np.arange(clip.n_frames), closer), valid

    @torch.no_grad()
    def frame_outputs(self, clip: PreprocessedClip) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """(frame indices read, per-frame outputs as numpy, whether each read frame has a face)."""
        source, valid = self._frames(clip)
        stride = self.config.frame_stride
        # the phase that reads the most face frames (a face found only in odd frames still counts)
        phase = max(range(min(stride, clip.n_frames)), key=lambda p: int(valid[p::stride].sum()))
        picks = np.arange(phase, clip.n_frames, stride)
        cur, prev = source[picks], source[np.maximum(picks - 1, 0)]
        model = self.model_
        feats = []
        for s in range(0, len(picks), self.config.chunk_frames):
            c, p = cur[s : s + self.config.chunk_frames], prev[s : s + self.config.chunk_frames]
            tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
                       for a in (clip.face_crops[c], clip.face_crops[p], clip.mouth_crops[c], clip.mouth_crops[p])]
            feats.append(model.encode(*tensors))
        f = torch.cat([x[0] for x in feats])[None]
        m = torch.cat([x[1] for x in feats])[None]
        out = {k: v[0].cpu().numpy() for k, v in model.sequence(f, m).items()}
        return picks, out, valid[picks]

    def embed(self, clip: PreprocessedClip) -> Tokens:
        picks, out, valid = self.frame_outputs(clip)
        step = max(1, int(round(self.config.token_s * clip.fps)))
        starts = np.arange(0, clip.n_frames, step)
        emb = np.zeros((len(starts), self.dim), np.float32)
        token_quality = np.full(len(starts), np.nan)
        for i, s in enumerate(starts):
            inside = np.flatnonzero((picks >= s) & (picks < s + step))
            if not len(inside):  # a stride longer than a token: the nearest frame read
                inside = np.array([int(np.argmin(np.abs(picks - (s + step / 2))))])
            inside = inside[valid[inside]]
            if len(inside):  # no face in the window: a zero token rather than a made-up one
                emb[i] = out["hidden"][inside].mean(0)
                token_quality[i] = out["quality"][inside].mean()
        scalars = {f"{k}_logit": float(out[k][valid].mean()) for k in HEADS}
        scalars["quality_logit_p10"] = float(np.nanpercentile(token_quality, 10))
        return Tokens(starts / clip.fps, np.minimum(starts + step, clip.n_frames) / clip.fps, emb, scalars)

    # ------------------------------------------------------------------------------------ training
    training_requirement = "clips with a face in one training window of consecutive frames"

    def training_item(self, clip: PreprocessedClip, group: str) -> tuple | None:
        """(group, clip id, face crops, mouth crops, window starts whose frames all have a face)."""
        w = self.config.window_frames + 1  # one frame before the window, for the first difference
        valid = np.asarray(clip.face_valid, bool)[: self.config.max_clip_frames]
        if len(valid) < w:
            return None
        starts = np.flatnonzero(np.lib.stride_tricks.sliding_window_view(valid, w).all(axis=1))
        if not len(starts):
            return None
        n = len(valid)
        self.seen_clips_ = {**getattr(self, "seen_clips_", {}), clip.clip_id: group}
        return group, clip.clip_id, clip.face_crops[:n].copy(), clip.mouth_crops[:n].copy(), starts

    def _window(self, item, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random window of consecutive face frames (plus the frame before), randomly mirrored and with
        a constant exposure change: clean footage varies that way too."""
        _, _, face, mouth, starts = item
        s = int(starts[rng.integers(len(starts))])
        w = self.config.window_frames + 1
        f, m = face[s : s + w], mouth[s : s + w]
        if rng.uniform() < 0.5:
            f, m = f[:, :, ::-1], m[:, :, ::-1]
        gain = rng.uniform(0.85, 1.15)
        return (np.clip(f * gain, 0, 255).astype(np.uint8), np.clip(m * gain, 0, 255).astype(np.uint8))

    def _read(self, f: np.ndarray, m: np.ndarray, phase: int) -> tuple[np.ndarray, ...]:
        """What the model reads of a window: every frame_stride-th frame and the frame before each."""
        picks = np.arange(1 + phase, len(f), self.config.frame_stride)
        return f[picks], f[picks - 1], m[picks], m[picks - 1]

    def _source(self, face, mouth, rng) -> tuple[np.ndarray, np.ndarray, bool]:
        """With probability source_share, the window after a random source degradation."""
        if rng.uniform() >= self.config.source_share:
            return face, mouth, False
        family = SOURCE_FAMILIES[rng.integers(len(SOURCE_FAMILIES))]
        return (*DEGRADATIONS[family](face, mouth, float(rng.uniform(0.05, 1.0)), rng), True)

    def training_batch(self, items, rng, n: int):
        """Groups of one clean window (half of them after a source degradation) and copies of it at
        `severities` increasing severities of one random family (the same random draws at every
        severity). Targets per row: quality (no degradation at all), artifact (no generation
        degradation), face and mouth (nothing visible in that crop); and whether the group ranks the
        artifact head (a generation family)."""
        k = self.config.severities
        families = list(DEGRADATIONS)
        rows: list[tuple] = []
        for _ in range(max(1, n // (k + 1))):
            face, mouth = self._window(items[rng.integers(len(items))], rng)
            face, mouth, sourced = self._source(face, mouth, rng)
            family = families[rng.integers(len(families))]
            deg = DEGRADATIONS[family]
            generation = float(deg.kind == GENERATION)
            sevs = [rng.uniform(0.1 + 0.9 * j / k, 0.1 + 0.9 * (j + 1) / k) for j in range(k)]
            seed = int(rng.integers(2**31))
            phase = int(rng.integers(self.config.frame_stride))
            clean = float(not sourced)
            rows.append((*self._read(face, mouth, phase), clean, 1.0, clean, clean, generation))
            for sev in sevs:
                f, m = deg(face, mouth, min(sev, 1.0), np.random.default_rng(seed))
                rows.append((*self._read(f, m, phase), 0.0, 1.0 - generation, clean * ("face" not in deg.regions),
                             clean * ("mouth" not in deg.regions), generation))
        cols = list(zip(*rows))
        crops = [torch.from_numpy(np.stack(c)) for c in cols[:4]]
        return (*crops, *(torch.tensor(c, dtype=torch.float32) for c in cols[4:]))

    def training_loss(self, model, batch):
        *crops, y_quality, y_artifact, y_face, y_mouth, generation = batch
        out = model(*crops)
        bce = sum(_balanced_bce(out[h], y) for h, y in (("quality", y_quality), ("artifact", y_artifact)))
        branch = _balanced_bce(out["face"], y_face) + _balanced_bce(out["mouth"], y_mouth)
        # rows come in groups: the clean window first, then its copies in increasing severity
        k1 = self.config.severities + 1
        i, j = torch.triu_indices(k1, k1, 1)
        gap = self.config.rank_margin

        def rank(logits, weight):
            pairs = F.relu(gap - (logits.view(-1, k1)[:, i] - logits.view(-1, k1)[:, j]))
            return (pairs * weight[:, None]).sum() / (weight.sum() * len(i)).clamp(min=1)

        ranked = rank(out["quality"], torch.ones_like(generation[::k1])) + rank(out["artifact"], generation[::k1])
        return bce + self.config.branch_weight * branch + self.config.rank_weight * ranked

    @torch.no_grad()
    def _score_windows(self, windows: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
        outs = []
        for s in range(0, len(windows), 32):
            cols = list(zip(*windows[s : s + 32]))
            outs.append(self.model_(*(torch.from_numpy(np.stack(c)).to(self.device) for c in cols)))
        return {k: torch.cat([o[k] for o in outs]).cpu().numpy() for k in HEADS}

    @torch.no_grad()
    def evaluate(self, items, seed: int = 1) -> dict[str, Any]:
        """On held-out windows, half of them after a source degradation: ROC-AUC of quality_logit, clean
        vs each family (all severities pooled, and at the mildest), on windows without a source
        degradation; the Spearman correlation of quality_logit with severity (clean = 0) per family;
        ROC-AUC of artifact_logit, clean (with or without a source degradation) vs each generation
        family; and how far each head moves for a source degradation alone (AUC clean vs sourced)."""
        from scipy.stats import spearmanr  # lazy: slow import, only on this path

        rng = np.random.default_rng(seed)
        windows, fams, sevs, sourced = [], [], [], []
        for item in items:
            for w in range(self.config.eval_windows):
                face, mouth = self._window(item, rng)
                with_source = w % 2 == 1
                if with_source:
                    family = SOURCE_FAMILIES[rng.integers(len(SOURCE_FAMILIES))]
                    face, mouth = DEGRADATIONS[family](face, mouth, float(rng.uniform(0.05, 1.0)), rng)
                draw = int(rng.integers(2**31))
                variants = [("clean", 0.0, (face, mouth))] + [
                    (family, sev, deg(face, mouth, sev, np.random.default_rng(draw)))
                    for family, deg in DEGRADATIONS.items() for sev in EVAL_SEVERITIES]
                for family, sev, (f, m) in variants:
                    windows.append(self._read(f, m, 0))
                    fams.append(family)
                    sevs.append(sev)
                    sourced.append(with_source)
        if not windows:
            return {}
        scores = self._score_windows(windows)
        fams, sevs, sourced = np.array(fams), np.array(sevs), np.array(sourced)
        q, a = scores["quality"], scores["artifact"]
        clean = fams == "clean"
        plain = clean & ~sourced
        auc, auc_mild, rho, artifact_auc = {}, {}, {}, {}
        for family, deg in DEGRADATIONS.items():
            fam = (fams == family) & ~sourced
            auc[family] = _auc(q[plain], q[fam])
            auc_mild[family] = _auc(q[plain], q[fam & (sevs == EVAL_SEVERITIES[0])])
            rho[family] = float(-spearmanr(sevs[plain | fam], q[plain | fam]).statistic)
            if deg.kind == GENERATION:
                artifact_auc[family] = _auc(a[clean], a[fams == family])
        branch_auc = {}
        for branch in ("face", "mouth"):
            hit = np.isin(fams, [f for f, d in DEGRADATIONS.items() if branch in d.regions]) & ~sourced
            branch_auc[branch] = _auc(scores[branch][plain], scores[branch][hit])
        seen = getattr(self, "seen_clips_", {})
        held = {item[1] for item in items}
        return {
            "heldout_auc_clean_vs_family": auc,
            f"heldout_auc_at_severity_{EVAL_SEVERITIES[0]}": auc_mild,
            "heldout_spearman_vs_severity": rho,
            "heldout_artifact_auc_clean_vs_generation_family": artifact_auc,
            "heldout_auc_clean_vs_source_only": {"quality": _auc(q[plain], q[clean & sourced]),
                                                 "artifact": _auc(a[plain], a[clean & sourced])},
            "heldout_branch_auc": branch_auc,
            "heldout_windows": int(clean.sum()),
            "heldout_clip_ids": sorted(held),
            "train_clip_ids": sorted(c for c in seen if c not in held),
        }


def _balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE with both classes weighted equally, whatever their shares in the batch."""
    pos = target.mean().clamp(1e-3, 1 - 1e-3)
    weight = torch.where(target > 0.5, 0.5 / pos, 0.5 / (1 - pos))
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # lazy: slow import, only on this path

    if not len(pos) or not len(neg):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))
