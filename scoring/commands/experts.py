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
    out_of_fold: Optional[list[Path]] = typer.Option(None, "--out-of-fold", metavar="DIR", help="Fold weights of one expert (from `talkqa train-expert NAME --fold K/N --out DIR`; repeat for each fold): every clip is read by the weights that never saw its speaker. For the stores a model stacked on the expert trains on; scoring uses the expert's own weights."),
):
    """Run experts over the store's clips: writes STORE/experts/<name>.parquet (tokens) and
    <name>.scalars.parquet (one row per clip). Reruns skip finished clips.

    Example (out-of-fold sync readings for a training store): talkqa embed --store S --experts sync
    --out-of-fold weights/sync_fold1 --out-of-fold weights/sync_fold2"""
    from talkqa.experts.embed import run_embed

    names = _names(experts)
    if out_of_fold and len(names) != 1:
        raise UsageError("--out-of-fold reads with one expert's fold weights: name that expert with --experts NAME")
    failed = 0
    for name in names:
        with ClipProgress(f"embed {name}", None) as progress:
            table = run_embed(store, name, config_dir, set_ or [], device, engine, workers, ray_address,
                              lambda r: progress.done(r["status"] == "ok", r["status"], r["clip_id"], r["message"]),
                              out_of_fold=out_of_fold or None)
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
    fold: Optional[str] = typer.Option(None, "--fold", metavar="K/N", help="Hold out the K-th of N speaker folds (shuffled with --seed) instead of a random share of speakers. Train K = 1..N with the same seed and stores, then `talkqa embed --out-of-fold` reads every clip with the weights that never saw its speaker (what a model stacked on the expert should train on)."),
):
    """Train an expert on the clips of a store and save its weights with a model card, into a new folder
    (use them with `--set weights=DIR` on embed, or `weights: DIR` in the expert's YAML).

    Experts remember the clips they trained on (the sync expert reads them with far more confidence than
    new footage). A model stacked on an expert learns from its readings, so it should see readings of
    speakers the expert never saw: train fold experts (`--fold 1/2`, `--fold 2/2`, same --seed) and embed the
    model's training stores with `talkqa embed --out-of-fold DIR1 --out-of-fold DIR2`."""

    from talkqa.experts.embed import create_expert

    if out_dir is not None and replace_shipped:
        raise UsageError("give --out DIR or --replace-shipped, not both")
    fold_kn = _parse_fold(fold) if fold else None
    if fold_kn and replace_shipped:
        raise UsageError("--fold trains weights for out-of-fold readings; save them with --out DIR, not over the shipped ones")
    expert = create_expert(name, config_dir, set_ or [], device)
    target = expert.weights_dir() if replace_shipped else (out_dir or Path("weights") / name)
    if not replace_shipped and target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty; choose a new --out folder (or --replace-shipped to "
                         "overwrite the weights shipped with talkqa)")
    try:
        metrics = expert.fit(store, seed=seed, fold=fold_kn)
    except ValueError as exc:
        raise UsageError(f"train-expert {name}: {exc}") from exc
    metrics.setdefault("command", "talkqa " + " ".join(sys.argv[1:]))
    expert.save(target)
    out.print(f"saved {name} to {target}" + ("" if replace_shipped else f"; use it with --set weights={target}"))
    out.print(json.dumps(metrics, indent=2, default=float))


def _parse_fold(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    try:
        kn = int(k), int(n)
    except ValueError:
        raise UsageError(f"--fold {text!r}: write K/N, e.g. --fold 1/2 (the first of two speaker folds)") from None
    if not (kn[1] >= 2 and 1 <= kn[0] <= kn[1]):
        raise UsageError(f"--fold {text!r}: need N >= 2 and 1 <= K <= N")
    return kn
