"""Render a benchmark folder (results.json + predictions.parquet + shap/*.png) into one self-contained
index.html: every image is embedded as base64, so the file opens without a server. A report is
always regenerated from the stored results, never edited."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from talkqa.store import atomic_write_text
from talkqa.tasks import DIMENSION_NAMES

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1300px}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.best{font-weight:bold;background:#e8f4e8}
img{max-width:100%;border:1px solid #eee;margin:4px}.small{color:#666;font-size:12px}h2{border-bottom:1px solid #ddd}"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _embed_file(path: Path) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _cell(m: dict | None, digits: int = 3) -> str:
    if not m or m.get("value") is None:
        return "–"
    return f"{m['value']:.{digits}f} <span class=small>[{m['lo']:.{digits}f}, {m['hi']:.{digits}f}]</span>"


def _metric_table(block: dict, dims: list[str], metrics: list[str]) -> str:
    out = []
    for metric in metrics:
        head = "".join(f"<th>{html.escape(d)}</th>" for d in dims)
        out.append(f"<h3>{metric.upper()} (95 % bootstrap CI)</h3><table><tr><th>strategy</th>{head}</tr>")
        best = {}
        for d in dims:
            vals = {s: (r.get(d, {}).get(metric) or {}).get("value") for s, r in block.items()}
            vals = {s: v for s, v in vals.items() if v is not None}
            if vals:
                best[d] = (min if metric == "rmse" else max)(vals, key=vals.get)
        for s, r in block.items():
            cells = "".join(f"<td class='{'best' if best.get(d) == s else ''}'>{_cell(r.get(d, {}).get(metric))}</td>"
                            for d in dims)
            out.append(f"<tr><td>{html.escape(s)}</td>{cells}</tr>")
        out.append("</table>")
    return "".join(out)


def _comparison_plot(block: dict, dims: list[str], metric: str = "srcc") -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    names = list(block)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(dims)), 3.8))
    width = 0.8 / max(1, len(names))
    for k, s in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for j, d in enumerate(dims):
            m = block[s].get(d, {}).get(metric) or {}
            if m.get("value") is None:
                continue
            xs.append(j + (k - (len(names) - 1) / 2) * width)
            ys.append(m["value"])
            lo.append(m["value"] - m["lo"])
            hi.append(m["hi"] - m["value"])
        ax.bar(xs, ys, width, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], capsize=2, label=s)
    ax.set_xticks(range(len(dims)), dims)
    ax.set_ylabel(metric.upper())
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(f"{metric.upper()} per dimension with 95 % CI")
    return _png(fig)


def _scatter(pred: pd.DataFrame, strategies: list[str], dims: list[str]) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    fig, axes = plt.subplots(len(strategies), len(dims), figsize=(2.3 * len(dims), 2.3 * len(strategies)),
                             squeeze=False)
    for i, s in enumerate(strategies):
        sub = pred[pred["strategy"] == s]
        for j, d in enumerate(dims):
            ax = axes[i, j]
            ax.scatter(sub[f"mos_{d}"], sub[f"pred_{d}"], s=8, alpha=0.7)
            ax.plot([1, 5], [1, 5], "k--", lw=0.6)
            ax.set_xlim(0.8, 5.2)
            ax.set_ylim(0.8, 5.2)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(d, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{s}\npredicted", fontsize=7)
            if i == len(strategies) - 1:
                ax.set_xlabel("label (MOS)", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _heatmaps(inter: dict) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    mats = {"labels": inter["labels"], **inter["predictions"]}
    fig, axes = plt.subplots(1, len(mats), figsize=(2.6 * len(mats), 2.8), squeeze=False)
    for ax, (name, m) in zip(axes[0], mats.items()):
        mat = np.array(m["matrix"], float) if m["matrix"] else np.zeros((0, 0))
        ax.imshow(mat, vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_xticks(range(len(m["dimensions"])), [d[:6] for d in m["dimensions"]], rotation=90, fontsize=6)
        ax.set_yticks(range(len(m["dimensions"])), [d[:6] for d in m["dimensions"]], fontsize=6)
        for (a, b), v in np.ndenumerate(mat):
            ax.text(b, a, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=5)
        ax.set_title(name, fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _difference_table(diffs: dict, dims: list[str]) -> str:
    """Rows: 'MTL − other' per comparison; a CI that excludes 0 is coloured (green: MTL better)."""
    out = []
    for mtl, block in diffs.items():
        for key, title in (("vs_single_task", "single-task"), ("vs_best_other", "best other strategy")):
            cells, unit = [], "clip"
            for d in dims:
                c = block.get(d, {}).get(key)
                if not c or c.get("value") is None:
                    cells.append("<td>–</td>")
                    continue
                unit = c["unit"]
                lo, hi = c.get("lo"), c.get("hi")
                colour = "" if lo is None or hi is None or lo <= 0 <= hi else \
                    (" style='background:#e8f4e8'" if lo > 0 else " style='background:#f8e0e0'")
                ci = "" if lo is None or hi is None else f" <span class=small>[{lo:+.3f}, {hi:+.3f}]</span>"
                cells.append(f"<td{colour}>{c['value']:+.3f}{ci}<br><span class=small>vs {html.escape(c['other'])}</span></td>")
            out.append(f"<tr><td>{html.escape(mtl)} − {title}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{html.escape(d)}</th>" for d in dims)
    return (f"<table><tr><th>SRCC difference (paired bootstrap 95 % CI, {unit}s resampled)</th>{head}</tr>"
            + "".join(out) + "</table><p class=small>green: the CI is above 0 (the MTL strategy ranks better); red: "
            "below 0 (it ranks worse); plain: the data do not tell them apart.</p>")


def _learning_curve_plot(lc: dict, dims: list[str]) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    fig, axes = plt.subplots(1, len(dims), figsize=(2.8 * len(dims), 3.0), squeeze=False, sharey=True)
    for ax, d in zip(axes[0], dims):
        for strategy, by_size in lc["points"].items():
            pts = sorted((e["n_sources"], e["srcc"][d]) for e in by_size.values() if d in e["srcc"]
                         and e["srcc"][d]["value"] is not None)
            if not pts:
                continue
            x = [p[0] for p in pts]
            v = [p[1]["value"] for p in pts]
            ax.plot(x, v, marker="o", label=strategy)
            lo = [p[1]["lo"] if p[1]["lo"] is not None else p[1]["value"] for p in pts]
            hi = [p[1]["hi"] if p[1]["hi"] is not None else p[1]["value"] for p in pts]
            ax.fill_between(x, lo, hi, alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_title(d, fontsize=8)
        ax.set_xlabel("training source clips", fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("SRCC (95 % CI)")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def _trend_table(lc: dict, dims: list[str]) -> str:
    head = "".join(f"<th>{html.escape(d)}</th>" for d in dims)
    rows = []
    for strategy, by_dim in lc.get("trend", {}).items():
        cells = "".join(f"<td>{by_dim[d]['slope_per_doubling']:+.3f}</td>" if d in by_dim
                        and by_dim[d]["slope_per_doubling"] is not None else "<td>–</td>" for d in dims)
        rows.append(f"<tr><td>{html.escape(strategy)}</td>{cells}</tr>")
    for mtl, others in lc.get("crossings", {}).items():
        for other, by_dim in others.items():
            cells = []
            for d in dims:
                c = by_dim.get(d)
                if c is None:
                    cells.append("<td>–</td>")
                elif c["sources_to_meet"] is not None:
                    cells.append(f"<td>≈{c['sources_to_meet']:.0f} sources<br><span class=small>gap {c['gap_at_largest']:+.3f}</span></td>")
                else:
                    cells.append(f"<td><span class=small>{html.escape(c['verdict'])}</span></td>")
            rows.append(f"<tr><td>{html.escape(mtl)} meets {html.escape(other)}</td>{''.join(cells)}</tr>")
    return (f"<table><tr><th>SRCC gain per doubling of sources (fit to the measured points)</th>{head}</tr>"
            + "".join(rows) + "</table>")


def _fit_details(details: dict) -> str:
    items = []
    for label, folds in details.items():
        for f, info in enumerate(folds):
            if info:
                items.append(f"<li><b>{html.escape(label)}</b> fold {f + 1}: <span class=small>"
                             f"{html.escape(json.dumps(info, sort_keys=True))}</span></li>")
    return "<ul>" + "".join(items) + "</ul>" if items else ""


def render_report(folder: str | Path) -> Path:
    import matplotlib  # lazy: slow import, only on this path

    matplotlib.use("Agg")
    folder = Path(folder)
    res = json.loads((folder / "results.json").read_text())
    pred = pd.read_parquet(folder / "predictions.parquet")
    dims = [d for d in DIMENSION_NAMES if d in res["dimensions"]]
    metrics = res["metrics"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>talkqa benchmark</title><style>{CSS}</style>"
             "</head><body><h1>talkqa benchmark</h1>",
             f"<p class=small>store {html.escape(res['store'])} · labels {html.escape(res['labels'])} · "
             f"{res['n_clips']} clips · {res['n_speakers']} speakers · {res['n_folds']} speaker-grouped folds · "
             f"created {res['created']} · {res['elapsed_s']} s · config {res['config_hash']}</p>",
             "<h2>Strategies</h2><ul>" + "".join(
                 f"<li><b>{html.escape(s)}</b>: {html.escape(res['descriptions'].get(s, ''))} "
                 f"<span class=small>({res['timings_s'].get(s, 0)} s)</span></li>" for s in res["strategies"]) + "</ul>",
             _comparison_plot(res["strategies"], dims),
             _metric_table(res["strategies"], dims, metrics),
             "<h2>Predicted vs. label (out-of-fold)</h2>", _scatter(pred, list(res["strategies"]), dims)]
    if res["ablations"]:
        base = {k: v for k, v in res["strategies"].items() if any(k2.startswith(k + "-") for k2 in res["ablations"])}
        block = {**base, **res["ablations"]}
        parts += ["<h2>Ablations</h2>", _comparison_plot(block, dims), _metric_table(block, dims, ["srcc", "plcc"])]
    if res.get("differences"):
        parts += ["<h2>Does multi-task learning help? SRCC differences</h2>", _difference_table(res["differences"], dims)]
    lc = res.get("learning_curve") or {}
    if lc.get("points"):
        parts += ["<h2>Learning curve</h2><p class=small>SRCC of out-of-fold predictions (the main run's test folds) "
                  "against the number of training source clips, each subset spread over as many speakers as it "
                  "allows; 'meets' extrapolates the fitted trends and is no measurement.</p>",
                  _learning_curve_plot(lc, dims), _trend_table(lc, dims)]
    if res.get("fit_details"):
        parts += ["<h2>What the fits chose</h2><p class=small>pre-training: share of held-out-speaker clips whose "
                  "real audio/visual pairing the pre-trained bottom ranks first (chance given); tuning: the "
                  "Optuna choice on inner folds.</p>", _fit_details(res["fit_details"])]
    constant = res["inter_task"]["labels"].get("constant") or []
    parts += ["<h2>Inter-task correlation (Spearman)</h2>",
              f"<p class=small>labels constant (no correlation defined): {html.escape(', '.join(constant))}</p>"
              if constant else "", _heatmaps(res["inter_task"])]
    if res.get("shap"):
        parts.append("<h2>SHAP explanations (LightGBM stacking, level-1 models)</h2>")
        for dim, s in res["shap"].items():
            parts.append(f"<h3>{html.escape(dim)}</h3>")
            plots = s["plots"]
            for key in ("groups", "bar", "beeswarm"):
                if key in plots and (folder / plots[key]).is_file():
                    parts.append(_embed_file(folder / plots[key]))
            for p in plots.get("waterfall", []):
                if (folder / p).is_file():
                    parts.append(_embed_file(folder / p))
    parts.append("</body></html>")
    path = folder / "index.html"
    atomic_write_text(path, "\n".join(parts))
    return path
