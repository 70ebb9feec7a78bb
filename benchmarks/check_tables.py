"""Markdown tables of a `talkqa check --json` report, as the README and closing notes show them.

    .venv/bin/talkqa check --json > check.json
    .venv/bin/python benchmarks/check_tables.py check.json
    .venv/bin/python benchmarks/check_tables.py candidate.json --before shipped.json

Prints two tables: one row per (check, expectation) over every source — how many sources pass, the worst
value and where — and one row per graded (artifact, dimension) ladder with its Spearman on each source.
Then a count line: failing rows, ladder pairs passing on every source, run time.

With --before (the report of the model it would replace, same clips) it prints instead one row per
(check, expectation) with both models' sources passing, and the counts the README's shipping criteria
compare: plain rows passed, single outcomes passed, ladder pairs passing on every source, and the clean
rows and clean_ranks_first of each.

With --mean-with (reports of other seeds of the same recipe, same clips) it re-judges the graded ladders on
the scores averaged over all the reports, by the rule `talkqa check` applies (Spearman(severity, score) <=
-0.9 over the clean clip and the levels, a score that does not move fails): whether a recipe, not one
seed's trees, keeps a ladder.

    .venv/bin/python benchmarks/check_tables.py seed0.json --mean-with seed1.json

With --side-by-side (reports of other models, same clips) it prints one row per (check, expectation) with each
model's sources passing in its own column, then the least and the mean of them, and a row of the counts (plain
rows / single outcomes / ladder pairs on every source): how much a row moves across models — e.g. one recipe
whose out-of-fold folds were dealt a few ways (`stacking.oof_folds_seed`, benchmarks/refit_level2.py).

    .venv/bin/python benchmarks/check_tables.py many.json:1 --side-by-side many.json:2 many.json:3

A report of several models (`talkqa check --model A --model B --json`, {"reports": [...]}) is named as
FILE:K, the K-th model (1-based, in --model order): `check_tables.py both.json:2 --before both.json:1`.

With --plot FILE.png it also draws the report (and any --before / --side-by-side ones, as panels side by side) as
`talkqa check --plot` does: one row per expectation, one column per source, the margin in each cell.

    .venv/bin/python benchmarks/check_tables.py both.json:1 --side-by-side both.json:2 --plot both.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def plain_rows(report: dict) -> list[dict]:
    return [r for r in report["summary"] if not r["check"].startswith("graded:")]


def ladders(report: dict) -> dict[tuple[str, str], list[dict]]:
    """(artifact, dimension) -> the Spearman outcome of each source."""
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for o in report["outcomes"]:
        if o["check"].startswith("graded:") and "Spearman" in o["measure"]:
            out[(o["check"].split(":", 1)[1], o["measure"].split(" ")[0])].append(o)
    return dict(sorted(out.items()))


def every_source(report: dict) -> list[str]:
    """The ladder pairs that pass on every source."""
    return [f"{a} → {d}" for (a, d), items in ladders(report).items() if all(o["status"] == "pass" for o in items)]


def counts(report: dict) -> dict[str, int]:
    plain = plain_rows(report)
    return {"rows": len(plain), "rows_passed": sum(r["status"] == "pass" for r in plain),
            "outcomes": sum(r["judged"] for r in plain), "outcomes_passed": sum(r["passed"] for r in plain),
            "ladder_pairs": len(ladders(report)), "ladder_pairs_passed": len(every_source(report))}


def single_table(report: dict) -> list[str]:
    lines = ["| check | expectation | sources passing | worst value (where) | status |", "|---|---|---|---|---|"]
    for r in plain_rows(report):
        where = r["worst_at"].split(" ")[0]
        worst = f"{_fmt(r['worst_value'])} ({where})" if r["worst_value"] is not None else "–"
        lines.append(f"| {r['check']} | {r['measure']} | {r['passed']}/{r['judged']} | {worst} | {r['status']} |")
    lines += ["", "| artifact → dimension | Spearman per source | status |", "|---|---|---|"]
    for (artifact, dim), items in ladders(report).items():
        rhos = ", ".join("–" if o["value"] is None else f"{o['value']:+.2f}" for o in items)
        lines.append(f"| {artifact} → {dim} | {rhos} | {'/'.join(sorted({o['status'] for o in items}))} |")
    c, every = counts(report), every_source(report)
    lines += ["", f"{c['rows'] - c['rows_passed']} of {c['rows']} check rows not passed; {len(every)} of "
              f"{c['ladder_pairs']} ladder pairs pass on every source ({', '.join(every) or 'none'}); "
              f"{len(report['sources'])} sources, {report['elapsed_s']:.0f} s."]
    return lines


def _same_sources(reports: list[dict], verb: str) -> None:
    """Reports are compared or averaged source by source: refuse reports of different clips."""
    if any(sorted(r["sources"]) != sorted(reports[0]["sources"]) for r in reports):
        raise SystemExit(f"the reports were run on different source clips: {verb} reports of the same clips")


def _sources(r: dict | None) -> str:
    if r is None:
        return "–"
    if r["status"] == "pass":
        return f"{r['passed']}/{r['judged']} pass"
    return f"{r['passed']}/{r['judged']}" + ("" if r["worst_value"] is None else f" (worst {r['worst_value']:.2f})")


def comparison_table(before: dict, after: dict) -> list[str]:
    """Before/after per (check, expectation), then the counts the shipping criteria compare."""
    _same_sources([before, after], "compare")
    b = {(r["check"], r["measure"]): r for r in plain_rows(before)}
    a = {(r["check"], r["measure"]): r for r in plain_rows(after)}
    lines = ["| check | expectation | before | after |", "|---|---|---|---|"]
    for key in list(b) + [k for k in a if k not in b]:
        lines.append(f"| {key[0]} | {key[1]} | {_sources(b.get(key))} | {_sources(a.get(key))} |")
    cb, ca = counts(before), counts(after)
    gained = sorted(set(every_source(after)) - set(every_source(before)))
    lost = sorted(set(every_source(before)) - set(every_source(after)))
    lines += ["", f"plain rows passed: {cb['rows_passed']} → {ca['rows_passed']} of {ca['rows']}",
              f"single outcomes passed: {cb['outcomes_passed']} → {ca['outcomes_passed']} of {ca['outcomes']}",
              f"ladder pairs passing on every source: {cb['ladder_pairs_passed']} → {ca['ladder_pairs_passed']} of "
              f"{ca['ladder_pairs']} (now pass: {', '.join(gained) or 'none'}; no longer: {', '.join(lost) or 'none'})"]
    return lines


def side_by_side(reports: list[dict]) -> list[str]:
    """One column of sources passing per report, then their least and mean; a last row of the counts."""
    _same_sources(reports, "compare")
    names = [f"{r['model'].get('name', '?')} {r['model'].get('version', '')}".strip() for r in reports]
    rows = [{(r["check"], r["measure"]): r for r in plain_rows(report)} for report in reports]
    keys = list(dict.fromkeys(k for by_key in rows for k in by_key))
    lines = ["| check | expectation | " + " | ".join(names) + " | least | mean |",
             "|---|---|" + "---|" * (len(names) + 2)]
    for key in keys:
        found = [by_key.get(key) for by_key in rows]
        passed = [r["passed"] for r in found if r is not None]
        cells = ["–" if r is None else f"{r['passed']}/{r['judged']}" for r in found]
        spread = [f"{min(passed)}", f"{sum(passed) / len(passed):.1f}"] if passed else ["–", "–"]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells + spread) + " |")
    c = [counts(r) for r in reports]
    cells = [f"{x['rows_passed']} / {x['outcomes_passed']} / {x['ladder_pairs_passed']}" for x in c]
    least = " / ".join(str(min(x[k] for x in c)) for k in ("rows_passed", "outcomes_passed", "ladder_pairs_passed"))
    mean = " / ".join(f"{sum(x[k] for x in c) / len(c):.1f}"
                      for k in ("rows_passed", "outcomes_passed", "ladder_pairs_passed"))
    lines.append("| counts | plain rows / single outcomes / ladder pairs on every source | "
                 + " | ".join(cells + [least, mean]) + " |")
    return lines


def mean_scores(reports: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """source -> variant -> dimension -> the mean score over the reports that scored it."""
    _same_sources(reports, "average")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for source, variants in reports[0]["scores"].items():
        for key, scores in variants.items():
            for dim, value in scores.items():
                values = [r["scores"].get(source, {}).get(key, {}).get(dim) for r in reports]
                if all(isinstance(v, (int, float)) for v in values):
                    out.setdefault(source, {}).setdefault(key, {})[dim] = sum(values) / len(values)
    return out


def mean_ladders(reports: list[dict]) -> list[str]:
    """One row per graded (artifact, dimension): its Spearman per source on the averaged scores, judged against
    the threshold the report's own measure names ("... falls with severity (Spearman <= -0.9)")."""
    import re

    from talkqa.scoring.check import _spearman

    scores, pairs = mean_scores(reports), ladders(reports[0])
    lines = [f"| artifact → dimension | Spearman per source, mean of {len(reports)} reports | status |", "|---|---|---|"]
    passed = []
    for (artifact, dim), items in pairs.items():
        min_spearman = float(re.search(r"Spearman <= -([0-9.]+)", items[0]["measure"]).group(1))
        rhos = []
        for o in items:
            keys = ["clean"] + o["variant"].split(" → ")
            severity = [0.0] + [float(m.group(1)) if (m := re.search(r"severity=([0-9.]+)", k)) else i + 1.0
                                for i, k in enumerate(keys[1:])]
            values = [scores.get(o["source"], {}).get(k, {}).get(dim) for k in keys]
            rhos.append(float("nan") if None in values else _spearman(severity, values))
        ok = all(r == r and -r >= min_spearman - 1e-9 for r in rhos)  # r == r: not nan
        passed += [f"{artifact} → {dim}"] if ok else []
        lines.append(f"| {artifact} → {dim} | {', '.join(f'{r:+.2f}' for r in rhos)} | {'pass' if ok else 'fail'} |")
    lines += ["", f"ladder pairs passing on every source, on the mean of {len(reports)} reports: {len(passed)} of "
              f"{len(pairs)} ({', '.join(passed) or 'none'})"]
    return lines


def load_report(name: str) -> dict:
    """The report in FILE, or the K-th of a several-model report named FILE:K."""
    path, _, k = name.rpartition(":") if name.rpartition(":")[2].isdigit() else (name, "", "")
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file; give the JSON that `talkqa check --json > FILE` wrote")
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path} is not a `talkqa check --json` report ({exc}); write one with "
                         "`talkqa check --json > FILE`")
    if "reports" not in doc:
        if k:
            raise SystemExit(f"{path} holds one model's report; name it without :{k}")
        return doc
    if not k or not 1 <= int(k) <= len(doc["reports"]):
        models = ", ".join(f"{path}:{i} ({r['model'].get('name', '?')} {r['model'].get('version', '')})"
                           for i, r in enumerate(doc["reports"], 1))
        raise SystemExit(f"{path} holds {len(doc['reports'])} models' reports; name one: {models}")
    return doc["reports"][int(k) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="JSON written by `talkqa check --json` (FILE:K for the K-th of several models)")
    ap.add_argument("--before", help="the report of the model it is compared with (same source clips)")
    ap.add_argument("--mean-with", nargs="+", metavar="REPORT",
                    help="reports of other seeds of the same recipe: re-judge the graded ladders on the mean scores")
    ap.add_argument("--side-by-side", nargs="+", metavar="REPORT",
                    help="reports of other models: each one's sources passing per row in a column, least and mean")
    ap.add_argument("--plot", metavar="FILE.png", help="also draw the report(s) as `talkqa check --plot` does")
    args = ap.parse_args()
    report = load_report(args.report)
    if args.plot:
        from talkqa.scoring.check_plot import plot_check

        others = [load_report(args.before)] if args.before else []
        plot_check(others + [report] + [load_report(p) for p in args.side_by_side or []], args.plot)
        print(f"plot: {args.plot}")
    if args.side_by_side:
        lines = side_by_side([report] + [load_report(p) for p in args.side_by_side])
    elif args.mean_with:
        lines = mean_ladders([report] + [load_report(p) for p in args.mean_with])
    else:
        lines = comparison_table(load_report(args.before), report) if args.before else single_table(report)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
