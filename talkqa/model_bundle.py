"""A trained talkqa model: one self-describing folder that `talkqa score` loads.

    model.json      format, name, version, talkqa version, created; the experts it expects (name,
                    version, weights hash, config, dim, modality); the extraction config and its hash;
                    the input schema (hand-crafted columns, expert columns); how the final score is
                    formed (`combine`); per-dimension diagnostic thresholds; training data summary and
                    validation metrics
    model_card.md   the same for people
    train.yaml      the BundleConfig used (configs/train/default.yaml documents every field)
    extract.yaml    the ExtractConfig of the training store: scoring extracts with exactly this
    fusion/         FusionRegressor.save (weights, config, schema, versions)
    stacking/       StackingRegressor.save (LightGBM boosters, featurizer state, ridge meta-learners)

`train_bundle` writes one from a store + labels; `load_bundle` reads it back and refuses, with one
message that says what differs and what to do, a bundle whose experts or features this installation
cannot reproduce.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from pydantic import Field

from . import __version__
from .config import ExtractConfig, StrictModel, load_config, save_config, stable_hash
from .errors import TalkqaError, UsageError
from .store import atomic_write_json, atomic_write_text, parquet_meta
from .tasks import DIMENSION_NAMES, LABEL_COLUMNS

from fusion.config import FusionConfig
from stacking.config import StackingConfig

FORMAT = 1
REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRAIN_CONFIG = REPO / "configs" / "train" / "default.yaml"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"


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


class BundleConfig(StrictModel):
    name: str = Field("talkqa-default", description="model name reported with every score")
    version: str = Field("1", description="model version reported with every score")
    description: str = Field("", description="one paragraph for the model card")
    combine: Literal["fusion", "stacking", "mean"] = Field(
        "mean", description="final per-dimension score: the fusion Transformer, the LightGBM stack, or their mean")
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


class ModelMismatchError(UsageError):
    """The bundle needs experts or features this installation does not provide (exit status 2)."""


# ------------------------------------------------------------------------------------------ training
def _expert_entries(data, names: list[str], overrides: dict[str, list[str]]) -> dict[str, dict]:
    """name -> what scoring must reproduce; refuses a store embedded with other expert settings."""
    from .embed import create_expert

    out = {}
    for name in names:
        expert = create_expert(name, overrides=overrides.get(name, []))
        meta = parquet_meta(data.root / "experts" / f"{name}.parquet")
        problems = [f"{k} {meta.get(k)!r} in the store vs {v!r} configured"
                    for k, v in (("version", expert.version), ("params_hash", expert.params_hash()),
                                 ("weights_hash", expert.weights_hash())) if str(meta.get(k, "")) != str(v)]
        if problems:
            raise UsageError(f"expert {name!r}: {'; '.join(problems)}; set expert_overrides.{name} to the --set values "
                             f"the store was embedded with, or re-run `talkqa embed --store {data.root} --experts {name}`")
        out[name] = {"version": expert.version, "weights_hash": expert.weights_hash(), "params_hash": expert.params_hash(),
                     "config": expert.config.model_dump(mode="json"), "dim": expert.dim, "modality": expert.modality,
                     "scalars": expert.columns()}
    return out


def _point_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float | int | None]:
    """The benchmark's metrics (fusion.metrics) on the finite pairs; None where fewer than 3."""
    from fusion.metrics import point_metrics

    ok = np.isfinite(pred) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3:
        return {"n": n, "srcc": None, "krcc": None, "plcc": None, "rmse": None}
    return {"n": n, **{k: round(v, 4) for k, v in point_metrics(pred[ok], y[ok]).items()}}


def _val_metrics(fusion_pred, stack_oof, labels, val_ids: list[str]) -> dict:
    """Per dimension and strategy on the validation speakers. Fusion never trained on them (they only
    stopped it); stacking's figures are its speaker-grouped out-of-fold level-1 predictions."""
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


def _thresholds(fusion, data, labels, val_ids: list[str], cfg: DiagnosticsConfig) -> dict[str, dict]:
    """Per dimension: the window-flag threshold and how it was chosen (see DiagnosticsConfig.threshold)."""
    from fusion.data import window_targets

    fixed = cfg.threshold if cfg.threshold != "auto" else None
    out = {d: {"threshold": fixed if fixed is not None else cfg.default_threshold,
               "source": "config" if fixed is not None else "default (no labelled problem windows on validation)"}
           for d in DIMENSION_NAMES}
    if fixed is not None or not val_ids or labels.diagnostics is None:
        return out
    probs = fusion.predict_windows(data, val_ids)
    targets = window_targets(labels, data, val_ids)
    ids = [c for c in val_ids if c in probs and c in targets]
    if not ids:
        return out
    p = np.concatenate([probs[c][list(DIMENSION_NAMES)].to_numpy() for c in ids])
    t = np.concatenate([targets[c][: len(probs[c])] for c in ids]) > 0.5
    lo, hi = cfg.threshold_range
    grid = np.round(np.arange(lo, hi + 1e-9, 0.05), 2)
    for k, dim in enumerate(DIMENSION_NAMES):
        if t[:, k].sum() == 0:
            continue
        score = []
        for th in grid:
            flag = p[:, k] > th
            tp = float((flag & t[:, k]).sum())
            precision, recall = tp / max(flag.sum(), 1), tp / t[:, k].sum()
            score.append(1.25 * precision * recall / max(0.25 * precision + recall, 1e-9))  # F0.5
        best = len(score) - 1 - int(np.argmax(score[::-1]))  # ties: the highest (most conservative) threshold
        source = "validation window F0.5" if score[best] > 0 else \
            "validation: no threshold caught a labelled problem window, so the most conservative one"
        out[dim] = {"threshold": float(grid[best]), "source": source, "f05": round(score[best], 4),
                    "positive_windows": int(t[:, k].sum()), "windows": int(len(t))}
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


def train_bundle(store_dirs: str | Path | list, labels_paths: str | Path | list, out_dir: str | Path,
                 config: BundleConfig, log: Callable[[str], None] | None = None, command: str | None = None) -> Path:
    """Train on one store + label file, or on several (one label file for all, or one per store): the
    stores must share the extraction config and the experts, and their clip ids must not overlap."""
    from fusion.data import common_clips, load_labels, load_store, merge_labels, merge_store_data
    from fusion.train import FusionRegressor, speaker_split
    from stacking.model import StackingRegressor

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
    experts = _expert_entries(data, data.expert_names, config.expert_overrides)
    groups = labels.groups(ids)
    tcfg = config.fusion.train
    train_ids, val_ids = speaker_split(ids, groups, tcfg.val_share, tcfg.seed)
    log(f"{len(ids)} labelled clips, {len(set(groups))} speakers: fusion trains on {len(train_ids)}, "
        f"stops early on {len(val_ids)} clips of held-out speakers")
    fusion = FusionRegressor(config.fusion, config.device).fit(
        data, labels, train_ids, val_ids, log=lambda h: log(f"fusion epoch {h['epoch']}: val loss {h['val_loss']:.4f}"))
    log(f"fusion: best val loss {fusion.best_val_loss_:.4f} after {len(fusion.history_)} epochs")
    stacking = StackingRegressor(config.stacking).fit(data, labels, ids)
    log("stacking: fitted on every labelled clip")
    metrics = _val_metrics(fusion.predict(data, val_ids) if val_ids else None, stacking.oof_, labels, val_ids)
    thresholds = _thresholds(fusion, data, labels, val_ids, config.diagnostics)

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
        "training_data": {"stores": [str(p.resolve()) for p in store_dirs], "labels": [str(p.resolve()) for p in labels_paths],
                          "clips": len(ids), "speakers": int(len(set(groups))), "fusion_train_clips": len(train_ids),
                          "val_clips": len(val_ids), "val_speakers": int(len(set(labels.groups(val_ids)))) if val_ids else 0,
                          "label_means": label_means,
                          "diagnostics_labels": labels.diagnostics is not None},
        "val_metrics": metrics,
        "fusion_training": {"epochs_run": len(fusion.history_), "best_val_loss": round(fusion.best_val_loss_, 5)},
        "environment": {"python": platform.python_version(), "torch": _version("torch"),
                        "lightgbm": _version("lightgbm")},
        "command": command or "talkqa " + " ".join(sys.argv[1:]),
        "train_seconds": round(time.time() - t0, 1),
    }
    meta["config_hash"] = stable_hash(config.model_dump(mode="json"))
    atomic_write_json(out_dir / "model.json", meta)
    atomic_write_text(out_dir / "model_card.md", model_card(meta))
    return out_dir


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return ""


_COMBINE_WHY = {
    "mean": "the mean of the fusion Transformer and the LightGBM stack: the two err differently (attention over "
            "token sequences vs trees on pooled statistics), so their mean is steadier than either on small "
            "training sets; the validation table below shows all three",
    "fusion": "the fusion Transformer alone",
    "stacking": "the LightGBM stack alone",
}


def model_card(meta: dict) -> str:
    td = meta["training_data"]
    lines = [f"# {meta['name']} {meta['version']} — talkqa model card", "",
             meta.get("description") or "Scores talking-face videos on five 1–5 MOS dimensions with diagnostics.", "",
             f"- created {meta['created']} with talkqa {meta['talkqa_version']}; command: `{meta['command']}`",
             f"- final score per dimension (`combine: {meta['combine']}`): {_COMBINE_WHY[meta['combine']]}",
             f"- extraction config hash `{meta['extraction']['params_hash']}` (extract.yaml beside this card; scoring "
             "extracts with it)", "",
             "## Experts it needs", "", "| expert | version | weights hash | dim | modality |", "|---|---|---|---|---|"]
    for name, e in meta["experts"].items():
        lines.append(f"| {name} | {e['version']} | `{e['weights_hash']}` | {e['dim']} | {e['modality']} |")
    if not meta["experts"]:
        lines.append("| (none: hand-crafted features only) | | | | |")
    lines += ["", "## Training data", "",
              f"- stores: {', '.join(td['stores'])}; labels: {', '.join(td['labels'])}",
              f"- {td['clips']} labelled clips of {td['speakers']} speakers; fusion trained on {td['fusion_train_clips']}, "
              f"early-stopped on {td['val_clips']} clips of {td['val_speakers']} held-out speakers; stacking fitted on all",
              f"- label means: " + ", ".join(f"{k} {v:.2f}" for k, v in td["label_means"].items()), "",
              "## Validation (held-out speakers)", "",
              "| dimension | n | fusion SRCC | stacking (OOF) SRCC | mean SRCC | mean RMSE |", "|---|---|---|---|---|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    for dim, m in meta["val_metrics"].items():
        lines.append(f"| {dim} | {m['mean']['n']} | {fmt(m['fusion']['srcc'])} | {fmt(m['stacking']['srcc'])} | "
                     f"{fmt(m['mean']['srcc'])} | {fmt(m['mean']['rmse'])} |")
    lines += ["", "## Diagnostics", "",
              "A 1 s window is flagged for a dimension when the fusion model's per-window problem probability exceeds "
              "the threshold below; adjacent flagged windows merge into one segment.", "",
              "| dimension | threshold | chosen by |", "|---|---|---|"]
    for dim, t in meta["diagnostic_thresholds"].items():
        extra = f" (F0.5 {t['f05']:.2f} on {t['positive_windows']} of {t['windows']} windows)" if "f05" in t else ""
        lines.append(f"| {dim} | {t['threshold']:.2f} | {t['source']}{extra} |")
    lines += ["", "## Known limits", "",
              "- Labels of degrade corpora are pseudo-MOS from a monotone severity rule, not human ratings.",
              "- Validation sets are small; treat the figures above as a sanity check, not a benchmark "
              "(`talkqa benchmark` cross-validates properly).",
              "- Without an audio track, lip_sync, audio_quality and consistency are not scored.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ loading
@dataclass
class Bundle:
    folder: Path
    meta: dict
    config: BundleConfig
    extract_config: ExtractConfig
    fusion: Any  # fusion.train.FusionRegressor
    stacking: Any  # stacking.model.StackingRegressor

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def expert_names(self) -> list[str]:
        return list(self.meta["experts"])

    def thresholds(self) -> dict[str, float]:
        return {d: float(v["threshold"]) for d, v in self.meta["diagnostic_thresholds"].items()}

    def create_experts(self, device: str = "cpu") -> dict:
        """The experts as trained (recorded config), weights loaded."""
        from experts import EXPERTS

        out = {}
        for name, entry in self.meta["experts"].items():
            cls = EXPERTS.get(name)
            out[name] = cls(cls.config_cls.model_validate(entry["config"]), device=device).load()
        return out


def compatibility_problems(meta: dict) -> list[str]:
    """What this installation cannot reproduce of what the bundle was trained on (empty: all fine)."""
    from experts import EXPERTS
    from features.families import FAMILIES

    problems = []
    if meta.get("format") != FORMAT:
        problems.append(f"bundle format {meta.get('format')!r}, this talkqa reads format {FORMAT}")
        return problems
    for name, entry in meta["experts"].items():
        if name not in EXPERTS:
            problems.append(f"expert {name!r} is not registered here (known: {', '.join(EXPERTS.names()) or 'none'})")
            continue
        cls = EXPERTS.get(name)
        if cls.version != entry["version"]:
            problems.append(f"expert {name!r} is version {cls.version} here, the model needs {entry['version']}")
            continue
        try:
            expert = cls(cls.config_cls.model_validate(entry["config"]))
        except Exception as exc:
            problems.append(f"expert {name!r}: recorded config is not valid here ({exc})")
            continue
        if expert.weights_hash() != entry["weights_hash"]:
            problems.append(f"expert {name!r} weights in {expert.weights_dir()} hash to {expert.weights_hash()}, "
                            f"the model was trained on {entry['weights_hash']}")
    try:
        cfg = ExtractConfig.model_validate(meta["extraction"]["config"])
        declared = {c for fam in cfg.features.families
                    for c in FAMILIES.create(fam, **cfg.features.params.get(fam, {})).columns()}
        missing = [c for c in meta["input_schema"]["handcrafted_columns"] if c not in declared]
        if missing:
            problems.append(f"hand-crafted feature(s) no longer computed: {', '.join(missing[:5])}"
                            + (f" (+{len(missing) - 5})" if len(missing) > 5 else ""))
    except Exception as exc:
        problems.append(f"recorded extraction config is not valid here ({str(exc).splitlines()[0]})")
    return problems


def read_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"model folder {folder} not found; pass --model DIR of a folder written by `talkqa train`")
    path = folder / "model.json"
    if not path.is_file():
        raise UsageError(f"{folder} is not a talkqa model folder (no model.json); train one with "
                         "`talkqa train --store STORE --labels MANIFEST --out DIR`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); retrain or restore the model folder") from None


def load_bundle(folder: str | Path | None = None, device: str = "cpu") -> Bundle:
    from fusion.train import FusionRegressor
    from stacking.model import StackingRegressor

    if folder is None:
        folder = DEFAULT_MODEL_DIR
        if not (folder / "model.json").is_file():
            raise UsageError(f"no default model is installed ({folder}); train one with `talkqa train --store STORE "
                             f"--labels MANIFEST --out {folder}` or pass --model DIR")
    folder = Path(folder)
    meta = read_meta(folder)
    problems = compatibility_problems(meta)
    if problems:
        raise ModelMismatchError(
            f"model {meta.get('name')} {meta.get('version')} ({folder}) does not match this installation: "
            + "; ".join(problems) + ". Use the talkqa version and expert weights it was trained with "
            f"(talkqa {meta.get('talkqa_version')}), or retrain it with `talkqa train` here")
    try:
        config = BundleConfig.model_validate(_yaml(folder / "train.yaml"))
        extract_config = ExtractConfig.model_validate(meta["extraction"]["config"])
        fusion = FusionRegressor.load(folder / "fusion", device)
        stacking = StackingRegressor.load(folder / "stacking")
    except TalkqaError as exc:
        raise UsageError(f"model folder {folder} is incomplete: {exc}") from None
    except Exception as exc:
        raise UsageError(f"model folder {folder} cannot be read ({type(exc).__name__}: {exc}); retrain it") from None
    if extract_config.params_hash() != meta["extraction"]["params_hash"]:
        raise ModelMismatchError(f"model {folder}: its extraction config hashes to {extract_config.params_hash()} "
                                 f"here, {meta['extraction']['params_hash']} when trained (a changed config default?); "
                                 "retrain it with this talkqa")
    return Bundle(folder, meta, config, extract_config, fusion, stacking)


def _yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise TalkqaError(f"{path.name} missing")
    return yaml.safe_load(path.read_text()) or {}


__all__ = ["BundleConfig", "Bundle", "train_bundle", "load_bundle", "ModelMismatchError", "DEFAULT_MODEL_DIR",
           "DEFAULT_TRAIN_CONFIG", "LABEL_COLUMNS"]
