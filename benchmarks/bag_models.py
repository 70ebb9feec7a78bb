"""Bag models of one recipe trained apart with consecutive stacking seeds, without training any again.

`stacking.bag: K` makes each dimension's prediction the mean of K LightGBM models tuned and fitted with seeds
s ... s + K - 1 (stacking/model.py). Each member is exactly the model of its seed alone, so models already
trained with `--set stacking.seed=s`, `s + 1`, ... make the same bag: their trees merged, their out-of-fold
predictions averaged, level 2, the calibration and the ceilings fitted again on those
(`StackingRegressor.bag_of`; a test checks it equals training with `bag`). The fusion part (the diagnostic
window head) is the first model's, as training with `bag` would keep its own fusion seed. The new model goes
to --out; its train.yaml (stacking.bag = K, stacking.seed = s), model.json (version, description,
validation figures of the stack out of fold, the command) and model card are rewritten there:

    .venv/bin/python benchmarks/bag_models.py build/default-model/model_v13 build/default-model/model_v13_seed1 \\
        --out build/default-model/model_v16 \\
        --store build/default-model/real_store --labels build/default-model/real_degraded/manifest.csv \\
        --store build/default-model/balanced_store --labels build/default-model/balanced_degraded/manifest.csv \\
        --version 16

The stores and labels must be the ones the models were trained on (the clip ids are compared). About a minute.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from talkqa.errors import TalkqaError, UsageError
from talkqa.labels import common_clips, load_labels, merge_labels
from talkqa.scoring.bundle import load_bundle
from talkqa.scoring.training import restack_model
from talkqa.stacking.model import StackingRegressor
from talkqa.store_data import load_store, merge_store_data


def bag_models(models: list[Path], out: Path, stores: list[Path], label_files: list[Path], version: str | None,
               description: str | None, command: str) -> dict:
    if out.exists():
        raise UsageError(f"{out} exists; choose a new --out (the first model is copied there, never changed in place)")
    if len(models) < 2:
        raise UsageError("give at least two model folders, in the order of their stacking seeds")
    if len(label_files) not in (1, len(stores)):
        raise UsageError("give one --labels for all stores or one per --store, in the same order")
    bundles = [load_bundle(m) for m in models]
    first, config = bundles[0], bundles[0].config
    data = merge_store_data([load_store(p, config.experts) for p in stores])
    labels = merge_labels([load_labels(p) for p in label_files])
    ids = common_clips(data, labels)
    trained = list(first.stacking.oof_.index) if first.stacking.oof_ is not None else []
    if sorted(ids) != sorted(trained):
        raise UsageError(f"the stores and labels give {len(ids)} labelled clips, the models were trained on {len(trained)} "
                         "others; pass the --store/--labels they were trained with (model.json training_data)")
    try:
        stacking = StackingRegressor.bag_of([b.stacking for b in bundles], data, labels, trained)
    except TalkqaError as exc:
        raise UsageError(f"{', '.join(map(str, models))}: {exc}") from exc
    config.stacking = config.stacking.model_copy(update={"bag": stacking.config.bag, "seed": stacking.config.seed})
    if version is not None:
        config.version = version
    if description is not None:
        config.description = description

    commands = " ; ".join(f"[seed {b.stacking.config.seed}] {b.meta.get('command', '')}" for b in bundles)
    meta = restack_model(models[0], out, first, stacking, config, data, labels, trained,
                         {"command": f"{commands}; then {command}",
                          "train_seconds": sum(float(b.meta.get("train_seconds") or 0) for b in bundles)})
    metrics = meta["val_metrics"]
    return {dim: round(m["stacking"]["srcc"], 4) for dim, m in metrics.items() if m.get("stacking", {}).get("srcc")
            is not None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+", help="folders written by `talkqa train`, seeds s, s + 1, ... in order")
    ap.add_argument("--out", type=Path, required=True, help="new model folder (must not exist)")
    ap.add_argument("--store", type=Path, action="append", required=True, help="training store (repeat for several)")
    ap.add_argument("--labels", type=Path, action="append", required=True, help="its labels (one, or one per store)")
    ap.add_argument("--version", help="the new model's version")
    ap.add_argument("--description", help="the new model's description")
    args = ap.parse_args(argv)
    command = "python benchmarks/bag_models.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        srcc = bag_models(args.models, args.out, args.store, args.labels, args.version, args.description, command)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("validation SRCC of the bag out of fold (held-out speakers):", srcc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
