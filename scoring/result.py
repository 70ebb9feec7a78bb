"""What scoring one clip gives: the `Result` and its documented JSON form (`talkqa score --json`), with
an optional `explain` block (`--explain`; scoring/explanation.py) after the documented keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talkqa.tasks import DIMENSION_NAMES


@dataclass
class Result:
    clip: str
    scores: dict[str, float | None]
    sync: dict[str, float | None]
    diagnostics: list[dict]
    warnings: list[str]
    error: str | None
    model: dict[str, str]
    windows: list[dict] = field(default_factory=list)  # t_start, t_end, per-dimension problem probability
    error_code: str | None = None  # one of talkqa.errors.ERROR_CODES when error is set
    elapsed_s: float = 0.0
    explanation: dict | None = None  # why these scores (scoring/explanation.py), when asked for
    details: dict[str, Any] = field(default_factory=dict, repr=False)  # for the HTML report (keep_details)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, explain: bool = False) -> dict:
        """The documented JSON object (keys in this order); `explain` adds the `explain` block (null when
        the clip was scored without explanations or could not be scored)."""
        obj = {
            "clip": self.clip,
            "scores": {d: self.scores.get(d) for d in DIMENSION_NAMES},
            "sync": {"offset_frames": self.sync.get("offset_frames"), "confidence": self.sync.get("confidence")},
            "diagnostics": [{k: d[k] for k in ("start", "end", "dimension", "issue", "severity")} for d in self.diagnostics],
            "warnings": list(self.warnings),
            "error": self.error,
            "model": {"name": self.model.get("name"), "version": self.model.get("version")},
        }
        if explain:
            obj["explain"] = self.explanation
        return obj

    def to_json(self, explain: bool = False) -> str:
        return json.dumps(self.to_dict(explain), ensure_ascii=False)


def rounded(v, digits: int = 4) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, digits) if np.isfinite(v) else None


def failed_result(clip: str, message: str, code: str, model: dict) -> Result:
    return Result(str(clip), {d: None for d in DIMENSION_NAMES}, {"offset_frames": None, "confidence": None}, [], [],
                  message, dict(model), error_code=code)
