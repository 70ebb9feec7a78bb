"""`talkqa train`: fit the fusion Transformer and the LightGBM stack on a labelled store and write one
self-describing model folder (talkqa/model_bundle.py) that `talkqa score --model DIR` loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import SetOpt, app, friendly
from ..console import err, out


@app.command()
@friendly
def train(
    store: list[Path] = typer.Option(..., "--store", help="Store written by `talkqa extract` + `talkqa embed`; repeat to train on several (same extraction config and experts)."),
    labels: list[Path] = typer.Option(..., "--labels", help="Manifest or label table with mos_* columns (diagnostics.parquet beside it is used); one for all stores or one per --store, in order."),
    ceiling_store: Optional[list[Path]] = typer.Option(None, "--ceiling-store", help="Store of more labelled clips of the training speakers that only the evidence ceilings (stacking.ceilings) are fitted on: no tree, level 2 or calibration sees them, so a corpus of one fault (e.g. compression alone, configs/degrade/default_model_compression.yaml) gives a ceiling enough clips without moving any other dimension. `talkqa extract` is enough unless a ceiling reads an expert's scalar; its clip ids must be new (shared_manifest.py --id-prefix). Repeat, in pairs with --ceiling-labels."),
    ceiling_labels: Optional[list[Path]] = typer.Option(None, "--ceiling-labels", help="Labels of the clips of a --ceiling-store: one per --ceiling-store, in the same order."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Model folder to write (fusion/, stacking/, model.json, model_card.md)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training YAML (default: configs/train/default.yaml)."),
    set_: Optional[list[str]] = SetOpt,
    name: Optional[str] = typer.Option(None, "--name", help="Model name reported with every score (overrides the config)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not log every fusion epoch."),
):
    """Train a scoring model: fusion (early-stopped on held-out speakers) + stacking (all labelled clips).

    Example: talkqa train --store store/ --labels corpus/degraded/manifest.csv --out models/mine

    Two corpora: talkqa train --store real/ --labels real/manifest.csv --store synth/ --labels synth/manifest.csv --out models/mine

    A ceiling-only corpus: talkqa train --store real/ --labels real/manifest.csv --ceiling-store compression/ --ceiling-labels compression/manifest.csv --out models/mine
    """
    from talkqa.config import load_config
    from talkqa.scoring.bundle_config import DEFAULT_TRAIN_CONFIG, BundleConfig
    from talkqa.scoring.training import train_bundle

    overrides = list(set_ or []) + ([f"name={name}"] if name else [])
    path = config if config is not None else (DEFAULT_TRAIN_CONFIG if DEFAULT_TRAIN_CONFIG.is_file() else None)
    cfg = load_config(BundleConfig, path, overrides)

    def log(msg: str) -> None:
        if not (quiet and msg.startswith(("fusion epoch", "fusion pretrain"))):
            err.print(f"[dim]{escape(msg)}[/]", highlight=False)

    folder = train_bundle(store, labels, out_dir, cfg, log=log, ceiling_stores=ceiling_store or [],
                          ceiling_labels=ceiling_labels or [])

    from rich.table import Table

    meta = json.loads((folder / "model.json").read_text())
    t = Table(title=f"{meta['name']} {meta['version']}: validation SRCC on held-out speakers (combine: {meta['combine']})")
    for col in ("dimension", "n", "fusion", "stacking (OOF)", "mean"):
        t.add_column(col, justify="right" if col != "dimension" else "left")
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    for dim, m in meta["val_metrics"].items():
        t.add_row(dim, str(m["mean"]["n"]), fmt(m["fusion"]["srcc"]), fmt(m["stacking"]["srcc"]), fmt(m["mean"]["srcc"]))
    out.print(t)
    extra = meta["training_data"].get("ceiling_only")
    out.print(f"model written to {folder} ({meta['training_data']['clips']} clips"
              + (f" and {extra['clips']} for the ceilings only" if extra else "") + ", "
              f"experts: {', '.join(meta['experts']) or 'none'}); score with: talkqa score VIDEO --model {folder}")


@app.command("export-onnx")
@friendly
def export_onnx(
    model: Optional[Path] = typer.Argument(None, help="Model folder (default: the shipped model)."),
):
    """Add ONNX exports to a model folder and to the expert weights it lists, so `talkqa score` runs the
    networks with ONNX Runtime and never imports torch. `talkqa train` and `train-expert` write them already;
    use this for a model folder made before they did, or after its weights were replaced (stale or missing
    exports are not an error: scoring falls back to torch, about 1.2 s slower to start). Safe to rerun."""
    from talkqa.scoring.bundle import export_onnx as export

    for line in export(model):
        out.print(escape(line), highlight=False)
