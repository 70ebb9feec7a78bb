"""The demo (what `make demo` runs), offline, needs no data, sized for at most 5 minutes on 2 cores
(2 min 5 s wall, 3 CPU-minutes, measured on 2 cores at load average ~1.5; 7 minutes at load ~9):

1. faults: one talking head (a held-out real clip of ../shared/data when present, else a rendered
   one) and versions of it with a planted fault (audio half a second
   late, a still photo, heavy noise, a blurred face; configs/check/demo.yaml), scored with the shipped
   model. Each clip gets its HTML report; a table puts the six scores side by side with the fault
   named, what talkqa's diagnostics found and whether the scores moved the way a viewer would say
   (judged as `talkqa check` judges).
2. benchmark: synthetic heads -> graded degraded variants (the labels) -> extraction -> every shipped
   expert -> `talkqa benchmark` at demo size (configs/benchmark/demo.yaml: speaker-grouped CV of the
   fusion strategies) -> the headline SRCC table, with where multi-task fusion does not win said so.

`--quick` (what the tests run) is a smoke test of the same path, not a measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from talkqa.config import ExtractConfig, config_path, load_config
from talkqa.corpus.degrade import DegradeRecipe, degrade_corpus
from talkqa.corpus.synth import synth_corpus
from talkqa.experts import EXPERTS
from talkqa.experts.embed import run_embed
from talkqa.features.extract import run_extract
from talkqa.manifest import load_manifest
from talkqa.shared_data import find_shared_data, heldout_manifest
from talkqa.tasks import DIMENSION_NAMES

from .benchmark import BenchmarkConfig, run_benchmark
from .check import FAILING, NOT_SCORED, CheckReport, order_sources, run_check
from .check_config import load_check_config
from .console import out, progress_bar
from .html_report import write_report
from .scorer import Scorer


@dataclass(frozen=True)
class DemoSize:
    n: int  # synthetic source clips of the benchmark (one speaker each)
    variants: int  # variants per source, the clean clip included
    duration_s: float
    benchmark_config: str = "demo.yaml"  # file in configs/benchmark/
    benchmark_overrides: tuple[str, ...] = ()
    fault_seconds: float = 4.0  # the head the faults are planted in


SIZES = {
    "full": DemoSize(n=12, variants=2, duration_s=3.0),
    "quick": DemoSize(n=6, variants=2, duration_s=2.0, fault_seconds=3.0,
                      benchmark_overrides=("fusion.train.epochs=2", "bootstrap=50", "stacking.n_trials=1",
                                           "stacking.params.n_estimators=30")),
}
FAULTS = config_path("check", "demo.yaml")


def run_demo(out_dir: str | Path, size: str | DemoSize = "full", n: int | None = None, workers: int = 2,
             experts: list[str] | None = None, model: str | Path | None = None) -> dict:
    """Run both parts into `out_dir`; returns {"faults": CheckReport, "reports": {variant: page}, "fault_results":
    {variant: Result}, "store", "report" (benchmark folder), "results" (its results.json), "timings_s"}."""

    spec = SIZES[size] if isinstance(size, str) else size
    n = n or spec.n
    out_dir = Path(out_dir)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    out.rule("[bold]1. Planted faults, scored by the shipped model")
    faults = score_planted_faults(out_dir / "faults", spec.fault_seconds, model)
    timings["faults"] = time.perf_counter() - t0

    out.rule(f"[bold]2. Benchmark: {n} synthetic heads x {spec.variants} versions, speaker-grouped CV")
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
        statuses = run_extract(manifest, store, ExtractConfig(), workers=workers, on_done=lambda status: bar.advance(job))
    timings["extract"] = time.perf_counter() - t0
    ok = int((statuses["status"] == "ok").sum())
    out.print(f"extracted {len(manifest)} clips into {store}: {ok} ok" + (
        f", {len(manifest) - ok} with a problem (see {store / 'status.parquet'})" if ok < len(manifest) else ""), highlight=False)

    t0 = time.perf_counter()
    for name in experts or EXPERTS.names():
        with progress_bar() as bar:
            job = bar.add_task(f"embed {name}", total=len(manifest))
            run_embed(store, name, workers=workers, on_done=lambda res: bar.advance(job))
    timings["embed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    config = load_config(BenchmarkConfig, config_path("benchmark", spec.benchmark_config),
                         [f"store={store}", f"labels={labels_path}", *spec.benchmark_overrides])
    report = out_dir / "report"
    with progress_bar("fits") as bar:
        job = bar.add_task("benchmark", total=None)
        results = run_benchmark(config, report, progress=lambda done, total, label: bar.update(
            job, completed=done, total=total, description=f"benchmark {label}"))
    timings["benchmark"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all

    print_headline(results)
    print_verdicts(results)
    out.print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    out.print(f"fault reports: {out_dir / 'faults' / 'reports'}  benchmark report: {report / 'index.html'}",
              highlight=False, soft_wrap=True)
    return {"faults": faults["report"], "reports": faults["reports"], "fault_results": faults["results"], "store": store, "report": report,
            "results": results, "timings_s": timings}


# ------------------------------------------------------------------------------------------ faults
class _ReportingScorer:
    """A Scorer whose every scored clip also gets its HTML report (and keeps its Result)."""

    def __init__(self, scorer: Scorer, folder: Path, page_names: dict[str, str]):
        self.scorer, self.folder, self.page_names, self.results, self.pages = scorer, folder, page_names, {}, {}
        self.model = scorer.model

    def score(self, path):
        result = self.scorer.score(path, keep_details=True)
        key = Path(path).stem  # run_check writes each variant as <variant key>.mp4
        if not result.error:
            self.pages[key] = write_report(result, self.folder / f"{self.page_names.get(key, key)}.html")
        result.details = None  # the page is written; the arrays are not needed any more
        self.results[key] = result
        return result


def _fault_source(work: Path, seconds: float):
    """The clip the faults are planted in: a real held-out clip of ../shared/data when it is there (the
    shipped model learned from real faces only, and a viewer judges real faces), else one rendered
    synthetic head — the demo needs no data, but the model has never seen a rendered head and reads
    its synthetic mouth motion as poor lip sync."""
    shared = find_shared_data()
    if shared is not None:
        source = order_sources(heldout_manifest(shared)).head(1)
        out.print(f"planting faults in the first {seconds:g} s of {source['clip_id'].iloc[0]} (a held-out real "
                  f"clip of {shared}) and loading the model ...", highlight=False)
        return source
    out.print(f"../shared/data not found: rendering a synthetic {seconds:g} s talking head instead (the shipped "
              "model was trained on real faces only and reads a rendered mouth as out of sync) and loading the "
              "model ...", highlight=False)
    synth_corpus(work / "source", n=1, duration_s=seconds, workers=1, seed=7)
    return load_manifest(work / "source" / "manifest.csv")[0]


def score_planted_faults(work: Path, seconds: float, model: str | Path | None = None) -> dict:
    """Take one clip (`_fault_source`), plant each fault of configs/check/demo.yaml, score every version
    (with its HTML report) and print the table. Returns {"report": CheckReport, "reports": {variant: page}, "results"}."""

    config = load_check_config(FAULTS, [f"source.max_seconds={seconds}"])
    source = _fault_source(work, seconds)
    reports = work / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    # a page per planted fault, named after its check (clean.html, still_photo.html, ...)
    names = {v.key: c.name if len(c.variants) == 1 else f"{c.name}_{i}" for c in config.checks
             for i, v in enumerate(c.variants)}
    scorer = _ReportingScorer(Scorer(model), reports, names)
    with progress_bar() as bar:
        job = bar.add_task("plant faults + score", total=None)
        check = run_check(source, scorer, config, work / "clips",
                          progress=lambda done, total, label: bar.update(job, completed=done, total=total))
    print_faults(check, config, scorer)
    return {"report": check, "reports": dict(scorer.pages), "results": dict(scorer.results)}


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


SHORT = {"lip_sync": "lip sync", "expression": "expression", "visual_quality": "visual", "audio_quality": "audio",
         "consistency": "consistency", "overall": "overall"}


def fault_rows(check: CheckReport, config, results: dict) -> list[dict]:
    """Per planted fault (variant of a check): its Result, the expectations it failed, those the model
    could not judge, and its verdict ("yes" / "no" / "not scored" / "not scored: <error>")."""
    rows = []
    for c in config.checks:
        outcomes = [o for o in check.outcomes if o.check == c.name]
        for v in c.variants:
            r = results.get(v.key)
            mine = [o for o in outcomes if o.variant == v.key]
            missed = [o for o in mine if o.status in FAILING]
            unscored = [o for o in mine if o.status == NOT_SCORED]
            if r is None or r.error:
                verdict = "error"
            elif missed:
                verdict = "no"
            elif unscored and len(unscored) == len(mine):
                verdict = "not scored"
            else:
                verdict = "yes"
            rows.append({"fault": c.name if len(c.variants) == 1 else f"{c.name} {v.key}", "says": c.says,
                         "result": r, "outcomes": mine, "missed": missed, "unscored": unscored, "verdict": verdict})
    return rows


def print_faults(check: CheckReport, config, scorer: _ReportingScorer) -> None:
    """The six scores of each planted fault side by side, which dimensions the diagnostics flagged and
    whether the scores moved as a viewer would say; then each fault's expectation and diagnostics in words."""
    from rich.table import Table  # lazy: slow import, only on this path

    m = check.model
    rows = fault_rows(check, config, scorer.results)
    table = Table(title=f"Planted faults, scored by model {m.get('name')} {m.get('version')} (1–5, higher is better)")
    table.add_column("planted fault")
    for d in DIMENSION_NAMES:
        table.add_column(SHORT[d], justify="right")
    table.add_column("talkqa flagged")
    table.add_column("as a viewer says?")
    colour = {"yes": "green", "no": "red", "not scored": "yellow", "error": "red"}
    for row in rows:
        r = row["result"]
        if r is None or r.error:
            table.add_row(escape(row["fault"]), *["–"] * len(DIMENSION_NAMES), "–", "[red]error[/]")
            continue
        flagged = list(dict.fromkeys(SHORT[d["dimension"]] for d in r.diagnostics))
        table.add_row(escape(row["fault"]), *[_fmt(r.scores[d]) for d in DIMENSION_NAMES], ", ".join(flagged) or "nothing",
                      f"[{colour[row['verdict']]}]{row['verdict']}[/]")
    out.print(table)
    for row in rows:
        r = row["result"]
        line = f"[bold]{escape(row['fault'])}[/]: a viewer says {escape(row['says'])}."
        if r is None or r.error:
            line += f" Not scored: {escape(r.error if r is not None else 'the variant could not be made')}"
        else:
            judged = [o for o in row["outcomes"] if o.status not in (NOT_SCORED,)]
            if judged:
                line += " Expected " + "; ".join(f"{o.measure} ({'got ' + _fmt(o.value) if o.value is not None else o.note}: "
                                                 f"{'ok' if o.status not in FAILING else '[red]missed[/]'})" for o in judged) + "."
            if row["unscored"]:
                line += f" This model does not score {', '.join(sorted({o.measure.split()[0] for o in row['unscored']}))}."
            if r.diagnostics:
                shown = "; ".join(f"{d['start']:.1f}–{d['end']:.1f} s {escape(d['issue'])}" for d in r.diagnostics[:2])
                more = f" (+{len(r.diagnostics) - 2} more)" if len(r.diagnostics) > 2 else ""
                line += f" Diagnostics: {shown}{more}."
        out.print(line, highlight=False, soft_wrap=False)
    count = {v: sum(row["verdict"] == v for row in rows) for v in ("yes", "no", "not scored", "error")}
    tally = ", ".join(f"{n} {what}" for what, n in (("missed", count["no"]), ("not scored by this model", count["not scored"]),
                                                     ("could not be scored", count["error"])) if n)
    out.print(f"{count['yes']} of {len(rows)} as a viewer would say{' (' + tally + ')' if tally else ''}; "
              f"`talkqa check` runs the full list. One HTML report per clip (scores, diagnostics on a timeline, why): "
              f"{scorer.folder}/", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------------------- benchmark
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


def verdict_lines(results: dict) -> list[str]:
    """Per multi-task strategy and dimension, the paired-bootstrap SRCC difference to single-task and to
    the best other strategy, in words: wins (CI above 0), loses (CI below 0) or no clear difference."""
    lines = []
    for mtl, block in results.get("differences", {}).items():
        for dim, cell in block.items():
            seen = set()
            for d in cell.values():
                if d.get("value") is None or d["other"] in seen:  # the best other may be single-task itself
                    continue
                seen.add(d["other"])
                if d["lo"] > 0:
                    word = "wins"
                elif d["hi"] < 0:
                    word = "[red]loses[/]"
                else:
                    word = "no clear difference" + (" (behind)" if d["value"] < 0 else " (ahead)" if d["value"] > 0 else "")
                lines.append(f"{mtl} vs {d['other']}, {dim}: {d['value']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] — {word}")
    return lines


def best_line(results: dict) -> str:
    """Which strategy has the highest SRCC on each dimension (ties named together)."""
    parts = []
    for d in results["dimensions"]:
        vals = {n: b.get(d, {}).get("srcc", {}).get("value") for n, b in results["strategies"].items()}
        vals = {n: v for n, v in vals.items() if v is not None}
        if vals:
            top = max(vals.values())
            parts.append(f"{d} {'/'.join(n for n, v in vals.items() if v == top)} ({top:.2f})")
    return "highest SRCC: " + ", ".join(parts)


def print_verdicts(results: dict) -> None:
    out.print(best_line(results), highlight=False)
    lines = verdict_lines(results)
    if not lines:
        return
    out.print("Does multi-task fusion beat the others here? (SRCC difference, paired bootstrap 95 % CI; "
              f"{results['n_clips']} clips is small, so most CIs are wide)", highlight=False)
    for line in lines:
        out.print("  " + line, highlight=False)


def _short(v: float) -> str:
    """0.42 -> .42, -0.07 -> -.07: CI bounds compact enough for five columns in 130 characters."""
    return f"{v:.2f}".replace("0.", ".", 1)


