"""Typed stacking configuration (configs/stacking/default.yaml)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from talkqa.config import StrictModel
from talkqa.tasks import DIMENSION_NAMES


class StackingConfig(StrictModel):
    use_experts: bool = Field(True, description="pooled expert embeddings as features (false = hand-crafted only)")
    use_handcrafted: bool = True
    include_scalars: bool = Field(True, description="the experts' scalar outputs as features too")
    drop_experts: list[str] = Field(default_factory=list)
    pca_components: int | None = Field(None, ge=1, description="per expert, project tokens before pooling")
    oof_folds: int = Field(5, ge=2, description="speaker-grouped folds for out-of-fold meta-features")
    oof_folds_by: Literal["clip_counts", "speaker_names"] = Field(
        "clip_counts", description="how speakers are dealt into the out-of-fold folds. clip_counts: GroupKFold, "
                                   "folds of equal clip counts, so a corpus that adds clips re-deals them and moves "
                                   "every dimension's out-of-fold predictions (README, version 29); speaker_names: "
                                   "from the speakers' names alone (talkqa.splits.name_folds)")
    oof_folds_seed: int = Field(0, ge=0, description="another dealing of the same speakers into the out-of-fold "
                                                     "folds (0 = the dealing as it always was): the names ordered "
                                                     "by a hash with the seed (speaker_names), GroupKFold shuffled "
                                                     "(clip_counts). Refitting a model under a few seeds "
                                                     "(benchmarks/refit_level2.py) measures how much its scores "
                                                     "owe to one dealing (README, version 31)")
    oof_repeats: int = Field(1, ge=1, description="dealings whose out-of-fold predictions are averaged (seeds "
                                                  "oof_folds_seed, oof_folds_seed + 1, ...): level 2 and the "
                                                  "calibration are then fitted on predictions that owe less to one "
                                                  "arbitrary dealing; the out-of-fold trees take `oof_repeats` "
                                                  "times as long")
    meta_learner: Literal["ridge", "none"] = Field(
        "ridge", description="ridge: level-2 per dimension on the OOF predictions of all dimensions")
    meta_from: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per dimension, the dimensions whose OOF predictions its level-2 ridge reads (default: all). "
                    "{lip_sync: [lip_sync]} keeps lip_sync's score to its own trees: a corpus or a column that only "
                    "changes another dimension's trees then cannot move it through level 2 (README, version 29)")
    n_trials: int = Field(20, ge=0, description="Optuna trials per dimension (0 = the fixed params below)")
    tuning_folds: int = Field(3, ge=2)
    seed: int = 0
    bag: int = Field(1, ge=1, description="LightGBM models per dimension, each tuned and fitted with its own seed "
                                          "(seed, seed + 1, ...); the dimension's prediction is their mean (one "
                                          "booster holding all their trees, stacking/trees.py mean_of_models). A "
                                          "bag of seeds smooths the steps one seed's trees put between similar "
                                          "clips; training takes `bag` times as long")
    n_jobs: int = Field(1, ge=1, description="LightGBM threads")
    params: dict[str, Any] = Field(default_factory=lambda: {
        "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 5,
        "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0},
        description="LightGBM parameters used without tuning and as the base of tuned ones")
    monotone: dict[str, dict[str, Literal[-1, 1]]] = Field(
        default_factory=dict,
        description="per dimension, feature column -> +1 (the prediction never falls as the column rises) or -1: "
                    "LightGBM monotone constraints on evidence whose direction is known, such as an expert's "
                    "reading; columns the model does not have (a dropped expert) are skipped")
    feature_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per dimension, the column groups (expert names, hand-crafted families: the `<group>__` "
                    "prefix) its trees may use, e.g. {lip_sync: [sync, lipsync]}; a dimension not listed uses "
                    "every column. Groups the model does not have (a dropped expert) are skipped")
    drop_columns: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per dimension, feature columns its trees never see (after feature_groups), e.g. "
                    "{visual_quality: [expression__upper_change]}: evidence about one dimension kept out of the "
                    "trees of the others, where it can only add seed noise; columns the model does not have are "
                    "skipped")
    calibration: Literal["none", "isotonic"] = Field(
        "none", description="isotonic: per dimension, a strictly increasing map from the stack's out-of-fold "
                            "prediction to the label (centred isotonic regression), which undoes the trees' pull "
                            "toward the mean at both ends of the scale")
    ceilings: dict[str, dict[str, Literal[-1, 0, 1]]] = Field(
        default_factory=dict,
        description="per dimension, reading column -> +1 (a higher reading is worse), -1 (a lower one is) or 0 (one "
                    "farther from zero either way is, as an audio-visual offset): an "
                    "evidence ceiling (stacking/ceilings.py) caps the dimension's score at what the training clips "
                    "reading at least as badly were labelled (their `ceiling_quantile`); a column no tree reads "
                    "is read from the store, and one the store lacks gives no cap")
    ceiling_from: dict[str, float] = Field(
        default_factory=dict,
        description="reading column -> the value from which it counts for its ceilings (as bad as this or worse; "
                    "for a 0 ceiling, in magnitude): better readings give no cap and are left out of the fit")
    ceiling_quantile: float = Field(0.9, gt=0, lt=1, description="the share of those clips labelled at most the cap")
    ceiling_min_clips: int = Field(20, ge=3, description="a cap is taken over at least this many clips")
    waterfall_clips: int = Field(3, ge=0, description="per-clip SHAP waterfall plots per dimension")
    max_display: int = Field(15, ge=3)

    @field_validator("monotone", "feature_groups", "drop_columns", "ceilings")
    @classmethod
    def _known_dimensions(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(DIMENSION_NAMES))
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(DIMENSION_NAMES)}")
        return value

    @field_validator("meta_from")
    @classmethod
    def _known_inputs(cls, value: dict) -> dict:
        cls._known_dimensions(value)
        for dim, inputs in value.items():
            unknown = sorted(set(inputs) - set(DIMENSION_NAMES))
            if unknown or not inputs:
                raise ValueError(f"meta_from.{dim}: name at least one of {', '.join(DIMENSION_NAMES)}"
                                 + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        return value

    @model_validator(mode="after")
    def _starts_name_a_ceiling(self) -> "StackingConfig":
        named = {col for columns in self.ceilings.values() for col in columns}
        if unknown := sorted(set(self.ceiling_from) - named):
            raise ValueError(f"ceiling_from names {', '.join(unknown)}, which no ceiling reads; name a column of "
                             "`ceilings` (replacing the ceilings with --set stacking.ceilings=..., give "
                             "--set 'stacking.ceiling_from={}' too)")
        return self
