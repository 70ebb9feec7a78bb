"""Terminal summaries of stores (what `make demo` prints until the full report exists)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.markup import escape
from rich.table import Table

from .console import out
from .store import Store, read_parquet

# A few features people read first, one or two per family.
HEADLINE = (
    ("lipsync__av_offset_frames", "AV offset (frames)"),
    ("lipsync__av_peak_corr", "mouth/audio corr"),
    ("expression__blink_rate_per_min", "blinks/min"),
    ("expression__jitter", "landmark jitter"),
    ("audio__snr_db", "SNR dB"),
    ("audio__dnsmos_ovrl", "DNSMOS OVRL"),
    ("consistency__speech_rate", "syllables/s"),
    ("consistency__mouth_rate", "mouth opens/s"),
)


def print_store_summary(root: str | Path) -> None:
    store = Store(Path(root))
    status = read_parquet(store.status)
    hand = read_parquet(store.handcrafted)
    windows = read_parquet(store.windows)
    counts = ", ".join(f"{k}: {v}" for k, v in status["status"].value_counts().items())
    out.print(f"[bold]{store.root}[/]: {len(status)} clips ({counts}); {hand.shape[1] - 1} clip features, "
              f"{len(windows)} windows")
    cols = [(c, label) for c, label in HEADLINE if c in hand.columns]
    t = Table(title="hand-crafted features (per clip)")
    t.add_column("clip")
    for _, label in cols:
        t.add_column(label, justify="right")
    for rec in hand.to_dict("records")[:30]:
        t.add_row(str(rec["clip_id"]), *[_fmt(rec[c]) for c, _ in cols])
    out.print(t)
    bad = status[~status["status"].isin(["ok"])]
    for rec in bad.to_dict("records"):
        out.print(f"[yellow]{rec['status']}[/] {escape(str(rec['clip_id']))}: {escape(str(rec['message']))}", highlight=False)


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"
