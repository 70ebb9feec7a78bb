"""The typer app and what every command shares: one-line errors, config options.

Commands live in talkqa/commands/<area>.py and register themselves on `app`."""

from __future__ import annotations

import functools

import typer

from rich.markup import escape

from .console import err
from talkqa.errors import TalkqaError

app = typer.Typer(
    name="talkqa",
    help="Score AI-generated talking-face videos on lip sync, expression, visual quality, audio quality, "
    "consistency and overall quality, with the reasons.\n\nTypical flow: talkqa manifest DIR -> talkqa extract -> (experts, "
    "fusion, stacking) -> talkqa score.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (defaults are used for keys it omits).")
SetOpt = typer.Option(None, "--set", "-s", help="Override one config key, e.g. --set preprocess.detect_every=2 (repeatable).")


def friendly(fn):
    """Turn TalkqaError into one red line + exit code; Ctrl-C into a resume hint."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TalkqaError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: finished clips are saved; rerun the same command to resume.")
            raise typer.Exit(130) from None

    return wrapper
