"""A PNG contact sheet of degraded variants: a few frames per variant, captioned with its artifacts
and pseudo-MOS, for eyeballing what `talkqa degrade` produced."""

from __future__ import annotations

import textwrap
from pathlib import Path

import av
import numpy as np
import pandas as pd

from talkqa.store import atomic_write
from talkqa.tasks import LABEL_COLUMNS


def _frames_at(path: Path, times: list[float]) -> list[np.ndarray]:
    out, want = [], sorted(times)
    with av.open(str(path)) as c:
        frames = [(float(f.time or 0.0), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    for t in want:
        out.append(min(frames, key=lambda f: abs(f[0] - t))[1])
    return out


def contact_sheet(out_dir: str | Path, png: str | Path | None = None, n: int = 8, frames_per_row: int = 4,
                  seed: int = 0, clip_ids: list[str] | None = None) -> Path:
    """Write a grid (one row per variant, `frames_per_row` frames spread over its first degraded
    segment, or the whole clip) for `n` variants of the corpus in out_dir; returns the PNG path."""
    import matplotlib  # lazy: slow import, only on this path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: slow import, only on this path

    out_dir = Path(out_dir)
    man = pd.read_csv(out_dir / "manifest.csv")
    diag_path = out_dir / "diagnostics.parquet"
    diag = pd.read_parquet(diag_path) if diag_path.is_file() else pd.DataFrame(columns=["clip_id", "start", "end"])
    if clip_ids is None:
        degraded = man[man["artifacts"] != "clean"]
        picks = degraded.sample(min(n, len(degraded)), random_state=seed) if len(degraded) else man.head(n)
    else:
        picks = man.set_index("clip_id").loc[clip_ids].reset_index()
    fig, axes = plt.subplots(len(picks), frames_per_row, figsize=(2.2 * frames_per_row, 2.6 * len(picks)), squeeze=False)
    for row, rec in zip(axes, picks.itertuples(index=False)):
        d = diag[diag["clip_id"] == rec.clip_id]
        start, end = (float(d["start"].min()), float(d["end"].min())) if len(d) else (0.0, float(rec.duration_s))
        times = list(np.linspace(start, max(start, end - 0.04), frames_per_row))
        for ax, img, t in zip(row, _frames_at(out_dir / rec.video, times), times):
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlabel(f"{t:.2f} s", fontsize=7)
        mos = " ".join(f"{c[4:][:4]}={getattr(rec, c):.1f}" for c in LABEL_COLUMNS)
        title = f"{rec.clip_id}: {rec.artifacts}"
        row[0].set_title("\n".join(textwrap.wrap(title, 110)[:2]) + f"\n{mos}", fontsize=7, loc="left")
    fig.tight_layout()
    png = Path(png) if png else out_dir / "contact_sheet.png"
    atomic_write(png, lambda fh: fig.savefig(fh, format="png", dpi=80))
    plt.close(fig)
    return png
