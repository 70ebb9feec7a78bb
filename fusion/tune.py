"""Optuna search for the fusion model, the way stacking tunes LightGBM (stacking/model.py `tune`): TPE
trials scored on speaker-grouped inner folds of the training clips only, so the clips a benchmark
evaluates on never choose the settings.

Searched: width, depth (cross-attention blocks, per-modality encoder layers, tabular layers), dropout,
learning rate, the ranking / contrastive / diagnostic loss weights and the task weighting scheme.
Pre-training is switched off inside the trials (it does not change which heads fit best and would
multiply the cost); the chosen config pre-trains once, when enabled.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from talkqa.labels import Labels
from talkqa.splits import group_folds
from talkqa.store_data import StoreData
from talkqa.tasks import DIMENSION_NAMES

from .config import FusionConfig
from .weighting import WEIGHTINGS


def suggest(trial, base: FusionConfig) -> FusionConfig:
    """The trial's config: `base` with the searched fields replaced."""
    cfg = base.model_copy(deep=True)
    width = trial.suggest_categorical("width", [32, 64, 128])
    m = cfg.model
    m.heads = 4
    m.width = width
    m.layers = trial.suggest_int("layers", 1, 3)
    m.encoder_layers = trial.suggest_int("encoder_layers", 0, 2)
    m.tabular_layers = trial.suggest_int("tabular_layers", 0, 2)
    m.dropout = trial.suggest_float("dropout", 0.0, 0.3)
    cfg.train.lr = trial.suggest_float("lr", 3e-4, 5e-3, log=True)
    cfg.train.weighting = trial.suggest_categorical("weighting", WEIGHTINGS.names())
    cfg.loss.ranking_weight = trial.suggest_float("ranking_weight", 0.0, 1.0)
    cfg.loss.contrastive_weight = trial.suggest_float("contrastive_weight", 0.0, 0.3)
    cfg.loss.diagnostic_weight = trial.suggest_float("diagnostic_weight", 0.0, 0.5)
    return cfg


def _score(pred, labels: Labels, ids: list[str], tasks: list[str], objective: str) -> float:
    """Lower is better: mean RMSE on the 1-5 scale, or 1 - mean SRCC, over the labelled tasks."""
    from scipy.stats import spearmanr  # lazy: slow import (fusion models load this module to score)

    y = labels.y(ids)
    vals = []
    for t in tasks:
        k = DIMENSION_NAMES.index(t)
        p, yt = pred[t].to_numpy(float), y[:, k]
        ok = np.isfinite(p) & np.isfinite(yt)
        if ok.sum() < 3:
            continue
        if objective == "rmse":
            vals.append(float(np.sqrt(np.mean((p[ok] - yt[ok]) ** 2))))
        else:
            r = spearmanr(p[ok], yt[ok])[0] if np.ptp(p[ok]) > 0 and np.ptp(yt[ok]) > 0 else 0.0
            vals.append(1.0 - float(np.nan_to_num(r)))
    return float(np.mean(vals)) if vals else float("inf")


def tune_fusion(config: FusionConfig, data: StoreData, labels: Labels, clip_ids: list[str],
                fit: Callable[[FusionConfig, list[str]], object], log=None) -> tuple[FusionConfig, dict]:
    """(the best config, with tuning switched off; a summary of the trials). `fit(config, train_ids)`
    returns a fitted model with `predict(data, ids)` and `tasks_` (the trainer passes itself)."""
    import optuna  # lazy: slow import, only on this path

    tc = config.tune
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = group_folds(labels.groups(clip_ids), tc.folds, tc.seed)
    base = config.model_copy(deep=True)
    base.tune.n_trials = 0
    base.pretrain.enabled = False
    if tc.epochs:
        base.train.epochs = tc.epochs
        base.train.patience = min(base.train.patience, tc.epochs)

    def objective(trial):
        cfg = suggest(trial, base)
        losses = []
        for tr, te in folds:
            train_ids, test_ids = [clip_ids[i] for i in tr], [clip_ids[i] for i in te]
            model = fit(cfg, train_ids)
            losses.append(_score(model.predict(data, test_ids), labels, test_ids, model.tasks_, tc.objective))
        value = float(np.mean(losses))
        if log:
            log({"tune": {"trial": trial.number, "value": round(value, 4), **trial.params}})
        return value

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=tc.seed))
    study.optimize(objective, n_trials=tc.n_trials)
    best = suggest(optuna.trial.FixedTrial(study.best_params), config.model_copy(deep=True))
    best.tune.n_trials = 0
    summary = {"objective": tc.objective, "folds": len(folds), "n_trials": tc.n_trials,
               "best_value": round(float(study.best_value), 5), "best_params": study.best_params,
               "trials": [{"value": None if t.value is None else round(float(t.value), 5), **t.params}
                          for t in study.trials]}
    return best, summary
