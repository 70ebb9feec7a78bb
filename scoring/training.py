"""`talkqa train`: one self-describing model folder (see scoring/bundle.py) from stores + labels."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from talkqa import __version__
from talkqa.config import ExtractConfig, load_config, save_config, stable_hash
from talkqa.errors import UsageError
from talkqa.experts.embed import create_expert
from talkqa.fusion.train import FusionRegressor, speaker_split
from talkqa.labels import Labels, common_clips, load_labels, merge_labels
from talkqa.stacking.model import StackingRegressor
from talkqa.store import atomic_write_json, atomic_write_text, parquet_meta
from talkqa.store_data import StoreData, load_store, merge_store_data
from talkqa.tasks import DIMENSION_NAMES

from .bundle_config import FORMAT, BundleConfig
from .metrics import point_metrics
from .model_card import model_card
from .overall_direct import MIN_CLIPS, fit_direct_part, oof_direct_parts
from .overall_rule import overall_from_dimensions
from .thresholds import diagnostic_thresholds


def _expert_entries(store_dirs: list[Path], names: list[str], overrides: dict[str, list[str]]) -> dict[str, dict]:
    """name -> what scoring must reproduce; refuses a store embedded with other expert settings, and stores
    that mix out-of-fold readings (`embed --out-of-fold`) with the expert's own: the model learns one kind."""
    out = {}
    for name in names:
        expert = create_expert(name, overrides=overrides.get(name, []))
        folds = {}
        for root in store_dirs:
            meta = parquet_meta(Path(root) / "experts" / f"{name}.parquet")
            problems = [f"{k} {meta.get(k)!r} in the store vs {v!r} configured"
                        for k, v in (("version", expert.version), ("params_hash", expert.params_hash()),
                                     ("weights_hash", expert.weights_hash())) if str(meta.get(k, "")) != str(v)]
            if problems:
                raise UsageError(f"expert {name!r}: {'; '.join(problems)}; set expert_overrides.{name} to the --set "
                                 f"values the store was embedded with, or re-run `talkqa embed --store {root} "
                                 f"--experts {name}`")
            folds[str(root)] = meta.get("out_of_fold")
        if len({json.dumps(f, sort_keys=True) for f in folds.values()}) > 1:
            kinds = "; ".join(f"{r}: " + (f"out of fold ({', '.join(x['weights'] for x in f)})" if f else "its own weights")
                              for r, f in folds.items())
            raise UsageError(f"expert {name!r}: the stores were not embedded alike ({kinds}); embed every training "
                             "store the same way")
        out[name] = {"version": expert.version, "weights_hash": expert.weights_hash(), "params_hash": expert.params_hash(),
                     "config": expert.config.model_dump(mode="json"), "dim": expert.dim, "modality": expert.modality,
                     "scalars": expert.columns()}
        fold_info = next(iter(folds.values()), None)
        if fold_info:
            out[name]["training_readings"] = {"out_of_fold": fold_info}
    return out


def _point_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float | int | None]:
    """The benchmark's metrics (scoring/metrics.py) on the finite pairs; None where fewer than 3."""
    ok = np.isfinite(pred) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return {"n": n, "srcc": None, "krcc": None, "plcc": None, "rmse": None}
    return {"n": n, **{k: round(v, 4) for k, v in point_metrics(pred[ok], y[ok]).items()}}


def _val_metrics(fusion_pred, stack_oof, labels, val_ids: list[str]) -> dict:
    """Per dimension and strategy on the validation speakers. Fusion never trained on them (they only
    stopped it); stacking's figures are its speaker-grouped out-of-fold predictions, through its level 2
    and calibration as when it scores (`StackingRegressor.oof_scores`)."""
    if not val_ids:
        return {}
    y = labels.y(val_ids)
    out = {}
    for k, dim in enumerate(DIMENSION_NAMES):
        if not np.isfinite(y[:, k]).any():
            continue
        f = fusion_pred.reindex(val_ids)[dim].to_numpy(float) if dim in fusion_pred else np.full(len(val_ids), np.nan)
        s = stack_oof.reindex(val_ids)[dim].to_numpy(float) if stack_oof is not None and dim in stack_oof \
            else np.full(len(val_ids), np.nan)
        out[dim] = {"fusion": _point_metrics(f, y[:, k]), "stacking": _point_metrics(s, y[:, k]),
                    "mean": _point_metrics(np.nanmean(np.stack([f, s]), 0) if np.isfinite(s).any() else f, y[:, k])}
    return out


def _rule_overall_metrics(stack_oof, labels, val_ids: list[str], config: BundleConfig,
                          direct_oof: pd.Series | None = None) -> dict:
    """Validation figures of overall as `overall_from: dimensions` forms it, from the stack's out-of-fold
    dimension scores of the validation clips (and the direct part out of fold, `direct_oof`, when the model has
    one)."""
    rows = stack_oof.reindex(val_ids)
    direct = np.zeros(len(val_ids)) if direct_oof is None else direct_oof.reindex(val_ids).fillna(0.0).to_numpy()
    pred = np.array([np.nan if (v := overall_from_dimensions(r, config.overall_rule, p)) is None else v
                     for r, p in zip(rows.to_dict("records"), direct)])
    return _point_metrics(pred, labels.y(val_ids)[:, DIMENSION_NAMES.index("overall")])


def fit_overall_direct(config: BundleConfig, data, labels, clip_ids: list[str]) -> tuple[dict | None, pd.Series | None]:
    """The direct overall part of `config.overall_direct` fitted on the training clips (model.json's
    `overall_direct`) and each clip's part out of fold (for the validation figures); (None, None) for a model
    without one."""
    spec = config.overall_direct
    if spec is None or config.overall_from != "dimensions":
        return None, None
    part = fit_direct_part(spec, data, labels, clip_ids, config.overall_rule)
    oof = pd.Series(oof_direct_parts(spec, data, labels, clip_ids, config.overall_rule), index=clip_ids)
    return part.to_dict(), oof


COMBINE_CHOICES = ("mean", "fusion", "stacking")  # mean first: it wins ties


def choose_combine(val_metrics: dict, margin: float, metric: str = "srcc") -> dict[str, dict]:
    """Per dimension: the way of combining (fusion, stacking, mean) with the best validation `metric`
    (srcc: the order of the clips, higher is better; rmse: the level of the scores, lower is better); the
    mean stays unless another beats it by more than `margin` (validation sets are small, the mean is
    steadier). A dimension without validation figures gets the mean."""
    sign = -1.0 if metric == "rmse" else 1.0  # compare as "higher is better"
    out = {}
    for dim in DIMENSION_NAMES:
        m = val_metrics.get(dim, {})
        got = {k: (m.get(k) or {}).get(metric) for k in COMBINE_CHOICES}
        got = {k: v for k, v in got.items() if v is not None}
        if not got:
            out[dim] = {"choice": "mean", "why": "no validation figures"}
            continue
        best = max(got, key=lambda k: (sign * got[k], k == "mean"))
        base = got.get("mean")
        choice = best if base is None or sign * (got[best] - base) > margin else "mean"
        why = ", ".join(f"{k} {v:.3f}" for k, v in got.items())
        out[dim] = {"choice": choice, "why": f"validation {metric.upper()} {why}"}
    return out


def _store_extract_config(store_dir: Path) -> ExtractConfig:
    extract_yaml = store_dir / "extract.yaml"
    if not extract_yaml.is_file():
        raise UsageError(f"{store_dir} has no extract.yaml; point --store at a folder written by `talkqa extract`")
    extract_config = load_config(ExtractConfig, extract_yaml)
    stored_hash = parquet_meta(store_dir / "handcrafted.parquet").get("params_hash") \
        if (store_dir / "handcrafted.parquet").is_file() else None
    if stored_hash and stored_hash != extract_config.params_hash():
        raise UsageError(f"{store_dir}: handcrafted.parquet was written with params {stored_hash}, but extract.yaml "
                         f"hashes to {extract_config.params_hash()}; re-run `talkqa extract` into this store")
    return extract_config


def ceiling_only_clips(stores: list[Path], label_files: list[Path], trained: set[str],
                       labels: Labels) -> tuple[list[str], StoreData | None, Labels | None]:
    """The labelled clips of the ceiling-only stores (`--ceiling-store` / `--ceiling-labels`, in pairs) as
    (clip ids, their StoreData, their Labels), for `StackingRegressor.fit` / `fit_ceilings(ceiling_only=...)`;
    checked to be new clips of the speakers of the `trained` clips (labelled in `labels`): a ceiling fitted on
    other speakers would be validated on nobody's folds."""
    stores, label_files = [Path(p) for p in stores], [Path(p) for p in label_files]
    if not stores and not label_files:
        return [], None, None
    if len(stores) != len(label_files):
        raise UsageError(f"{len(stores)} --ceiling-store but {len(label_files)} --ceiling-labels: give one "
                         "--ceiling-labels per --ceiling-store, in the same order")
    parts = [(load_store(s), load_labels(f)) for s, f in zip(stores, label_files)]
    for (part, part_labels), store, label_file in zip(parts, stores, label_files):
        if not set(part.clip_ids) & set(part_labels.table.index):
            raise UsageError(f"the ceiling-only store {store} shares no clip id with its labels {label_file}; give "
                             "each --ceiling-store the manifest its clips were extracted from as --ceiling-labels")
    data = merge_store_data([part for part, _ in parts])
    extra_labels = merge_labels([part_labels for _, part_labels in parts])
    ids = common_clips(data, extra_labels)
    if again := sorted(set(ids) & trained):
        where = next(s for (part, _), s in zip(parts, stores) if again[0] in set(part.clip_ids))
        raise UsageError(f"{len(again)} ceiling-only clips are training clips already (e.g. {again[0]} in {where}): "
                         "a ceiling-only corpus needs its own clip ids (shared_manifest.py --id-prefix)")
    speakers = set(labels.groups(sorted(trained)))
    if strangers := sorted(set(extra_labels.groups(ids)) - speakers):
        where = next(f for (_, part_labels), f in zip(parts, label_files)
                     if strangers[0] in set(part_labels.table["speaker"]))
        raise UsageError(f"ceiling-only clips of {len(strangers)} speakers not among the training clips' (e.g. "
                         f"{strangers[0]} in {where}): build that corpus from the same training speakers")
    return ids, data, extra_labels


def ceiling_only_record(clip_ids: list[str], stores: list[Path], label_files: list[Path]) -> dict:
    """model.json `training_data.ceiling_only` (the model card lists it)."""
    return {"clips": len(clip_ids), "stores": [str(Path(p).resolve()) for p in stores],
            "labels": [str(Path(p).resolve()) for p in label_files]}


def train_bundle(store_dirs: str | Path | list, labels_paths: str | Path | list, out_dir: str | Path,
                 config: BundleConfig, log: Callable[[str], None] | None = None, command: str | None = None,
                 ceiling_stores: list[Path] = (), ceiling_labels: list[Path] = ()) -> Path:
    """Train on one store + label file, or on several (one label file for all, or one per store): the
    stores must share the extraction config and the experts, and their clip ids must not overlap.
    `ceiling_stores` / `ceiling_labels` (in pairs): more labelled clips of the training speakers that only the
    evidence ceilings are fitted on (`ceiling_only_clips`); the model equals the one trained without them and
    then given them by benchmarks/add_ceilings.py --ceiling-store."""
    log = log or (lambda msg: None)
    t0 = time.time()
    store_dirs = [Path(p) for p in (store_dirs if isinstance(store_dirs, (list, tuple)) else [store_dirs])]
    labels_paths = [Path(p) for p in (labels_paths if isinstance(labels_paths, (list, tuple)) else [labels_paths])]
    if not store_dirs:
        raise UsageError("give at least one --store")
    if len(labels_paths) not in (1, len(store_dirs)):
        raise UsageError(f"{len(store_dirs)} stores but {len(labels_paths)} label files: give one --labels for all "
                         "stores or one per --store, in the same order")
    out_dir = Path(out_dir)
    extract_config = _store_extract_config(store_dirs[0])
    for other in store_dirs[1:]:
        if _store_extract_config(other).params_hash() != extract_config.params_hash():
            raise UsageError(f"{other} was extracted with another config than {store_dirs[0]} (compare their "
                             "extract.yaml); a model scores with one extraction, so re-extract one of them")
    data = merge_store_data([load_store(p, config.experts) for p in store_dirs])
    label_parts = [load_labels(p) for p in labels_paths]
    if len(label_parts) > 1 and any(p.diagnostics is None for p in label_parts):
        log("warning: not every label file has diagnostics.parquet beside it; window diagnostics are not trained")
    labels = merge_labels(label_parts)
    if not data.experts:
        log("warning: the store has no expert outputs; the model uses hand-crafted features only")
    ids = common_clips(data, labels)
    extra_ids, extra_data, extra_labels = ceiling_only_clips(ceiling_stores, ceiling_labels, set(ids), labels)
    for other in ceiling_stores:
        if _store_extract_config(Path(other)).params_hash() != extract_config.params_hash():
            raise UsageError(f"the ceiling-only store {other} was extracted with another config than {store_dirs[0]} "
                             "(compare their extract.yaml); a ceiling must read what scoring reads, so re-extract it")
    if extra_ids:
        log(f"{len(extra_ids)} ceiling-only clips of {len(set(extra_labels.groups(extra_ids)))} training speakers: "
            "only the evidence ceilings are fitted on them"
            + ("" if config.stacking.ceilings else " (warning: stacking.ceilings is empty, so they change nothing)"))
    experts = _expert_entries(store_dirs, data.expert_names, config.expert_overrides)
    groups = labels.groups(ids)
    tcfg = config.fusion.train
    train_ids, val_ids = speaker_split(ids, groups, tcfg.val_share, tcfg.seed)
    log(f"{len(ids)} labelled clips, {len(set(groups))} speakers: fusion trains on {len(train_ids)}, "
        f"stops early on {len(val_ids)} clips of held-out speakers")
    unlabelled = [c for c in data.clip_ids if c not in set(ids)]  # only for self-supervised pre-training
    fusion = FusionRegressor(config.fusion, config.device).fit(
        data, labels, train_ids, val_ids, log=lambda h: log(_fusion_log_line(h)), unlabelled_ids=unlabelled)
    log(f"fusion: best val loss {fusion.best_val_loss_:.4f} after {len(fusion.history_)} epochs")
    stacking = StackingRegressor(config.stacking).fit(
        data, merge_labels([labels, extra_labels]) if extra_ids else labels, ids, log=log,
        ceiling_only=extra_ids, ceiling_data=extra_data)
    log("stacking: fitted on every labelled clip")
    stack_oof = stacking.oof_scores()
    metrics = _val_metrics(fusion.predict(data, val_ids) if val_ids else None, stack_oof, labels, val_ids)
    direct, direct_oof = fit_overall_direct(config, data, labels, ids)
    if direct is not None and direct["curve"] is None:  # a config naming a reading the stores lack must not pass silently
        log(f"warning: overall_direct: {direct['clips']} training clips read {direct['column']} at least as badly as "
            f"{direct['start']:g} (fewer than {MIN_CLIPS}, or the stores lack the column): the model has no direct part")
    if config.overall_from == "dimensions" and "overall" in metrics:
        metrics["overall"]["by_rule"] = _rule_overall_metrics(stack_oof, labels, val_ids, config, direct_oof)
    thresholds = diagnostic_thresholds(fusion, data, labels, val_ids, config.diagnostics)

    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "model.json").is_file():
        raise UsageError(f"{out_dir} exists and is not a talkqa model folder; choose an empty or new --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("fusion", "stacking"):
        if (out_dir / sub).is_dir():
            shutil.rmtree(out_dir / sub)
    fusion.save(out_dir / "fusion")
    stacking.save(out_dir / "stacking")
    save_config(config, out_dir / "train.yaml")
    save_config(extract_config, out_dir / "extract.yaml")

    y = labels.y(ids)
    label_means = {d: round(float(np.nanmean(y[:, k])), 4) for k, d in enumerate(DIMENSION_NAMES) if np.isfinite(y[:, k]).any()}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "name": config.name,
        "version": config.version,
        "description": config.description,
        "talkqa_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "combine": config.combine,
        "experts": experts,
        "extraction": {"config": extract_config.model_dump(mode="json"), "params_hash": extract_config.params_hash()},
        "input_schema": {"handcrafted_columns": list(data.feature_columns),
                         "fusion_columns": fusion.schema()["feature_columns"],
                         "stacking_columns": stacking.featurizer_.columns_,
                         "expert_scalars": list(data.scalars.columns),
                         "tasks": fusion.tasks_, "stacking_dimensions": stacking.dimensions_},
        "sync_sources": [s.model_dump() for s in config.sync_sources],
        "diagnostic_thresholds": thresholds,
        "diagnostics_only_below": config.diagnostics.only_below,  # also in train.yaml; here for the card
        "overall_from": config.overall_from,
        "overall_rule": config.overall_rule.model_dump(),
        "overall_direct": direct,
        "training_data": {"stores": [str(p.resolve()) for p in store_dirs], "labels": [str(p.resolve()) for p in labels_paths],
                          "clips": len(ids), "speakers": int(len(set(groups))), "fusion_train_clips": len(train_ids),
                          "val_clips": len(val_ids), "val_speakers": int(len(set(labels.groups(val_ids)))) if val_ids else 0,
                          "label_means": label_means,
                          "diagnostics_labels": labels.diagnostics is not None,
                          **({"ceiling_only": ceiling_only_record(extra_ids, ceiling_stores, ceiling_labels)}
                             if extra_ids else {})},
        "val_metrics": metrics,
        "ceilings": stacking.ceilings_summary(),
        "fusion_training": {"epochs_run": len(fusion.history_), "best_val_loss": round(fusion.best_val_loss_, 5),
                            "pretrained": bool(fusion.pretrain_history_),
                            "pretrain_eval": next((h for h in fusion.pretrain_history_[::-1] if "eval_align_accuracy" in h),
                                                  None),
                            "tuned": (getattr(fusion, "tuning_", None) or {}).get("best_params")},
        "environment": {"python": platform.python_version(), "torch": _version("torch"),
                        "lightgbm": _version("lightgbm")},
        "command": command or "talkqa " + " ".join(sys.argv[1:]),
        "train_seconds": round(time.time() - t0, 1),
    }
    if config.combine == "auto":
        meta["combine_per_dimension"] = choose_combine(metrics, config.combine_margin, config.combine_metric)
        log("combine (auto): " + ", ".join(f"{d} {c['choice']}" for d, c in meta["combine_per_dimension"].items()))
    meta["config_hash"] = stable_hash(config.model_dump(mode="json"))
    atomic_write_json(out_dir / "model.json", meta)
    atomic_write_text(out_dir / "model_card.md", model_card(meta))
    return out_dir


def _fusion_log_line(h: dict) -> str:
    if "epoch" in h:
        return f"fusion epoch {h['epoch']}: val loss {h['val_loss']:.4f}"
    return "fusion " + ", ".join(f"{k}: {v}" for k, v in h.items())


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return ""


def restack_model(source: str | Path, out: str | Path, bundle, stacking: StackingRegressor, config: BundleConfig,
                  data, labels, clip_ids: list[str], meta_updates: dict[str, Any]) -> dict:
    """Write a copy of the model folder `source` (loaded as `bundle`) with another stack: `stacking` fitted on
    `clip_ids` of `data` / `labels` (the clips the model was trained on), `config` as its train.yaml, and
    model.json's validation figures recomputed (the fusion's on its validation speakers, the stack's out of
    fold) and updated with `meta_updates`. The folder appears whole at `out` or not at all; `source` is left as
    it is. Returns the new model.json (for the benchmarks that give a model ceilings or bag its seeds)."""
    out = Path(out)
    _, val_ids = speaker_split(clip_ids, labels.groups(clip_ids), config.fusion.train.val_share, config.fusion.train.seed)
    stack_oof = stacking.oof_scores()
    metrics = _val_metrics(bundle.fusion.predict(data, val_ids) if val_ids else None, stack_oof, labels, val_ids)
    direct, direct_oof = fit_overall_direct(config, data, labels, clip_ids)
    if config.overall_from == "dimensions" and "overall" in metrics:
        metrics["overall"]["by_rule"] = _rule_overall_metrics(stack_oof, labels, val_ids, config, direct_oof)
    meta = {**bundle.meta, "version": config.version, "description": config.description, "val_metrics": metrics,
            "ceilings": stacking.ceilings_summary(), "overall_direct": direct, **meta_updates,
            "config_hash": stable_hash(config.model_dump(mode="json"))}
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        target = tmp / "model"
        shutil.copytree(source, target)
        shutil.rmtree(target / "stacking")
        stacking.save(target / "stacking")
        save_config(config, target / "train.yaml")
        atomic_write_json(target / "model.json", meta)
        atomic_write_text(target / "model_card.md", model_card(meta))
        target.rename(out)  # the folder appears whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta
