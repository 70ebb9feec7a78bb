"""Fit the label rule of the human-anchored artifacts (av_offset, stall, compression) to people's ratings,
under the behavioural checks of issue #13.

The THQA-NTIRE study rated 50 talking-head videos under controlled distortions, one overall MOS per
video (../shared/anchors, README there). talkqa/corpus/anchors.py says which artifact, mode and
physical level each distortion is. For each anchored artifact this script fits, by weighted least
squares (scipy.optimize.least_squares, fixed start, deterministic):

    A                 its asymptotic overall drop (fitted, or all of clean - floor: SPECS full_scale)
    impacts  = g x SPLIT[artifact]     g such that the overall drop at saturation is A; the split over
                                       dimensions is a design choice
    responses[mode] = Saturating(scale, shape, origin, ceiling)   a monotone curve in the physical level
                                       (origin and ceiling fitted only where SPECS says)

so that `mos_overall` of a whole clip with the artifact at the anchor's level matches the mapped human
MOS (1 + 0.8 x MOS), each anchor weighted by its standard error. Two soft priors pin the small-offset
end of av_offset, where the study has no level: ITU-R BT.1359's detectability thresholds (sound 45 ms
first, lips 125 ms first) cost a just-noticeable 0.1 +- 0.1 MOS. The label checks
(talkqa/corpus/label_checks.py) that involve the artifact are one-sided, stiff residuals: met with
CHECK_MARGIN to spare. The overall weight of lip sync (corpus/labels.py) is fitted first, from the
av_offset anchors and checks: the largest weight whose constrained fit stays within CHI2_SLACK of the
unconstrained one (see FITTED_WEIGHTS).

It prints, per distortion and level: the human MOS mapped to 1-5, the pseudo-MOS before (the rule at
commit 8f1b4e8: av_offset linear in severity over 2-15 frames, sign ignored, overall taking every
dimension's whole drop; no stall and no compression artifact, so such clips were labelled clean) and
after (the declarations printed at the end, rounded as they are pasted into the code), the residual
and the other dimensions; then every dimension of the offsets 0.08-1 s both ways, before and after;
then each label check with its values. Unmapped ladders (qt_level, stream_level) are listed for
comparison. --check exits 1 when the code's declarations differ from the fit (paste the printed
block) or a label check fails.

    PYTHONPATH=. python benchmarks/fit_label_rule.py [--anchors ../shared/anchors] [--json fit.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkqa.corpus.anchors import UNMAPPED, read_anchors  # noqa: E402
from talkqa.corpus.artifacts import ARTIFACTS, Saturating  # noqa: E402
from talkqa.corpus.label_checks import LABEL_CHECKS, describe  # noqa: E402
from talkqa.corpus.labels import Applied, LabelRule, pseudo_mos  # noqa: E402
from talkqa.errors import UsageError  # noqa: E402
from talkqa.store import atomic_write_text  # noqa: E402

RULE = LabelRule()
BEFORE_RULE = LabelRule(overall_weights={})  # commit 8f1b4e8: overall took every dimension's whole drop
DEFAULT_ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"


@dataclass(frozen=True)
class Spec:
    """How one artifact is fitted. `split`: relative drops per dimension (the raters gave one overall
    MOS, so how a fault divides over the dimensions is a choice, stated here). `shared_shape`: one
    curve shape for all modes (when the anchors cannot tell them apart). `origin`: the level where
    the artifact starts to cost; `origin_bounds`: modes whose origin is fitted instead, within these.
    `scale_bounds`: in the artifact's level unit. `ceiling_fitted`: modes whose curve levels off at
    a fitted share (CEILING_BOUNDS) of the impacts rather than at all of them. `full_scale`: the
    artifact, grown without bound, takes overall down to the floor (its asymptote is not fitted)."""

    split: dict[str, float]
    shared_shape: bool
    origin: float
    scale_bounds: tuple[float, float]
    origin_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    ceiling_fitted: tuple[str, ...] = ()
    full_scale: bool = False  # the asymptotic overall drop is all of clean - floor instead of fitted


SPECS: dict[str, Spec] = {
    # an offset is a lip-sync fault first; voice and face also stop agreeing in rhythm. Lips first
    # costs (almost) nothing until people can tell (ITU-R BT.1359: 125 ms), then rises steeply and
    # goes on falling to the floor; sound first is noticed early and levels off (people: 2.47 at
    # 0.5 s, 2.12 at 1 s, where lips first falls from 3.17 to 2.05). The lip-sync drop runs on below
    # the floor (overall takes a share of it), so consistency's share is small: about half a point
    # at most, as before the weights
    "av_offset": Spec({"lip_sync": 1.0, "consistency": 0.06}, False, 0.0, (0.01, 20.0),
                      {"lips_first": (0.0, 0.125)}, ("sound_first",), full_scale=True),
    # a stall freezes the face and stops the mouth while speech goes on, and annoys as an interruption
    "stall": Spec({"expression": 1.0, "lip_sync": 0.8, "overall": 0.3}, True, 0.0, (0.01, 50.0)),
    # compression is a picture fault; QP 24 ~ the corpus's own CRF-20 encode (22-25.5 measured)
    "compression": Spec({"visual_quality": 1.0}, False, 24.0, (1.0, 200.0)),
}
# Overall weights fitted, each from one artifact's anchors and checks (every other dimension keeps
# weight 1). Overall depends on a weight only through its product with the dimension's drop, so the
# anchors alone cannot fix it; the checks bound it from above (a smaller weight lets the same
# overall come with a larger lip-sync drop). It is set to the largest weight, in WEIGHT_STEP steps,
# whose constrained fit costs the anchors and priors at most CHI2_SLACK more than the fit without
# checks: overall follows the worst dimension as far as people's ratings allow.
FITTED_WEIGHTS = {"lip_sync": "av_offset"}
WEIGHT_STEP = 0.01
CHI2_SLACK = 1.0  # one unit of chi-square: within one standard error of the best fit
# (artifact, mode, level, overall drop, sd): ITU-R BT.1359-1 detectability thresholds as 'just noticeable'
PRIORS = [("av_offset", "sound_first", 0.045, 0.1, 0.1), ("av_offset", "lips_first", 0.125, 0.1, 0.1)]
SHAPE_BOUNDS = (0.3, 8.0)
CEILING_BOUNDS = (0.2, 1.0)
# the label checks are met by this much (MOS points), so that rounding the declarations cannot break
# them; a miss costs like a residual of miss / CHECK_TOLERANCE standard errors (a hard constraint)
CHECK_MARGIN = 0.05
CHECK_TOLERANCE = 0.001
# the rule before this fit (commit 8f1b4e8)
BEFORE = {"av_offset": {"impacts": {"lip_sync": 3.0, "consistency": 0.8}, "levels_frames": (2, 4, 8, 15)}}
OFFSETS_SHOWN = (0.08, 0.125, 0.2, 0.5, 1.0)  # seconds: the per-dimension block of the report


# ---------------------------------------------------------------------------- candidates
def candidate(name: str, g: float, curves: dict[str, Saturating]) -> type:
    """The registered artifact with other impacts and responses (a subclass: nothing global changes)."""
    base = ARTIFACTS.get(name)
    return type(base.__name__, (base,), {"impacts": {d: g * r for d, r in SPECS[name].split.items()},
                                         "responses": curves})


def mos(cls: type, mode: str | None, level: float, rule: LabelRule = RULE) -> dict[str, float]:
    """pseudo-MOS of a whole clip with the artifact at a physical level, unrounded."""
    return pseudo_mos([Applied(cls.name, 1.0, 1.0, mode, level)], rule, {cls.name: cls}, ndigits=None)


def unit_drop(name: str, rule: LabelRule) -> float:
    """The overall drop of the artifact with impacts = its split, fully applied and no floor."""
    unit = candidate(name, 1.0, {"_": Saturating(1e-9, 1.0)})
    return rule.clean - mos(unit, "_", 1e9, replace(rule, floor=-1e9))["mos_overall"]


def with_weights(rule: LabelRule, weights: dict[str, float]) -> LabelRule:
    return replace(rule, overall_weights={**rule.overall_weights, **weights})


def check_residuals(rule: LabelRule, fitted: dict[str, type], margin: float = CHECK_MARGIN) -> list[float]:
    """The label checks that involve a fitted artifact, as one-sided residuals (0 when met by `margin`)."""
    arts = {n: ARTIFACTS.get(n) for n in ARTIFACTS.names()} | fitted
    return [max(0.0, miss) / CHECK_TOLERANCE for c in LABEL_CHECKS if c.artifacts() & set(fitted)
            for _, miss in c.shortfalls(rule, arts, margin)]


@dataclass(frozen=True)
class Fit:
    cls: type
    chi2: float  # anchors and priors
    misses: float  # sum of squared check residuals (0: every check met by the margin)


def fit_one(name: str, rows, rule: LabelRule, checks: bool = True) -> Fit:
    """One artifact by weighted least squares: its asymptotic overall drop A (the impacts follow from A,
    the split and the rule's weights, so that overall is A x curve whatever the weights) and its curves."""
    spec = SPECS[name]
    modes = sorted({m for m in rows["mode"]}) if rows["mode"].notna().any() else [next(iter(ARTIFACTS.get(name).responses))]
    rows = rows.assign(mode=rows["mode"].fillna(modes[0]))
    lo_s, hi_s = spec.scale_bounds
    x_mid = float(np.median(rows["parameter"] - spec.origin))
    full = rule.clean - rule.floor
    x0, lo, hi = ([], [], []) if spec.full_scale else ([0.5 * full], [0.05], [full])
    if spec.shared_shape:
        x0, lo, hi = x0 + [1.5], lo + [SHAPE_BOUNDS[0]], hi + [SHAPE_BOUNDS[1]]
    for m in modes:
        x0, lo, hi = x0 + [x_mid], lo + [lo_s], hi + [hi_s]
        if not spec.shared_shape:
            x0, lo, hi = x0 + [1.5], lo + [SHAPE_BOUNDS[0]], hi + [SHAPE_BOUNDS[1]]
        if m in spec.origin_bounds:
            a, b = spec.origin_bounds[m]
            x0, lo, hi = x0 + [0.5 * (a + b)], lo + [a], hi + [b]
        if m in spec.ceiling_fitted:
            x0, lo, hi = x0 + [CEILING_BOUNDS[1]], lo + [CEILING_BOUNDS[0]], hi + [CEILING_BOUNDS[1]]
    drop_per_impact = unit_drop(name, rule)

    def unpack(theta) -> type:
        rest = list(theta)
        amplitude = full if spec.full_scale else rest.pop(0)
        shape = rest.pop(0) if spec.shared_shape else None
        curves = {}
        for m in modes:
            scale = rest.pop(0)
            s = shape if spec.shared_shape else rest.pop(0)
            origin = rest.pop(0) if m in spec.origin_bounds else spec.origin
            curves[m] = Saturating(scale, s, origin, rest.pop(0) if m in spec.ceiling_fitted else 1.0)
        return candidate(name, amplitude / drop_per_impact, curves)

    priors = [p for p in PRIORS if p[0] == name]
    anchors = list(zip(rows["mode"], rows["parameter"], rows["target"], rows["se"]))

    def fit_residuals(cls) -> list[float]:
        r = [(mos(cls, m, x, rule)["mos_overall"] - t) / se for m, x, t, se in anchors]
        return r + [(rule.clean - mos(cls, m, x, rule)["mos_overall"] - d) / sd for _, m, x, d, sd in priors]

    def solve(start, with_checks: bool) -> np.ndarray:
        def residuals(theta):
            cls = unpack(theta)
            return np.array(fit_residuals(cls) + (check_residuals(rule, {name: cls}) if with_checks else []))

        return least_squares(residuals, np.asarray(start), bounds=(np.array(lo), np.array(hi)), method="trf",
                             x_scale="jac", max_nfev=20000).x

    # the checks are one-sided and stiff: they start from the fit to people, which most of them leave alone
    theta = solve(x0, False)
    cls = unpack(solve(theta, True) if checks else theta)
    miss = check_residuals(rule, {name: cls}) if checks else []
    return Fit(cls, float(np.sum(np.square(fit_residuals(cls)))), float(np.sum(np.square(miss))))


def fit_weight(dimension: str, name: str, rows) -> float:
    """The largest weight (WEIGHT_STEP grid) whose constrained fit of `name` meets every check and costs
    the anchors and priors at most CHI2_SLACK more than its fit without checks. Lowering the weight only
    relaxes the checks, so the cost falls as the weight does: bisection."""
    free = fit_one(name, rows, RULE, checks=False).chi2
    steps = int(round(1.0 / WEIGHT_STEP))

    def ok(k: int) -> bool:
        f = fit_one(name, rows, with_weights(RULE, {dimension: k * WEIGHT_STEP}))
        return f.misses < 1.0 and f.chi2 <= free + CHI2_SLACK

    lo, hi = 1, steps
    if ok(hi):
        return 1.0
    if not ok(lo):
        raise RuntimeError(f"no {dimension} weight lets the fit of {name} meet the label checks")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return round(lo * WEIGHT_STEP, 6)


def fit(df) -> tuple[LabelRule, dict[str, type]]:
    """The overall weights first, then every anchored artifact under the checks with those weights."""
    rows = {name: df[df["artifact"] == name] for name in SPECS}
    rule = with_weights(RULE, {d: fit_weight(d, name, rows[name]) for d, name in FITTED_WEIGHTS.items()})
    return rule, {name: fit_one(name, rows[name], rule).cls for name in SPECS}


# ---------------------------------------------------------------------------- declarations
def rounded(cls: type) -> type:
    """The fitted declaration as it is written into the code: impacts to 2 decimals, curves to 3 figures
    (a fitted origin to the millisecond / 3 decimals)."""
    sig = lambda v: float(f"{v:.3g}")  # noqa: E731
    curves = {m: Saturating(sig(c.scale), round(c.shape, 2), round(c.origin, 3), round(c.ceiling, 2))
              for m, c in cls.responses.items()}
    base = ARTIFACTS.get(cls.name)
    return type(base.__name__, (base,), {"impacts": {d: round(v, 2) for d, v in cls.impacts.items()},
                                         "responses": curves})


def rounded_rule(rule: LabelRule) -> LabelRule:
    return replace(rule, overall_weights={d: round(w, 2) for d, w in rule.overall_weights.items()})


def declaration(cls: type) -> str:
    curves = ", ".join(f'"{m}": Saturating({c.scale:g}, {c.shape:g}' + (f", origin={c.origin:g}" if c.origin else "")
                       + (f", ceiling={c.ceiling:g})" if c.ceiling < 1 else ")") for m, c in cls.responses.items())
    impacts = ", ".join(f'"{d}": {v:g}' for d, v in cls.impacts.items())
    return f"    {cls.name}:\n        impacts = {{{impacts}}}\n        responses = {{{curves}}}"


def same_declaration(a: type, b: type) -> bool:
    return a.impacts == b.impacts and dict(a.responses) == dict(b.responses)


def before_mos(name: str | None, mode: str | None, level: float) -> dict[str, float] | None:
    if name is None:
        return None
    if name not in BEFORE:
        return pseudo_mos([], BEFORE_RULE, ndigits=None)  # no such artifact: the clip was labelled clean
    old = BEFORE[name]
    base = ARTIFACTS.get(name)
    cls = type(base.__name__, (base,), {"impacts": old["impacts"], "responses": {}})
    sev = float(np.interp(level * 25.0, old["levels_frames"], np.arange(1, 5) / 4))
    return pseudo_mos([Applied(name, sev)], BEFORE_RULE, {name: cls}, ndigits=None)


# ---------------------------------------------------------------------------- report
def fit_table(anchors_dir: Path) -> tuple[list[dict], LabelRule, dict[str, type]]:
    df = read_anchors(anchors_dir)
    rule, fitted = fit(df)
    rule, fitted = rounded_rule(rule), {name: rounded(cls) for name, cls in fitted.items()}
    rows = []
    for r in df.itertuples():
        r = r._replace(mode=r.mode if isinstance(r.mode, str) else None,
                       artifact=r.artifact if isinstance(r.artifact, str) else None)
        rec = {"distortion": r.distortion, "level": r.level, "human_0_5": r.mean_mos, "human": round(r.target, 3),
               "se": round(r.se, 3), "artifact": r.artifact, "mode": r.mode,
               "parameter": None if r.artifact is None else float(r.parameter)}
        if r.artifact:
            got = pseudo_mos([Applied(r.artifact, 1.0, 1.0, r.mode, r.parameter)], rule, {r.artifact: fitted[r.artifact]})
            rec.update(before=round(before_mos(r.artifact, r.mode, r.parameter)["mos_overall"], 3),
                       after=got["mos_overall"], residual=round(got["mos_overall"] - r.target, 3),
                       **{k: v for k, v in got.items() if k != "mos_overall" and v < rule.clean})
        else:
            rec["note"] = UNMAPPED.get(r.distortion, "not mapped")
        rows.append(rec)
    rows.sort(key=lambda r: (r["artifact"] is None, r["artifact"] or "", r["distortion"], r["level"]))
    for name, mode, level, drop, sd in PRIORS:
        after = pseudo_mos([Applied(name, 1.0, 1.0, mode, level)], rule, {name: fitted[name]})["mos_overall"]
        rows.append({"distortion": "prior", "level": level, "artifact": name, "mode": mode, "parameter": level,
                     "human": rule.clean - drop, "se": sd, "before": round(before_mos(name, mode, level)["mos_overall"], 3),
                     "after": after, "residual": round(after - (rule.clean - drop), 3), "prior": True})
    return rows, rule, fitted


def format_table(rows: list[dict]) -> str:
    head = (f"{'distortion':<13}{'level':>6}  {'talkqa level':<28}{'human':>7}{'+-se':>6}{'before':>8}{'after':>7}"
            f"{'resid':>7}  per-dimension after")
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


def offset_rows(rule: LabelRule, fitted: dict[str, type]) -> list[dict]:
    """Every dimension of a whole clip with the audio off by each of OFFSETS_SHOWN, before and after."""
    cls, out = fitted["av_offset"], []
    for mode in cls.responses:
        for x in OFFSETS_SHOWN:
            out.append({"mode": mode, "seconds": x, "before": before_mos("av_offset", mode, x),
                        "after": pseudo_mos([Applied("av_offset", 1.0, 1.0, mode, x)], rule, {"av_offset": cls})})
    return out


def format_offsets(rows: list[dict]) -> str:
    dims = ("lip_sync", "consistency", "overall")
    head = f"{'av_offset':<12}{'s':>6}  " + "".join(f"{d:>22}" for d in dims)
    lines = [head, f"{'':<20}" + "".join(f"{'before -> after':>22}" for _ in dims)]
    for r in rows:
        cells = "".join(f"{r['before'][f'mos_{d}']:>14.2f} -> {r['after'][f'mos_{d}']:<4.2f}" for d in dims)
        lines.append(f"{r['mode']:<12}{r['seconds']:>6g}  {cells}")
    return "\n".join(lines)


def check_report(rule: LabelRule, fitted: dict[str, type]) -> tuple[str, list[str]]:
    """Each label check with its variants' values, and the failures."""
    arts = {n: ARTIFACTS.get(n) for n in ARTIFACTS.names()} | fitted
    lines, failed = [], []
    for c in LABEL_CHECKS:
        dims = list(dict.fromkeys([*c.max, *c.min_drop, *c.non_increasing]))
        for v in c.variants:
            got = pseudo_mos(v, rule, arts)
            lines.append(f"  {c.name:<21}{describe(v):<32}" + " ".join(f"{d}={got[f'mos_{d}']:.2f}" for d in dims))
        fails = c.failures(rule, arts)
        failed += fails
        want = [f"{d} <= {v:g}" for d, v in c.max.items()] + [f"{d} >= {v:g} below clean" for d, v in c.min_drop.items()]
        want += [f"{', '.join(c.non_increasing)} non-increasing from clean"] if c.non_increasing else []
        lines.append(f"  {'':<21}{'wants ' + '; '.join(want):<60}{'ok' if not fails else 'FAILS'}")
    return "\n".join(lines), failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchors", type=Path, default=DEFAULT_ANCHORS, help="folder with thqa_ntire_distortions.csv")
    ap.add_argument("--json", type=Path, help="also write the table and declarations here")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when the code's declarations differ from the fit or a label check fails")
    args = ap.parse_args(argv)
    try:
        rows, rule, fitted = fit_table(args.anchors)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print("\nPer dimension, whole clip (before: commit 8f1b4e8, the offset in frames and sign ignored):")
    print(format_offsets(offset_rows(rule, fitted)))
    report, failed = check_report(rule, fitted)
    print("\nLabel checks (talkqa/corpus/label_checks.py):")
    print(report)
    print("\nDeclarations (corpus/labels.py, corpus/artifacts/lipsync.py, playback.py):")
    print(f"    OVERALL_WEIGHTS = {dict(rule.overall_weights)}")
    stale = [] if dict(rule.overall_weights) == dict(LabelRule().overall_weights) else ["overall weights"]
    for name, cls in fitted.items():
        print(declaration(cls))
        if not same_declaration(cls, ARTIFACTS.get(name)):
            stale.append(name)
    print("\ncode declarations: " + ("match the fit" if not stale else f"DIFFER for {', '.join(stale)}"))
    print("label checks: " + ("all met" if not failed else "FAIL\n  " + "\n  ".join(failed)))
    if args.json:
        atomic_write_text(args.json, json.dumps({
            "rule": {k: v for k, v in rule.__dict__.items()}, "rows": rows,
            "offsets": offset_rows(rule, fitted), "check_failures": failed,
            "declarations": {n: {"impacts": c.impacts, "responses": {m: r.__dict__ for m, r in c.responses.items()}}
                             for n, c in fitted.items()}}, indent=1, default=str))
    return 1 if args.check and (stale or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
