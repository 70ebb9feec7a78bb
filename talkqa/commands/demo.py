"""`talkqa demo`: the main job on the embedded default, end to end on a fresh machine."""

from __future__ import annotations

from pathlib import Path

import typer

from ..cli_app import app, friendly


@app.command()
@friendly
def demo(
    out_dir: Path = typer.Option(Path("demo"), "--out", "-o", help="Working folder (corpus, store, report)."),
    n: int = typer.Option(6, "--n", min=1, help="Synthetic clips to render."),
    workers: int = typer.Option(2, min=1, help="Parallel workers."),
):
    """Render a few synthetic talking heads offline, extract their features and print the summary."""
    from ..demo import run_demo

    run_demo(out_dir, n=n, workers=workers)
