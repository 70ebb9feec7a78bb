"""Markdown tables from a `talkqa benchmark` results.json: SRCC [95 % CI] per strategy x dimension, the
paired-bootstrap SRCC differences (MTL - single-task, MTL - best other), the learning curve with its
log-linear trends and where the MTL trend would meet each other strategy's, and the inter-task
correlations of the labels (and of one strategy's predictions).

    python benchmarks/benchmark_tables.py REPORT_DIR/results.json [--predictions mtl_fusion] > tables.md

Extrapolation is that of the benchmark itself (scoring/benchmark_analysis.py): per strategy and
dimension a least-squares line of SRCC against log2(training source clips) through the measured
points; where the MTL line is below another's at the largest measured size and rises faster, the two
lines meet at 2 ** ((b_o - b_m) / (a_m - a_o)) source clips. It is a straight line in log(size)
through 3-4 points: read it as an order of magnitude, not a forecast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _ci(m: dict | None, digits: int = 3) -> str:
    if not m or m.get("value") is None:
        return "–"
    return f"{m['value']:.{digits}f} [{m['lo']:.2f}, {m['hi']:.2f}]"


def _signed(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "–"
    mark = " *" if m["lo"] > 0 or m["hi"] < 0 else ""
    return f"{m['value']:+.3f} [{m['lo']:+.2f}, {m['hi']:+.2f}]{mark}"


def tables(res: dict, predictions: str | None = None) -> str:
    dims = res["dimensions"]
    out = [(f"{res['n_clips']} labelled clips, {res['n_sources']} source clips, {res['n_speakers']} speakers, "
            f"{res['n_folds']} speaker-grouped folds; labels: `{res['labels']}`; created {res['created']}, "
            f"{res['elapsed_s']:.0f} s (cached fits count ~0)."), ""]
    out += ["### SRCC [95 % CI] per strategy and dimension (pooled out-of-fold)", "",
            "| strategy | " + " | ".join(dims) + " |", "|---" * (len(dims) + 1) + "|"]
    best = {d: max((b[d]["srcc"]["value"] for b in res["strategies"].values()
                    if d in b and b[d]["srcc"]["value"] is not None), default=None) for d in dims}
    for name, block in res["strategies"].items():
        cells = []
        for d in dims:
            s = _ci((block.get(d) or {}).get("srcc"))
            v = (block.get(d) or {}).get("srcc", {}).get("value")
            cells.append(f"**{s}**" if v is not None and best[d] is not None and abs(v - best[d]) < 1e-12 else s)
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "Best per dimension in bold. A dimension whose labels are constant has no SRCC (–).", ""]

    if res.get("differences"):
        out += ["### SRCC differences, paired bootstrap over clips [95 % CI]", "",
                "`*`: the interval excludes 0.", "",
                "| MTL strategy | dimension | MTL − single_task | MTL − best other (which) |", "|---|---|---|---|"]
        for mtl, by_dim in res["differences"].items():
            for d in dims:
                cell = by_dim.get(d)
                if not cell:
                    continue
                st, bo = cell.get("vs_single_task"), cell.get("vs_best_other")
                out.append(f"| {mtl} | {d} | {_signed(st)} | {_signed(bo)} ({(bo or {}).get('other', '–')}) |")
        out.append("")

    lc = res.get("learning_curve") or {}
    if lc.get("points"):
        out += ["### Learning curve: SRCC [95 % CI] vs training source clips per fold", ""]
        for strategy, by_size in lc["points"].items():
            out += [f"**{strategy}**", "", "| size | sources | clips | " + " | ".join(dims) + " |",
                    "|---" * (len(dims) + 3) + "|"]
            for size in lc["sizes"]:
                e = by_size.get(size)
                if e is None:
                    continue
                out.append(f"| {size} | {e['n_sources']:g} | {e['n_clips']:g} | "
                           + " | ".join(_ci(e["srcc"].get(d), 2) for d in dims) + " |")
            out.append("")
        out += ["Trend: SRCC = intercept + slope × log2(sources) (least squares through the points above).", "",
                "| strategy | " + " | ".join(dims) + " |", "|---" * (len(dims) + 1) + "|"]
        for strategy, by_dim in lc.get("trend", {}).items():
            out.append(f"| {strategy} | " + " | ".join(
                f"{by_dim[d]['slope_per_doubling']:+.3f}/doubling" if d in by_dim else "–" for d in dims) + " |")
        out.append("")
        if lc.get("crossings"):
            out += ["Where the MTL trend meets the others' (extrapolated in log2(sources) from the measured points):",
                    "", "| MTL | vs | dimension | gap at largest size | verdict | sources to meet (≈ clips) |",
                    "|---|---|---|---|---|---|"]
            per_source = res["n_clips"] / max(1, res["n_sources"])
            for mtl, by_other in lc["crossings"].items():
                for other, by_dim in by_other.items():
                    for d in dims:
                        c = by_dim.get(d)
                        if not c:
                            continue
                        n = c["sources_to_meet"]
                        meet = "–" if n is None else f"{n:,.0f} (≈ {n * per_source:,.0f})"
                        out.append(f"| {mtl} | {other} | {d} | {c['gap_at_largest']:+.3f} | {c['verdict']} | {meet} |")
            out.append("")

        out += _last_segment(res, lc, dims)

    it = res.get("inter_task") or {}
    blocks = [("labels", it.get("labels"))]
    if predictions and predictions in it.get("predictions", {}):
        blocks.append((f"{predictions} predictions", it["predictions"][predictions]))
    for title, block in blocks:
        if not block:
            continue
        names = block["dimensions"]
        out += [f"### Inter-task Spearman correlation: {title}", "", "| | " + " | ".join(names) + " |",
                "|---" * (len(names) + 1) + "|"]
        for name, row in zip(names, block["matrix"]):
            out.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:+.2f}" for v in row) + " |")
        if block.get("constant"):
            out.append(f"\nConstant (no correlation defined): {', '.join(block['constant'])}.")
        out.append("")
    return "\n".join(out)


def _last_segment(res: dict, lc: dict, dims: list[str]) -> list[str]:
    """The same question from the two largest sizes only (the regime the next corpus would extend): per
    strategy the slope per doubling between its two largest measured sizes; where MTL is behind at the
    largest size and rises faster, the doublings until the two straight lines meet. A strategy measured
    at the full size only (no curve) is taken as flat from there: for MTL the optimistic bound."""
    mtl_names = [m for m in (res.get("differences") or {}) if m in lc["points"]]
    per_source = res["n_clips"] / max(1, res["n_sources"])
    rows = []
    for mtl in mtl_names:
        pts_m = sorted(lc["points"][mtl].values(), key=lambda e: e["n_sources"])
        if len(pts_m) < 2:
            continue
        (a, b), n_top = pts_m[-2:], pts_m[-1]["n_sources"]
        # the ones with a curve, and single-task (the comparison the claim is about) even without one
        others = [o for o in res["strategies"] if o not in (res.get("differences") or {})
                  and (o in lc["points"] or o == "single_task")]
        for other in others:
            pts_o = sorted(lc["points"].get(other, {}).values(), key=lambda e: e["n_sources"])
            for d in dims:
                vm = [e["srcc"].get(d, {}).get("value") for e in (a, b)]
                if None in vm:
                    continue
                slope_m = (vm[1] - vm[0]) / math.log2(b["n_sources"] / a["n_sources"])
                if len(pts_o) >= 2:
                    c, e2 = pts_o[-2:]
                    vo = [x["srcc"].get(d, {}).get("value") for x in (c, e2)]
                    if None in vo:
                        continue
                    slope_o, top_o, how = (vo[1] - vo[0]) / math.log2(e2["n_sources"] / c["n_sources"]), vo[1], "curve"
                else:
                    top_o = (res["strategies"].get(other, {}).get(d) or {}).get("srcc", {}).get("value")
                    if top_o is None:
                        continue
                    slope_o, how = 0.0, "full size only: taken as flat"
                gap = top_o - vm[1]
                if gap <= 0:
                    verdict = "MTL ahead or level"
                elif slope_m <= slope_o:
                    verdict = "no meeting: MTL gains no faster"
                else:
                    dbl = gap / (slope_m - slope_o)
                    n_star = n_top * 2 ** dbl
                    verdict = f"{dbl:.1f} doublings: ≈ {n_star:,.0f} sources (≈ {n_star * per_source:,.0f} clips)"
                rows.append(f"| {mtl} | {other} ({how}) | {d} | {slope_m:+.3f} | {slope_o:+.3f} | {gap:+.3f} | {verdict} |")
    if not rows:
        return []
    return [("From the two largest measured sizes only (slope per doubling of training source clips between them; "
             "straight lines in log2(sources) extended from the largest size):"), "",
            "| MTL | vs | dimension | MTL slope | other slope | gap at largest | MTL meets it after |",
            "|---|---|---|---|---|---|---|", *rows, ""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--predictions", default=None, help="also the inter-task correlations of this strategy's predictions")
    args = ap.parse_args(argv)
    print(tables(json.loads(args.results.read_text()), args.predictions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
