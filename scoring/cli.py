"""The `talkqa` command line (typer + rich). Each command is a thin shell over a library function;
errors meant for people are printed as one line and turned into a non-zero exit status."""

from __future__ import annotations

import importlib
import pkgutil

from . import commands
from .cli_app import app

# Every module in talkqa/commands registers its commands; an import error is a real error, not skipped.
for _mod in pkgutil.iter_modules(commands.__path__):
    importlib.import_module(f"{commands.__name__}.{_mod.name}")

__all__ = ["app"]
