"""Fit the label rule of the human-anchored artifacts (av_offset, stall, compression) to people's ratings.

The THQA-NTIRE study rated 50 talking-head videos under controlled distortions, one overall MOS per
video (../shared/anchors, README there). talkqa/corpus/anchors.py says which artifact, mode and
physical level each distortion is. For each anchored artifact this script fits, by weighted least
squares (scipy.optimize.least_squares, fixed start, deterministic):

    impacts  = g x SPLIT[artifact]            one scale g; the split over dimensions is a design choice
    responses[mode] = Saturating(scale, shape, origin)   a monotone curve in the physical level

so that `mos_overall` of a whole clip with the artifact at the anchor's level matches the mapped human
MOS (1 + 0.8 x MOS), each anchor weighted by its standard error. Two soft priors pin the small-offset
end of av_offset, where the study has no level: ITU-R BT.1359's detectability thresholds (sound 45 ms
first, lips 125 ms first) cost a just-noticeable 0.1 +- 0.1 MOS.

It prints, per distortion and level: the human MOS mapped to 1-5, the pseudo-MOS before (the rule at
commit 8f1b4e8: av_offset linear in severity over 2-15 frames, sign ignored; no stall and no
compression artifact, so such clips were labelled clean) and after (the declarations printed at the
end, rounded as they are pasted into corpus/artifacts), and the residual. Unmapped ladders (qt_level,
stream_level) are listed for comparison. --check exits 1 when the code's declarations differ from the
fit (paste the printed block).

    PYTHONPATH=. python benchmarks/fit_label_rule.py [--anchors ../shared/anchors] [--json fit.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkqa.corpus.anchors import UNMAPPED, read_anchors  # noqa: E402
from talkqa.corpus.artifacts import ARTIFACTS, Saturating  # noqa: E402
from talkqa.corpus.labels import Applied, LabelRule, pseudo_mos  # noqa: E402
from talkqa.errors import UsageError  # noqa: E402
from talkqa.store import atomic_write_text  # noqa: E402

RULE = LabelRule()
DEFAULT_ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"


@dataclass(frozen=True)
class Spec:
    """How one artifact is fitted. `split`: relative drops per dimension (the raters gave one overall
    MOS, so how a fault divides over the dimensions is a choice, stated here). `shared_shape`: one
    curve shape for all modes (when the anchors cannot tell them apart). `origin`: the level where
    the artifact starts to cost. `scale_bounds`: in the artifact's level unit."""

    split: dict[str, float]
    shared_shape: bool
    origin: float
    scale_bounds: tuple[float, float]


SPECS: dict[str, Spec] = {
    # an offset is a lip-sync fault first; voice and face also stop agreeing in rhythm
    "av_offset": Spec({"lip_sync": 1.0, "consistency": 0.25}, False, 0.0, (0.01, 20.0)),
    # a stall freezes the face and stops the mouth while speech goes on, and annoys as an interruption
    "stall": Spec({"expression": 1.0, "lip_sync": 0.8, "overall": 0.3}, True, 0.0, (0.01, 50.0)),
    # compression is a picture fault; QP 24 ~ the corpus's own CRF-20 encode (22-25.5 measured)
    "compression": Spec({"visual_quality": 1.0}, False, 24.0, (1.0, 200.0)),
}
# (artifact, mode, level, overall drop, sd): ITU-R BT.1359-1 detectability thresholds as 'just noticeable'
PRIORS = [("av_offset", "sound_first", 0.045, 0.1, 0.1), ("av_offset", "lips_first", 0.125, 0.1, 0.1)]
SHAPE_BOUNDS = (0.3, 8.0)
# the rule before this fit (commit 8f1b4e8)
BEFORE = {"av_offset": {"impacts": {"lip_sync": 3.0, "consistency": 0.8}, "levels_frames": (2, 4, 8, 15)}}


# ---------------------------------------------------------------------------- candidates
def candidate(name: str, g: float, curves: dict[str, Saturating]) -> type:
    """The registered artifact with other impacts and responses (a subclass: nothing global changes)."""
    base = ARTIFACTS.get(name)
    return type(base.__name__, (base,), {"impacts": {d: g * r for d, r in SPECS[name].split.items()},
                                         "responses": curves})


def overall(cls: type, mode: str | None, level: float) -> float:
    """mos_overall of a whole clip with the artifact at a physical level, unrounded."""
    return pseudo_mos([Applied(cls.name, 1.0, 1.0, mode, level)], RULE, {cls.name: cls}, ndigits=None)["mos_overall"]


def unpack(name: str, modes: list[str], theta: np.ndarray) -> type:
    spec = SPECS[name]
    g, rest = theta[0], list(theta[1:])
    if spec.shared_shape:
        shape = rest.pop(0)
        curves = {m: Saturating(rest[i], shape, spec.origin) for i, m in enumerate(modes)}
    else:
        curves = {m: Saturating(rest[2 * i], rest[2 * i + 1], spec.origin) for i, m in enumerate(modes)}
    return candidate(name, g, curves)


def max_scale(name: str) -> float:
    """The largest g that keeps the asymptotic overall drop within clean - floor."""
    unit = candidate(name, 1.0, {"_": Saturating(1e-9, 1.0)})
    drop = RULE.clean - pseudo_mos([Applied(name, 1.0, 1.0, "_", 1e9)], LabelRule(floor=-1e9), {name: unit},
                                   ndigits=None)["mos_overall"]
    return (RULE.clean - RULE.floor) / drop


def fit_one(name: str, rows) -> type:
    spec = SPECS[name]
    modes = sorted({m for m in rows["mode"]}) if rows["mode"].notna().any() else [next(iter(ARTIFACTS.get(name).responses))]
    rows = rows.assign(mode=rows["mode"].fillna(modes[0]))
    lo_s, hi_s = spec.scale_bounds
    x_mid = float(np.median(rows["parameter"] - spec.origin))
    g_hi = max_scale(name)
    x0, lo, hi = [0.5 * g_hi], [0.05], [g_hi]
    per_mode = [(x_mid, lo_s, hi_s)] if spec.shared_shape else [(x_mid, lo_s, hi_s), (1.5, *SHAPE_BOUNDS)]
    if spec.shared_shape:
        x0, lo, hi = x0 + [1.5], lo + [SHAPE_BOUNDS[0]], hi + [SHAPE_BOUNDS[1]]
    for _ in modes:
        for start, a, b in per_mode:
            x0, lo, hi = x0 + [start], lo + [a], hi + [b]
    priors = [p for p in PRIORS if p[0] == name]

    def residuals(theta):
        cls = unpack(name, modes, theta)
        r = [(overall(cls, m, x) - t) / se for m, x, t, se in zip(rows["mode"], rows["parameter"], rows["target"], rows["se"])]
        r += [(RULE.clean - overall(cls, m, x) - d) / sd for _, m, x, d, sd in priors]
        return np.array(r)

    res = least_squares(residuals, np.array(x0), bounds=(np.array(lo), np.array(hi)), method="trf",
                        x_scale="jac", max_nfev=20000)
    return unpack(name, modes, res.x)


# ---------------------------------------------------------------------------- declarations
def rounded(cls: type) -> type:
    """The fitted declaration as it is written into the code: impacts to 2 decimals, curves to 3 figures."""
    sig = lambda v: float(f"{v:.3g}")  # noqa: E731
    curves = {m: Saturating(sig(c.scale), round(c.shape, 2), c.origin) for m, c in cls.responses.items()}
    base = ARTIFACTS.get(cls.name)
    return type(base.__name__, (base,), {"impacts": {d: round(v, 2) for d, v in cls.impacts.items()},
                                         "responses": curves})


def declaration(cls: type) -> str:
    curves = ", ".join(f'"{m}": Saturating({c.scale:g}, {c.shape:g}' + (f", origin={c.origin:g})" if c.origin else ")")
                       for m, c in cls.responses.items())
    impacts = ", ".join(f'"{d}": {v:g}' for d, v in cls.impacts.items())
    return f"    {cls.name}:\n        impacts = {{{impacts}}}\n        responses = {{{curves}}}"


def same_declaration(a: type, b: type) -> bool:
    return a.impacts == b.impacts and dict(a.responses) == dict(b.responses)


def before_mos(name: str | None, mode: str | None, level: float) -> float | None:
    if name is None:
        return None
    if name not in BEFORE:
        return RULE.clean  # no such artifact: the clip was labelled clean
    old = BEFORE[name]
    base = ARTIFACTS.get(name)
    cls = type(base.__name__, (base,), {"impacts": old["impacts"], "responses": {}})
    sev = float(np.interp(level * 25.0, old["levels_frames"], np.arange(1, 5) / 4))
    return pseudo_mos([Applied(name, sev)], RULE, {name: cls}, ndigits=None)["mos_overall"]


# ---------------------------------------------------------------------------- report
def fit_table(anchors_dir: Path) -> tuple[list[dict], dict[str, type]]:
    df = read_anchors(anchors_dir)
    fitted = {name: rounded(fit_one(name, df[df["artifact"] == name])) for name in SPECS}
    rows = []
    for r in df.itertuples():
        r = r._replace(mode=r.mode if isinstance(r.mode, str) else None,
                       artifact=r.artifact if isinstance(r.artifact, str) else None)
        rec = {"distortion": r.distortion, "level": r.level, "human_0_5": r.mean_mos, "human": round(r.target, 3),
               "se": round(r.se, 3), "artifact": r.artifact, "mode": r.mode,
               "parameter": None if r.artifact is None else float(r.parameter)}
        if r.artifact:
            cls = fitted[r.artifact]
            mos = pseudo_mos([Applied(r.artifact, 1.0, 1.0, r.mode, r.parameter)], RULE, {r.artifact: cls})
            rec.update(before=round(before_mos(r.artifact, r.mode, r.parameter), 3), after=mos["mos_overall"],
                       residual=round(mos["mos_overall"] - r.target, 3),
                       **{k: v for k, v in mos.items() if k != "mos_overall" and v < RULE.clean})
        else:
            rec["note"] = UNMAPPED.get(r.distortion, "not mapped")
        rows.append(rec)
    rows.sort(key=lambda r: (r["artifact"] is None, r["artifact"] or "", r["distortion"], r["level"]))
    for name, mode, level, drop, sd in PRIORS:
        after = pseudo_mos([Applied(name, 1.0, 1.0, mode, level)], RULE, {name: fitted[name]})["mos_overall"]
        rows.append({"distortion": "prior", "level": level, "artifact": name, "mode": mode, "parameter": level,
                     "human": RULE.clean - drop, "se": sd, "before": round(before_mos(name, mode, level), 3),
                     "after": after, "residual": round(after - (RULE.clean - drop), 3), "prior": True})
    return rows, fitted


def format_table(rows: list[dict]) -> str:
    head = f"{'distortion':<13}{'level':>6}  {'talkqa level':<28}{'human':>7}{'+-se':>6}{'before':>8}{'after':>7}{'resid':>7}  per-dimension after"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("artifact"):
            what = f"{r['artifact']} {r['mode'] or ''} {r['parameter']:g}".replace("  ", " ")
            dims = " ".join(f"{k.removeprefix('mos_')}={v:.2f}" for k, v in r.items() if k.startswith("mos_"))
            lines.append(f"{r['distortion']:<13}{r['level']:>6g}  {what:<28}{r['human']:>7.2f}{r['se']:>6.2f}"
                         f"{r['before']:>8.2f}{r['after']:>7.2f}{r['residual']:>+7.2f}  {dims}")
        else:
            lines.append(f"{r['distortion']:<13}{r['level']:>6g}  {'(not mapped)':<28}{r['human']:>7.2f}{r['se']:>6.2f}"
                         f"{'':>8}{'':>7}{'':>7}  {r['note']}")
    lines.append("prior: ITU-R BT.1359 detectability threshold, taken as a just-noticeable 0.1 +- 0.1 drop")
    fitted = [r for r in rows if r.get("artifact") and not r.get("prior")]
    for name in [None, *SPECS]:
        some = [r for r in fitted if name in (None, r["artifact"])]
        summary = []
        for key in ("before", "after"):
            err = np.array([r[key] - r["human"] for r in some])
            summary.append(f"{key} RMSE {np.sqrt(np.mean(err ** 2)):.3f} (max {np.max(np.abs(err)):.3f})")
        lines.append(f"{name or 'all anchors':<12} n={len(some):<3}" + ", ".join(summary))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchors", type=Path, default=DEFAULT_ANCHORS, help="folder with thqa_ntire_distortions.csv")
    ap.add_argument("--json", type=Path, help="also write the table and declarations here")
    ap.add_argument("--check", action="store_true", help="exit 1 when the code's declarations differ from the fit")
    args = ap.parse_args(argv)
    try:
        rows, fitted = fit_table(args.anchors)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print("\nDeclarations (corpus/artifacts/lipsync.py, playback.py):")
    stale = []
    for name, cls in fitted.items():
        print(declaration(cls))
        if not same_declaration(cls, ARTIFACTS.get(name)):
            stale.append(name)
    print("\ncode declarations: " + ("match the fit" if not stale else f"DIFFER for {', '.join(stale)}"))
    if args.json:
        atomic_write_text(args.json, json.dumps({"rule": RULE.__dict__, "rows": rows, "declarations": {
            n: {"impacts": c.impacts, "responses": {m: r.__dict__ for m, r in c.responses.items()}}
            for n, c in fitted.items()}}, indent=1, default=str))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
