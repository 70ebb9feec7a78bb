"""Give a trained model the evidence ceilings of a configuration, without refitting its trees.

Ceilings (stacking/ceilings.py) depend on the training clips' readings and labels only, so a model's
existing trees plus ceilings fitted here score exactly as `talkqa train` with the same `stacking.ceilings`
would have made them (the fit calls the same `StackingRegressor.fit_ceilings`; a test checks the two
agree). The model is copied to --out; its train.yaml, model.json (version, description, validation
figures of the stack out of fold, the command) and model card are rewritten there, the original is
left as it is:

    .venv/bin/python benchmarks/add_ceilings.py build/default-model/model_v12 --out build/default-model/model_v13 \\
        --store build/default-model/real_store --labels build/default-model/real_degraded/manifest.csv \\
        --store build/default-model/balanced_store --labels build/default-model/balanced_degraded/manifest.csv \\
        --version 13 [--ceiling expression:expression__frozen_share:1 ...]

Without --ceiling, the ceilings (and their `ceiling_from`) of configs/train/default.yaml. The stores and labels
must be the ones the model was trained on (the clip ids are compared; up to 1 % of them may be missing from stores
rebuilt since, and are then left out of the fit). Takes about a minute.

--ceiling-store / --ceiling-labels (repeat, in pairs) add labelled clips of the training speakers that only the
ceilings are fitted on: a corpus of one fault (configs/degrade/default_model_compression.yaml, version 41) gives
a ceiling enough clips while every tree, level 2 and the calibration stay as they are, so no other dimension
moves. Those stores need no experts (`talkqa extract` is enough) unless a ceiling reads an expert's scalar;
the model card lists them. `talkqa train --ceiling-store S --ceiling-labels L` fits the same ceilings in one step
(both check the clips with scoring/training.py `ceiling_only_clips`).

The direct overall part (`overall_direct`, scoring/overall_direct.py: what the label rule charges a stall overall
beyond its dimensions) depends on the readings and labels only too, and is fitted here as well (configs/train/
default.yaml's, or --overall-direct; none with --overall-direct none).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

from talkqa.config import config_path
from talkqa.errors import UsageError
from talkqa.labels import common_clips, load_labels, merge_labels
from talkqa.scoring.bundle import load_bundle
from talkqa.scoring.bundle_config import OverallDirect
from talkqa.scoring.training import ceiling_only_clips, ceiling_only_record, restack_model
from talkqa.stacking.config import StackingConfig
from talkqa.store_data import load_store, merge_store_data
from talkqa.tasks import DIMENSION_NAMES


def parse_ceiling(text: str) -> tuple[str, str, int]:
    try:
        dim, column, sign = text.rsplit(":", 2)
        sign_value = int(sign)
    except ValueError:
        raise UsageError(f"--ceiling {text!r}: write DIMENSION:COLUMN:SIGN, e.g. expression:expression__frozen_share:1")
    if dim not in DIMENSION_NAMES or sign_value not in (-1, 0, 1):
        raise UsageError(f"--ceiling {text!r}: the dimension is one of {', '.join(DIMENSION_NAMES)} and the sign +1 "
                         "(a higher reading is worse), -1 (a lower one is) or 0 (one farther from zero either way is)")
    return dim, column, sign_value


def parse_ceiling_from(text: str) -> tuple[str, float]:
    try:
        column, value = text.rsplit(":", 1)
        return column, float(value)
    except ValueError:
        raise UsageError(f"--ceiling-from {text!r}: write COLUMN:VALUE, e.g. picture__quality_logit:-2.5")


def parse_overall_direct(text: str) -> dict | None:
    if text.lower() == "none":
        return None
    try:
        column, sign, start = text.rsplit(":", 2)
        return OverallDirect(column=column, worse=int(sign), start=float(start)).model_dump()
    except ValueError:
        raise UsageError(f"--overall-direct {text!r}: write COLUMN:SIGN:START (SIGN +1 when a higher reading is "
                         "worse, -1 when a lower one is), e.g. expression__held_longest_s:1:0.5, or none")


def add_ceilings(model: Path, out: Path, stores: list[Path], label_files: list[Path],
                 ceilings: dict[str, dict[str, int]], version: str | None, description: str | None,
                 command: str, max_missing: float = 0.01, ceiling_stores: list[Path] = (),
                 ceiling_labels: list[Path] = (), ceiling_from: dict[str, float] | None = None,
                 overall_direct: dict | None = None) -> dict:
    if out.exists():
        raise UsageError(f"{out} exists; choose a new --out (the model is copied there, never changed in place)")
    if len(label_files) not in (1, len(stores)):
        raise UsageError("give one --labels for all stores or one per --store, in the same order")
    bundle = load_bundle(model)
    stacking, config = bundle.stacking, bundle.config
    data = merge_store_data([load_store(p, config.experts) for p in stores])
    labels = merge_labels([load_labels(p) for p in label_files])
    have = set(common_clips(data, labels))
    trained = list(stacking.oof_.index) if stacking.oof_ is not None else []
    # the order of the out-of-fold table, so the folds are the ones of the fit. Stores rebuilt from the same
    # recipe can miss a few training clips (a face found in 1 % of a source's frames is found in one build's
    # variant and not in another's): those are left out of the fit, their out-of-fold rows get no cap
    ids = [c for c in trained if c in have]
    missing = [c for c in trained if c not in have]
    if not trained or len(missing) > max_missing * len(trained):
        raise UsageError(f"the stores and labels hold {len(ids)} of the {len(trained)} labelled clips the model was "
                         f"trained on (more than {max_missing:.0%} missing); pass the --store/--labels the model was "
                         "trained with (model.json training_data)")
    if missing:
        print(f"note: {len(missing)} of the model's {len(trained)} training clips are not in these stores and are "
              f"left out of the ceilings' fit: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
              file=sys.stderr)
    extra_ids, extra_data, extra_labels = ceiling_only_clips(ceiling_stores, ceiling_labels, set(trained), labels)
    # both at once: each is validated against the other (a start names a column some ceiling reads)
    new = {"ceilings": ceilings, "ceiling_from": dict(ceiling_from or {})}
    config.stacking = type(config.stacking).model_validate({**config.stacking.model_dump(), **new})
    stacking.config = type(stacking.config).model_validate({**stacking.config.model_dump(), **new})
    all_labels = merge_labels([labels, extra_labels]) if extra_ids else labels
    stacking.fit_ceilings(data, all_labels, ids, extra_ids, extra_data)
    config.overall_direct = None if overall_direct is None else OverallDirect.model_validate(overall_direct)
    if version is not None:
        config.version = version
    if description is not None:
        config.description = description

    updates = {"command": f"{bundle.meta.get('command', '')}; then {command}"}
    if extra_ids:
        updates["training_data"] = {**bundle.meta["training_data"],
                                    "ceiling_only": ceiling_only_record(extra_ids, ceiling_stores, ceiling_labels)}
    restack_model(model, out, bundle, stacking, config, data, labels, ids, updates)
    return {dim: [{"column": c.column, "steps": c.steps, "lowest cap": round(float(c.caps[0]), 3)}
                  for c in cs] for dim, cs in stacking.ceilings_.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="folder written by `talkqa train`")
    ap.add_argument("--out", type=Path, required=True, help="new model folder (must not exist)")
    ap.add_argument("--store", type=Path, action="append", required=True, help="training store (repeat for several)")
    ap.add_argument("--labels", type=Path, action="append", required=True, help="its labels (one, or one per store)")
    ap.add_argument("--ceiling", action="append", default=[], metavar="DIM:COLUMN:SIGN",
                    help="a ceiling (repeat); default: stacking.ceilings of configs/train/default.yaml")
    ap.add_argument("--ceiling-from", action="append", default=[], metavar="COLUMN:VALUE",
                    help="a reading counts for its ceilings only from VALUE on, as bad or worse (repeat); default: "
                         "stacking.ceiling_from of configs/train/default.yaml, or none with --ceiling")
    ap.add_argument("--ceiling-store", type=Path, action="append", default=[],
                    help="a store of more clips of the training speakers that only the ceilings are fitted on (repeat)")
    ap.add_argument("--ceiling-labels", type=Path, action="append", default=[],
                    help="its labels (one per --ceiling-store, in the same order)")
    ap.add_argument("--overall-direct", metavar="COLUMN:SIGN:START",
                    help="the direct overall part's reading (scoring/overall_direct.py; fitted by restack_model), or "
                         "none; default: overall_direct of configs/train/default.yaml")
    ap.add_argument("--version", help="the new model's version")
    ap.add_argument("--description", help="the new model's description")
    args = ap.parse_args(argv)
    try:
        whole = yaml.safe_load(config_path("train", "default.yaml").read_text())
        default = whole["stacking"]
        overall_direct = whole.get("overall_direct") if args.overall_direct is None else \
            parse_overall_direct(args.overall_direct)
        if args.ceiling:
            ceilings: dict[str, dict[str, int]] = {}
            for dim, column, sign in map(parse_ceiling, args.ceiling):
                ceilings.setdefault(dim, {})[column] = sign
            ceiling_from = {}
        else:
            ceilings, ceiling_from = default.get("ceilings", {}), default.get("ceiling_from", {})
        if args.ceiling_from:
            ceiling_from = dict(map(parse_ceiling_from, args.ceiling_from))
        try:  # the configuration's own check, before any store is read
            StackingConfig(ceilings=ceilings, ceiling_from=ceiling_from)
        except ValueError as exc:  # pydantic's message, without its prefix and the hint for `--set`
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ").split(" (replacing")[0]
            raise UsageError(f"--ceiling / --ceiling-from: {msg}")
        command = "python benchmarks/add_ceilings.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        fitted = add_ceilings(args.model, args.out, args.store, args.labels, ceilings, args.version, args.description,
                              command, ceiling_stores=args.ceiling_store, ceiling_labels=args.ceiling_labels,
                              ceiling_from=ceiling_from, overall_direct=overall_direct)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(fitted, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
