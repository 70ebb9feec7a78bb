"""A picture of `talkqa check`: one row per expectation, one column per source clip, each cell coloured by
whether that source passed and how far inside (green) or outside (red) the expectation it landed.

The table says how many sources pass each row; the picture shows at a glance which sources fail which rows — a
column of red is a clip the model misreads everywhere (a recording fault, an unusual face), a row of red is an
expectation the model does not meet at all — and, with several models, how they differ cell by cell. It reads
the report dictionaries `talkqa check --json` prints, so a saved report can be drawn again later
(`benchmarks/check_tables.py report.json --plot check.png`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from talkqa.store import atomic_path

JUDGED = ("pass", "fail", "error")  # an error (the variant could not be scored) fails its row, as in the table
FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def plot_path_problem(path: str | Path) -> str | None:
    """Why `path` cannot take the picture (None: it can), so that a long check can refuse it before it runs."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        return f"name a picture file ending in {', '.join(FORMATS)} (got {path.suffix or 'no suffix'})"
    if path.is_dir():
        return "is a folder; name a file in it, e.g. check.png"
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
        return f"cannot be written ({parent} is not a writable folder)"
    return None


def check_grid(report: dict) -> tuple[list[tuple[str, str]], list[str], np.ndarray, np.ndarray]:
    """(rows as (check, measure) in the summary's order, sources, margins, statuses) of one report.

    A cell holds the worst margin of that source's judged outcomes for the row (a check with two variants per
    source, such as audio 0.5 s off either way, is only as good as its worse side) and its status: 1 pass,
    -1 fail (or error: no margin), 0 not judged (not scored, skipped, or the row does not apply to that source)."""
    rows = [(r["check"], r["measure"]) for r in report["summary"]]
    sources = list(report["sources"])
    at = {row: i for i, row in enumerate(rows)}
    col = {s: j for j, s in enumerate(sources)}
    margin = np.full((len(rows), len(sources)), np.nan)
    status = np.zeros((len(rows), len(sources)), dtype=int)
    for o in report["outcomes"]:
        i, j = at.get((o["check"], o["measure"])), col.get(o["source"])
        if i is None or j is None or o["status"] not in JUDGED or (o["margin"] is None and o["status"] != "error"):
            continue
        if o["margin"] is not None and (np.isnan(margin[i, j]) or o["margin"] < margin[i, j]):
            margin[i, j] = o["margin"]
        status[i, j] = -1 if (status[i, j] == -1 or o["status"] != "pass") else 1
    return rows, sources, margin, status


def _short(source: str) -> str:
    parts = source.split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else source


def _label(check: str, measure: str, width: int = 58) -> str:
    text = f"{check}: {measure}"
    return text if len(text) <= width else text[: width - 1] + "…"


def plot_check(reports: list[dict], path: str | Path, dpi: int = 110) -> Path:
    """Draw one panel per report (side by side, the same rows) and write it to `path` (PNG, or any format
    matplotlib knows from the suffix) atomically. Returns the path."""
    import matplotlib  # lazy: slow import, only on this path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above
    from matplotlib.colors import LinearSegmentedColormap  # lazy: as above

    if not reports:
        raise ValueError("no check report to plot")
    if problem := plot_path_problem(path):
        raise ValueError(f"{path}: {problem}")
    grids = [check_grid(r) for r in reports]
    rows = grids[0][0]
    n_rows, width = len(rows), max(len(g[1]) for g in grids)
    fig, axes = plt.subplots(1, len(grids), squeeze=False, sharey=True,
                             figsize=(max(7.0, 3.6 + (0.42 * width + 0.4) * len(grids)), 2.0 + 0.2 * n_rows))
    # red for a miss, green for a pass, paler near the threshold; a margin of 1 MOS point (or more) is full colour
    cmap = LinearSegmentedColormap.from_list("margin", ["#b2182b", "#f4a582", "#f7f7f7", "#a6dba0", "#1b7837"])
    for ax, report, (own_rows, sources, margin, status) in zip(axes[0], reports, grids):
        at = {row: i for i, row in enumerate(own_rows)}
        # every panel in the first report's row order; a row this report lacks stays blank
        m = np.full((n_rows, len(sources)), np.nan)
        s = np.zeros((n_rows, len(sources)), dtype=int)
        for i, row in enumerate(rows):
            if row in at:
                m[i], s[i] = margin[at[row]], status[at[row]]
        # an error has no margin: full red
        shown = np.where(s == 0, np.nan, np.clip(np.abs(np.nan_to_num(m, nan=1.0)), 0.15, 1.0) * s)
        ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_facecolor("#d9d9d9")  # not judged: grey
        for i, j in zip(*np.nonzero(s)):
            ax.text(j, i, "error" if np.isnan(m[i, j]) else f"{m[i, j]:+.2f}", ha="center", va="center", fontsize=5.5,
                    color="white" if abs(shown[i, j]) > 0.7 else "black")
        ax.set_xticks(range(len(sources)), [_short(x) for x in sources], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n_rows), [_label(*r) for r in rows], fontsize=7)
        ax.set_xticks(np.arange(-0.5, len(sources)), minor=True)
        ax.set_yticks(np.arange(-0.5, n_rows), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="minor", length=0)
        model = report.get("model", {})
        n_pass = sum(1 for r in report["summary"] if r["status"] == "pass")
        ax.set_title(f"{model.get('name', '?')} {model.get('version', '')}: {n_pass} of {len(report['summary'])} "
                     f"rows pass{' (quick)' if report.get('quick') else ''}", fontsize=9)
    fig.suptitle("talkqa check: the margin of each source\n(green: inside the expectation, red: outside, grey: not "
                 "judged)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path
