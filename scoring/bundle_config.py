"""How a model bundle is trained and what it records (configs/train/default.yaml documents every field)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from talkqa.config import StrictModel, config_path
from talkqa.fusion.config import FusionConfig
from talkqa.stacking.config import StackingConfig

FORMAT = 1  # model.json format this talkqa reads and writes
DEFAULT_TRAIN_CONFIG = config_path("train", "default.yaml")


class SyncSource(StrictModel):
    """Where the clip's AV offset comes from; the first source whose columns the clip has wins."""

    offset: str = Field(..., description="column (expert scalar or hand-crafted) with the offset in frames")
    confidence: str = Field(..., description="column with its confidence")
    curve_prefix: str | None = Field(None, description="scalar columns <prefix><lag> holding a distance/score per lag")


class DiagnosticsConfig(StrictModel):
    threshold: float | Literal["auto"] = Field(
        "auto", description="window problem probability above which a window is flagged; auto = per dimension, "
                            "the value in threshold_range that maximises window F0.5 on the validation speakers "
                            "(precision weighs more: a false alarm costs a user more than a missed segment)")
    default_threshold: float = Field(0.5, gt=0, lt=1, description="used for a dimension whose validation windows "
                                                                  "have no labelled problem")
    threshold_range: tuple[float, float] = Field((0.3, 0.9), description="auto searches this range (step 0.05)")
    only_below: float | None = Field(
        None, ge=1, le=5, description="list a dimension's window segments only when the clip's score on it is below "
                                      "this (a clip called good on lip sync lists no lip-sync problem); null = always. "
                                      "The hand-crafted evidence (frozen picture, clipping, ...) is never gated")


class OverallRule(StrictModel):
    """The label rule's overall (corpus/labels.py, `pseudo_mos`) as a function of the five dimension scores:
    overall = clean - (max_d W_d + secondary * (sum_d W_d - max_d W_d)), W_d = weight_d * max(0, clean - score_d),
    floored. The defaults are those of corpus.labels.LabelRule (a test keeps them equal); they are saved
    with every model, so a later change of the label rule does not move a trained model's scores."""

    clean: float = Field(4.5, description="score of a clip without any fault")
    floor: float = Field(1.0, description="lowest overall")
    secondary: float = Field(0.4, ge=0, le=1, description="share of the other dimensions' drops that counts")
    weights: dict[str, float] = Field(default_factory=lambda: {"lip_sync": 0.38},
                                      description="per dimension, the share of its drop overall takes (1 if absent)")


class OverallDirect(StrictModel):
    """The label rule's direct overall part along one reading (scoring/overall_direct.py), added to the rule's
    overall under `overall_from: dimensions`."""

    column: str = Field(..., description="the reading (hand-crafted column or expert scalar)")
    worse: Literal[1, -1] = Field(1, description="+1: a higher reading is worse; -1: a lower one is")
    start: float = Field(..., description="the reading counts only where at least as bad as this; below it the part "
                                          "is 0 (put it beyond what clean clips read)")


class BundleConfig(StrictModel):
    name: str = Field("talkqa-default", description="model name reported with every score")
    version: str = Field("1", description="model version reported with every score")
    description: str = Field("", description="one paragraph for the model card")
    combine: Literal["fusion", "stacking", "mean", "auto"] = Field(
        "auto", description="final per-dimension score: the fusion Transformer, the LightGBM stack, their mean, or "
                            "auto: per dimension, whichever of the three does best on the validation speakers "
                            "(by combine_metric)")
    combine_margin: float = Field(0.02, ge=0, description="auto: the mean is kept unless fusion or stacking alone "
                                                          "beats its validation figure by more than this")
    combine_metric: Literal["srcc", "rmse"] = Field(
        "srcc", description="auto compares on: srcc, how well each orders the validation clips; rmse, how close its "
                            "scores come to their labels (the level, which a threshold such as 'a still photo "
                            "scores expression <= 2' depends on)")
    overall_from: Literal["model", "dimensions"] = Field(
        "model", description="model: overall as `combine` forms it, like every dimension; dimensions: overall is "
                             "the label rule (overall_rule) applied to the clip's five dimension scores, so it "
                             "follows them by construction and is explained by them")
    overall_rule: OverallRule = Field(default_factory=OverallRule)
    overall_direct: OverallDirect | None = Field(
        None, description="under overall_from: dimensions, the part of overall the label rule charges a fault "
                          "directly (beyond its dimensions), fitted on the training labels along this reading; "
                          "null = none")
    experts: list[str] | None = Field(None, description="experts of the store to use; null = all of them")
    expert_overrides: dict[str, list[str]] = Field(
        default_factory=dict, description="per expert, the key=value overrides of configs/experts/<name>.yaml the "
                                          "store was embedded with (`talkqa embed --set ...`); recorded in model.json")
    sync_sources: list[SyncSource] = Field(
        default_factory=lambda: [
            SyncSource(offset="sync__offset_frames", confidence="sync__confidence", curve_prefix="sync__dist_lag_"),
            SyncSource(offset="lipsync__av_offset_frames", confidence="lipsync__av_confidence"),
        ],
        description="AV offset sources in order of preference")
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    device: str = Field("cpu", description="training device (cpu or cuda)")
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    stacking: StackingConfig = Field(default_factory=StackingConfig)
