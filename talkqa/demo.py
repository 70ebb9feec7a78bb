"""The demo pipeline (what `make demo` runs), offline, with no ../shared:

synthetic talking heads -> a few degraded variants of each (so the features have something to
find) -> extraction into a store -> a summary table of what was measured next to what was injected.
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import ExtractConfig
from .console import out, progress_bar


def run_demo(out_dir: str | Path, n: int = 6, workers: int = 2) -> Path:
    from .corpus.degrade import DegradeRecipe, degrade_corpus
    from .corpus.synth import synth_corpus
    from .extract import run_extract
    from .manifest import load_manifest
    from .report_text import print_store_summary

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    with progress_bar() as bar:
        job = bar.add_task("synth", total=n)
        synth_corpus(out_dir / "corpus", n=n, duration_s=4.0, workers=workers,
                     progress=lambda done, total: bar.update(job, completed=done))
    synth, _ = load_manifest(out_dir / "corpus" / "manifest.csv")
    with progress_bar("sources") as bar:
        job = bar.add_task("degrade", total=len(synth))
        degrade_corpus(synth, out_dir / "degraded", DegradeRecipe.load(), seed=0, variants=2, workers=workers,
                       progress=lambda done, total: bar.update(job, completed=done, total=total))
    manifest, _ = load_manifest(out_dir / "degraded" / "manifest.csv")
    with progress_bar() as bar:
        job = bar.add_task("extract", total=len(manifest))
        run_extract(manifest, out_dir / "store", ExtractConfig(), workers=workers,
                    on_done=lambda status: bar.advance(job))
    print_store_summary(out_dir / "store", manifest)
    out.print(f"demo finished in {time.perf_counter() - t0:.1f} s; store: {out_dir / 'store'}; "
              f"labelled corpus: {out_dir / 'degraded' / 'manifest.csv'}")
    return out_dir / "store"
