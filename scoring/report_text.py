"""Terminal summaries of stores (what `make demo` prints until the full report exists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.markup import escape
from rich.table import Table

from .console import out
from talkqa.store import Store, read_parquet

# A few features people read first, one or two per family.
HEADLINE = (
    ("lipsync__av_offset_frames", "offset"),
    ("lipsync__av_peak_corr", "corr"),
    ("expression__blink_rate_per_min", "blink/m"),
    ("expression__frozen_share", "frozen"),
    ("audio__snr_db", "SNR"),
    ("audio__dnsmos_ovrl", "DNSMOS"),
    ("consistency__speech_rate", "syl/s"),
    ("consistency__mouth_rate", "mouth/s"),
)
LEGEND = ("offset: audio-visual offset in frames (positive: sound after lips); corr: mouth/audio correlation; "
          "blink/m: blinks per minute; frozen: share of frames that did not change; SNR: dB; DNSMOS: overall "
          "1-5; syl/s: syllables per second of speech; mouth/s: mouth openings per second of speech.")


def print_store_summary(root: str | Path, manifest=None) -> None:
    """Status counts and headline features per clip; with a degrade manifest, also what was injected."""
    store = Store(Path(root))
    status = read_parquet(store.status)
    hand = read_parquet(store.handcrafted)
    windows = read_parquet(store.windows)
    counts = ", ".join(f"{k}: {v}" for k, v in status["status"].value_counts().items())
    out.print(f"[bold]{store.root}[/]: {len(status)} clips ({counts}); {hand.shape[1] - 1} clip features, "
              f"{len(windows)} windows")
    cols = [(c, label) for c, label in HEADLINE if c in hand.columns]
    injected = {}
    if manifest is not None:
        sev = [c for c in manifest.columns if c.startswith("severity__")]
        for rec in manifest.to_dict("records"):
            names = [c.removeprefix("severity__") for c in sev if (rec.get(c) or 0) > 0]
            injected[str(rec["clip_id"])] = ", ".join(names)
    t = Table(title="hand-crafted features (per clip)", caption=LEGEND)
    t.add_column("clip", overflow="ellipsis", no_wrap=True, max_width=24)
    for _, label in cols:
        t.add_column(label, justify="right", no_wrap=True)
    if injected:
        t.add_column("injected", overflow="fold")
    for rec in hand.to_dict("records")[:30]:
        cid = str(rec["clip_id"])
        extra = [injected.get(cid, "") or "clean"] if injected else []
        t.add_row(cid if injected else cid.rsplit("/", 1)[-1], *[_fmt(rec[c]) for c, _ in cols], *extra)
    out.print(t)
    bad = status[~status["status"].isin(["ok"])]
    for rec in bad.to_dict("records"):
        out.print(f"[yellow]{rec['status']}[/] {escape(str(rec['clip_id']))}: {escape(str(rec['message']))}", highlight=False)


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2g}" if abs(v) < 10 else f"{v:.0f}"
