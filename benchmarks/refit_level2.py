"""Fit what comes after a trained model's tuned trees again under other settings, without tuning them again.

The stack's level 2 (stacking/model.py) is a ridge per dimension over the out-of-fold level-1 predictions of
every dimension, then an isotonic map: small maps fitted in seconds on predictions the model keeps
(stacking/oof.parquet). `stacking.meta_from` says which dimensions each dimension's ridge reads;
`stacking.oof_folds_by` how the speakers are dealt into the out-of-fold folds and `stacking.oof_folds_seed` which
of its dealings (other folds: each dimension's out-of-fold trees fitted again with its tuned parameters, a few
minutes; a few seeds measure how much a model's scores owe to one dealing). This writes a copy of the model with
those stages fitted again under the given settings (`StackingRegressor.with_level2`: exactly what `talkqa train`
with them would give, since tuning and the final trees do not depend on them; a test checks it), its
train.yaml, model.json (version, validation figures out of fold, the command) and model card rewritten:

    .venv/bin/python benchmarks/refit_level2.py build/default-model/model_v28 --out build/default-model/model_v29 \\
        --store build/default-model/real_store --labels build/default-model/real_degraded/manifest.csv \\
        --store build/default-model/balanced_store --labels build/default-model/balanced_degraded/manifest.csv \\
        --store build/default-model/compression_store --labels build/default-model/compression_degraded/manifest.csv \\
        --set 'meta_from={lip_sync: [lip_sync], expression: [expression]}' --version 29

The stores and labels must be the ones the model was trained on (the clip ids are compared). Seconds for level
2 alone, minutes with other folds.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import yaml

from talkqa.errors import TalkqaError, UsageError
from talkqa.labels import common_clips, load_labels, merge_labels
from talkqa.scoring.bundle import load_bundle
from talkqa.scoring.training import restack_model
from talkqa.stacking.config import StackingConfig
from talkqa.store_data import load_store, merge_store_data

LEVEL2 = ("meta_learner", "meta_from", "calibration", "oof_folds_by", "oof_folds_seed", "oof_repeats")


def parse_sets(sets: list[str]) -> dict:
    """`KEY=VALUE` pairs (VALUE read as YAML) for the level-2 fields of the stacking config."""
    out = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or key not in LEVEL2:
            raise UsageError(f"--set {item!r}: give KEY=VALUE with KEY one of {', '.join(LEVEL2)}")
        out[key] = yaml.safe_load(value)
    return out


def refit_level2(model: Path, out: Path, stores: list[Path], label_files: list[Path], updates: dict,
                 version: str | None, command: str) -> dict:
    if out.exists():
        raise UsageError(f"{out} exists; choose a new --out (the model is copied there, never changed in place)")
    if len(label_files) not in (1, len(stores)):
        raise UsageError("give one --labels for all stores or one per --store, in the same order")
    bundle = load_bundle(model)
    config = bundle.config
    try:
        stacking_config = StackingConfig(**{**bundle.stacking.config.model_dump(), **updates})
    except ValueError as exc:
        raise UsageError(f"--set: {exc}") from exc
    data = merge_store_data([load_store(p, config.experts) for p in stores])
    labels = merge_labels([load_labels(p) for p in label_files])
    ids = common_clips(data, labels)
    trained = list(bundle.stacking.oof_.index) if bundle.stacking.oof_ is not None else []
    if sorted(ids) != sorted(trained):
        raise UsageError(f"the stores and labels give {len(ids)} labelled clips, the model was trained on {len(trained)} "
                         "others; pass the --store/--labels it was trained with (model.json training_data)")
    try:
        stacking = bundle.stacking.with_level2(stacking_config, labels, trained, data)
    except TalkqaError as exc:
        raise UsageError(f"{model}: {exc}") from exc
    config.stacking = stacking_config
    if version is not None:
        config.version = version
    meta = restack_model(model, out, bundle, stacking, config, data, labels, trained,
                         {"command": f"{bundle.meta.get('command', '')}; then {command}"})
    return {dim: round(m["stacking"]["srcc"], 4) for dim, m in meta["val_metrics"].items()
            if m.get("stacking", {}).get("srcc") is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="a folder written by `talkqa train`")
    ap.add_argument("--out", type=Path, required=True, help="new model folder (must not exist)")
    ap.add_argument("--store", type=Path, action="append", required=True, help="training store (repeat for several)")
    ap.add_argument("--labels", type=Path, action="append", required=True, help="its labels (one, or one per store)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help=f"a level-2 setting of the stacking config ({', '.join(LEVEL2)}); VALUE is YAML")
    ap.add_argument("--version", help="the new model's version")
    args = ap.parse_args(argv)
    command = "python benchmarks/refit_level2.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        srcc = refit_level2(args.model, args.out, args.store, args.labels, parse_sets(args.sets), args.version, command)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("validation SRCC of the stack out of fold (held-out speakers):", srcc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
