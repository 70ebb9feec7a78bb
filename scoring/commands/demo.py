"""`talkqa demo`: the main job on the embedded default, end to end on a fresh machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli_app import app, friendly


@app.command()
@friendly
def demo(
    out_dir: Path = typer.Option(Path("demo"), "--out", "-o", help="Working folder (fault clips and their HTML reports, "
                                 "corpus, store, benchmark report)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke-test size (12 clips, few epochs/trials): checks the "
                                                      "pipeline, its figures mean nothing."),
    n: int = typer.Option(None, "--n", min=3, help="Synthetic heads of the benchmark (default 12, or 6 with --quick)."),
    workers: int = typer.Option(2, min=1, help="Parallel workers."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder that scores the planted faults "
                                         "(default: the shipped model)."),
):
    """Offline, no data needed, about 5 minutes on 2 cores. (1) Plants faults in a talking head — a
    held-out real clip of ../shared/data when it is there, else a rendered one — (sound half a second late, a still photo, heavy noise, a blurred face), scores each version with the
    shipped model, writes its HTML report and prints the six scores side by side with what talkqa found.
    (2) A small benchmark: synthetic heads degraded with graded artifacts (the labels), features, every
    shipped expert, `talkqa benchmark` at demo size (speaker-grouped CV of the fusion strategies); prints
    the SRCC table and where multi-task fusion wins or loses."""
    from ..demo import run_demo

    run_demo(out_dir, size="quick" if quick else "full", n=n, workers=workers, model=model)
