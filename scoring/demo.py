"""The demo pipeline (what `make demo` runs), offline, with no ../shared:

synthetic talking heads -> graded degraded variants of each (the labels) -> extraction into a store
-> every shipped expert -> the benchmark (speaker-grouped CV of every fusion strategy, which trains
fusion and stacking on each fold) -> a self-contained HTML report and the headline SRCC table.

The default size finishes in about 10 minutes on a 2-core laptop; `--quick` (what CI runs) is a
smoke test of the same path in about 2 minutes, not a measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from talkqa.config import ExtractConfig, config_path, load_config
from talkqa.corpus.degrade import DegradeRecipe, degrade_corpus
from talkqa.corpus.synth import synth_corpus
from talkqa.experts import EXPERTS
from talkqa.experts.embed import run_embed
from talkqa.features.extract import run_extract
from talkqa.manifest import load_manifest

from .benchmark import BenchmarkConfig, run_benchmark
from .console import out, progress_bar
from .report_text import print_store_summary


@dataclass(frozen=True)
class DemoSize:
    n: int  # synthetic source clips
    variants: int  # variants per source, the clean clip included
    duration_s: float
    benchmark_config: str  # file in configs/benchmark/


SIZES = {
    "full": DemoSize(n=24, variants=3, duration_s=4.0, benchmark_config="demo.yaml"),
    "quick": DemoSize(n=8, variants=2, duration_s=3.0, benchmark_config="ci.yaml"),
}


def run_demo(out_dir: str | Path, size: str | DemoSize = "full", n: int | None = None, workers: int = 2,
             experts: list[str] | None = None) -> dict:
    """Run the whole pipeline into `out_dir`; returns {"store", "report", "results", "timings_s"}."""

    spec = SIZES[size] if isinstance(size, str) else size
    n = n or spec.n
    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    with progress_bar() as bar:
        job = bar.add_task("synth", total=n)
        synth_corpus(out_dir / "corpus", n=n, duration_s=spec.duration_s, workers=workers,
                     progress=lambda done, total: bar.update(job, completed=done))
    synth, _ = load_manifest(out_dir / "corpus" / "manifest.csv")
    with progress_bar("sources") as bar:
        job = bar.add_task("degrade", total=len(synth))
        degrade_corpus(synth, out_dir / "degraded", DegradeRecipe.load(), seed=0, variants=spec.variants,
                       workers=workers, progress=lambda done, total: bar.update(job, completed=done, total=total))
    timings["corpus"] = time.perf_counter() - t0
    labels_path = out_dir / "degraded" / "manifest.csv"
    manifest, _ = load_manifest(labels_path)

    t0 = time.perf_counter()
    store = out_dir / "store"
    with progress_bar() as bar:
        job = bar.add_task("extract", total=len(manifest))
        run_extract(manifest, store, ExtractConfig(), workers=workers, on_done=lambda status: bar.advance(job))
    timings["extract"] = time.perf_counter() - t0
    print_store_summary(store, manifest)

    t0 = time.perf_counter()
    for name in experts or EXPERTS.names():
        with progress_bar() as bar:
            job = bar.add_task(f"embed {name}", total=len(manifest))
            run_embed(store, name, workers=workers, on_done=lambda res: bar.advance(job))
    timings["embed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    config = load_config(BenchmarkConfig, config_path("benchmark", spec.benchmark_config),
                         [f"store={store}", f"labels={labels_path}"])
    report = out_dir / "report"
    results = run_benchmark(config, report, log=lambda msg: None)
    timings["benchmark"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    print_headline(results)
    out.print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    out.print(f"report: {report / 'index.html'}")
    return {"store": store, "report": report, "results": results, "timings_s": timings}


def print_headline(results: dict) -> None:
    """SRCC with its 95 % CI per strategy and dimension, the best value per dimension in bold."""
    from rich.table import Table  # lazy: slow import, only on this path

    dims = results["dimensions"]
    blocks = {**results["strategies"], **results["ablations"]}
    best = {d: max((b[d]["srcc"]["value"] for b in blocks.values() if d in b and b[d]["srcc"]["value"] is not None),
                   default=None) for d in dims}
    table = Table(title=f"SRCC [95 % CI] — {results['n_clips']} clips, {results['n_speakers']} speakers, "
                        f"{results['n_folds']}-fold CV grouped by speaker")
    table.add_column("strategy")
    for d in dims:
        table.add_column(d, justify="right")
    for name, block in blocks.items():
        cells = []
        for d in dims:
            s = block.get(d, {}).get("srcc", {})
            if s.get("value") is None:
                cells.append("–")
                continue
            text = f"{s['value']:.2f} [{_short(s['lo'])},{_short(s['hi'])}]"
            cells.append(f"[bold]{text}[/]" if s["value"] == best[d] else text)
        table.add_row(name, *cells)
    out.print(table)


def _short(v: float) -> str:
    """0.42 -> .42, -0.07 -> -.07: CI bounds compact enough for five columns in 130 characters."""
    return f"{v:.2f}".replace("0.", ".", 1)
