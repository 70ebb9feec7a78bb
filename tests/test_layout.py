"""The house itself: one import package, floors that import only downwards (import-linter, `make lint`),
no import hidden inside a function except a documented lazy one, configs shipped as package data."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    """talkqa.* package name -> folder, from the package-dir mapping and the __init__.py files on disk."""
    found = {}
    for name, folder in SETUPTOOLS["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            found[".".join((name, *rel))] = init.parent
    return found


def test_every_package_folder_is_packaged():
    assert sorted(_package_folders()) == sorted(SETUPTOOLS["packages"])


def _function_imports(path: Path):
    tree = ast.parse(path.read_text())
    lines = path.read_text().split("\n")
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node.lineno, lines[node.end_lineno - 1]


def test_imports_inside_functions_are_documented_lazy_ones():
    """The floors have no cycles to dodge: an import inside a function is there for start-up speed or an
    optional dependency, and says so (`# lazy: ...`). Command modules import their library in the command
    body by design (scoring/commands/__init__.py); talkqa/__init__.py exposes Scorer lazily."""
    offenders = []
    for package, folder in _package_folders().items():
        if package in ("talkqa", "talkqa.scoring.commands"):
            continue
        for path in folder.glob("*.py"):
            offenders += [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
                          for n, line in _function_imports(path) if "# lazy:" not in line]
    assert not offenders, "\n".join(offenders)


def test_shipped_configs_are_package_data():
    from talkqa.config import config_path
    from talkqa.experts import EXPERTS

    for name in EXPERTS.names():
        assert config_path("experts", f"{name}.yaml").is_file()
    for parts in (("extract.yaml",), ("train", "default.yaml"), ("degrade", "default.yaml"),
                  ("benchmark", "default.yaml")):
        assert config_path(*parts).is_file(), parts


@pytest.mark.slow
def test_the_wheel_holds_exactly_one_top_level_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("talkqa-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"talkqa"}
    for needed in ("talkqa/configs/extract.yaml", "talkqa/models/default/model.json",
                   "talkqa/experts/weights/sync/model.pt", "talkqa/scoring/cli.py", "talkqa/features/face.py",
                   "talkqa/experts/weights/sync/visual.onnx", "talkqa/experts/weights/sync/onnx.json",
                   "talkqa/models/default/fusion/fusion.onnx", "talkqa/models/default/fusion/onnx.json"):
        assert needed in names, needed
