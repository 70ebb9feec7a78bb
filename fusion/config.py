"""Typed fusion configuration (configs/fusion/default.yaml); saved beside every trained model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from talkqa.config import StrictModel
from talkqa.tasks import DIMENSION_NAMES


class ModelConfig(StrictModel):
    architecture: str = Field("cross_attention", description="a key of fusion.model.MODELS: cross_attention, concat_mlp")
    width: int = Field(64, ge=8, description="token width d after the per-expert projection")
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1, le=8, description="cross-attention blocks")
    encoder_layers: int = Field(0, ge=0, le=4, description="self-attention layers per modality before cross-attention")
    direction: Literal["audio_to_visual", "visual_to_audio", "bidirectional"] = Field(
        "audio_to_visual", description="which side queries the other in the cross-attention blocks")
    dropout: float = Field(0.1, ge=0, lt=1)
    max_tokens: int = Field(128, ge=4, description="per expert and clip; longer sequences are subsampled evenly")
    tabular_layers: int = Field(1, ge=0, le=4, description="self-attention layers over the clip-level tokens "
                                                          "(hand-crafted, expert scalars, token statistics)")
    stats_tokens: bool = Field(True, description="one clip-level token per expert from the mean and std of its "
                                                 "tokens over time (what freezes and jitter change)")

    @field_validator("heads")
    @classmethod
    def _heads_divide(cls, v, info):
        width = info.data.get("width", 64)
        if width % v:
            raise ValueError(f"width {width} is not divisible by heads {v}")
        return v


class LossConfig(StrictModel):
    smooth_l1_beta: float = Field(0.1, gt=0, description="on targets scaled to [-1, 1]")
    ranking_weight: float = Field(0.3, ge=0, description="in-batch pairwise ranking loss; 0 turns it off")
    ranking_min_gap: float = Field(0.25, ge=0, description="MOS difference below which a pair is not ranked")
    ranking_scale: float = Field(4.0, gt=0)
    contrastive_weight: float = Field(0.1, ge=0, description="audio/visual alignment (InfoNCE) auxiliary loss")
    contrastive_temperature: float = Field(0.1, gt=0)
    diagnostic_weight: float = Field(0.2, ge=0, description="per-window diagnostic head (masked when no diagnostics)")


class TrainConfig(StrictModel):
    epochs: int = Field(80, ge=1)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    patience: int = Field(12, ge=1, description="epochs without val improvement before stopping")
    val_share: float = Field(0.2, ge=0, lt=1, description="share of training speakers held out for early stopping")
    seed: int = 0
    weighting: str = Field("fixed", description="a key of fusion.weighting.WEIGHTINGS: fixed, uncertainty, dwa")
    dwa_temperature: float = Field(2.0, gt=0)
    amp: bool = Field(True, description="mixed precision; used only when device is cuda")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps; used only when device is cuda")
    threads: int = Field(0, ge=0, description="torch CPU threads (0 = leave torch's default)")


class PretrainConfig(StrictModel):
    """Self-supervised pre-training of the shared bottom (fusion/pretrain.py) before the heads learn scores:
    which of several candidate pairings of a clip's audio-side and visual-side token sequences is the real,
    in-sync one (the others: audio shifted in time or taken from another clip), and masked-token prediction."""

    enabled: bool = Field(False, description="pre-train before fitting the heads")
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(1e-3, gt=0)
    shift_s: tuple[float, float] = Field((0.4, 1.6), description="|audio shift| of a negative, seconds (min, max)")
    shifted_negatives: int = Field(2, ge=0, description="time-shifted candidates per clip")
    swapped_negatives: int = Field(1, ge=0, description="candidates with another clip's audio tokens")
    temperature: float = Field(0.2, gt=0)
    align_weight: float = Field(1.0, ge=0, description="in-sync vs shifted/swapped contrastive loss")
    mask_ratio: float = Field(0.15, ge=0, lt=1, description="share of each expert's tokens masked")
    mask_weight: float = Field(1.0, ge=0, description="masked-token prediction loss")
    unlabelled: bool = Field(True, description="also pre-train on the store's unlabelled clips the caller passes")
    seed: int = 0

    @field_validator("shift_s")
    @classmethod
    def _ordered(cls, v):
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"shift_s must be (min, max) with 0 < min <= max, got {v}")
        return v


class TuneConfig(StrictModel):
    """Optuna search over the fusion's width, depth, dropout, learning rate, loss weights and task
    weighting on speaker-grouped inner folds of the training clips (as stacking tunes LightGBM)."""

    n_trials: int = Field(0, ge=0, description="0 = use the config as given")
    folds: int = Field(2, ge=2, description="speaker-grouped inner folds per trial")
    objective: Literal["rmse", "srcc"] = Field("rmse", description="mean over tasks on the inner folds")
    epochs: int | None = Field(None, ge=1, description="epochs per trial (default: train.epochs)")
    seed: int = 0


class FusionConfig(StrictModel):
    tasks: list[str] = Field(default_factory=lambda: list(DIMENSION_NAMES), description="dimensions to predict")
    use_handcrafted: bool = True
    use_scalars: bool = Field(True, description="the experts' scalar outputs (<expert>__* columns: sync offset, "
                                                "confidence, distance curve, logits) as tokens")
    drop_experts: list[str] = Field(default_factory=list, description="experts of the store to ignore")
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v):
        unknown = [t for t in v if t not in DIMENSION_NAMES]
        if unknown or not v:
            raise ValueError(f"tasks must be a non-empty subset of {list(DIMENSION_NAMES)}, got {v}")
        return [d for d in DIMENSION_NAMES if d in v]
