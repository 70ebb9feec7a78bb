"""`talkqa check`: behavioural checks a viewer would agree with, run against a model.

Exit status: 0 when every check passes (or cannot be scored by this model: "not scored"), 1 when
any fails, 2 for usage errors (no source clips, a bad option or config, an unusable model folder).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import SetOpt, app, friendly
from ..console import err, out, progress_bar
from talkqa.errors import UsageError

STYLE = {"pass": "green", "fail": "bold red", "error": "bold red", "not scored": "yellow", "skipped": "dim"}


def _sources(manifest: Optional[Path]):
    """(sources, donor pool, where they come from)."""
    from talkqa.manifest import load_manifest
    from talkqa.shared_data import find_shared_data, heldout_manifest, shared_manifest

    shared = find_shared_data()
    # other speakers' voices (for other_voice and the swap artifacts): the real clips of the shared
    # data when present, else the other clips of the manifest
    pool = None
    if shared is not None:
        real = shared_manifest("real", shared)
        pool = real[real["meta__sync"] != "no_audio"]
    if manifest is not None:
        df, problems = load_manifest(manifest)
        for p in problems:
            err.print(f"[yellow]warning:[/] {escape(str(manifest))}: {escape(str(p))}", highlight=False)
        return df, pool, str(manifest)
    if shared is None:
        raise UsageError("no source clips: by default `talkqa check` uses the held-out real clips of "
                         "configs/shared_data.yaml under ../shared/data (not found; set TALKQA_SHARED_DATA=DIR to "
                         "the folder holding MANIFEST.tsv), or pass --manifest FILE (columns clip_id, video, "
                         "optional speaker) with real, clean, in-sync clips")
    return heldout_manifest(shared), pool, f"held-out real clips in sync, {shared}"


def _fmt(v, digits: int = 2) -> str:
    return "–" if v is None else f"{v:+.{digits}f}" if digits == 3 else f"{v:.{digits}f}"


def _table(report, source_note: str) -> None:
    from rich.table import Table

    model = report.model
    t = Table(title=f"talkqa check: model {model.get('name', '?')} {model.get('version', '')}, "
                    f"{len(report.sources)} source clip(s) ({source_note}){', quick' if report.quick else ''}, "
                    f"{report.elapsed_s / 60:.1f} min")
    for col, justify in (("check", "left"), ("expects", "left"), ("passed", "right"), ("worst", "right"),
                         ("margin", "right"), ("", "left")):
        t.add_column(col, justify=justify, overflow="fold")
    last = None
    for r in report.summary():
        name = r["check"] if r["check"] != last else ""
        last = r["check"]
        status = r["status"]
        note = "; ".join(r["notes"])[:80]
        passed = f"{r['passed']}/{r['judged']}" if r["judged"] else "–"  # of the variants judged (scored and made)
        t.add_row(escape(name), escape(r["measure"]), passed, _fmt(r["worst_value"]),
                  _fmt(r["worst_margin"], 3), f"[{STYLE[status]}]{status}[/]" + (f" [dim]{escape(note)}[/]" if note else ""))
    out.print(t)
    failed = {o.check for o in report.failed}
    verdict = "[green]all checks pass[/]" if report.passed else \
        f"[bold red]{len(failed)} check(s) fail[/]: {escape(', '.join(sorted(failed)))}"
    out.print(verdict)


@app.command()
@friendly
def check(
    model: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="Model folder from `talkqa train` (default: the shipped model). Repeat it to check several models on the same variants: models that read clips alike (same extraction and experts, e.g. one model and a copy given ceilings by benchmarks/add_ceilings.py) share each variant's reading, so each one more costs seconds per variant instead of a full run; with --json the output is then {\"reports\": [one per model, in order]}."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Source clips (clip_id, video, optional speaker): real, clean, in sync; an optional meta__unlabelled column (e.g. 'audio_quality;overall') names dimensions a clip's own recording fails, which are then not required to score well. Default: the held-out real clips of ../shared/data."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Checks YAML (default: the shipped configs/check/default.yaml)."),
    set_: Optional[list[str]] = SetOpt,
    quick: bool = typer.Option(False, "--quick", help="CI size: one source clip, the strongest level of each graded artifact."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated check names to run ('graded' for the artifact ladders)."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report (summary, every outcome, every score) as JSON."),
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the variant clips in this folder (default: a temporary folder, removed)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the result as a picture (PNG): one row per expectation, one column per source clip, green where it passes and red where it fails, with the margin in each cell; one panel per --model, side by side."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Does the model move the way people do? Makes variants of real clips that any viewer can judge
    (a still photo with a voice, audio 0.2 / 0.5 s off, another speaker's voice, a stall, 0 dB noise,
    a blurred face, heavy compression, every graded degrade artifact), scores them and checks the
    scores against configs/check/default.yaml. Prints pass/fail with margins; exit 1 if any fails.

    Time on 2 CPU cores: --quick (46 variants of one clip) about 1 min on an idle
    machine (66 s), longer beside other work; the full run (380 variants of the 12 held-out
    clips in sync, graded ladders on 2 of them) 8-13 min idle, 25-40 min busy.

    Examples: talkqa check --quick ; talkqa check --json > check.json ;
    talkqa check --model models/new ;
    talkqa check --model models/v1 --model models/v2 --json > both.json ;
    talkqa check --manifest clips.csv --only clean,still_photo ;
    talkqa check --plot check.png (which source fails which row, at a glance) ;
    talkqa check --only stall --set source.mbtree=true (variants encoded as the corpora are)
    """
    from talkqa.scoring.check import plan_check, run_checks
    from talkqa.scoring.check_config import load_check_config

    if plot is not None:  # before a run of minutes, not after it
        from talkqa.scoring.check_plot import plot_path_problem

        if problem := plot_path_problem(plot):
            raise UsageError(f"--plot {plot}: {problem}")
    cfg = load_check_config(config, list(set_ or []))
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    sources, pool, source_note = _sources(manifest)
    if sources.empty:
        raise UsageError(f"no source clips in {source_note}")
    plans = plan_check(sources, cfg, quick, names, pool)  # refuses unknown check names before the model loads
    err.print(f"{sum(len(p.variants) for p in plans)} variants of {len(plans)} source clip(s) ({escape(source_note)})",
              highlight=False)
    from talkqa.scoring.scorer import Scorer

    scorers = [Scorer(m, device) for m in (model or [None])]
    if len(scorers) > 1:
        readings = len({s.reading_key() if hasattr(s, "reading_key") else id(s) for s in scorers})
        err.print(f"{len(scorers)} models, {readings} different reading(s) of each variant "
                  f"({'shared where the extraction and experts agree' if readings < len(scorers) else 'none shared'})",
                  highlight=False)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="talkqa-check-"))
    try:
        with progress_bar("variants") as bar:
            job = bar.add_task("check", total=None)

            def progress(done: int, total: int, label: str) -> None:
                bar.update(job, completed=done, total=total, description=f"check {escape(label)[:40]:<40}")

            reports = run_checks(sources, scorers, cfg, work, quick=quick, only=names, donor_pool=pool,
                                 progress=progress)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if json_out:
        doc = reports[0].to_dict() if len(reports) == 1 else {"reports": [r.to_dict() for r in reports]}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    else:
        for report in reports:
            _table(report, source_note)
        if keep is not None:
            err.print(f"variant clips kept in {keep}", highlight=False)
    if plot is not None:  # after the results are out: a picture that cannot be written loses nothing else
        from talkqa.scoring.check_plot import plot_check

        try:
            err.print(f"plot: {plot_check([r.to_dict() for r in reports], plot)}", highlight=False)
        except OSError as exc:
            raise UsageError(f"--plot {plot}: could not write the picture ({exc.strerror or exc}); the results "
                             "above are complete; give a writable path") from None
    if not all(r.passed for r in reports):
        raise typer.Exit(1)
