"""Terminal output: one shared rich console (stderr for messages, so stdout stays parseable)
and a progress bar that shows clips/s and ETA."""

from __future__ import annotations

import os

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

err = Console(stderr=True)
out = Console()
if not out.is_terminal and "COLUMNS" not in os.environ:
    # piped output (logs, CI) has no width to fit; 80 columns would fold every table
    out = Console(width=130)


class RateColumn(ProgressColumn):
    def __init__(self, unit: str = "clips"):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


def progress_bar(unit: str = "clips") -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


class ClipProgress:
    """The progress display of a batch command (extract, embed, score): one bar advanced per clip,
    one line for each clip that could not be processed, and their count (`failed`) for the exit code.

        with ClipProgress("extract", len(df)) as progress:
            run_extract(..., on_done=lambda s: progress.done(s.has_features, s.status, s.clip_id, s.message))
        if progress.failed: ...
    """

    def __init__(self, description: str, total: int | None, print_problems: bool = True):
        self.description, self.total, self.print_problems = description, total, print_problems
        self.failed = 0

    def __enter__(self) -> "ClipProgress":
        self._bar = progress_bar().__enter__()
        self._job = self._bar.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def done(self, ok: bool, status: str, clip_id: str, message: str) -> None:
        self._bar.advance(self._job)
        if not ok:
            self.failed += 1
            if self.print_problems:
                print_clip_problem(self._bar.console, status, clip_id, message)


def print_clip_problem(console: Console, status: str, clip_id: str, message: str) -> None:
    """The line a batch command prints for a clip it could not process (the same in every command)."""
    console.print(f"[red]{escape(status)}[/] {escape(clip_id)}: {escape(message)}", highlight=False, soft_wrap=True)
