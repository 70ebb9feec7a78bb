"""Markdown tables of a `talkqa check --json` report, as the README and closing notes show them.

    .venv/bin/talkqa check --json > check.json
    .venv/bin/python benchmarks/check_tables.py check.json

Prints two tables: one row per (check, expectation) over every source — how many sources pass, the worst
value and where — and one row per graded (artifact, dimension) ladder with its Spearman on each source.
Then a count line: failing rows, ladder pairs passing on every source, run time.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="JSON written by `talkqa check --json`")
    report = json.load(open(ap.parse_args().report))

    print("| check | expectation | sources passing | worst value (where) | status |")
    print("|---|---|---|---|---|")
    plain = [r for r in report["summary"] if not r["check"].startswith("graded:")]
    for r in plain:
        where = r["worst_at"].split(" ")[0]
        worst = f"{_fmt(r['worst_value'])} ({where})" if r["worst_value"] is not None else "–"
        print(f"| {r['check']} | {r['measure']} | {r['passed']}/{r['judged']} | {worst} | {r['status']} |")

    ladders: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for o in report["outcomes"]:
        if o["check"].startswith("graded:") and "Spearman" in o["measure"]:
            ladders[(o["check"].split(":", 1)[1], o["measure"].split(" ")[0])].append(o)
    print("\n| artifact → dimension | Spearman per source | status |")
    print("|---|---|---|")
    every = []
    for (artifact, dim), items in sorted(ladders.items()):
        rhos = ", ".join("–" if o["value"] is None else f"{o['value']:+.2f}" for o in items)
        statuses = sorted({o["status"] for o in items})
        if statuses == ["pass"]:
            every.append(f"{artifact} → {dim}")
        print(f"| {artifact} → {dim} | {rhos} | {'/'.join(statuses)} |")

    failing = sum(r["status"] != "pass" for r in plain)
    print(f"\n{failing} of {len(plain)} check rows not passed; {len(every)} of {len(ladders)} ladder pairs pass on every "
          f"source ({', '.join(every) or 'none'}); {len(report['sources'])} sources, {report['elapsed_s']:.0f} s.")


if __name__ == "__main__":
    main()
