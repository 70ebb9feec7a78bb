"""Out-of-fold comparison of stacking configurations on a training store, before any model is built.

Each configuration is the default model's `stacking` section (configs/train/default.yaml) with JSON
overrides, fitted with untuned trees (n_trials 0, seed 0) so that only the change differs. Printed per
configuration: SRCC and RMSE of the out-of-fold scores (speaker-grouped folds: every clip is predicted
by trees that never saw its speaker) against the labels of the evaluated store, the clean clips' mean,
and for the whole-clip faults of `talkqa check` at severity >= 0.67 the mean out-of-fold score beside
the mean label. `--extra STORE:LABELS` adds a second corpus to training only (its clips are not
evaluated), as version 8-10's second corpora were judged:

    .venv/bin/python benchmarks/stack_oof.py W/real_store W/real_degraded/manifest.csv \\
        --config base={} --config groups='{"feature_groups": {"lip_sync": ["sync", "lipsync"]}}' \\
        [--extra W/balanced_store:W/balanced_degraded/manifest.csv]

About 1.5 min per configuration for 700 clips on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from talkqa.config import config_path
from talkqa.errors import TalkqaError
from talkqa.labels import common_clips, load_labels, merge_labels
from talkqa.stacking.config import StackingConfig
from talkqa.stacking.model import StackingRegressor
from talkqa.store_data import load_store, merge_store_data
from talkqa.tasks import DIMENSION_NAMES

# (artifact, dimension) of the whole-clip faults the checks judge
FAULTS = [("still_portrait", "expression"), ("photo_animation", "expression"), ("frame_stutter", "expression"),
          ("stall", "expression"), ("audio_swap", "consistency"), ("av_offset", "lip_sync"),
          ("compression", "visual_quality"), ("face_blur", "visual_quality"), ("noise_white", "audio_quality")]


def compare(store: str, labels_path: str, configs: dict[str, dict], extra: list[str]) -> pd.DataFrame:
    base = yaml.safe_load(config_path("train", "default.yaml").read_text())["stacking"]
    base.update(n_trials=0, n_jobs=2, seed=0)
    data, labels = load_store(store), load_labels(labels_path)
    evaluated = common_clips(data, labels)
    if extra:
        pairs = [e.split(":", 1) for e in extra]
        data = merge_store_data([data] + [load_store(s) for s, _ in pairs])
        labels = merge_labels([labels] + [load_labels(m) for _, m in pairs])
    train = common_clips(data, labels)
    manifest = pd.read_csv(labels_path).set_index("clip_id").reindex(evaluated)
    single = ~manifest["artifacts"].str.contains(";")
    Y = labels.y(evaluated)
    table = {}
    for name, overrides in configs.items():
        t0 = time.time()
        oof = StackingRegressor(StackingConfig(**{**base, **overrides})).fit(data, labels, train) \
            .oof_scores().reindex(evaluated)
        row = {}
        for k, dim in enumerate(DIMENSION_NAMES):
            ok = np.isfinite(Y[:, k]) & oof[dim].notna().to_numpy()
            row[f"SRCC {dim}"] = f"{stats.spearmanr(oof[dim][ok], Y[ok, k])[0]:.3f}"
            row[f"RMSE {dim}"] = f"{np.sqrt(np.mean((oof[dim][ok] - Y[ok, k]) ** 2)):.3f}"
        clean = (manifest["artifacts"] == "clean").to_numpy()
        for dim in DIMENSION_NAMES[:5]:
            row[f"clean {dim}"] = f"{oof[dim][clean].mean():.2f}"
        for artifact, dim in FAULTS:
            severity = manifest.get(f"severity__{artifact}")
            if severity is None:
                continue
            sel = (single & manifest["artifacts"].str.startswith(artifact) & (severity >= 0.67)).to_numpy()
            if sel.any():
                k = DIMENSION_NAMES.index(dim)
                row[f"{artifact} -> {dim}"] = f"{oof[dim][sel].mean():.2f} (label {Y[sel, k].mean():.2f}, n={sel.sum()})"
        row["seconds"] = f"{time.time() - t0:.0f}"
        table[name] = row
        print(f"{name}: done in {row['seconds']} s", flush=True)
    return pd.DataFrame(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", help="the training store whose clips are evaluated")
    ap.add_argument("labels", help="its label file (manifest.csv of talkqa degrade)")
    ap.add_argument("--config", action="append", required=True, metavar="NAME=JSON",
                    help="a configuration: a name and JSON overrides of the stacking section ({} = as shipped)")
    ap.add_argument("--extra", action="append", default=[], metavar="STORE:LABELS",
                    help="another store and its labels, added to training only")
    args = ap.parse_args()
    configs = {}
    for spec in args.config:
        if "=" not in spec:
            raise SystemExit(f"--config {spec!r}: write NAME=JSON, e.g. base={{}}")
        name, text = spec.split("=", 1)
        try:
            configs[name] = json.loads(text)
        except json.JSONDecodeError as err:
            raise SystemExit(f"--config {name}: not JSON ({err})")
    pd.set_option("display.width", 250, "display.max_colwidth", 40, "display.max_rows", 200)
    try:
        print(compare(args.store, args.labels, configs, args.extra).to_string())
    except (TalkqaError, FileNotFoundError, ValueError) as err:  # a wrong path or override: one line, exit 1
        raise SystemExit(f"stack_oof: {err}")


if __name__ == "__main__":
    main()
