"""Per-clip HTML report of `talkqa score --html DIR`: one self-contained page (PNG plots embedded as
base64, no server, no external files).

Sections: the scores (combined, fusion, stacking); a timeline of the per-window problem probability
of every dimension with its threshold and the diagnostic segments shaded; key hand-crafted
measurements; the AV-offset curve (the sync expert's per-lag curve when the model uses one, else the
hand-crafted mouth/audio cross-correlation); mouth aperture vs audio envelope; eye aspect ratio with
the detected blinks; the SHAP waterfall of the stacking model per dimension.
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
from talkqa.stacking.explain import explain
from talkqa.store import atomic_write_text
from talkqa.tasks import DIMENSION_NAMES, DIMENSIONS

COLORS = {d.name: d.colour for d in DIMENSIONS}
KEY_MEASUREMENTS = (  # (column, label, format)
    ("lipsync__av_offset_frames", "AV offset, hand-crafted (frames, + = sound after lips)", "{:+.0f}"),
    ("lipsync__av_confidence", "AV offset confidence, hand-crafted", "{:.2f}"),
    ("lipsync__av_peak_corr", "mouth/audio peak correlation", "{:.2f}"),
    ("lipsync__closed_mouth_speech_share", "mouth closed during speech (share)", "{:.2f}"),
    ("lipsync__moving_mouth_silence_share", "mouth moving during silence (share)", "{:.2f}"),
    ("expression__blink_rate_per_min", "blinks per minute", "{:.1f}"),
    ("expression__frozen_share", "frozen frames (share)", "{:.2f}"),
    ("expression__jitter", "landmark jitter", "{:.4f}"),
    ("audio__snr_db", "SNR (dB)", "{:.1f}"),
    ("audio__clipping_ratio", "clipped samples (share)", "{:.4f}"),
    ("audio__bandwidth_hz", "bandwidth (Hz)", "{:.0f}"),
    ("audio__dnsmos_ovrl", "DNSMOS overall", "{:.2f}"),
    ("consistency__rate_corr", "syllable rate vs mouth-opening rate (corr)", "{:.2f}"),
)


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


def _waterfalls(details) -> str:
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path
    import shap  # lazy: slow import, only on this path

    scorer, data, cid = details["scorer"], details["data"], details["clip_id"]
    model = scorer.bundle.stacking
    parts = []
    for dim in model.dimensions_:
        try:
            exp = explain(model, data, [cid], dim)
        except Exception as exc:  # an explanation is a bonus; the report still renders
            parts.append(f"<p>{dim}: no SHAP explanation ({html.escape(str(exc))})</p>")
            continue
        sv = shap.Explanation(exp.values[0], base_values=exp.base_value, data=exp.features.to_numpy()[0],
                              feature_names=list(exp.features.columns))
        plt.figure(figsize=(7, 3.6))
        shap.plots.waterfall(sv, max_display=10, show=False)
        plt.title(f"{dim}: LightGBM level-1 prediction, SHAP contributions", fontsize=9)
        parts.append(_png(plt.gcf()))
    return "\n".join(parts) or "<p>The stacking model has no dimension to explain.</p>"


def render(result) -> str:
    import matplotlib  # lazy: slow import, only on this path

    matplotlib.use("Agg")
    d = result.details
    e = html.escape
    rows = "".join(
        f"<tr><td>{dim}</td><td><b>{'–' if result.scores[dim] is None else f'{result.scores[dim]:.2f}'}</b></td>"
        f"<td>{d['fusion'].get(dim, float('nan')):.2f}</td><td>{d['stacking'].get(dim, float('nan')):.2f}</td></tr>"
        for dim in DIMENSION_NAMES)
    row = d["row"]
    meas = "".join(f"<tr><td>{e(label)}</td><td>{fmt.format(row[col])}</td></tr>"
                   for col, label, fmt in KEY_MEASUREMENTS if col in row and np.isfinite(row[col]))
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
<h2>Why these scores (SHAP, stacking model)</h2>{_waterfalls(d)}
</body></html>"""


def write_report(result, path: str | Path) -> Path:
    """Write the report of a Result scored with keep_details=True."""
    if not result.details or "data" not in result.details:
        raise ValueError("the Result has no details; score it with keep_details=True")

    path = Path(path)
    atomic_write_text(path, render(result))
    os.chmod(path, 0o644)  # a report is for reading: not the temp file's private mode
    return path
