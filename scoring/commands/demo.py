"""`talkqa demo`: the main job on the embedded default, end to end on a fresh machine."""

from __future__ import annotations

from pathlib import Path

import typer

from ..cli_app import app, friendly


@app.command()
@friendly
def demo(
    out_dir: Path = typer.Option(Path("demo"), "--out", "-o", help="Working folder (corpus, store, report)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke-test size (8 clips, few epochs/trials, ~2 min): "
                                                      "checks the pipeline, its figures mean nothing."),
    n: int = typer.Option(None, "--n", min=2, help="Synthetic source clips (default 24, or 8 with --quick)."),
    workers: int = typer.Option(2, min=1, help="Parallel workers."),
):
    """Offline, no data needed: render synthetic talking heads, degrade them with graded artifacts
    (the labels), extract features, run every shipped expert, cross-validate every fusion strategy
    by speaker and write an HTML report. Prints the headline SRCC table and the report's path
    (about 10 minutes on 2 cores)."""
    from ..demo import run_demo

    run_demo(out_dir, size="quick" if quick else "full", n=n, workers=workers)
