"""The `talkqa` command line (typer + rich). Each command is a thin shell over a library function;
errors meant for people are printed as one line and turned into a non-zero exit status.

`main` is the installed `talkqa` program: `app` plus the quiet warning policy below. Tests and the
library use `app` and see every warning."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import warnings

from . import commands
from .cli_app import app

# Every module in talkqa/commands registers its commands; an import error is a real error, not skipped.
for _mod in pkgutil.iter_modules(commands.__path__):
    importlib.import_module(f"{commands.__name__}.{_mod.name}")


def quiet_third_party_warnings() -> None:
    """A user of the command line cannot act on a dependency's warnings (urllib3's "SOCKS support requires
    PySocks", torch and shap deprecations, ...): hide them. talkqa says what a user needs in its own
    `warning:` lines, never through the warnings module. Someone who asks for warnings with -W or
    PYTHONWARNINGS gets them.

    Set before any dependency is imported, the filter is in the list that every `catch_warnings()` block
    copies and restores. A dependency's own "ignore" filter is not: requests adds one for the SOCKS warning
    while it imports, and when `talkqa score`'s other lane leaves a catch_warnings block at that moment
    the global filter list (one per process before Python 3.14) is restored without it.
    PYTHONWARNINGS carries the policy to worker processes."""
    if sys.warnoptions:
        return
    warnings.simplefilter("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"


def main() -> None:
    quiet_third_party_warnings()
    app()


if __name__ == "__main__":
    main()

__all__ = ["app", "main"]
