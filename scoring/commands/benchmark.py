"""`talkqa benchmark`: cross-validated comparison of every scoring strategy, written as a report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from ..cli_app import SetOpt, app, friendly
from ..console import err, out


@app.command()
@friendly
def benchmark(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Benchmark YAML config (default: the shipped configs/benchmark/default.yaml)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store folder (overrides the config)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Manifest or human-label table with mos_* columns."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Pairwise preferences: clip_a, clip_b, dimension, votes_a, votes_b."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default reports/<config hash>)."),
    set_: Optional[list[str]] = SetOpt,
):
    """Speaker-grouped k-fold CV of MTL fusion, single-task, concat-MLP, LightGBM stacking, hand-crafted
    LightGBM and raw expert scalars: SRCC/KRCC/PLCC/RMSE with 95 % CIs, ablations, SHAP, index.html."""
    from ..benchmark import BenchmarkConfig, run_benchmark
    from talkqa.config import config_path, load_config, stable_hash

    overrides = list(set_ or [])
    overrides += [f"{k}={v}" for k, v in (("store", store), ("labels", labels), ("pairs", pairs)) if v is not None]
    cfg = load_config(BenchmarkConfig, config or config_path("benchmark", "default.yaml"), overrides)
    target = out_dir or Path("reports") / stable_hash(cfg.model_dump(mode="json"), 10)
    res = run_benchmark(cfg, target, log=lambda m: err.print(f"[dim]{escape(m)}[/]"))
    from rich.table import Table

    table = Table(title=f"SRCC (95 % CI), {res['n_clips']} clips, {res['n_folds']} folds")
    table.add_column("strategy")
    for d in res["dimensions"]:
        table.add_column(d, justify="right")
    for name, block in {**res["strategies"], **res["ablations"]}.items():
        table.add_row(name, *[f"{block[d]['srcc']['value']:.3f} [{block[d]['srcc']['lo']:.2f}, {block[d]['srcc']['hi']:.2f}]"
                              if d in block and block[d]["srcc"]["value"] is not None else "–" for d in res["dimensions"]])
    out.print(table)
    out.print(f"report: {target / 'index.html'}")
