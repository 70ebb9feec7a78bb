"""Expert commands: list, embed, train-expert."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from talkqa.errors import UsageError

from ..cli_app import SetOpt, app, friendly
from ..console import ClipProgress, out

experts_app = typer.Typer(help="Inspect the registered experts.", no_args_is_help=True)
app.add_typer(experts_app, name="experts")


@experts_app.command("list")
@friendly
def list_experts():
    """Every registered expert: what it reads, its embedding size, its scalar outputs and weights."""
    from rich.table import Table

    from talkqa.experts import EXPERTS
    from talkqa.experts.embed import create_expert

    t = Table(title="experts (configs/experts/<name>.yaml)")
    for col in ("name", "version", "input", "modality", "dim", "scalars", "weights"):
        t.add_column(col)
    for name in EXPERTS.names():
        e = create_expert(name)
        wd = e.weights_dir()
        t.add_row(name, e.version, e.input_kind, e.modality, str(e.dim), ", ".join(e.columns()),
                  f"{wd} ({'present' if wd.is_dir() else 'missing'})")
    out.print(t)


def _names(experts: str | None) -> list[str]:
    from talkqa.experts import EXPERTS

    if experts is None:
        return EXPERTS.names()
    names = [n.strip() for n in experts.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--experts needs at least one name, e.g. --experts {','.join(EXPERTS.names())}")
    for n in names:
        EXPERTS.get(n)  # clear error for an unknown name
    return names


@app.command()
@friendly
def embed(
    store: Path = typer.Option(Path("store"), "--store", help="Store written by `talkqa extract`."),
    experts: Optional[str] = typer.Option(None, help="Comma-separated expert names (default: every registered expert; see `talkqa experts list`)."),
    config_dir: Optional[Path] = typer.Option(None, help="Folder of expert YAMLs (default: configs/experts)."),
    set_: Optional[list[str]] = SetOpt,
    device: str = typer.Option("cpu", help="cpu or cuda."),
    engine: str = typer.Option("local", help="local or ray."),
    workers: int = typer.Option(1, min=1),
    ray_address: Optional[str] = typer.Option(None),
):
    """Run experts over the store's clips: writes STORE/experts/<name>.parquet (tokens) and
    <name>.scalars.parquet (one row per clip). Reruns skip finished clips."""
    from talkqa.experts.embed import run_embed

    failed = 0
    for name in _names(experts):
        with ClipProgress(f"embed {name}", None) as progress:
            table = run_embed(store, name, config_dir, set_ or [], device, engine, workers, ray_address,
                              lambda r: progress.done(r["status"] == "ok", r["status"], r["clip_id"], r["message"]))
        failed += progress.failed
        out.print(f"{name}: {len(table)} clips ({int(table['cached'].sum())} cached) -> {Path(store) / 'experts' / (name + '.parquet')}")
    if failed:
        raise typer.Exit(1)


@app.command("train-expert")
@friendly
def train_expert(
    name: str = typer.Argument(..., help="Expert to train (see `talkqa experts list`)."),
    store: list[Path] = typer.Option(..., "--store", help="Store with tracks (from `talkqa extract`); repeat for several."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="New folder for the weights and model card (default: weights/NAME); an existing non-empty folder is refused."),
    replace_shipped: bool = typer.Option(False, "--replace-shipped", help="Write over the weights shipped with talkqa (what `make default-model` does); models trained on the old weights stop loading."),
    config_dir: Optional[Path] = typer.Option(None, help="Folder of expert YAMLs (default: configs/experts)."),
    set_: Optional[list[str]] = SetOpt,
    device: str = typer.Option("cpu", help="cpu or cuda (used when present; never required)."),
    seed: int = typer.Option(0),
):
    """Train an expert on the clips of a store and save its weights with a model card, into a new folder
    (use them with `--set weights=DIR` on embed, or `weights: DIR` in the expert's YAML)."""

    from talkqa.experts.embed import create_expert

    if out_dir is not None and replace_shipped:
        raise UsageError("give --out DIR or --replace-shipped, not both")
    expert = create_expert(name, config_dir, set_ or [], device)
    target = expert.weights_dir() if replace_shipped else (out_dir or Path("weights") / name)
    if not replace_shipped and target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty; choose a new --out folder (or --replace-shipped to "
                         "overwrite the weights shipped with talkqa)")
    metrics = expert.fit(store, seed=seed)
    metrics.setdefault("command", "talkqa " + " ".join(sys.argv[1:]))
    expert.save(target)
    out.print(f"saved {name} to {target}" + ("" if replace_shipped else f"; use it with --set weights={target}"))
    out.print(json.dumps(metrics, indent=2, default=float))
