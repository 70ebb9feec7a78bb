"""Relabel a degrade corpus with the current label rule from the artifact log each variant recorded.

`talkqa degrade` writes, per variant, labels/<source>/vNN.json with the applied artifacts ('log': the
artifact, severity, frame range and what its apply noted) and the variant's window ('plan'). The label
rule (corpus/labels.py) needs only that log, so a corpus degraded before the rule changed can be
relabelled without re-rendering a frame, as long as each logged artifact still means the same physical
edit. Logs written before the anchored rule (commit 8298e8b) lack two things the rule now reads; both
are recovered from what those logs do record:

  av_offset      old logs: offset_frames = +-k video frames (+: audio lags, the lips move first).
                 Now: mode lips_first / sound_first and parameter = |k| / FPS seconds.
  frame_stutter  old levels (2, 3, 5) frames held at severity 1/3, 2/3, 1; the levels are now
                 (2, 3, 5, inf), so the same hold sits at severity 0.25, 0.5, 0.75.

Every other artifact of the old logs kept its levels, so its logged severity stands. An artifact that
did not exist then (the visual-quality ones, stall, compression) was never applied: a corpus from
before them has visual_quality constant at `clean`, and this script cannot change that.

The manifest is rewritten with new mos_* columns (all other columns kept) to --out; the rule is the
current LabelRule with the corpus recipe's `labels` values over its fitted defaults, as `talkqa
degrade` would use today. It prints, per dimension, how many labels changed and the SRCC old vs new.

    python benchmarks/relabel_corpus.py CORPUS_DIR --out CORPUS_DIR/manifest_anchored.csv
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr

from talkqa.corpus.artifacts import ARTIFACTS, FPS
from talkqa.corpus.labels import Applied, LabelRule, pseudo_mos
from talkqa.tasks import DIMENSION_NAMES

OLD_STUTTER_LEVELS = (2.0, 3.0, 5.0)


def applied_from_log(entry: dict, n_frames: int) -> Applied:
    """One logged artifact as the current rule reads it (old logs translated, see the module doc)."""
    name, severity = entry["artifact"], float(entry["severity"])
    a, b = entry["start_frame"], entry["stop_frame"]
    coverage = (b - a) / n_frames
    mode, parameter = entry.get("mode"), entry.get("parameter")
    if name == "av_offset" and mode is None:
        k = float(entry["offset_frames"])
        mode, parameter = ("lips_first" if k > 0 else "sound_first"), abs(k) / FPS
    if name == "frame_stutter" and "mode" not in entry:
        levels = ARTIFACTS.get(name).levels
        if tuple(float(x) for x in levels) != OLD_STUTTER_LEVELS:
            old = round(severity * len(OLD_STUTTER_LEVELS)) - 1  # 1/3, 2/3, 1 -> level 0, 1, 2
            hold = OLD_STUTTER_LEVELS[old]
            if "repeated" in entry.get("issue", "") and f"{hold:g}x" not in entry["issue"]:
                raise ValueError(f"frame_stutter log {entry} does not match the old levels {OLD_STUTTER_LEVELS}")
            severity = (list(levels).index(hold) + 1) / len(levels)
    return Applied(name, severity, coverage, mode, parameter)


def relabel(corpus: Path) -> tuple[pd.DataFrame, LabelRule]:
    manifest = pd.read_csv(corpus / "manifest.csv")
    recipe = yaml.safe_load((corpus / "recipe.yaml").read_text()) if (corpus / "recipe.yaml").is_file() else {}
    rule = LabelRule(**{**LabelRule().__dict__, **(recipe.get("labels") or {})})
    new = []
    for clip_id in manifest["clip_id"]:
        side = json.loads((corpus / "labels" / f"{clip_id}.json").read_text())
        w0, w1 = side["plan"]["window"]
        applied = [applied_from_log(e, w1 - w0) for e in side["log"] if e.get("effective", True)]
        new.append({"clip_id": clip_id, **pseudo_mos(applied, rule)})
    new = pd.DataFrame(new).set_index("clip_id")
    out = manifest.copy()
    # a label `talkqa degrade` left empty stays empty: the source's own recording is poor there, or the
    # corpus was made for one fault and labels only what that fault moves (recipe `labelled`)
    for d in DIMENSION_NAMES:
        values = new.reindex(out["clip_id"])[f"mos_{d}"].to_numpy()
        out[f"mos_{d}"] = np.where(manifest[f"mos_{d}"].notna(), values, np.nan)
    return out, rule


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path, help="degrade output folder (manifest.csv, recipe.yaml, labels/)")
    ap.add_argument("--out", type=Path, required=True, help="the relabelled manifest (a new file)")
    args = ap.parse_args(argv)
    if args.out.resolve() == (args.corpus / "manifest.csv").resolve():
        ap.error("--out must be a new file: the corpus's own manifest stays as it was made")
    old = pd.read_csv(args.corpus / "manifest.csv")
    new, rule = relabel(args.corpus)
    print(f"rule: {rule}")
    print(f"{'dimension':<16}{'changed':>9}{'old mean':>10}{'new mean':>10}{'new sd':>8}{'SRCC old-new':>14}")
    for d in DIMENSION_NAMES:
        o, n = old[f"mos_{d}"], new[f"mos_{d}"]
        changed = int((o - n).abs().gt(1e-3).sum())
        rho = spearmanr(o, n, nan_policy="omit")[0] if o.nunique() > 1 and n.nunique() > 1 else math.nan
        print(f"{d:<16}{changed:>9}{o.mean():>10.3f}{n.mean():>10.3f}{n.std():>8.3f}{rho:>14.3f}")
    new.to_csv(args.out, index=False)
    print(f"wrote {len(new)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
