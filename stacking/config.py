"""Typed stacking configuration (configs/stacking/default.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from talkqa.config import StrictModel


class StackingConfig(StrictModel):
    use_experts: bool = Field(True, description="pooled expert embeddings as features (false = hand-crafted only)")
    use_handcrafted: bool = True
    include_scalars: bool = Field(True, description="the experts' scalar outputs as features too")
    drop_experts: list[str] = Field(default_factory=list)
    pca_components: int | None = Field(None, ge=1, description="per expert, project tokens before pooling")
    oof_folds: int = Field(5, ge=2, description="speaker-grouped folds for out-of-fold meta-features")
    meta_learner: Literal["ridge", "none"] = Field(
        "ridge", description="ridge: level-2 per dimension on the OOF predictions of all dimensions")
    n_trials: int = Field(20, ge=0, description="Optuna trials per dimension (0 = the fixed params below)")
    tuning_folds: int = Field(3, ge=2)
    seed: int = 0
    n_jobs: int = Field(1, ge=1, description="LightGBM threads")
    params: dict[str, Any] = Field(default_factory=lambda: {
        "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 5,
        "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0},
        description="LightGBM parameters used without tuning and as the base of tuned ones")
    waterfall_clips: int = Field(3, ge=0, description="per-clip SHAP waterfall plots per dimension")
    max_display: int = Field(15, ge=3)
