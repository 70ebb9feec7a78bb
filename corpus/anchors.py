"""Human anchors for the label rule: which talkqa artifact each rated distortion of a published study is.

The anchors are mean human MOS per controlled distortion and level from the THQA-NTIRE talking-head
study (../shared/anchors/thqa_ntire_distortions.csv, MOS on 0-5; talkqa's 1-5 is 1 + 0.8 x MOS).
benchmarks/fit_label_rule.py fits the artifacts' impacts and response curves to them, and the tests
check that the declared values still reproduce them.

Assumptions (the study does not publish these):
  - audio_lead / video_lead level = offset in seconds, sound first / lips first (talkqa av_offset modes).
  - pause_start / pause_middle level = stall length in seconds (talkqa stall modes 'start' / 'middle').
  - qp_level L = x264 QP 68 - 4 L (L 9 -> QP 32 ... L 6 -> QP 44): a 4-QP ladder that, continued down
    to the corpus's own encode (CRF 20, measured to match QP 22-25.5 in PSNR on two real clips), puts
    no cost there; the study's 'higher level = better' is kept.
  - qt_level and stream_level are ladders of unknown kind and step: not mapped, shown for comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from talkqa.errors import UsageError

ANCHOR_FILE = "thqa_ntire_distortions.csv"


def to_talkqa_scale(mos_0_5: float) -> float:
    """The study's 0-5 MOS on talkqa's 1-5 scale."""
    return 1.0 + 0.8 * float(mos_0_5)


@dataclass(frozen=True)
class AnchorMap:
    artifact: str
    mode: str | None
    parameter: Callable[[float], float]  # the study's level -> the artifact's physical level
    meaning: str


ANCHOR_MAP: dict[str, AnchorMap] = {
    "audio_lead": AnchorMap("av_offset", "sound_first", float, "offset s, sound first"),
    "video_lead": AnchorMap("av_offset", "lips_first", float, "offset s, lips first"),
    "pause_middle": AnchorMap("stall", "middle", float, "stall s, middle"),
    "pause_start": AnchorMap("stall", "start", float, "stall s, start"),
    "qp_level": AnchorMap("compression", None, lambda level: 68.0 - 4.0 * float(level), "x264 QP"),
}
UNMAPPED = {
    "qt_level": "video quality ladder of unknown kind: no physical level to map",
    "stream_level": "streaming ladder of unknown kind: no physical level to map",
}


def read_anchors(path: str | Path) -> pd.DataFrame:
    """The anchor table with talkqa columns added: target (1-5), se (standard error of the mean, 1-5),
    artifact, mode, parameter (NaN / None for unmapped distortions)."""
    path = Path(path)
    if path.is_dir():
        path = path / ANCHOR_FILE
    if not path.is_file():
        raise UsageError(f"human anchors not found at {path}; pass the folder holding {ANCHOR_FILE}")
    df = pd.read_csv(path)
    need = {"distortion", "level", "n_videos", "mean_mos", "std_mos"}
    if need - set(df.columns):
        raise UsageError(f"{path}: missing columns {sorted(need - set(df.columns))}")
    df["target"] = df["mean_mos"].map(to_talkqa_scale)
    df["se"] = 0.8 * df["std_mos"] / df["n_videos"].clip(lower=1) ** 0.5
    mapped = [ANCHOR_MAP.get(d) for d in df["distortion"]]
    df["artifact"] = [m.artifact if m else None for m in mapped]
    df["mode"] = [m.mode if m else None for m in mapped]
    df["parameter"] = [m.parameter(lv) if m else float("nan") for m, lv in zip(mapped, df["level"])]
    return df
