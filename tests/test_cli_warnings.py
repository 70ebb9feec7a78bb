"""The `talkqa` program hides dependencies' warnings (the library and the tests see them all)."""

from __future__ import annotations

import subprocess
import sys

# How urllib3's SOCKS warning reached `talkqa score`, made deterministic: the visual lane is inside a
# warnings.catch_warnings() block while the audio lane imports requests (through speechmos). requests
# adds its "ignore" filter to the lane's copy of the filter list, the lane restores the list without it,
# and urllib3.contrib.socks warns as it is imported (here: imported again; a failed import is retried).
RACE = """
import sys, warnings
if sys.argv[1] == "cli":
    from talkqa.scoring.cli import quiet_third_party_warnings
    quiet_third_party_warnings()
lane = warnings.catch_warnings()
lane.__enter__()
import requests
lane.__exit__(None, None, None)
try:
    import urllib3.contrib.socks
except ImportError:
    pass
"""


def _stderr(mode: str, *python_flags: str) -> str:
    run = subprocess.run([sys.executable, *python_flags, "-c", RACE, mode], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    return run.stderr


def test_the_socks_warning_is_gone_from_the_cli_only():
    assert "SOCKS support" in _stderr("library")  # the race is real: without the CLI's policy it prints
    assert _stderr("cli") == ""
    assert "SOCKS support" in _stderr("cli", "-W", "default")  # asked for with -W: shown


def test_the_installed_program_is_main():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("talkqa") == "talkqa.scoring.cli:main"
