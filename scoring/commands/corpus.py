"""Corpus commands: synth (offline synthetic talking heads) and degrade (labelled variants of real clips)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import SetOpt, app, friendly
from ..console import err, out, progress_bar


@app.command()
@friendly
def synth(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for clips/, truth/ and manifest.csv."),
    n: int = typer.Option(120, "--n", min=1, help="Number of clips."),
    duration_s: float = typer.Option(4.0, "--duration", help="Seconds per clip."),
    size: int = typer.Option(256, help="Frame side in pixels."),
    portraits: Optional[Path] = typer.Option(None, "--portraits", help="Folder of portraits (jpg/png with a face); default: images shipped with installed packages."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Folder of speech (flac/wav) to cut segments from; default: eSpeak NG speech in English and Mandarin."),
    seed: int = typer.Option(0, help="Random seed."),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes (default: CPU count)."),
):
    """Render an offline corpus of synthetic talking heads (no network, no data needed).

    Example: talkqa synth --out corpus/synth --n 120
    """
    from talkqa.corpus.synth import synth_corpus

    with progress_bar() as bar:
        job = bar.add_task("synth", total=n)
        df = synth_corpus(out_dir, n=n, duration_s=duration_s, size=size, portraits_dir=portraits, audio_dir=audio,
                          seed=seed, workers=workers, progress=lambda done, total: bar.update(job, completed=done))
    for failure in df.attrs.get("failures", []):
        err.print(f"[yellow]skipped[/] {escape(str(failure))}", highlight=False)
    out.print(f"wrote {len(df)} clips ({df['speaker'].nunique()} speakers) and {Path(out_dir) / 'manifest.csv'}")


@app.command()
@friendly
def degrade(
    manifest: Path = typer.Argument(..., help="Manifest of real clips (clip_id, video, optional speaker)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for videos/, manifest.csv, diagnostics.parquet."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="Degrade recipe YAML (default: configs/degrade/default.yaml)."),
    seed: int = typer.Option(0, help="Random seed; plans are reproducible from it."),
    variants: Optional[int] = typer.Option(None, "--variants", min=1, help="Variants per source clip, the clean one included (default: the recipe's)."),
    workers: int = typer.Option(1, min=1, help="Processes."),
    sheet: bool = typer.Option(True, help="Write contact_sheet.png next to the corpus."),
):
    """Make a labelled corpus from real clips: graded lip-sync, expression, visual, audio and consistency
    artifacts with per-dimension pseudo-MOS and frame-exact diagnostics; splits by speaker.

    Example: talkqa degrade real.csv --out corpus/degraded --variants 10 --workers 2
    """
    from talkqa.corpus.contact_sheet import contact_sheet
    from talkqa.corpus.degrade import DegradeRecipe, degrade_corpus
    from talkqa.manifest import load_manifest

    df, warnings = load_manifest(manifest)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {escape(str(w))}", highlight=False)
    rec = DegradeRecipe.load(recipe)
    with progress_bar("sources") as bar:
        job = bar.add_task("degrade", total=len(df))
        result = degrade_corpus(df, out_dir, rec, seed=seed, variants=variants, workers=workers,
                                progress=lambda done, total: bar.update(job, completed=done, total=total))
    for failure in result.attrs.get("failures", []):
        err.print(f"[yellow]skipped[/] {escape(str(failure))}", highlight=False)
    if sheet and len(result):
        out.print(f"contact sheet: {contact_sheet(out_dir)}")
    splits = ", ".join(f"{k}: {v}" for k, v in result["split"].value_counts().items())
    out.print(f"wrote {len(result)} labelled variants ({splits}) to {Path(out_dir) / 'manifest.csv'}")


@app.command("build-corpus")
@friendly
def build_corpus_command(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for the corpora, manifest.csv and store/ (reused across runs)."),
    recipe: str = typer.Option("large", "--recipe", "-r", help="Corpus recipe: a name in configs/corpus/ or a YAML path."),
    set_: Optional[list[str]] = SetOpt,
    stages: str = typer.Option("real,synth,labels,extract,embed", "--stages", help="Comma-separated stages to run."),
):
    """Build a large labelled corpus in one go: degrade the real training clips of the shared data with
    many variants, render and degrade synthetic talking heads, then extract and embed everything into
    one store. Every stage resumes where a previous run stopped.

    Example (a ~300-clip slice, to time it): talkqa build-corpus --out build/corpus --set real.max_sources=20
    --set real.variants=10 --set synth.n=20 --set synth.variants=5
    """
    from talkqa.scoring.corpus_build import build_corpus, load_recipe

    rec = load_recipe(recipe, list(set_ or []))
    wanted = tuple(s.strip() for s in stages.split(",") if s.strip())
    report = build_corpus(rec, out_dir, log=lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False), stages=wanted)
    out.print(f"{report.get('labelled_clips', '?')} labelled clips ({report.get('speakers', '?')} speakers) in "
              f"{Path(out_dir) / 'manifest.csv'}; store {Path(out_dir) / 'store'}; timings in {Path(out_dir) / 'build.json'}")
