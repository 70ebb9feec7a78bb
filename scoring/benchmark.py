"""`talkqa benchmark`: speaker-grouped k-fold CV of every strategy on one store + labels.

Strategies are registered by name in STRATEGIES and share one interface (fit on clip ids, predict a
DataFrame indexed by clip_id with one column per dimension). Per dimension the report gives SRCC,
KRCC, PLCC (after the 4-parameter logistic mapping) and RMSE with bootstrap 95 % CIs, pairwise
accuracy when a pairs table is given, ablations of the MTL fusion model (each expert dropped,
hand-crafted dropped, expert scalars dropped, no ranking loss), inter-task correlations of labels and
predictions over the six dimensions and SHAP plots of the stacking model. The MTL claim itself is
measured in scoring/benchmark_analysis.py: a paired bootstrap CI of the SRCC difference MTL - single-task
and MTL - best other strategy per dimension, and a learning curve (SRCC vs number of training source
clips, speaker-grouped folds).

Outputs in the report folder: results.json, predictions.parquet, config.yaml, index.html, shap/*.png.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from talkqa.config import StrictModel, save_config, stable_hash
from talkqa.errors import UsageError
from talkqa.fusion.baselines import ScalarBaseline
from talkqa.fusion.config import FusionConfig
from talkqa.fusion.train import FusionRegressor
from talkqa.labels import common_clips, load_labels
from talkqa.registry import Registry
from talkqa.scoring.metrics import dimension_metrics, pairwise_accuracy
from talkqa.splits import group_folds
from talkqa.stacking.config import StackingConfig
from talkqa.stacking.explain import explain, plot_explanation
from talkqa.stacking.model import StackingRegressor
from talkqa.store import atomic_write_json, write_parquet
from talkqa.store_data import load_store
from talkqa.tasks import DIMENSION_NAMES, LABEL_COLUMNS

from .benchmark_analysis import inter_task, learning_curve, srcc_differences
from .benchmark_report import render_report

STRATEGIES: Registry["Strategy"] = Registry("strategy")
DEFAULT_STRATEGIES = ["mtl_fusion", "mtl_pretrained", "single_task", "concat_mlp", "lgbm_stacking", "lgbm_handcrafted",
                      "expert_scalars"]


class DifferenceConfig(StrictModel):
    strategies: list[str] = Field(default_factory=lambda: ["mtl_fusion", "mtl_pretrained", "mtl_tuned"],
                                  description="the multi-task strategies whose SRCC is compared (those that ran)")
    single_task: str = Field("single_task", description="the single-task counterpart")
    unit: Literal["clip", "speaker"] = Field("clip", description="what the paired bootstrap resamples: clips, or "
                                                                 "speakers with all their clips (cluster bootstrap)")


class LearningCurveConfig(StrictModel):
    sizes: list[int] = Field(default_factory=list, description="training source clips per point (0 = all of the "
                                                               "fold's); empty = no learning curve")
    strategies: list[str] = Field(default_factory=lambda: ["mtl_fusion", "single_task", "lgbm_stacking"])


class BenchmarkConfig(StrictModel):
    store: str | None = Field(None, description="store folder (the --store option wins)")
    labels: str | None = Field(None, description="manifest or human-label table (the --labels option wins)")
    pairs: str | None = Field(None, description="optional pairwise preferences table")
    diagnostics: str | None = Field(None, description="diagnostics.parquet; default: the one beside the labels")
    folds: int = Field(5, ge=2, description="speaker-grouped CV folds")
    seed: int = 0
    strategies: list[str] = Field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    ablations: bool = True
    ablation_strategy: str = Field("mtl_fusion", description="the strategy the ablations modify")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the 95 % CIs")
    shap: bool = True
    shap_dimensions: list[str] = Field(default_factory=lambda: list(DIMENSION_NAMES))
    device: str = "cpu"
    scalar_map: Literal["linear", "isotonic"] = "linear"
    scalar_for: dict[str, str] = Field(default_factory=dict,
                                       description="dimension -> expert scalar column; unset: best on training folds")
    cache: bool = Field(True, description="keep each fitted strategy's fold predictions under <report>/parts/ and "
                                          "reuse them when the same fit comes up again (resume, add strategies)")
    tuned_trials: int = Field(8, ge=1, description="Optuna trials of mtl_tuned when fusion.tune.n_trials is 0")
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    stacking: StackingConfig = Field(default_factory=StackingConfig)
    differences: DifferenceConfig = Field(default_factory=DifferenceConfig)
    learning_curve: LearningCurveConfig = Field(default_factory=LearningCurveConfig)

    @field_validator("strategies")
    @classmethod
    def _known(cls, v):
        _register_builtin()
        for name in v:
            STRATEGIES.get(name)
        return v

    @field_validator("learning_curve")
    @classmethod
    def _known_curve(cls, v):
        for name in v.strategies:
            STRATEGIES.get(name)
        if any(n < 0 for n in v.sizes):
            raise ValueError("learning_curve.sizes are source-clip counts (0 = all)")
        return v


# ------------------------------------------------------------------------------------------ strategies
class Strategy:
    """fit(data, labels, clip_ids, unlabelled_ids) -> self; predict(data, clip_ids) -> DataFrame (clip_id x
    dimensions); details() -> what the fit chose (JSON-able), for the report."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, config: BenchmarkConfig):
        self.config = config

    def fit(self, data, labels, clip_ids, unlabelled_ids=None):
        raise NotImplementedError

    def predict(self, data, clip_ids) -> pd.DataFrame:
        return self.model_.predict(data, clip_ids)

    def details(self) -> dict:
        return {}


def _fusion_details(model: FusionRegressor) -> dict:
    out = {}
    evals = [h for h in getattr(model, "pretrain_history_", []) if "eval_align_accuracy" in h]
    if evals:
        out["pretrain_eval_align_accuracy"] = evals[-1]["eval_align_accuracy"]
        out["pretrain_chance"] = evals[-1]["chance"]
    if getattr(model, "tuning_", None):
        out["tuned"] = model.tuning_["best_params"]
    return out


class _Fusion(Strategy):
    def _fusion_config(self) -> FusionConfig:
        return self.config.fusion

    def fit(self, data, labels, clip_ids, unlabelled_ids=None):
        self.model_ = FusionRegressor(self._fusion_config(), self.config.device).fit(
            data, labels, clip_ids, unlabelled_ids=unlabelled_ids)
        return self

    def details(self):
        return _fusion_details(self.model_)


@STRATEGIES.register
class MTLFusion(_Fusion):
    name = "mtl_fusion"
    description = "cross-attention multi-task Transformer (all dimensions, one model)"


@STRATEGIES.register
class MTLPretrained(_Fusion):
    name = "mtl_pretrained"
    description = "mtl_fusion whose shared bottom is first pre-trained self-supervised (in-sync vs shifted/swapped " \
                  "audio tokens, masked tokens) on the training and unlabelled clips"

    def _fusion_config(self):
        c = self.config.fusion.model_copy(deep=True)
        c.pretrain.enabled = True
        return c


@STRATEGIES.register
class MTLTuned(_Fusion):
    name = "mtl_tuned"
    description = "mtl_fusion with width, depth, dropout, learning rate, loss weights and task weighting chosen " \
                  "by Optuna on speaker-grouped inner folds of each training fold (as stacking is tuned)"

    def _fusion_config(self):
        c = self.config.fusion.model_copy(deep=True)
        c.tune.n_trials = c.tune.n_trials or self.config.tuned_trials
        return c


@STRATEGIES.register
class ConcatMLP(_Fusion):
    name = "concat_mlp"
    description = "pooled expert tokens + hand-crafted -> MLP, multi-task, no attention"

    def _fusion_config(self):
        c = self.config.fusion.model_copy(deep=True)
        c.model.architecture = "concat_mlp"
        return c


@STRATEGIES.register
class SingleTask(Strategy):
    name = "single_task"
    description = "the fusion model trained once per dimension"

    def fit(self, data, labels, clip_ids, unlabelled_ids=None):
        self.models_, self.constant_ = [], {}
        y = labels.y(list(clip_ids))
        for dim in labels.dimensions:
            known = y[:, DIMENSION_NAMES.index(dim)]
            known = known[np.isfinite(known)]
            if len(known) and np.ptp(known) == 0:  # nothing to learn (e.g. no visual artifact in the corpus)
                self.constant_[dim] = float(known[0])
                continue
            cfg = self.config.fusion.model_copy(deep=True)
            cfg.tasks = [dim]
            self.models_.append(FusionRegressor(cfg, self.config.device).fit(data, labels, clip_ids,
                                                                             unlabelled_ids=unlabelled_ids))
        return self

    def predict(self, data, clip_ids):
        out = pd.concat([m.predict(data, clip_ids) for m in self.models_], axis=1) if self.models_ \
            else pd.DataFrame(index=pd.Index(list(clip_ids), name="clip_id"))
        for dim, value in self.constant_.items():
            out[dim] = value
        return out

    def details(self):
        return {m.tasks_[0]: _fusion_details(m) for m in self.models_ if _fusion_details(m)}


@STRATEGIES.register
class LGBMStacking(Strategy):
    name = "lgbm_stacking"
    description = "LightGBM per dimension on pooled expert embeddings + scalars + hand-crafted, OOF ridge stack"

    def stacking_config(self) -> StackingConfig:
        return self.config.stacking

    def fit(self, data, labels, clip_ids, unlabelled_ids=None):
        self.model_ = StackingRegressor(self.stacking_config()).fit(data, labels, clip_ids)
        return self


@STRATEGIES.register
class LGBMHandcrafted(LGBMStacking):
    name = "lgbm_handcrafted"
    description = "LightGBM per dimension on the hand-crafted features only"

    def stacking_config(self):
        return self.config.stacking.model_copy(update={"use_experts": False, "include_scalars": False,
                                                       "use_handcrafted": True})


@STRATEGIES.register
class ExpertScalars(Strategy):
    name = "expert_scalars"
    description = "one raw expert scalar per dimension through a linear/monotone map"

    def fit(self, data, labels, clip_ids, unlabelled_ids=None):
        self.model_ = ScalarBaseline(self.config.scalar_for, self.config.scalar_map).fit(data, labels, clip_ids)
        return self


def _register_builtin() -> None:
    """Strategies live in this module; kept as a hook for strategies defined elsewhere."""


def ablation_configs(config: BenchmarkConfig, expert_names: list[str]) -> dict[str, BenchmarkConfig]:
    """label -> config of the ablated ablation_strategy run."""
    base = config.ablation_strategy
    out = {}
    for e in expert_names:
        c = config.model_copy(deep=True)
        c.fusion.drop_experts = sorted(set(c.fusion.drop_experts) | {e})
        c.stacking.drop_experts = sorted(set(c.stacking.drop_experts) | {e})
        out[f"{base}-no_{e}"] = c
    c = config.model_copy(deep=True)
    c.fusion.use_handcrafted = False
    c.stacking.use_handcrafted = False
    out[f"{base}-no_handcrafted"] = c
    c = config.model_copy(deep=True)
    c.fusion.use_scalars = False
    c.stacking.include_scalars = False
    out[f"{base}-no_scalars"] = c
    c = config.model_copy(deep=True)
    c.fusion.loss.ranking_weight = 0.0
    out[f"{base}-no_ranking"] = c
    return out


# ------------------------------------------------------------------------------------------ run
def _metrics_for(pred: pd.DataFrame, y: pd.DataFrame, pairs, config: BenchmarkConfig) -> dict:
    res = {}
    for dim, col in zip(DIMENSION_NAMES, LABEL_COLUMNS):
        if dim not in pred or col not in y or y[col].dropna().nunique() < 2:
            continue  # no labels, or constant ones (a corpus without such artifacts): nothing to rank, no SRCC
        m = dimension_metrics(pred[dim].to_numpy(float), y[col].to_numpy(float), config.bootstrap, config.seed)
        if pairs is not None:
            p = pairs[pairs["dimension"] == dim]
            m["pairwise_accuracy"] = pairwise_accuracy(pred[dim].to_dict(), p, config.bootstrap, config.seed)
        res[dim] = m
    return res


def fit_predict(name: str, cfg: BenchmarkConfig, data, labels, train_ids, test_ids, unlabelled_ids):
    """One strategy fitted on `train_ids` (+ unlabelled clips for pre-training), predicting `test_ids`."""
    strategy = STRATEGIES.create(name, config=cfg).fit(data, labels, train_ids, unlabelled_ids=unlabelled_ids)
    return strategy.predict(data, test_ids).reindex(test_ids), strategy.details()


class CachedFitPredict:
    """fit_predict with its results kept under <report>/parts/, keyed on everything that decides them (the
    strategy, the model settings, the exact train / test / unlabelled clips, their labels and the store's
    experts). A benchmark run that stops, or a later run that adds strategies or a learning curve to the
    same report folder, refits nothing it already has."""

    MODEL_FIELDS = {"fusion", "stacking", "scalar_map", "scalar_for", "device", "tuned_trials"}
    # Settings added after fits were cached, at the value that reproduces the models made before them:
    # left out of the key at that value, so those fits stay valid (path in the model_dump, value).
    LEGACY_VALUES = [(("fusion", "model", "stats_tokens"), False)]

    def __init__(self, folder: Path, data, labels, enabled: bool = True, log: Callable[[str], None] | None = None):
        self.folder, self.enabled, self.log, self.fitted = folder, enabled, log or (lambda msg: None), 0
        self.context = stable_hash({"store": str(data.root), "experts": data.schema(),
                                    "labels": labels.table.to_csv()})

    def key(self, name, cfg, train_ids, test_ids, unlabelled_ids) -> str:
        settings = cfg.model_dump(mode="json", include=self.MODEL_FIELDS)
        for path, value in self.LEGACY_VALUES:
            *parents, leaf = path
            block = settings
            for k in parents:
                block = block.get(k, {})
            if leaf in block and block[leaf] == value:
                del block[leaf]
        return stable_hash({"strategy": name, "config": settings,
                            "train": stable_hash(list(train_ids)), "test": stable_hash(list(test_ids)),
                            "unlabelled": stable_hash(list(unlabelled_ids)), "context": self.context}, 24)

    def __call__(self, name, cfg, data, labels, train_ids, test_ids, unlabelled_ids, note: str = ""):
        """`note` names the fit in the progress line logged before a fit that is not cached (a fit can
        take minutes; the caller logs when it is done)."""
        key = self.key(name, cfg, train_ids, test_ids, unlabelled_ids)
        pred_path, info_path = self.folder / f"{key}.parquet", self.folder / f"{key}.json"
        if self.enabled and pred_path.is_file() and info_path.is_file():
            return pd.read_parquet(pred_path).set_index("clip_id").reindex(test_ids), json.loads(info_path.read_text())
        self.fitted += 1
        self.log(f"{note or name}: fitting on {len(train_ids)} clips (fit {self.fitted} of this run, "
                 f"{time.strftime('%H:%M:%S')}) ...")
        pred, info = fit_predict(name, cfg, data, labels, train_ids, test_ids, unlabelled_ids)
        if self.enabled:
            frame = pred.reindex(test_ids).rename_axis("clip_id").reset_index()
            write_parquet(frame, pred_path, "talkqa.benchmark.part", key)
            atomic_write_json(info_path, info)
        return pred, info


def run_benchmark(config: BenchmarkConfig, out_dir: str | Path, log: Callable[[str], None] | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Cross-validate every strategy (and ablation) into `out_dir`. `log(message)` after each fit and
    analysis step; `progress(done, total, label)` after each strategy x fold fit."""
    log = log or (lambda msg: None)
    if not config.store or not config.labels:
        raise UsageError("benchmark needs a store and labels (set them in the config or pass --store/--labels)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    data = load_store(config.store)
    labels = load_labels(config.labels, config.diagnostics, config.pairs)
    ids = common_clips(data, labels)
    # Clips of the store without labels only ever serve self-supervised pre-training; every labelled
    # clip is in exactly one test fold, so none of them is in this list.
    unlabelled = [c for c in data.clip_ids if c not in set(ids)]
    groups = labels.groups(ids)
    folds = group_folds(groups, config.folds, config.seed)
    fit_predict_cached = CachedFitPredict(out_dir / "parts", data, labels, config.cache, log)
    runs = [(name, name, "strategy", config) for name in config.strategies]
    if config.ablations:
        runs += [(label, config.ablation_strategy, "ablation", c)
                 for label, c in ablation_configs(config, data.expert_names).items()]
    y_all = labels.table.reindex(ids)[[c for c in LABEL_COLUMNS if c in labels.table]]
    rows, timings, details = [], {label: 0.0 for label, *_ in runs}, {label: [] for label, *_ in runs}
    n_fits = len(folds) * len(runs)
    for f, (tr, te) in enumerate(folds):
        train_ids, test_ids = [ids[i] for i in tr], [ids[i] for i in te]
        for i, (label, name, kind, cfg) in enumerate(runs):
            t0 = time.time()
            pred, info = fit_predict_cached(name, cfg, data, labels, train_ids, test_ids, unlabelled,
                                            note=f"fold {f + 1}/{len(folds)} {label}")
            timings[label] += time.time() - t0
            details[label].append(info)
            log(f"fold {f + 1}/{len(folds)} {label}: {time.time() - t0:.1f} s")
            if progress:
                progress(f * len(runs) + i + 1, n_fits, f"{label} fold {f + 1}/{len(folds)}")
            block = pd.DataFrame({"clip_id": test_ids, "speaker": groups[te], "fold": f, "strategy": label,
                                  "kind": kind})
            for dim in DIMENSION_NAMES:
                block[f"pred_{dim}"] = pred[dim].to_numpy(float) if dim in pred else np.nan
            rows.append(block)
    predictions = pd.concat(rows, ignore_index=True)
    y_long = y_all.reindex(predictions["clip_id"]).reset_index(drop=True)
    predictions = pd.concat([predictions, y_long], axis=1)

    results = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "config_hash": stable_hash(config.model_dump(mode="json")),
               "store": str(data.root), "labels": str(labels.source), "n_clips": len(ids),
               "n_speakers": int(len(set(groups))), "n_sources": int(len(set(labels.sources(ids)))),
               "n_unlabelled": len(unlabelled), "n_folds": len(folds),
               "dimensions": labels.dimensions, "experts": data.schema()["experts"],
               "metrics": ["srcc", "krcc", "plcc", "rmse"] + (["pairwise_accuracy"] if labels.pairs is not None else []),
               "strategies": {}, "ablations": {}, "descriptions": {}, "timings_s": {k: round(v, 2) for k, v in timings.items()},
               "fit_details": {k: v for k, v in details.items() if any(v)}}
    inter_pred = {}
    for label, name, kind, _ in runs:
        sub = predictions[predictions["strategy"] == label].set_index("clip_id")
        pred = sub[[f"pred_{d}" for d in DIMENSION_NAMES]].rename(columns=lambda c: c[5:])
        results["strategies" if kind == "strategy" else "ablations"][label] = _metrics_for(
            pred, sub[y_all.columns], labels.pairs, config)
        results["descriptions"][label] = STRATEGIES.get(name).description
        inter_pred[label] = inter_task(pred)
    results["inter_task"] = {"labels": inter_task(y_all.rename(columns=lambda c: c[4:])), "predictions": inter_pred}
    results["differences"] = srcc_differences(predictions, results["strategies"], config)
    results["learning_curve"] = learning_curve(config, data, labels, ids, folds, unlabelled, predictions,
                                               fit_predict_cached, log) if config.learning_curve.sizes else {}
    results["shap"] = _shap(config, data, labels, ids, out_dir, log) if config.shap else {}
    results["elapsed_s"] = round(time.time() - t_start, 1)

    write_parquet(predictions, out_dir / "predictions.parquet", "talkqa.benchmark",
                  stable_hash(config.model_dump(mode="json")))
    atomic_write_json(out_dir / "results.json", results)
    save_config(config, out_dir / "config.yaml")

    render_report(out_dir)
    return results


def _shap(config: BenchmarkConfig, data, labels, ids, out_dir: Path, log) -> dict:
    """Explain the stacking model fitted on every labelled clip (the model one would ship)."""

    model = StackingRegressor(config.stacking).fit(data, labels, ids)
    out = {}
    for dim in [d for d in config.shap_dimensions if d in model.models_]:
        exp = explain(model, data, ids, dim)
        paths = plot_explanation(exp, out_dir / "shap", model.featurizer_.group_of_, config.stacking.max_display,
                                 config.stacking.waterfall_clips)
        rel = lambda p: str(Path(p).relative_to(out_dir))
        out[dim] = {"groups": {k: round(float(v), 5) for k, v in exp.group_importance(model.featurizer_.group_of_).items()},
                    "top_features": {k: round(float(v), 5) for k, v in exp.feature_importance().head(15).items()},
                    "base_value": exp.base_value,
                    "plots": {k: [rel(p) for p in v] if isinstance(v, list) else rel(v) for k, v in paths.items()}}
        log(f"shap {dim}: done")
    return out
