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

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from talkqa.features.clip import PreprocessedClip

from .base import EXPERTS, Expert, ExpertConfig, Tokens
from .picture_degradations import DEGRADATIONS, GENERATION, OPT_IN_FAMILIES, SOURCE, families

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
    opt_in_families: list[str] = Field(
        default_factory=list, description=f"training families used only when named here ({', '.join(OPT_IN_FAMILIES)}: "
                                          "an H.264 encode of the crops; README, version 26)")
    rank_margin: float = 0.5
    rank_weight: float = 1.0
    branch_weight: float = 0.5
    eval_windows: int = Field(4, ge=2, description="windows per held-out clip in evaluate() (half of them with a "
                                                   "source degradation)")
    steps: int = 800
    batch_size: int = 24
    lr: float = 3e-3
    # newer than the shipped weights: left out of params_hash at its default (ExpertConfig.hash_omits_default)
    hash_omits_default: ClassVar[tuple[str, ...]] = ("opt_in_families",)

    @field_validator("opt_in_families")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        families(names)  # raises on a name that is not an opt-in family
        return names


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
               "a coarse H.264 encode where trained with it, low-resolution mouth, pasted lower-face box, flicker, "
               "ghosting, grain/checkerboard, restored (smoothed then sharpened) skin, teeth smear, warping); "
               "`artifact_logit` only the generation ones, trained to ignore source quality (blur, resolution, "
               "blocks, coding); `face_logit` and `mouth_logit` are the two crop branches alone; "
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

    def _new_model(self):
        from .nets.picture import PictureModel  # lazy: torch, only to train, export or run without an ONNX export

        return PictureModel(list(self.config.channels), self.config.hidden)

    def onnx_graphs(self, model) -> dict:
        from .nets.picture import graphs  # lazy: torch, only to export or run without an ONNX export

        return graphs(model)

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

    def frame_outputs(self, clip: PreprocessedClip) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """(frame indices read, per-frame outputs as numpy, whether each read frame has a face)."""
        source, valid = self._frames(clip)
        stride = self.config.frame_stride
        # the phase that reads the most face frames (a face found only in odd frames still counts)
        phase = max(range(min(stride, clip.n_frames)), key=lambda p: int(valid[p::stride].sum()))
        picks = np.arange(phase, clip.n_frames, stride)
        cur, prev = source[picks], source[np.maximum(picks - 1, 0)]
        feats = []
        for s in range(0, len(picks), self.config.chunk_frames):
            c, p = cur[s : s + self.config.chunk_frames], prev[s : s + self.config.chunk_frames]
            feats.append(self.run_graph("encode", clip.face_crops[c], clip.face_crops[p], clip.mouth_crops[c],
                                        clip.mouth_crops[p]))
        f = np.concatenate([x[0] for x in feats])[None]
        m = np.concatenate([x[1] for x in feats])[None]
        outputs = self.run_graph("sequence", f, m)
        out = {k: v[0] for k, v in zip(("hidden", *HEADS), outputs)}
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
        sources = families(self.config.opt_in_families, SOURCE)
        family = sources[rng.integers(len(sources))]
        return (*DEGRADATIONS[family](face, mouth, float(rng.uniform(0.05, 1.0)), rng), True)

    def training_batch(self, items, rng, n: int):
        """Groups of one clean window (half of them after a source degradation) and copies of it at
        `severities` increasing severities of one random family (the same random draws at every
        severity). Targets per row: quality (no degradation at all), artifact (no generation
        degradation), face and mouth (nothing visible in that crop); and whether the group ranks the
        artifact head (a generation family)."""
        k = self.config.severities
        names = families(self.config.opt_in_families)
        rows: list[tuple] = []
        for _ in range(max(1, n // (k + 1))):
            face, mouth = self._window(items[rng.integers(len(items))], rng)
            face, mouth, sourced = self._source(face, mouth, rng)
            family = names[rng.integers(len(names))]
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
        import torch  # lazy: training only

        cols = list(zip(*rows))
        crops = [torch.from_numpy(np.stack(c)) for c in cols[:4]]
        return (*crops, *(torch.tensor(c, dtype=torch.float32) for c in cols[4:]))

    def training_loss(self, model, batch):
        from .nets.picture import picture_loss  # lazy: torch, training only

        cfg = self.config
        return picture_loss(model, batch, cfg.severities, cfg.rank_margin, cfg.rank_weight, cfg.branch_weight)

    def _score_windows(self, windows: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
        """Window logits per head (the means over each window's frames), through the torch network."""
        import torch  # lazy: evaluation is part of training

        outs = []
        model = self.network()
        for s in range(0, len(windows), 32):
            cols = list(zip(*windows[s : s + 32]))
            outs.append(model(*(torch.from_numpy(np.stack(c)).to(self.device) for c in cols)))
        return {k: torch.cat([o[k] for o in outs]).cpu().numpy() for k in HEADS}

    def evaluate(self, items, seed: int = 1) -> dict[str, Any]:
        """On held-out windows, half of them after a source degradation: ROC-AUC of quality_logit, clean
        vs each family (all severities pooled, and at the mildest), on windows without a source
        degradation; the Spearman correlation of quality_logit with severity (clean = 0) per family;
        ROC-AUC of artifact_logit, clean (with or without a source degradation) vs each generation
        family; and how far each head moves for a source degradation alone (AUC clean vs sourced)."""
        from scipy.stats import spearmanr  # lazy: slow import, only on this path

        rng = np.random.default_rng(seed)
        used = {name: DEGRADATIONS[name] for name in families(self.config.opt_in_families)}
        sources = families(self.config.opt_in_families, SOURCE)
        windows, fams, sevs, sourced = [], [], [], []
        for item in items:
            for w in range(self.config.eval_windows):
                face, mouth = self._window(item, rng)
                with_source = w % 2 == 1
                if with_source:
                    family = sources[rng.integers(len(sources))]
                    face, mouth = DEGRADATIONS[family](face, mouth, float(rng.uniform(0.05, 1.0)), rng)
                draw = int(rng.integers(2**31))
                variants = [("clean", 0.0, (face, mouth))] + [
                    (family, sev, deg(face, mouth, sev, np.random.default_rng(draw)))
                    for family, deg in used.items() for sev in EVAL_SEVERITIES]
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
        for family, deg in used.items():
            fam = (fams == family) & ~sourced
            auc[family] = _auc(q[plain], q[fam])
            auc_mild[family] = _auc(q[plain], q[fam & (sevs == EVAL_SEVERITIES[0])])
            rho[family] = float(-spearmanr(sevs[plain | fam], q[plain | fam]).statistic)
            if deg.kind == GENERATION:
                artifact_auc[family] = _auc(a[clean], a[fams == family])
        branch_auc = {}
        for branch in ("face", "mouth"):
            hit = np.isin(fams, [f for f, d in used.items() if branch in d.regions]) & ~sourced
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


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # lazy: slow import, only on this path

    if not len(pos) or not len(neg):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))
