"""A trained talkqa model: one self-describing folder that `talkqa score` loads.

    model.json      format, name, version, talkqa version, created; the experts it expects (name,
                    version, weights hash, config, dim, modality); the extraction config and its hash;
                    the input schema (hand-crafted columns, expert columns); how the final score is
                    formed (`combine`); per-dimension diagnostic thresholds; training data summary and
                    validation metrics
    model_card.md   the same for people (scoring/model_card.py)
    train.yaml      the BundleConfig used (scoring/bundle_config.py)
    extract.yaml    the ExtractConfig of the training store: scoring extracts with exactly this
    fusion/         FusionRegressor.save (weights, config, schema, versions, and fusion.onnx + onnx.json)
    stacking/       StackingRegressor.save (LightGBM boosters, featurizer state, ridge meta-learners)

`train_bundle` (scoring/training.py) writes one from a store + labels; `load_bundle` reads it back and
refuses, with one message that says what differs and what to do, a bundle whose experts or features
this installation cannot reproduce.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from talkqa.config import ExtractConfig
from talkqa.errors import TalkqaError, UsageError
from talkqa.experts import EXPERTS
from talkqa.features.families import FAMILIES
from talkqa.fusion.train import EXPORT_SOURCES, FusionRegressor
from talkqa.onnx_model import fresh_exports, is_exportable
from talkqa.stacking.model import StackingRegressor

from .bundle_config import FORMAT, BundleConfig
from .overall_direct import DirectPart

# The shipped model is package data of the core package (talkqa/models/default).
DEFAULT_MODEL_DIR = Path(str(resources.files("talkqa").joinpath("models", "default")))


class ModelMismatchError(UsageError):
    """The bundle needs experts or features this installation does not provide (exit status 2)."""


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

    @property
    def direct_part(self):
        """The fitted direct overall part (scoring/overall_direct.py), or None: only under overall_from:
        dimensions, and only for a model trained with one (model.json `overall_direct`)."""
        if self.config.overall_from != "dimensions" or not self.meta.get("overall_direct"):
            return None
        return DirectPart.from_dict(self.meta["overall_direct"])

    def thresholds(self) -> dict[str, float]:
        return {d: float(v["threshold"]) for d, v in self.meta["diagnostic_thresholds"].items()}

    def create_experts(self, device: str = "cpu") -> dict:
        """The experts as trained (recorded config), weights loaded."""

        out = {}
        for name, entry in self.meta["experts"].items():
            cls = EXPERTS.get(name)
            out[name] = cls(cls.config_cls.model_validate(entry["config"]), device=device).load()
        return out


def compatibility_problems(meta: dict) -> list[str]:
    """What this installation cannot reproduce of what the bundle was trained on (empty: all fine)."""

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


def export_onnx(folder: str | Path | None = None) -> list[str]:
    """Add ONNX exports to a model folder (default: the shipped model) and to the expert weights it lists,
    where they are missing or stale; returns one line per part saying what was done. Scoring then runs
    without torch. Idempotent: fresh exports are left as they are."""
    folder = Path(folder) if folder is not None else DEFAULT_MODEL_DIR
    meta = read_meta(folder)
    if not is_exportable():
        raise UsageError("exporting needs the `onnx` package (pip install onnx); nothing was written")
    lines = []
    for name, entry in meta["experts"].items():
        cls = EXPERTS.get(name)
        expert = cls(cls.config_cls.model_validate(entry["config"]))
        weights = expert.weights_dir()
        if fresh_exports(weights, [expert.weights_file]) is not None:
            lines.append(f"expert {name}: {weights} already has fresh ONNX exports")
        elif graphs := expert.export_onnx(weights):
            lines.append(f"expert {name}: exported {', '.join(graphs)} to {weights}")
        else:
            lines.append(f"expert {name}: nothing to export (it runs through torch)")
    fusion = folder / "fusion"
    if fresh_exports(fusion, EXPORT_SOURCES) is not None:
        lines.append(f"fusion: {fusion} already has a fresh ONNX export")
    else:
        FusionRegressor.load(fusion, onnx=False).export_onnx(fusion)
        lines.append(f"fusion: exported fusion.onnx to {fusion}")
    return lines


def _yaml(path: Path) -> dict:
    if not path.is_file():
        raise TalkqaError(f"{path.name} missing")
    return yaml.safe_load(path.read_text()) or {}


__all__ = ["Bundle", "load_bundle", "read_meta", "compatibility_problems", "ModelMismatchError", "DEFAULT_MODEL_DIR",
           "export_onnx"]
