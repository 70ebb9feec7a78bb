"""`talkqa score`: six scores, the AV offset and the diagnostics of each clip.

Exit status: 0 when every input was scored, 1 when any could not be (its JSON line / status row
still says why), 2 for usage errors (no inputs, a bad option, a missing or mismatched model folder).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import app, friendly
from ..console import ClipProgress, err, out
from talkqa.errors import UsageError
from talkqa.tasks import DIMENSION_NAMES


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _table(results) -> None:
    from rich.table import Table

    t = Table(title=f"talkqa scores (1–5; model {results[0].model['name']} {results[0].model['version']})")
    t.add_column("clip", overflow="fold")
    for d in DIMENSION_NAMES:
        t.add_column(d, justify="right")
    t.add_column("AV offset (frames)", justify="right")
    t.add_column("diagnostics")
    for r in results:
        if r.error:
            t.add_row(escape(r.clip), *["–"] * len(DIMENSION_NAMES), "–", f"[red]{escape(r.error_code or 'error')}[/]")
            continue
        off = r.sync["offset_frames"]
        sync = "–" if off is None else f"{off:+.0f} (conf {_fmt(r.sync['confidence'])})"
        issues = "; ".join(f"{d['start']:.1f}–{d['end']:.1f} s {d['issue']}" for d in r.diagnostics[:2])
        if len(r.diagnostics) > 2:
            issues += f" (+{len(r.diagnostics) - 2} more; --json lists all)"
        t.add_row(escape(r.clip), *[_fmt(r.scores[d]) for d in DIMENSION_NAMES], sync, escape(issues or "none"))
    out.print(t)


def _reasons(results) -> None:
    """The sentence of each explained dimension, per clip, under the table."""
    for r in results:
        dims = (r.explanation or {}).get("dimensions", {})
        if not dims:
            continue
        out.print(f"[bold]{escape(r.clip)}[/]: why (stacking model; contributions in MOS points)", highlight=False)
        for d in dims.values():
            out.print(f"  {escape(d['sentence'])}", highlight=False, soft_wrap=True)


def _html_name(folder: Path, clip: str, used: set[str]) -> Path:
    stem = Path(clip).stem or "clip"
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return folder / f"{name}.html"


def _expand(inputs: list[Path]) -> list[tuple[Path, str | None]]:
    """Each folder becomes the videos under it (recursive, sorted); files stay as given. A folder with
    no video in it stays one input, with the reason it cannot be scored."""
    from talkqa.manifest import find_videos, no_videos_message

    expanded = []
    for path in inputs:
        if not path.is_dir():
            expanded.append((path, None))
            continue
        found = find_videos(path)
        expanded += [(video, None) for video in found]
        if not found:
            expanded.append((path, f"{path}: {no_videos_message('this folder')} (searched recursively); "
                                   "give video files, or a folder that holds some"))
    return expanded


@app.command()
@friendly
def score(
    videos: Optional[list[str]] = typer.Argument(None, metavar="VIDEO...",
                                                 help="Video file(s) to score, or folder(s): every video under a "
                                                 "folder (recursively, sorted by path) is scored."),
    json_lines: bool = typer.Option(False, "--json", help="One JSON object per input and line, in input order."),
    explain: bool = typer.Option(False, "--explain", help="Say why: the top named factors of each score (an "
                                 "`explain` block in --json; sentences under the table)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model folder from `talkqa train` (default: the shipped model)."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Audio file replacing the video's own track (one video only)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report per clip into this folder."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Batch mode: score every clip of a manifest."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Batch mode: Parquet file with one status row per clip."),
    engine: str = typer.Option("local", help="Batch mode: local (process pool) or ray."),
    workers: int = typer.Option(1, min=1, help="Batch mode: parallel workers (processes or Ray actors)."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address; without it a local Ray is started."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
):
    """Score talking-face videos: lip_sync, expression, visual_quality, audio_quality, consistency, overall (1–5), the AV
    offset and the time segments where a problem was found.

    Examples: talkqa score a.mp4 b.mp4 --json ; talkqa score clip.mp4 --json --explain ;
    talkqa score clip.mp4 --html report/ ; talkqa score generated/ --json ;
    talkqa score --manifest clips.csv --out scores.parquet --workers 2
    """
    if manifest is not None:
        if videos:
            raise UsageError("give either VIDEO arguments or --manifest, not both")
        if out_path is None:
            raise UsageError("--manifest needs --out scores.parquet (where the status rows go)")
        if json_lines or explain or html is not None or audio is not None:
            raise UsageError("--json, --explain, --html and --audio are for VIDEO arguments; batch results go to --out "
                             "(one row per clip; score_*, sync_*, diagnostics as JSON, status, message)")
        _batch(manifest, out_path, model, engine, workers, ray_address, device)
        return
    if not videos:
        raise UsageError("no input: give one or more VIDEO files or folders, or --manifest M --out scores.parquet")
    if out_path is not None:
        raise UsageError("--out is for batch mode (--manifest); single videos print to the terminal")
    if any(not v.strip() for v in videos):
        # an unset shell variable ("$clip") would otherwise read as ".": every video under the current folder
        raise UsageError("an empty VIDEO argument (an unset shell variable?): give a video file or folder; "
                         "use . to score every video under the current folder")
    inputs = _expand([Path(v) for v in videos])
    if audio is not None and len(inputs) != 1:
        raise UsageError(f"--audio replaces the track of one video; give exactly one VIDEO with it ({len(inputs)} given)")
    from talkqa.scoring.result import failed_result
    from talkqa.scoring.scorer import Scorer

    scorer = Scorer(model, device)
    results, used = [], set()
    for path, problem in inputs:
        if problem:
            r = failed_result(str(path), problem, "not_a_file", scorer.model)
        else:
            r = scorer.score(path, audio, keep_details=html is not None, explain=explain)
        if r.error:
            err.print(f"[bold red]error:[/] {escape(r.error)}", highlight=False, soft_wrap=True)
        for w in r.warnings:
            err.print(f"[yellow]warning:[/] {escape(str(path))}: {escape(w)}", highlight=False, soft_wrap=True)
        if json_lines:
            sys.stdout.write(r.to_json(explain) + "\n")
            sys.stdout.flush()
        if html is not None and not r.error:
            from talkqa.scoring.html_report import write_report

            page = write_report(r, _html_name(html, r.clip, used))
            err.print(f"report: {page}", highlight=False)
        r.details = {}
        results.append(r)
    if not json_lines:
        _table(results)
        if explain:
            _reasons(results)
    if any(r.error for r in results):
        raise typer.Exit(1)


def _batch(manifest: Path, out_path: Path, model, engine, workers, ray_address, device) -> None:
    from rich.table import Table

    from talkqa.manifest import load_manifest
    from talkqa.scoring.batch import run_batch

    df, problems = load_manifest(manifest)
    for p in problems:
        err.print(f"[yellow]warning:[/] {escape(str(manifest))}: {escape(str(p))}", highlight=False)
    with ClipProgress("score", len(df)) as progress:
        table = run_batch(df, out_path, model, engine, workers, ray_address, device,
                          on_done=lambda r: progress.done(r["status"] == "ok", r["status"], r["clip_id"], r["message"]))
    counts = table["status"].value_counts()
    t = Table(title=f"score status ({out_path}; {int(table['cached'].sum())} from the cache)")
    t.add_column("status")
    t.add_column("clips", justify="right")
    for status, n in counts.items():
        t.add_row(str(status), str(n))
    out.print(t)
    if progress.failed:
        raise typer.Exit(1)
