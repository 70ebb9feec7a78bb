"""`overall` from the clip's five dimension scores by the label rule (`overall_from: dimensions`).

Every model here learns from pseudo-MOS whose overall is a function of the dimensions' drops
(corpus/labels.py): the worst weighted drop counts whole, the others in part. A head that predicts overall
on its own has to learn that function from one clean clip in fourteen, and on footage it never saw it stays
near the training mean: a clean clip gets 3.3 while its five scores are all above 4. Applying the rule to
the clip's own five scores keeps overall where they are, moves it with them by construction, and explains
it by them (each dimension's part of the drop).
"""

from __future__ import annotations

import numpy as np

from talkqa.tasks import overall_drop_parts

from .bundle_config import OverallRule


def overall_parts(scores: dict[str, float | None], rule: OverallRule) -> dict[str, float]:
    """Each scored dimension's part of the overall drop, in MOS points (<= 0), by the label rule's
    combination (talkqa.tasks.overall_drop_parts). Dimensions without a score (no audio) take no part."""
    drops = {d: rule.weights.get(d, 1.0) * max(0.0, rule.clean - float(v)) for d, v in scores.items()
             if d != "overall" and v is not None and np.isfinite(v)}
    return {d: -p for d, p in overall_drop_parts(drops, rule.secondary).items()}


def overall_from_dimensions(scores: dict[str, float | None], rule: OverallRule, direct: float = 0.0) -> float | None:
    """The rule's overall of these dimension scores, plus `direct` (the part the rule charges a fault directly,
    scoring/overall_direct.py; <= 0), within [floor, 5]; None when none is scored."""
    parts = overall_parts(scores, rule)
    if not parts:
        return None
    return float(np.clip(rule.clean + sum(parts.values()) + direct, rule.floor, 5.0))
