"""Per-clip HTML report of `talkqa score --html DIR`: one self-contained page (PNG plots embedded as
base64, no server, no external files).

Sections: the scores (combined, fusion, stacking); a timeline of the per-window problem probability
of every dimension with its threshold and the diagnostic segments shaded; key hand-crafted
measurements; the AV-offset curve (the sync expert's per-lag curve when the model uses one, else the
hand-crafted mouth/audio cross-correlation); mouth aperture vs audio envelope; eye aspect ratio with
the detected blinks; why these scores: per dimension the sentence and a waterfall of the named factors
of the stacking model (scoring/explanation.py: one bar per expert or hand-crafted feature, never an
embedding dimension), with the factors' readings in a table folded below.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from pathlib import Path

import numpy as np

from talkqa.features.families import FAMILIES
from talkqa.store import atomic_write_text
from talkqa.tasks import DIMENSION_NAMES, DIMENSIONS

from .explanation import headline, reasons

COLORS = {d.name: d.colour for d in DIMENSIONS}
KEY_MEASUREMENTS = (  # read with the names and units their families declare
    "lipsync__av_offset_frames", "lipsync__av_confidence", "lipsync__av_peak_corr",
    "lipsync__closed_mouth_speech_share", "lipsync__moving_mouth_silence_share",
    "expression__blink_rate_per_min", "expression__frozen_share", "expression__jitter",
    "audio__snr_db", "audio__clipping_ratio", "audio__bandwidth_hz", "audio__dnsmos_ovrl",
    "consistency__syllable_mouth_match", "consistency__rate_ratio",
)
UP, DOWN = "#2e75b6", "#c00000"  # a factor raising / lowering a score


def _png(fig) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _timeline(result, details) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    if not result.windows:
        return "<p>No per-window output (the model has no diagnostic head).</p>"
    w = result.windows
    t0 = np.array([r["t_start"] for r in w], float)
    t1 = np.array([r["t_end"] for r in w], float)
    fig, axes = plt.subplots(len(DIMENSION_NAMES), 1, figsize=(9, 1.3 * len(DIMENSION_NAMES)), sharex=True)
    for ax, dim in zip(axes, DIMENSION_NAMES):
        p = np.array([np.nan if r.get(dim) is None else r[dim] for r in w], float)
        ax.step(np.r_[t0, t1[-1:]], np.r_[p, p[-1:]], where="post", color=COLORS[dim])
        th = details["thresholds"].get(dim)
        if th is not None:
            ax.axhline(th, ls="--", lw=0.8, color="grey")
        for d in result.diagnostics:
            if d["dimension"] == dim:
                ax.axvspan(d["start"], d["end"], color="red", alpha=0.15)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(dim, rotation=0, ha="right", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_title("per-window problem probability (dashed: flag threshold; shaded: diagnostic segments)", fontsize=9)
    axes[-1].set_xlabel("time (s)")
    return _png(fig)


def _lag_of(suffix: str) -> int | None:
    """'m3' -> -3, '0' -> 0, 'p3' -> 3: the lag spelling of experts.sync.lag_name."""
    m = re.fullmatch(r"([mp]?)(\d+)", suffix)
    return None if not m else (-1 if m.group(1) == "m" else 1) * int(m.group(2))


def _offset_curve(result, details) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    data, cid = details["data"], details["clip_id"]
    scorer = details["scorer"]
    lags = curve = None
    label = ""
    for src in scorer.bundle.config.sync_sources:
        if src.curve_prefix:
            cols = [c for c in data.scalars.columns if c.startswith(src.curve_prefix)]
            pts = [(_lag_of(c[len(src.curve_prefix):]), float(data.scalars.loc[cid, c])) for c in cols]
            pts = sorted((lag, v) for lag, v in pts if lag is not None and np.isfinite(v))
            if pts:
                lags, curve = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
                label = f"{src.curve_prefix}<lag> (sync expert)"
                break
    series = details["series"]
    if curve is None and "lipsync__onset_strength" in series:
        # the hand-crafted estimator's own curve, from the series the family saved
        _, curves = FAMILIES.create("lipsync").offset_curves(
            *(np.asarray(series[f"lipsync__{k}"], float) for k in ("aperture", "audio_envelope_db", "onset_strength")),
            details["fps"])
        lags = curves["envelope"][0]
        curve = np.mean([c for _, c in curves.values()], axis=0)
        label = "mouth/audio cross-correlation (hand-crafted)"
    if curve is None:
        return "<p>No AV-offset curve (no audio).</p>"
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.plot(lags, curve, marker=".", color="#4472c4")
    off = result.sync.get("offset_frames")
    if off is not None:
        ax.axvline(off, color="red", lw=1, label=f"reported offset {off:+.0f}")
        ax.legend(fontsize=8)
    ax.axvline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("lag (frames; + = sound after lips)")
    ax.set_title(label, fontsize=9)
    return _png(fig)


def _aperture_envelope(details) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    s = details["series"]
    if "lipsync__aperture" not in s:
        return "<p>No mouth aperture (no face).</p>"
    fps = details["fps"]
    ap = np.asarray(s["lipsync__aperture"], float)
    t = np.arange(len(ap)) / fps
    fig, ax = plt.subplots(figsize=(9, 2.4))
    z = lambda x: (x - np.nanmean(x)) / (np.nanstd(x) or 1.0)
    ax.plot(t, z(ap), lw=0.9, label="inner-lip aperture", color="#ed7d31")
    if "lipsync__audio_envelope_db" in s:
        ax.plot(t, z(np.asarray(s["lipsync__audio_envelope_db"], float)), lw=0.9, alpha=0.8, label="audio envelope (dB)",
                color="#4472c4")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("z-score")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("mouth aperture vs audio envelope", fontsize=9)
    return _png(fig)


def _blinks(details) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    s = details["series"]
    if "expression__ear" not in s:
        return "<p>No eye aspect ratio (face not found often enough).</p>"
    fps = details["fps"]
    ear = np.asarray(s["expression__ear"], float)
    blinks = FAMILIES.create("expression").blinks(ear, fps)
    t = np.arange(len(ear)) / fps
    fig, ax = plt.subplots(figsize=(9, 2.0))
    ax.plot(t, ear, lw=0.8, color="#595959")
    for a, b in blinks:
        ax.axvspan(a / fps, b / fps, color="#ed7d31", alpha=0.4)
    ax.set_xlabel("time (s)")
    ax.set_title(f"eye aspect ratio; {len(blinks)} blink(s) shaded", fontsize=9)
    return _png(fig)


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _factor_chart(dim: str, d: dict) -> str:
    """A waterfall of named factors: from a typical clip's prediction, each factor's push, the rest
    together, to this clip's stacking prediction."""
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    steps = [(f["name"], f["contribution"] or 0.0) for f in d["factors"]]
    if d["other_factors"]:
        steps.append((f"{d['other_factors']} other factors", d["other"] or 0.0))
    ends = d["base_value"] + np.cumsum([0.0] + [c for _, c in steps])
    span = max(float(ends.max() - ends.min()), 0.05)
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(steps) + 1.3))
    for i, (name, c) in enumerate(steps):
        ax.barh(i, c, left=ends[i], color=UP if c >= 0 else DOWN, height=0.6)
        ax.text(ends[i + 1] + (0.02 if c >= 0 else -0.02) * span, i, f"{c:+.2f}", va="center",
                ha="left" if c >= 0 else "right", fontsize=8)
    ax.set_yticks(range(len(steps)), [_short(n) for n, _ in steps], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(d["base_value"], color="grey", ls="--", lw=0.8)
    ax.axvline(d["stacking"], color="black", lw=0.8)
    ax.set_xlim(ends.min() - 0.2 * span, ends.max() + 0.2 * span)  # room for the numbers at the bar ends
    start = "a clip without fault" if d.get("combine") == "dimensions" else "a typical clip"
    ax.set_xlabel(f"MOS (dashed: {start} {d['base_value']:.2f}; solid: this clip {d['stacking']:.2f})", fontsize=8)
    ax.set_title(f"{dim}: from the dimension scores, {d['stacking']:.2f}" if d.get("combine") == "dimensions" else
                 f"{dim}: why the stacking model says {d['stacking']:.2f}", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    return _png(fig)


def _why(result) -> str:
    explanation = result.explanation or {}
    dims = explanation.get("dimensions", {})
    if not dims:
        return "<p>No explanation (the stacking model explains none of the scored dimensions).</p>"
    e = html.escape
    combine = explanation.get("combine")
    shipped = {dim: d.get("combine", combine) for dim, d in dims.items()}  # per dimension under combine: auto
    others = {c for c in shipped.values() if c not in ("stacking", "dimensions")}  # dimensions: explained whole
    note = "" if not others else \
        (f"<p>The score is not the stacking model's alone ({e(str(combine))}"
         + (f": {e(', '.join(f'{k} {v}' for k, v in shipped.items()))}" if combine == "auto" else "")
         + "); the factors explain the stacking model's part, in MOS points from what it predicts for a typical "
         "clip. An expert is one factor (its learned features and its readings together); every hand-crafted "
         "measurement is its own.</p>")
    parts = [note]
    for dim, d in dims.items():
        found = "".join(f"<li>{e(r)}</li>" for r in reasons(d)) or "<li>no single factor stands out</li>"
        by_rule = d.get("combine") == "dimensions"  # overall from the five scores (scoring/overall_rule.py)
        start, source = ("a clip without fault", "by the rule") if by_rule else ("a typical clip", "stacking model")
        rows = "".join(f"<tr><td>{e(f['name'])}</td><td>{e(f['reading'])}</td><td>{f['contribution']:+.3f}</td></tr>"
                       for f in d["factors"])
        if d["other_factors"]:
            rows += f"<tr><td colspan=2>{d['other_factors']} other factors</td><td>{d['other']:+.3f}</td></tr>"
        parts.append(f'<h3 style="font-size:15px">{e(headline(dim, d, shipped[dim]))}</h3>'
                     f'<ul class="why">{found}</ul>'
                     f"{_factor_chart(dim, d)}<details><summary>factors and their readings</summary><table>"
                     f"<tr><th>factor</th><th>reading</th><th>contribution (MOS)</th></tr>{rows}"
                     f"<tr><td colspan=2>{start}</td><td>{d['base_value']:.3f}</td></tr>"
                     f"<tr><td colspan=2>this clip ({source})</td><td>{d['stacking']:.3f}</td></tr>"
                     f"</table></details>")
    return "\n".join(parts)


def _measurements(details) -> str:
    row, families = details["row"], details["scorer"].families
    cells = []
    for col in KEY_MEASUREMENTS:
        family, _, name = col.partition("__")
        label = families[family].feature_label(name) if family in families else None
        if label is not None and col in row and np.isfinite(row[col]):
            cells.append(f"<tr><td>{html.escape(label.name)}</td><td>{html.escape(label.reading(row[col]))}</td></tr>")
    return "".join(cells)


def render(result) -> str:
    import matplotlib  # lazy: slow import, only on this path

    matplotlib.use("Agg")
    d = result.details
    e = html.escape
    rows = "".join(
        f"<tr><td>{dim}</td><td><b>{'–' if result.scores[dim] is None else f'{result.scores[dim]:.2f}'}</b></td>"
        f"<td>{d['fusion'].get(dim, float('nan')):.2f}</td><td>{d['stacking'].get(dim, float('nan')):.2f}</td></tr>"
        for dim in DIMENSION_NAMES)
    meas = _measurements(d)
    diags = "".join(f"<tr><td>{x['start']:.2f}–{x['end']:.2f} s</td><td>{x['dimension']}</td><td>{e(x['issue'])}</td>"
                    f"<td>{x['severity']:.2f}</td></tr>" for x in result.diagnostics) or \
        "<tr><td colspan=4>no problem segment found</td></tr>"
    off = result.sync.get("offset_frames")
    sync = "not measured" if off is None else \
        f"{off:+.0f} frames (+ = sound after lips), confidence {result.sync.get('confidence')}"
    warn = "".join(f"<li>{e(w)}</li>" for w in result.warnings)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>talkqa: {e(result.clip)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}th{{background:#f3f3f3}}h2{{margin-top:1.6em;font-size:17px}}
img{{max-width:100%}}</style></head><body>
<h1 style="font-size:20px">{e(result.clip)}</h1>
<p>model {e(result.model['name'])} {e(result.model['version'])}; {d['duration_s']:.1f} s; scored in {result.elapsed_s:.1f} s;
combine: {e(d['scorer'].bundle.meta['combine'])}</p>
{f'<ul style="color:#a60">{warn}</ul>' if warn else ''}
<h2>Scores (1–5)</h2><table><tr><th>dimension</th><th>score</th><th>fusion</th><th>stacking</th></tr>{rows}</table>
<p>AV offset: {e(sync)}</p>
<h2>Diagnostics</h2><table><tr><th>time</th><th>dimension</th><th>issue</th><th>severity</th></tr>{diags}</table>
<h2>Timeline</h2>{_timeline(result, d)}
<h2>Key measurements</h2><table><tr><th>measurement</th><th>value</th></tr>{meas}</table>
<h2>AV offset</h2>{_offset_curve(result, d)}
<h2>Mouth aperture vs audio envelope</h2>{_aperture_envelope(d)}
<h2>Blinks</h2>{_blinks(d)}
<h2>Why these scores</h2>{_why(result)}
</body></html>"""


def write_report(result, path: str | Path) -> Path:
    """Write the report of a Result scored with keep_details=True."""
    if not result.details or "data" not in result.details:
        raise ValueError("the Result has no details; score it with keep_details=True")

    path = Path(path)
    atomic_write_text(path, render(result))
    os.chmod(path, 0o644)  # a report is for reading: not the temp file's private mode
    return path
