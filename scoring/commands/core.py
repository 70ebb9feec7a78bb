"""Core commands: manifest, extract, features, summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import ConfigOpt, SetOpt, app, friendly
from ..console import ClipProgress, err, out
from talkqa.errors import TalkqaError

@app.command()
@friendly
def manifest(
    folder: Path = typer.Argument(..., help="Folder searched recursively for videos."),
    out_path: Path = typer.Option(Path("manifest.csv"), "--out", "-o", help="Manifest to write (.csv or .parquet)."),
    speaker_from: Optional[int] = typer.Option(None, help="Folder level that names the speaker (0 = first folder under FOLDER, -1 = the file's folder)."),
    generator_from: Optional[int] = typer.Option(None, help="Folder level that names the generator (same counting)."),
):
    """Build a manifest (one row per video; clip_id = relative path without extension)."""
    from talkqa.manifest import build_manifest
    from talkqa.store import atomic_write_bytes, write_parquet

    df = build_manifest(folder, speaker_from, generator_from)
    # Paths are written relative to the manifest's own folder, so the pair can be moved together.
    base = out_path.absolute().parent
    df["video"] = [os.path.relpath((folder / v).absolute(), base) for v in df["video"]]
    if out_path.suffix.lower() == ".parquet":
        write_parquet(df, out_path, "talkqa.manifest")
    else:
        atomic_write_bytes(out_path, df.to_csv(index=False).encode())
    out.print(f"wrote {out_path} with {len(df)} clips")


def _load_inputs(target: Path):
    """A manifest file, or a single video (which becomes a one-row manifest)."""
    from talkqa.manifest import load_manifest, single_clip_manifest

    if target.suffix.lower() in (".csv", ".parquet", ".tsv"):
        df, warnings = load_manifest(target)
        for w in warnings:
            err.print(f"[yellow]warning:[/] {escape(str(target))}: {escape(str(w))}", highlight=False)
        return df, False
    return single_clip_manifest(target), True


@app.command()
@friendly
def extract(
    target: Path = typer.Argument(..., help="A manifest (.csv/.parquet) or a single video file."),
    store: Path = typer.Option(Path("store"), "--store", help="Store folder to write (created if needed)."),
    config: Optional[Path] = ConfigOpt,
    set_: Optional[list[str]] = SetOpt,
    engine: str = typer.Option("local", help="local (process pool) or ray."),
    workers: int = typer.Option(1, min=1, help="Parallel workers (processes or Ray tasks)."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address; without it a local Ray is started."),
):
    """Preprocess clips and compute the hand-crafted features into the Parquet store.

    Writes STORE/handcrafted.parquet (per clip), windows.parquet (per 1 s window), status.parquet
    (ok or an error code per clip) and tracks/ for the experts. Reruns skip finished clips.
    """
    from talkqa.config import ExtractConfig, load_config
    from talkqa.features.extract import run_extract

    cfg = load_config(ExtractConfig, config, set_ or [])
    df, single = _load_inputs(target)
    # A single clip's problem is the command's error message below, not a progress line.
    with ClipProgress("extract", len(df), print_problems=not single) as progress:
        table = run_extract(df, store, cfg, engine=engine, workers=workers, ray_address=ray_address,
                            on_done=lambda s: progress.done(s.has_features, s.status, s.clip_id, s.message))
    if single and progress.failed:
        row = table.iloc[0]
        raise TalkqaError(f"{row['message']} [{row['status']}]")
    _print_status_summary(table, store)
    if progress.failed:
        raise typer.Exit(1)


def _print_status_summary(table, store: Path) -> None:
    from rich.table import Table

    counts = table["status"].value_counts()
    t = Table(title=f"extraction status ({store})")
    t.add_column("status")
    t.add_column("clips", justify="right")
    for status, n in counts.items():
        t.add_row(str(status), str(n))
    out.print(t)


@app.command()
@friendly
def features(
    family: Optional[str] = typer.Argument(None, help="Show one family's features in full."),
):
    """List the hand-crafted feature families and the features each computes."""
    from rich.table import Table

    from talkqa.features.families import FAMILIES

    t = Table(title="hand-crafted feature families")
    for col in ("family", "clip features", "window features", "what it measures"):
        t.add_column(col)
    names = [family] if family else FAMILIES.names()
    for name in names:
        fam = FAMILIES.create(name)
        clip_names = fam.columns()
        shown = ", ".join(clip_names) if family else ", ".join(clip_names[:6]) + (" ..." if len(clip_names) > 6 else "")
        t.add_row(name, f"{len(clip_names)}: {shown}", str(len(fam.window_columns())), fam.description)
    out.print(t)


@app.command()
@friendly
def summary(store: Path = typer.Option(Path("store"), "--store", help="Store folder written by extract.")):
    """Print a summary of a store: status counts and the main hand-crafted features per clip."""
    from ..report_text import print_store_summary

    print_store_summary(store)
