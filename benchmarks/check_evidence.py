"""Is the evidence there? For the variants `talkqa check --keep DIR` left behind, which hand-crafted
features and expert readings tell each variant from its clean source — so that a failing check can be
put down to the experts (nothing sees the fault) or to the fusion (the evidence is there, the score
does not follow it).

    .venv/bin/talkqa check --only clean,talking_photo,heavy_compression --keep /tmp/check_clips
    .venv/bin/python benchmarks/check_evidence.py /tmp/check_clips [--check check.json]

The clips are extracted and embedded with the shipped model's settings into DIR/_store (reruns reuse
it; about 1 min for 50 clips on 2 cores). Per variant, over the sources that have it and a clean clip:
the columns that separate it best from the clean clips, by AUC (variant values against clean values
across sources: 0 or 1 = every variant below or above every clean clip, whoever the speaker), with the
paired shift (variant minus its own clean clip, in standard deviations of the clean clips) and the
share of sources where it goes that way. With --check (the same run's `--json` report) the model's
mean score change on each dimension follows, so the two can be read side by side.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CLEAN = "clean"


def clip_id(source_dir: str, variant: str) -> str:
    """A store-safe clip id for one kept variant file (the key keeps only letters, digits, . _ -)."""
    return f"{source_dir}/{re.sub(r'[^A-Za-z0-9._-]+', '_', variant).strip('_')}"


def kept_manifest(keep: Path) -> pd.DataFrame:
    rows = [{"clip_id": clip_id(d.name, f.stem), "video": str(f.resolve()), "speaker": d.name,
             "source": d.name, "variant": f.stem}
            for d in sorted(p for p in keep.iterdir() if p.is_dir() and not p.name.startswith("_"))
            for f in sorted(d.glob("*.mp4"))]
    if not rows:
        sys.exit(f"check_evidence: no variant clips under {keep} — run `talkqa check --keep {keep}` first")
    return pd.DataFrame(rows)


def build_store(manifest: pd.DataFrame, store: Path) -> None:
    store.mkdir(parents=True, exist_ok=True)
    path = store / "manifest.csv"
    manifest[["clip_id", "video", "speaker"]].to_csv(path, index=False)
    talkqa = [str(Path(sys.executable).with_name("talkqa"))]
    for cmd, usable in ((["extract", str(path), "--store", str(store), "--workers", "2"], (0, 1)),
                        (["embed", "--store", str(store), "--workers", "2"], (0,))):
        # extract exits 1 when some clip cannot be used (its status row says why); the rest are measured
        rc = subprocess.run(talkqa + cmd).returncode
        if rc not in usable:
            sys.exit(f"check_evidence: `talkqa {cmd[0]}` failed (exit {rc}) on {path}; its message is above")


def load_columns(store: Path) -> pd.DataFrame:
    """Every hand-crafted feature and expert scalar per clip, as the models read them."""
    from talkqa.store_data import load_store

    data = load_store(store)
    return data.handcrafted.join(data.scalars, how="left")


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """P(a variant value > a clean value), ties counting half."""
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        return float("nan")
    return float(((x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()) / (len(x) * len(y)))


def evidence(manifest: pd.DataFrame, columns: pd.DataFrame, top: int) -> dict[str, pd.DataFrame]:
    table = manifest.set_index("clip_id").join(columns, how="inner")
    cols = list(columns.columns)
    clean = table[table.variant == CLEAN].set_index("source")[cols]
    spread = clean.std().replace(0, np.nan)
    out = {}
    for variant, rows in table[table.variant != CLEAN].groupby("variant"):
        rows = rows[rows.source.isin(clean.index)].set_index("source")[cols]
        if rows.empty:
            continue
        shift = rows - clean.loc[rows.index]
        found = pd.DataFrame({
            "AUC": [auc(rows[c].to_numpy(float), clean[c].to_numpy(float)) for c in cols],
            "shift_sd": (shift.mean() / spread).to_numpy(),
            "same_way": np.sign(shift).mean().abs().to_numpy(),
        }, index=cols)
        found = found[found.AUC.notna()]
        order = (found.AUC - 0.5).abs().sort_values(ascending=False, kind="stable").index
        out[f"{variant} (n={len(rows)})"] = found.loc[order[:top]].round(2)
    return out


def score_changes(report: dict) -> pd.DataFrame:
    rows = []
    for source, variants in report["scores"].items():
        for variant, scores in variants.items():
            if variant != CLEAN and CLEAN in variants:
                rows.append({"variant": variant, **{d: (v - variants[CLEAN][d]) if v is not None and
                                                    variants[CLEAN].get(d) is not None else np.nan
                                                    for d, v in scores.items()}})
    return pd.DataFrame(rows).groupby("variant").mean().round(2) if rows else pd.DataFrame()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("keep", type=Path, help="folder of `talkqa check --keep`")
    ap.add_argument("--store", type=Path, help="store for the kept clips (default KEEP/_store)")
    ap.add_argument("--check", type=Path, help="the same run's `talkqa check --json` report")
    ap.add_argument("--top", type=int, default=6, help="columns shown per variant (default 6)")
    a = ap.parse_args(argv)
    if not a.keep.is_dir():
        sys.exit(f"check_evidence: {a.keep} is not a folder — pass the folder given to `talkqa check --keep`")
    manifest = kept_manifest(a.keep)
    store = a.store or a.keep / "_store"
    build_store(manifest, store)
    pd.set_option("display.width", 160)
    for variant, found in evidence(manifest, load_columns(store), a.top).items():
        print(f"\n## {variant}: what tells it from the clean clips\n{found.to_string()}")
    if a.check:
        print("\n## the model's mean score change against the clean clip\n"
              f"{score_changes(json.loads(a.check.read_text())).to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
