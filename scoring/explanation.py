"""Why a clip got its scores, in words: the `explain` block of `talkqa score --json --explain` and the
"why these scores" section of the per-clip HTML report.

The stacking model's exact per-feature contributions (stacking/explain.py: TreeSHAP through the
level-2 meta-learner) are summed into factors a person can read: one per expert, which describes
itself from its own scalar readings (`Expert.describe`), and one per hand-crafted feature, read
with the name and unit its family declares (`FeatureFamily.feature_label`). Contributions are MOS
points of the stacking prediction; `base_value` is that model's prediction for a typical training
clip, so base_value + all contributions = the stacking prediction (before clipping to 1-5). When the
model combines fusion and stacking (`combine: mean`), the fusion half is not explained, and the
block says so. With `combine: auto` each dimension names what it ships (its own `combine`: fusion,
stacking or mean, as chosen on validation), and its sentence follows that choice. A model whose overall
comes from its five dimension scores (`overall_from: dimensions`, scoring/overall_rule.py) explains overall
by them: each dimension is a factor whose contribution is its part of the drop from the rule's clean score
(`combine: dimensions` in that block), so base_value + contributions = overall here too.
"""

from __future__ import annotations

import numpy as np

from talkqa.stacking.explain import clip_contributions, factor_contributions

from .overall_rule import overall_parts
from .result import rounded

SENTENCE_FACTORS = 3  # reasons per dimension in the sentence
NEGLIGIBLE = 0.005  # MOS points; a factor this small is no reason


def _describe_expert(expert, data, clip_id: str) -> tuple[str, str]:
    prefix = f"{expert.name}__"
    row = data.scalars.loc[clip_id] if clip_id in data.scalars.index else {}
    scalars = {c[len(prefix):]: float(row[c]) for c in data.scalars.columns if c.startswith(prefix)}
    return expert.title(), expert.describe(scalars)


def _describe_feature(column: str, families: dict, data, clip_id: str) -> tuple[str, str]:
    family, _, name = column.partition("__")
    value = float(data.handcrafted.loc[clip_id, column]) if column in data.handcrafted.columns else np.nan
    fam = families.get(family)
    label = fam.feature_label(name) if fam is not None else None
    if label is None:  # a family that declares no label for it: its column name is the best we have
        return column, "not measured" if not np.isfinite(value) else f"{value:.4g}"
    return label.name, label.reading(value)


def _describe(factor: str, kind: str, experts: dict, families: dict, data, clip_id: str) -> tuple[str, str]:
    """(name, reading) of a factor: an expert says what it saw; a hand-crafted feature gives its value."""
    if kind == "expert":
        expert = experts.get(factor)
        return _describe_expert(expert, data, clip_id) if expert is not None else (f"{factor} expert", "")
    return _describe_feature(factor, families, data, clip_id)


def factor_text(name: str, reading: str) -> str:
    return f"{name}: {reading}" if reading else name


def explain_scores(stacking, data, clip_id: str, scores: dict[str, float | None], experts: dict, families: dict,
                   combine: str, top: int = 5, per_dimension: dict[str, str] | None = None,
                   overall_rule=None, overall_direct: tuple[str, float] | None = None) -> dict:
    """The explain block of one scored clip: per scored dimension the stacking prediction, its base
    value, the `top` factors (name, reading, contribution in MOS points, text), the sum of the others,
    what the shipped score is (`combine`: the model's, or `per_dimension`'s choice under auto) and a
    sentence. With `overall_rule` (a BundleConfig.overall_rule) overall is explained by the dimensions, and with
    `overall_direct` (column, part: scoring/overall_direct.py) by that reading's direct part too."""
    per_dim = clip_contributions(stacking, data, clip_id)
    group_of = stacking.featurizer_.group_of_
    readings = set(stacking.featurizer_.scalars_)
    described: dict[str, tuple[str, str]] = {}
    dimensions = {}
    for dim, contrib in per_dim.items():
        if scores.get(dim) is None:  # not scored (no audio, untrained): nothing to explain
            continue
        if dim == "overall" and overall_rule is not None:
            direct = None
            if overall_direct is not None:  # the reading's words, as any hand-crafted factor's
                column, part = overall_direct
                direct = (column, part, *_describe_feature(column, families, data, clip_id))
            dimensions[dim] = _overall_block(scores, overall_rule, direct)
            continue
        table = factor_contributions(contrib.contributions, group_of, readings)
        factors = []
        for r in table.head(top).itertuples():
            if r.factor not in described:
                described[r.factor] = _describe(r.factor, r.kind, experts, families, data, clip_id)
            name, reading = described[r.factor]
            factor = {"factor": r.factor, "kind": r.kind, "name": name, "reading": reading,
                      "contribution": rounded(r.contribution, 4), "text": factor_text(name, reading)}
            if r.kind == "expert":  # its readings (scalars) vs what its pooled embeddings carry
                factor.update(from_readings=rounded(r.from_readings, 4),
                              from_learned_features=rounded(r.contribution - r.from_readings, 4))
            factors.append(factor)
        d = dimensions[dim] = {
            "score": scores[dim],
            "stacking": rounded(contrib.prediction, 4),
            "base_value": rounded(contrib.base_value, 4),
            "factors": factors,
            "other": rounded(table["contribution"].iloc[top:].sum(), 4),
            "other_factors": max(0, len(table) - top),
            "combine": (per_dimension or {}).get(dim, combine),
        }
        d["sentence"] = _sentence(dim, d, d["combine"])
    return {"explains": "stacking", "combine": combine, "dimensions": dimensions}


def _overall_block(scores: dict[str, float | None], rule, direct: tuple[str, float, str, str] | None = None) -> dict:
    """Overall explained by the dimensions' parts of the drop and, with `direct` (column, part, name, reading), the
    part the label rule charges the fault itself (scoring/overall_direct.py)."""
    parts = overall_parts(scores, rule)
    factors = [{"factor": k, "kind": "dimension", "name": k, "reading": f"{scores[k]:.2f}",
                "contribution": rounded(parts[k], 4), "text": f"{k} {scores[k]:.2f}"} for k in parts]
    if direct is not None and direct[1] < 0:  # the part the label rule charges the fault itself (a stall)
        column, part, name, reading = direct
        factors.append({"factor": column, "kind": "direct", "name": name, "reading": reading,
                        "contribution": rounded(part, 4),
                        "text": f"{factor_text(name, reading)}, charged to overall itself"})
    factors.sort(key=lambda f: f["contribution"])  # the largest part of the drop first
    total = sum(parts.values()) + (direct[1] if direct is not None else 0.0)
    # "stacking" holds what the block explains, as for every dimension: here the rule before the floor
    d = {"score": scores["overall"], "stacking": rounded(rule.clean + total, 4),
         "base_value": rule.clean, "factors": factors, "other": 0.0, "other_factors": 0, "combine": "dimensions"}
    d["sentence"] = _sentence("overall", d, "dimensions")
    return d


def headline(dim: str, d: dict, combine: str) -> str:
    """"lip_sync 2.10 (stacking model 2.30, -1.40 vs a typical clip)" from one dimension's block."""
    delta = d["stacking"] - d["base_value"]
    if combine == "dimensions":
        rest = ", part of the others and what the fault costs overall itself" \
            if any(f["kind"] == "direct" for f in d["factors"]) else " and part of the others"
        return f"{dim} {d['score']:.2f} (from the dimension scores: {d['base_value']:.2f} less the worst drop{rest})"
    return f"{dim} {d['score']:.2f} ({delta:+.2f} vs a typical clip)" if combine == "stacking" else \
        f"{dim} {d['score']:.2f} (stacking model {d['stacking']:.2f}, {delta:+.2f} vs a typical clip)"


def reasons(d: dict, n: int = SENTENCE_FACTORS) -> list[str]:
    """The top factors that matter, each as "text (contribution)"."""
    return [f"{f['text']} ({_amount(f)})" for f in d["factors"][:n]
            if f["contribution"] is not None and abs(f["contribution"]) >= NEGLIGIBLE]


def _sentence(dim: str, d: dict, combine: str) -> str:
    found = reasons(d)
    return f"{headline(dim, d, combine)}: {'; '.join(found) if found else 'no single factor stands out'}"


def _amount(factor: dict) -> str:
    """A factor's contribution; for an expert whose push comes mostly from its learned features rather
    than the readings it describes, that share too, so "lips agree (-0.7)" does not read as a contradiction."""
    text = f"{factor['contribution']:+.2f}"
    learned = factor.get("from_learned_features")
    if learned is not None and abs(learned) > abs(factor["from_readings"]):
        text += ", from its learned features" if abs(factor["from_readings"]) < NEGLIGIBLE else \
            f", of which {learned:+.2f} from its learned features"
    return text
