"""`talkqa check`: does a model move the way people do? Behavioural checks on real clips.

For each source clip (default: the held-out real clips of configs/shared_data.yaml whose sync is
verified) the variants the checks need are made (talkqa.corpus.variants: a still photo, audio half a
second off, a stall, heavy noise, a blurred face, graded degrade artifacts ...), written to a work
folder, scored, and compared with what a viewer would say (configs/check/default.yaml). Every
comparison is one `Outcome` row with its value, threshold and margin (positive: passed by that much):

    report = run_check(sources, Scorer(), load_check_config(), work_dir)
    report.failed  # -> the rows that failed

`scorer` is anything with `.score(path) -> Result` and a `.model` dict, so a test can pass a stub.
`run_checks(sources, [scorer_a, scorer_b], ...)` judges several models on the same variants; Scorers whose
`reading_key` agrees (the same extraction and experts, other heads) share one reading of each variant, so a
second such model costs seconds, not another full run.
The corpus (decoding, artifacts, the renderer) is imported where it is used: `talkqa check --help`
and loading a report need none of it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from talkqa.config import stable_hash
from talkqa.corpus.artifacts import ARTIFACTS, Sample
from talkqa.corpus.degrade import SourceError, decode_source, face_landmarks, fill_landmarks
from talkqa.corpus.media import write_clip
from talkqa.corpus.variants import VARIANT_KINDS, make_variant
from talkqa.errors import UsageError
from talkqa.shared_data import unlabelled_dimensions
from talkqa.tasks import DIMENSION_NAMES

from .check_config import ALL, CheckConfig, CheckSpec, Expect, VariantSpec

PASS, FAIL, NOT_SCORED, SKIPPED, ERROR = "pass", "fail", "not scored", "skipped", "error"
FAILING = (FAIL, ERROR)
CLEAN = VariantSpec(kind="clean")


@dataclass
class Outcome:
    check: str
    source: str
    variant: str
    measure: str  # what was expected, e.g. "lip_sync <= 2.0"
    value: float | None
    margin: float | None  # how far inside the expectation (negative: outside)
    status: str  # pass / fail / not scored / skipped / error
    note: str = ""


@dataclass
class CheckReport:
    outcomes: list[Outcome]
    sources: list[str]
    model: dict[str, Any]
    quick: bool
    elapsed_s: float
    scores: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)  # source -> variant -> scores
    says: dict[str, str] = field(default_factory=dict)  # check -> what a viewer would say

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in FAILING]

    @property
    def passed(self) -> bool:
        return not self.failed

    def summary(self) -> list[dict[str, Any]]:
        """One row per (check, measure) over all sources and variants: counts, the worst margin, the status."""
        groups: dict[tuple[str, str], list[Outcome]] = {}
        for o in self.outcomes:
            groups.setdefault((o.check, o.measure), []).append(o)
        rows = []
        for (check, measure), items in groups.items():
            judged = [o for o in items if o.status in (PASS, FAIL)]
            worst = min((o for o in judged if o.margin is not None), key=lambda o: o.margin, default=None)
            statuses = {o.status for o in items}
            status = (ERROR if ERROR in statuses else FAIL if FAIL in statuses else PASS if PASS in statuses
                      else NOT_SCORED if NOT_SCORED in statuses else SKIPPED)
            rows.append({"check": check, "measure": measure, "passed": sum(o.status == PASS for o in items),
                         "judged": len(judged), "total": len(items), "worst_value": worst.value if worst else None,
                         "worst_margin": worst.margin if worst else None,
                         "worst_at": f"{worst.source} {worst.variant}" if worst else "", "status": status,
                         "notes": sorted({o.note for o in items if o.note and o.status not in (PASS, FAIL)})})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "model": self.model, "quick": self.quick, "elapsed_s": round(self.elapsed_s, 1),
                "sources": self.sources, "says": self.says, "summary": self.summary(),
                "outcomes": [asdict(o) for o in self.outcomes], "scores": self.scores}


# ------------------------------------------------------------------------------------------ planning
@dataclass
class Planned:
    """The checks one source runs and the variants they need (keyed by VariantSpec.key)."""

    clip_id: str
    video: str
    speaker: str
    checks: list[CheckSpec]
    variants: dict[str, VariantSpec]
    donor_videos: list[str]
    poor: tuple[str, ...] = ()  # dimensions the source's own recording fails (manifest `meta__unlabelled`)


def graded_checks(config: CheckConfig, quick: bool) -> list[CheckSpec]:
    """One ladder per registered artifact (clean, then its levels mildest first) over the dimensions
    it damages by at least `min_impact`; expectation: Spearman(severity, score) <= -min_spearman."""

    g = config.graded
    out = []
    for name in g.artifacts or ARTIFACTS.names():
        cls = ARTIFACTS.get(name)
        dims = [d for d, cost in cls.impacts.items() if cost >= g.min_impact]
        if not dims:
            continue
        levels = cls.severities()[-g.quick_levels:] if quick else cls.severities()
        out.append(CheckSpec(name=f"graded:{name}", says=g.says, ladder=True,
                             expect=Expect(falls_with_severity=dims, min_spearman=g.min_spearman),
                             variants=[VariantSpec(kind="artifact", name=name, severity=s) for s in levels]))
    return out


def _with_speakers(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with a speaker for every clip: its own clip id where the manifest names none."""
    speakers = df["speaker"] if "speaker" in df else pd.Series([None] * len(df), index=df.index)
    return df.assign(speaker=[s if isinstance(s, str) and s else str(c) for s, c in zip(speakers, df["clip_id"])])


def order_sources(df: pd.DataFrame) -> pd.DataFrame:
    """Round-robin over source folders, and within a folder over speakers, so the first few sources
    (the ones --quick and the graded ladders use) are as different as possible."""
    df = df.reset_index(drop=True).copy()
    folder = df["video"].map(lambda p: str(Path(p).parent))
    df["_in_speaker"] = df.groupby("speaker").cumcount()
    df = df.sort_values(["_in_speaker"], kind="stable")
    df["_in_folder"] = df.groupby(folder.loc[df.index]).cumcount()
    return df.sort_values(["_in_folder"], kind="stable").drop(columns=["_in_speaker", "_in_folder"]).reset_index(drop=True)


def plan_check(sources: pd.DataFrame, config: CheckConfig, quick: bool = False, only: list[str] | None = None,
               donor_pool: pd.DataFrame | None = None) -> list[Planned]:
    """Which variants each source needs. `only`: check names (or 'graded') to run. Donors (another
    speaker's voice) come from `donor_pool` (default: the sources themselves)."""
    df = order_sources(_with_speakers(sources))
    pool = df if donor_pool is None else _with_speakers(donor_pool)
    if quick:
        df = df.head(1)
    basic = list(config.checks)
    graded = graded_checks(config, quick)
    if only:
        known = {c.name for c in basic} | {"graded"}
        unknown = sorted(set(only) - known)
        if unknown:
            raise UsageError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        basic = [c for c in basic if c.name in only]
        graded = graded if "graded" in only else []
    n_graded = 1 if quick else config.graded.max_sources
    plans = []
    for i, r in enumerate(df.itertuples(index=False)):
        checks = basic + (graded if i < n_graded else [])
        variants = {CLEAN.key: CLEAN}
        for c in checks:
            variants.update({v.key: v for v in c.variants})
        others = [str(v) for v, s in zip(pool["video"], pool["speaker"]) if s != r.speaker and str(v) != str(r.video)]
        donors = [others[k] for k in _rng(config.seed, r.clip_id, "donors").permutation(len(others))[:3]]
        try:
            poor = unlabelled_dimensions(getattr(r, "meta__unlabelled", None))
        except ValueError as exc:
            raise UsageError(f"source {r.clip_id}: {exc}") from None
        plans.append(Planned(r.clip_id, str(r.video), r.speaker, checks, variants, donors, poor))
    return plans


# ------------------------------------------------------------------------------------------ running
def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(int(stable_hash(k, 15), 16) for k in keys)])


def _load_sample(plan: Planned, config: CheckConfig):
    """The source as a corpus Sample: frames, audio, landmarks and donors when a variant needs them."""

    frames, audio = decode_source(plan.video, config.source.max_seconds, config.source.max_side)
    needs = [VARIANT_KINDS[v.kind].needs(v.params) for v in plan.variants.values()]
    landmarks = fill_landmarks(face_landmarks(frames)) if any(n[0] for n in needs) else None
    donors = []
    if any(n[1] for n in needs):
        for path in plan.donor_videos:
            try:
                donors.append(decode_source(path, config.source.max_seconds + 1, video=False)[1])
            except SourceError:
                continue
    return Sample(frames, audio, landmarks, donors)


def run_check(sources: pd.DataFrame, scorer, config: CheckConfig, work_dir: str | Path, quick: bool = False,
              only: list[str] | None = None, donor_pool: pd.DataFrame | None = None,
              progress: Callable[[int, int, str], None] | None = None) -> CheckReport:
    """Make, score and judge every variant of every source; variant clips go under `work_dir`.
    `progress(done, total, label)` is called after each variant."""
    return run_checks(sources, [scorer], config, work_dir, quick, only, donor_pool, progress)[0]


def _reading_keys(scorers: list) -> list[str | None]:
    """Each scorer's `reading_key` (None: a stub, or a scorer that cannot share its reading)."""
    return [s.reading_key() if hasattr(s, "analyse") else None for s in scorers]


def _score_variant(scorers: list, keys: list[str | None], path: Path) -> list:
    """Each scorer's Result for one variant; scorers with equal reading keys score one shared reading."""
    readings: dict[str, Any] = {}
    results = []
    for scorer, key in zip(scorers, keys):
        if key is None:  # a stub, or a scorer that cannot share
            results.append(scorer.score(path))
            continue
        if key not in readings:
            try:
                readings[key] = scorer.analyse(path)
            except Exception as exc:  # score() turns it into the error Result it would have given
                readings[key] = exc
        results.append(scorer.score(path, analysis=readings[key]))
    return results


def run_checks(sources: pd.DataFrame, scorers: list, config: CheckConfig, work_dir: str | Path, quick: bool = False,
               only: list[str] | None = None, donor_pool: pd.DataFrame | None = None,
               progress: Callable[[int, int, str], None] | None = None) -> list[CheckReport]:
    """`run_check` for several models at once: the same variants, one report per scorer (in order)."""

    t0 = time.perf_counter()
    plans = plan_check(sources, config, quick, only, donor_pool)
    total, done = sum(len(p.variants) for p in plans), 0
    n, keys = len(scorers), _reading_keys(scorers)
    outcomes: list[list[Outcome]] = [[] for _ in range(n)]
    all_scores: list[dict[str, dict[str, dict]]] = [{} for _ in range(n)]
    says = {c.name.split(":")[0] if c.name.startswith("graded:") else c.name: c.says for p in plans for c in p.checks}
    for plan in plans:
        results: list[dict[str, Any]] = [{} for _ in range(n)]
        problems: dict[str, str] = {}  # variant key -> why it could not be made
        try:
            sample = _load_sample(plan, config)
        except SourceError as exc:
            sample, reason = None, f"source unusable: {exc}"
        folder = Path(work_dir) / plan.clip_id.replace("/", "__")
        for key, spec in plan.variants.items():
            if sample is None:
                problems[key] = reason
            else:
                try:
                    edit = make_variant(spec.kind, sample, _rng(config.seed, plan.clip_id, spec.draw_key), **spec.params)
                    # reproducible: the same check on the same model gives the same numbers on every run. An encoder
                    # without the macroblock tree keeps refining a repeated frame for about a second, which the
                    # frozen-picture readings once saw less of (README, "Frozen frames an encoder refines"): source.mbtree
                    # encodes as they are encoded, to tell the encoder's part in a row from the model's
                    path = write_clip(folder / f"{key}.mp4", edit.sample.frames, edit.sample.fps, _peak_safe(edit.sample.audio),
                                      edit.sample.sr, crf=edit.crf, reproducible=not config.source.mbtree)
                    for i, result in enumerate(_score_variant(scorers, keys, path)):
                        results[i][key] = (result, edit)
                except ValueError as exc:  # the source lacks what this variant needs (a face, a donor)
                    problems[key] = str(exc)
            done += 1
            if progress:
                progress(done, total, f"{plan.clip_id.rsplit('/', 1)[-1]} {key}")
        for i in range(n):
            all_scores[i][plan.clip_id] = {k: dict(r.scores) for k, (r, _) in results[i].items() if not r.error}
            for check in plan.checks:
                outcomes[i] += judge(check, plan.clip_id, results[i], problems, plan.poor)
    elapsed = time.perf_counter() - t0
    return [CheckReport(outcomes[i], [p.clip_id for p in plans], dict(getattr(s, "model", {}) or {}), quick, elapsed,
                        all_scores[i], says) for i, s in enumerate(scorers)]


def _peak_safe(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return audio * (0.99 / peak) if peak > 0.99 else audio  # noise on loud speech must not clip in the file


# ------------------------------------------------------------------------------------------ judging
def _dims(mapping) -> list[tuple[str, Any]]:
    items = mapping.items() if isinstance(mapping, dict) else [(d, None) for d in mapping]
    out = []
    for d, v in items:
        out += [(x, v) for x in DIMENSION_NAMES] if d == ALL else [(d, v)]
    return out


def judge(check: CheckSpec, source: str, results: dict[str, tuple], problems: dict[str, str],
          poor: tuple[str, ...] = ()) -> list[Outcome]:
    """The outcome rows of one check on one source, from the scored variants (key -> (Result, Edit)).
    `poor`: dimensions the source's own recording fails (noisy sound, a blocky picture: configs/
    shared_data.yaml `recording`): a floor on those scores ("is good") is not judged there, as no viewer
    would call that clip good on them, nor is a diagnostic segment on them counted against "no diagnostics";
    ceilings, drops and changes still are."""
    e = check.expect
    rows: list[Outcome] = []

    def row(variant: str, measure: str, value, margin, status=None, note=""):
        if status is None:  # a value exactly on the threshold passes (rounding must not turn it into a fail)
            status = PASS if margin >= -1e-9 else FAIL
        value = None if value is None or not np.isfinite(value) else round(float(value), 4) + 0.0
        rows.append(Outcome(check.name, source, variant, measure, value,
                            None if margin is None else round(float(margin), 4) + 0.0, status, note))

    def unusable(key: str) -> tuple[str, str] | None:
        if key in problems:
            return SKIPPED, problems[key]
        result = results[key][0]
        if result.error:  # the message starts with the variant's temporary path: keep the reason
            return ERROR, result.error.removeprefix(f"{result.clip}: ")
        return None

    clean_key = CLEAN.key
    if check.ladder:
        keys = [clean_key] + [v.key for v in check.variants]
        severities = [0.0] + [float(v.params.get("severity", i + 1)) for i, v in enumerate(check.variants)]
        label = " → ".join(v.key for v in check.variants)
        bad = next((u for u in map(unusable, keys) if u), None)
        for dim, falls in [(d, False) for d in e.non_increasing] + [(d, True) for d in e.falls_with_severity]:
            measure = (f"{dim} falls with severity (Spearman <= -{e.min_spearman:g})" if falls
                       else f"{dim} never rises along clean → {label}")
            values = None if bad else [results[k][0].scores.get(dim) for k in keys]
            if bad:
                row(label, measure, None, None, *bad)
            elif any(v is None for v in values):
                row(label, measure, None, None, NOT_SCORED, f"the model does not score {dim}")
            elif falls:
                rho = _spearman(severities, values)
                trail = " → ".join(f"{v:.2f}" for v in values)
                row(label, measure, rho, (-rho - e.min_spearman) if np.isfinite(rho) else -1.0,
                    note=trail if np.isfinite(rho) else f"{trail} (the score does not move)")
            else:
                rise = float(np.max(np.diff(values)))
                row(label, measure, rise, 0.0 - rise, note=" → ".join(f"{v:.2f}" for v in values))
        return rows

    needs_clean = bool(e.min_drop or e.max_change)
    for spec in check.variants:
        key = spec.key
        bad = unusable(key) or (unusable(clean_key) if needs_clean else None)
        scores = results[key][0].scores if not bad else {}
        clean = results[clean_key][0].scores if needs_clean and not bad else {}
        for dim, limit in _dims(e.min):
            if dim in poor and not bad:
                failed = ", ".join(d for d in poor if d != "overall")
                why = (f"the source's own recording is poor on {dim}" if dim != "overall" else
                       f"overall combines what the source's own recording fails ({failed})")
                row(key, f"{dim} >= {limit:g}", scores.get(dim), None, SKIPPED,
                    f"{why} (configs/shared_data.yaml recording)")
                continue
            _score_row(row, key, f"{dim} >= {limit:g}", bad, scores.get(dim), lambda v: v - limit, dim)
        for dim, limit in _dims(e.max):
            _score_row(row, key, f"{dim} <= {limit:g}", bad, scores.get(dim), lambda v: limit - v, dim)
        for dim, limit in _dims(e.min_drop):
            c = clean.get(dim)
            drop = None if c is None or scores.get(dim) is None else c - scores[dim]
            _score_row(row, key, f"{dim} at least {limit:g} below clean", bad, drop, lambda v: v - limit, dim)
        for dim, limit in _dims(e.max_change):
            c = clean.get(dim)
            change = None if c is None or scores.get(dim) is None else abs(scores[dim] - c)
            _score_row(row, key, f"{dim} within ±{limit:g} of clean", bad, change, lambda v: limit - v, dim)
        if e.max_diagnostics is not None:
            if bad:
                row(key, f"at most {e.max_diagnostics} diagnostic segments", None, None, *bad)
            else:
                # a segment on a dimension the source's own recording fails says what a viewer says of it (its sound
                # is noisy): it is listed, not counted, as the floors on that dimension are skipped
                every = results[key][0].diagnostics
                diags = [d for d in every if d["dimension"] not in poor]
                what = "; ".join(f"{d['start']:.1f}-{d['end']:.1f} s {d['dimension']}" for d in diags[:3])
                owned = sorted({d["dimension"] for d in every if d["dimension"] in poor})
                if owned:
                    what = "; ".join(filter(None, [what, f"not counted: {', '.join(owned)} (the source's own recording "
                                                         "is poor there, configs/shared_data.yaml recording)"]))
                row(key, f"at most {e.max_diagnostics} diagnostic segments", len(diags), e.max_diagnostics - len(diags),
                    note=what)
        if e.min_diagnostic_cover is not None:
            measure = f"diagnostics cover >= {e.min_diagnostic_cover:.0%} of the edit"
            if bad:
                row(key, measure, None, None, *bad)
            else:
                result, edit = results[key]
                share = diagnostic_cover(result.diagnostics, edit.span, edit.sample.n_frames, edit.sample.fps)
                row(key, measure, share, share - e.min_diagnostic_cover)
    return rows


def _score_row(row, key, measure, bad, value, margin_of, dim) -> None:
    if bad:
        row(key, measure, None, None, *bad)
    elif value is None:
        row(key, measure, None, None, NOT_SCORED, f"the model does not score {dim}")
    else:
        row(key, measure, value, margin_of(value))


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr  # lazy: slow import, only on this path

    if np.ptp(np.asarray(y, float)) == 0:
        return float("nan")  # a score that does not move is no evidence of falling
    return float(spearmanr(x, y).statistic)


def diagnostic_cover(diagnostics: list[dict], span: tuple[int, int] | None, n_frames: int, fps: float) -> float:
    """Share of the edited span (frames; None = the whole clip) covered by the union of diagnostic segments."""
    a, b = (0, n_frames) if span is None else span
    t0, t1 = a / fps, b / fps
    pieces = sorted((max(t0, d["start"]), min(t1, d["end"])) for d in diagnostics if d["end"] > t0 and d["start"] < t1)
    covered, reach = 0.0, t0
    for s, e in pieces:
        if e > reach:
            covered += e - max(s, reach)
            reach = e
    return covered / (t1 - t0) if t1 > t0 else 0.0
