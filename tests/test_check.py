"""`talkqa check`: the variant makers do exactly the edit they say, the checks pass for scores a viewer
would give and fail for a model that does not move, and the command's exit codes say which."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clip_factory import face_frames
from conftest import speech_like
from talkqa.corpus.artifacts import Sample
from talkqa.corpus.media import write_clip
from talkqa.corpus.variants import VARIANT_KINDS, make_variant
from talkqa.errors import UsageError
from talkqa.scoring.check import (CLEAN, FAIL, NOT_SCORED, PASS, SKIPPED, _rng, diagnostic_cover, judge, plan_check,
                                  run_check)
from talkqa.scoring.check_config import CheckConfig, VariantSpec, load_check_config
from talkqa.scoring.cli import app
from talkqa.scoring.result import Result
from talkqa.tasks import DIMENSION_NAMES

SR, FPS, HOP = 16000, 25.0, 640
# checks that need neither face landmarks nor the renderer: fast on made-up clips
FAST = ["clean", "still_photo", "audio_off_0.5s", "audio_off_0.2s", "audio_later_ladder", "other_voice", "stall",
        "heavy_noise", "mirror"]


def _sample(n: int = 75, seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    audio = rng.standard_normal(n * HOP).astype(np.float32) * 0.1
    return Sample(frames, audio, None, [rng.standard_normal(n * HOP).astype(np.float32) * 0.1])


# ------------------------------------------------------------------------------------- variant makers
@pytest.mark.parametrize("seconds", [0.2, -0.2, 0.5, -0.5])
def test_audio_shift_moves_the_sound_by_exactly_that_many_frames(seconds):
    s = _sample()
    edit = make_variant("audio_shift", s, np.random.default_rng(0), seconds=seconds)
    k = int(round(seconds * FPS))  # 5 or 12.5 -> the exact sample count matters, not a rounded frame
    n = int(round(seconds * SR))
    assert abs(n - k * HOP) <= HOP // 2
    out = edit.sample.audio
    assert len(out) == len(s.audio) and np.array_equal(edit.sample.frames, s.frames)
    if n > 0:
        assert np.array_equal(out[n:], s.audio[:-n]) and not out[:n].any()
    else:
        assert np.array_equal(out[:n], s.audio[-n:]) and not out[n:].any()
    assert not np.shares_memory(out, s.audio)


def test_a_stall_freezes_exactly_the_frames_it_says_and_the_audio_goes_on():
    s = _sample(75)
    edit = make_variant("stall", s, np.random.default_rng(0), seconds=1.0)
    a, b = edit.span
    assert b - a == 25 and a == (75 - 25) // 2
    f = edit.sample.frames
    assert all(np.array_equal(f[t], s.frames[a]) for t in range(a, b))
    assert np.array_equal(f[:a], s.frames[:a]) and np.array_equal(f[b:], s.frames[b:])
    assert np.array_equal(edit.sample.audio, s.audio)


def test_still_photo_mirror_noise_and_compression_do_what_they_say():
    s = _sample(30)
    rng = np.random.default_rng(0)
    still = make_variant("still_photo", s, rng).sample
    assert (still.frames == s.frames[0]).all() and np.array_equal(still.audio, s.audio)
    assert np.array_equal(make_variant("mirror", s, rng).sample.frames, s.frames[:, :, ::-1])
    noisy = make_variant("white_noise", s, rng, snr_db=0.0).sample.audio
    snr = 10 * np.log10(np.mean(s.audio.astype(float) ** 2) / np.mean((noisy - s.audio).astype(float) ** 2))
    assert abs(snr) < 0.01
    assert make_variant("compression", s, rng, crf=51).crf == 51 and make_variant("clean", s, rng).crf == 20


def test_other_voice_uses_the_donor_and_makers_say_what_they_lack():
    s = _sample(30)
    swapped = make_variant("other_voice", s, np.random.default_rng(0)).sample.audio
    mid = slice(len(swapped) // 4, 3 * len(swapped) // 4)
    assert abs(np.corrcoef(swapped[mid], s.audio[mid])[0, 1]) < 0.1  # the original voice is gone
    with pytest.raises(ValueError, match="donor"):
        make_variant("other_voice", Sample(s.frames, s.audio), np.random.default_rng(0))
    with pytest.raises(ValueError, match="landmarks"):
        make_variant("face_blur", s, np.random.default_rng(0))
    with pytest.raises(ValueError, match="landmarks"):
        make_variant("artifact", s, np.random.default_rng(0), name="mouth_blur", severity=1.0)
    with pytest.raises(ValueError, match="unknown variant kind"):
        make_variant("sepia", s, np.random.default_rng(0))


def test_a_shifted_clip_keeps_its_shift_through_the_file(tmp_path):
    from talkqa.corpus.degrade import decode_source

    n = 75
    s = Sample(face_frames(np.full((64, 64, 3), 128, np.uint8), n, (64, 64)), speech_like(n / FPS, SR, seed=3))
    decoded = []
    for name, seconds in (("clean", 0.0), ("late", 0.2)):
        edit = make_variant("audio_shift", s, np.random.default_rng(0), seconds=seconds)
        decoded.append(decode_source(write_clip(tmp_path / f"{name}.mp4", edit.sample.frames, FPS, edit.sample.audio, SR))[1])
    ref, late = decoded
    lags = np.arange(0, 6000)
    corr = [np.dot(ref[: len(ref) - 6000], late[k: k + len(ref) - 6000]) for k in lags[::10]]
    assert abs(lags[::10][int(np.argmax(corr))] - 3200) <= 10  # 0.2 s = 5 frames = 3200 samples


def test_check_variants_are_written_byte_identical_on_every_run(tmp_path):
    # x264's macroblock-tree rate control makes the same frames a different file from run to run; the
    # check's variants are written without it, so a check gives the same numbers every time
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    frames = np.stack([np.roll(texture, (t, 2 * t), axis=(0, 1)) for t in range(40)])
    paths = [write_clip(tmp_path / f"v{k}.mp4", frames, FPS, speech_like(40 / FPS, SR, seed=1), SR, crf=30,
                        reproducible=True) for k in range(3)]
    assert len({p.read_bytes() for p in paths}) == 1


def test_hold_frames_still_makes_the_frame_stutter_artifact():
    from talkqa.corpus.artifacts import ARTIFACTS

    s = _sample(12)
    stutter = ARTIFACTS.create("frame_stutter")
    shown = lambda out: [int(np.flatnonzero((s.frames == f).all(axis=(1, 2, 3)))[0]) for f in out.frames]
    assert stutter.parameter(0.75) == 5
    assert shown(stutter.apply(s, 0.75, (2, 12), np.random.default_rng(0))) == [0, 1, 2, 2, 2, 2, 2, 7, 7, 7, 7, 7]
    # the worst level is the still photo: the segment's first frame to its end
    assert shown(stutter.apply(s, 1.0, (2, 12), np.random.default_rng(0))) == [0, 1] + [2] * 10


# ------------------------------------------------------------------------------------- configuration
def test_the_shipped_checks_load_and_name_real_variants():
    cfg = load_check_config()
    names = [c.name for c in cfg.checks]
    for required in ("clean", "still_photo", "talking_photo", "audio_off_0.5s", "audio_off_0.2s", "audio_later_ladder",
                     "audio_earlier_ladder", "other_voice", "stall", "heavy_noise", "face_blur", "heavy_compression"):
        assert required in names
    assert all(v.kind in VARIANT_KINDS for c in cfg.checks for v in c.variants)
    assert cfg.graded.min_spearman == 0.9


def test_variant_specs_fill_defaults_so_equal_variants_share_a_key():
    assert VariantSpec(kind="stall").key == VariantSpec(kind="stall", seconds=1.5).key == "stall(seconds=1.5)"
    assert VariantSpec(kind="audio_shift", seconds=-0.2).key == "audio_shift(seconds=-0.2)"
    with pytest.raises(ValueError, match="unknown parameter"):
        VariantSpec(kind="stall", minutes=2)
    with pytest.raises(ValueError, match="required"):
        VariantSpec(kind="artifact", name="noise_white")
    with pytest.raises(UsageError, match="ladder"):
        load_check_config(overrides=["checks=[{name: x, says: y, variants: [{kind: mirror}], expect: {non_increasing: [lip_sync]}}]"])
    with pytest.raises(UsageError, match="unknown dimension"):
        load_check_config(overrides=["checks=[{name: x, says: y, variants: [{kind: mirror}], expect: {max: {lipsync: 2}}}]"])


def test_the_levels_of_a_graded_artifact_draw_alike_and_differ_in_severity_alone():
    """A ladder compares one artifact getting worse: its levels share their random draws (seeded without the
    severity), so the codec ladder is one codec at falling bit rates, not AAC, then Opus, then AAC."""
    sample = _sample()
    specs = [VariantSpec(kind="artifact", name="codec", severity=s) for s in (1 / 3, 2 / 3, 1.0)]
    assert len({v.key for v in specs}) == 3 and {v.draw_key for v in specs} == {"artifact(name=codec)"}
    assert VariantSpec(kind="stall").draw_key == VariantSpec(kind="stall").key  # other variants draw as before
    for source in ("real/a/b", "real/c/d", "real/e/f", "real/g/h"):
        issues = [make_variant(v.kind, sample, _rng(0, source, v.draw_key), **v.params).sample.log[-1]["issue"]
                  for v in specs]
        codecs = {i.split(" at ")[0] for i in issues}
        assert len(codecs) == 1 and codecs <= {"libopus", "aac"}, issues
        rates = [float(i.split(" at ")[1].split()[0]) for i in issues]
        assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1], issues


def test_diagnostic_cover_is_the_covered_share_of_the_span():
    diags = [{"start": 0.0, "end": 1.0}, {"start": 1.5, "end": 3.0}, {"start": 2.0, "end": 2.5}]
    assert math.isclose(diagnostic_cover(diags, (25, 75), 100, 25.0), 0.75)  # 1-3 s: only 1.0-1.5 s uncovered
    assert diagnostic_cover([], (25, 75), 100, 25.0) == 0.0
    assert diagnostic_cover(diags, None, 75, 25.0) == pytest.approx(2.5 / 3.0)


# ------------------------------------------------------------------------------------- checks can pass and fail
class ConstantScorer:
    """A model that does not move: 3.0 on every axis, whatever the clip."""

    model = {"name": "constant", "version": "0"}

    def score(self, path, audio=None, keep_details=False):
        return Result(str(path), {d: 3.0 for d in DIMENSION_NAMES}, {}, [], [], None, self.model)


class ViewerScorer:
    """Scores a person would give to each variant (read from the file name), without visual_quality."""

    model = {"name": "viewer", "version": "0"}
    GOOD = {d: 4.5 for d in DIMENSION_NAMES if d != "visual_quality"}
    BAD = {"still_photo": {"expression": 1.2, "lip_sync": 1.4, "overall": 1.5},
           "audio_shift(seconds=0.5)": {"lip_sync": 1.3, "overall": 2.0}, "audio_shift(seconds=-0.5)": {"lip_sync": 1.5, "overall": 2.0},
           "audio_shift(seconds=0.2)": {"lip_sync": 3.0}, "audio_shift(seconds=-0.2)": {"lip_sync": 3.2},
           "other_voice": {"lip_sync": 1.5, "consistency": 1.5, "overall": 2.0},
           "stall(seconds=1.5)": {"expression": 3.0, "overall": 3.0}, "white_noise(snr_db=0)": {"audio_quality": 1.5, "overall": 2.5}}

    def score(self, path, audio=None, keep_details=False):
        key = Path(path).stem
        scores = {**{d: None for d in DIMENSION_NAMES}, **self.GOOD, **self.BAD.get(key, {})}
        diags = [{"start": 0.0, "end": 10.0, "dimension": "expression", "issue": "face frozen", "severity": 1.0}] \
            if key.startswith("stall") else []
        return Result(str(path), scores, {}, diags, [], None, self.model)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("check_sources")
    rows = []
    for i in range(2):
        frames = face_frames(astronaut, 60, (96, 96), seed=i)
        video = write_clip(folder / f"talker{i}.mp4", frames, FPS, speech_like(60 / FPS, SR, seed=i), SR)
        rows.append({"clip_id": f"talker{i}", "video": str(video), "speaker": f"spk{i}"})
    df = pd.DataFrame(rows)
    df.to_csv(folder / "manifest.csv", index=False)
    return df, folder / "manifest.csv"


def _config() -> CheckConfig:
    return load_check_config()


def test_a_poor_recording_is_not_required_to_score_well_on_what_it_fails():
    checks = {c.name: c for c in _config().checks}
    scores = {**{d: 4.2 for d in DIMENSION_NAMES}, "audio_quality": 2.0, "overall": 2.8}
    results = {CLEAN.key: (Result("src/clean.mp4", scores, {}, [], [], None, {}), None)}
    strict = {o.measure: o.status for o in judge(checks["clean"], "src", results, {})}
    assert strict["audio_quality >= 3.5"] == strict["overall >= 3.5"] == FAIL
    screened = {o.measure: o for o in judge(checks["clean"], "src", results, {}, ("audio_quality", "overall"))}
    skipped = screened["audio_quality >= 3.5"]
    assert skipped.status == SKIPPED and skipped.value == 2.0 and skipped.margin is None
    assert "recording is poor on audio_quality" in skipped.note
    assert screened["overall >= 3.5"].status == SKIPPED and screened["lip_sync >= 3.5"].status == PASS
    assert "overall combines what the source's own recording fails (audio_quality)" in screened["overall >= 3.5"].note
    # a segment on what the recording fails is what a viewer says of it: listed, not counted; any other still counts
    noisy_voice = {"start": 0.0, "end": 4.6, "dimension": "audio_quality"}
    off_sync = {"start": 1.0, "end": 2.0, "dimension": "lip_sync"}
    results[CLEAN.key] = (Result("src/clean.mp4", scores, {}, [noisy_voice], [], None, {}), None)
    count = "at most 0 diagnostic segments"
    assert {o.measure: o.status for o in judge(checks["clean"], "src", results, {})}[count] == FAIL
    exempt = {o.measure: o for o in judge(checks["clean"], "src", results, {}, ("audio_quality", "overall"))}[count]
    assert exempt.status == PASS and exempt.value == 0 and "not counted: audio_quality" in exempt.note
    results[CLEAN.key] = (Result("src/clean.mp4", scores, {}, [noisy_voice, off_sync], [], None, {}), None)
    still = {o.measure: o for o in judge(checks["clean"], "src", results, {}, ("audio_quality", "overall"))}[count]
    assert still.status == FAIL and still.value == 1 and "lip_sync" in still.note
    results[CLEAN.key] = (Result("src/clean.mp4", scores, {}, [], [], None, {}), None)
    # a ceiling is still judged on a noisy recording: heavy noise on top of it must still score low
    noisy = checks["heavy_noise"].variants[0].key
    results[noisy] = (Result("src/noise.mp4", {**scores, "audio_quality": 3.0}, {}, [], [], None, {}), None)
    assert {o.status for o in judge(checks["heavy_noise"], "src", results, {}, ("audio_quality", "overall"))} == {FAIL}


def test_the_sources_recording_faults_reach_the_plan(sources):
    df = sources[0].assign(meta__unlabelled=["audio_quality;overall", float("nan")])
    plans = {p.clip_id: p.poor for p in plan_check(df, _config(), only=["clean"])}
    assert plans == {"talker0": ("audio_quality", "overall"), "talker1": ()}
    assert {p.poor for p in plan_check(sources[0], _config(), only=["clean"])} == {()}
    with pytest.raises(UsageError, match="source talker1: meta__unlabelled names loudness"):
        plan_check(df.assign(meta__unlabelled=["", "loudness"]), _config(), only=["clean"])


def test_the_check_encodes_as_the_corpora_do_when_asked(sources, tmp_path, monkeypatch):
    """source.mbtree writes the variants with x264's macroblock tree, as `talkqa degrade` writes the training corpora
    (an encoder without it keeps refining a repeated frame, which the frozen-picture readings see less of): a way to
    tell the encoder's part in a row from the model's. Off by default, for byte-identical reruns."""
    import talkqa.scoring.check as check_module

    seen = []

    def recording_write_clip(*args, **kwargs):
        seen.append(kwargs["reproducible"])
        return write_clip(*args, **kwargs)

    monkeypatch.setattr(check_module, "write_clip", recording_write_clip)
    one = sources[0].iloc[:1]
    run_check(one, ConstantScorer(), _config(), tmp_path / "a", only=["stall"])
    assert seen and all(seen)
    seen.clear()
    run_check(one, ConstantScorer(), load_check_config(overrides=["source.mbtree=true"]), tmp_path / "b", only=["stall"])
    assert seen and not any(seen)


@pytest.mark.slow
def test_a_model_that_does_not_move_fails_the_checks(sources, tmp_path):
    report = run_check(sources[0], ConstantScorer(), _config(), tmp_path, only=FAST)
    failed = {o.check for o in report.failed}
    assert {"clean", "still_photo", "audio_off_0.5s", "audio_off_0.2s", "other_voice", "stall", "heavy_noise"} <= failed
    assert not report.passed and report.sources == ["talker0", "talker1"]
    clean = [o for o in report.outcomes if o.check == "clean" and o.measure == "lip_sync >= 3.5"]
    assert [(o.value, o.margin, o.status) for o in clean] == [(3.0, -0.5, FAIL)] * 2
    # a score that does not move never rises: the ladders and the mirror pass
    assert {o.status for o in report.outcomes if o.check in ("audio_later_ladder", "mirror")} == {PASS}


@pytest.mark.slow
def test_scores_a_viewer_would_give_pass_and_missing_dimensions_are_not_scored(sources, tmp_path):
    report = run_check(sources[0], ViewerScorer(), _config(), tmp_path, only=FAST)
    assert report.passed, [o for o in report.failed]
    vq = [o for o in report.outcomes if "visual_quality" in o.measure]
    assert vq and {o.status for o in vq} == {NOT_SCORED}
    shift = [o for o in report.outcomes if o.check == "audio_off_0.2s"]
    assert sorted(o.value for o in shift) == [1.3, 1.3, 1.5, 1.5]  # drops from clean, two sources x two signs
    summary = {(r["check"], r["measure"]): r for r in report.summary()}
    assert summary[("stall", "diagnostics cover >= 50% of the edit")]["passed"] == 2
    assert json.loads(json.dumps(report.to_dict()))["passed"] is True


class SharingScorer(ViewerScorer):
    """A viewer-like model that, like talkqa's Scorer, reads a clip (`analyse`) before its heads score it;
    models with the same `reading_key` can share that reading."""

    def __init__(self, key: str, reads: list, name: str):
        self.key, self.reads, self.model = key, reads, {"name": name, "version": "0"}

    def reading_key(self):
        return self.key

    def analyse(self, path, audio=None):
        self.reads.append((self.key, Path(path).stem))
        if Path(path).stem == "still_photo":
            raise RuntimeError("no face")  # what a clip that cannot be read does
        return ("reading of", Path(path).name)

    def score(self, path, audio=None, keep_details=False, analysis=None):
        if isinstance(analysis, Exception):
            return Result(str(path), {d: None for d in DIMENSION_NAMES}, {}, [], [], str(analysis), self.model)
        assert analysis == ("reading of", Path(path).name)  # its own clip's reading, never another's
        return super().score(path)


@pytest.mark.slow
def test_several_models_are_judged_on_one_reading_of_each_variant(sources, tmp_path):
    from talkqa.scoring.check import run_checks

    reads: list = []
    scorers = [SharingScorer("a", reads, "first"), ConstantScorer(), SharingScorer("a", reads, "second"),
               SharingScorer("b", reads, "third")]
    reports = run_checks(sources[0], scorers, _config(), tmp_path, only=["clean", "still_photo"])
    assert [r.model["name"] for r in reports] == ["first", "constant", "second", "third"]
    variants = {(c, k) for c in ("talker0", "talker1") for k in ("clean", "still_photo")}
    # one reading per variant for the two models that read alike, one more for the third; the stub reads nothing
    assert len(reads) == 2 * len(variants) and {r[0] for r in reads} == {"a", "b"}
    first, constant, second, third = (r.to_dict() for r in reports)
    assert first["outcomes"] == second["outcomes"] == third["outcomes"] and first["scores"] == second["scores"]
    still = [o for o in first["outcomes"] if o["check"] == "still_photo"]
    assert still and {o["status"] for o in still} == {"error"}  # the failed reading reaches every model that shared it
    assert first["passed"] is False and constant["outcomes"] != first["outcomes"]
    alone = run_checks(sources[0], [ConstantScorer()], _config(), tmp_path / "alone", only=["clean", "still_photo"])[0]
    assert alone.to_dict()["outcomes"] == constant["outcomes"]


def test_quick_runs_one_source_with_the_strongest_level_of_each_graded_artifact(sources):
    from talkqa.corpus.artifacts import ARTIFACTS
    from talkqa.scoring.check import plan_check

    cfg = _config()
    quick = plan_check(sources[0], cfg, quick=True)
    full = plan_check(sources[0], cfg)
    assert len(quick) == 1 and len(full) == 2
    graded = [v for v in quick[0].variants.values() if v.kind == "artifact"]
    ladders = [c for c in quick[0].checks if c.name.startswith("graded:")]
    assert graded and all(v.params["severity"] == 1.0 for v in graded)
    assert {c.name.split(":")[1] for c in ladders} <= set(ARTIFACTS.names())
    assert len([v for v in full[0].variants.values() if v.kind == "artifact"]) == sum(
        len(ARTIFACTS.get(c.name.split(":")[1]).levels) for c in ladders)


# ------------------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_check_command_exits_1_when_a_check_fails_and_0_when_all_pass(sources, monkeypatch, tmp_path,
                                                                      load_benchmark):
    import talkqa.scoring.scorer as scorer_module

    manifest = sources[1]
    reports = []
    for stub, code in ((ConstantScorer, 1), (ViewerScorer, 0)):
        monkeypatch.setattr(scorer_module, "Scorer", lambda model=None, device="cpu", _s=stub: _s())
        res = CliRunner().invoke(app, ["check", "--manifest", str(manifest), "--only", "clean,still_photo,mirror",
                                       "--json", "--keep", str(tmp_path / stub.__name__)])
        assert res.exit_code == code, res.output
        report = json.loads(res.stdout)
        assert report["passed"] is (code == 0) and report["model"]["name"] == stub.model["name"]
        assert {r["check"] for r in report["summary"]} == {"clean", "still_photo", "mirror"}
        assert (tmp_path / stub.__name__ / "talker0" / "still_photo.mp4").is_file()  # --keep keeps the variants
        reports.append(report)
    # benchmarks/check_tables.py compares two reports the way the shipping criteria do
    tables = load_benchmark("check_tables")
    before, after = reports
    lines = tables.comparison_table(before, after)
    rows = tables.plain_rows(after)
    passed = sum(r["status"] == "pass" for r in rows)
    outcomes = sum(r["judged"] for r in rows)
    assert sum(r["passed"] for r in rows) == outcomes  # the viewer-like model passes every judged outcome
    assert lines[2 + len(rows) + 1] == (f"plain rows passed: {tables.counts(before)['rows_passed']} → {passed} "
                                        f"of {len(rows)}")
    assert f"single outcomes passed: {tables.counts(before)['outcomes_passed']} → {outcomes} of {outcomes}" in lines
    assert tables.counts(before)["outcomes_passed"] < outcomes  # the constant model fails some of them
    assert any(line.startswith("| still_photo |") and line.endswith("pass |") for line in lines)
    with pytest.raises(SystemExit, match="different source clips"):
        tables.comparison_table({**before, "sources": ["other"]}, after)
    res = CliRunner().invoke(app, ["check", "--manifest", str(manifest), "--only", "clean", "--plot",
                                   str(tmp_path / "check.txt")])
    assert res.exit_code == 2 and "--plot" in res.output and "ending in .png" in res.output  # refused before the run
    res = CliRunner().invoke(app, ["check", "--manifest", str(manifest), "--only", "clean,still_photo",
                                   "--plot", str(tmp_path / "check.png")])
    assert res.exit_code == 0 and "check" in res.stdout and "still_photo" in res.stdout  # the table
    assert (tmp_path / "check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # and the picture
    # several models on the same variants: one report each, in order; exit 1 when any fails
    stubs = {"const": ConstantScorer, "viewer": ViewerScorer}
    monkeypatch.setattr(scorer_module, "Scorer", lambda model=None, device="cpu": stubs[str(model)]())
    res = CliRunner().invoke(app, ["check", "--manifest", str(manifest), "--only", "clean,still_photo,mirror", "--json",
                                   "--model", "const", "--model", "viewer"])
    assert res.exit_code == 1, res.output
    both = json.loads(res.stdout)["reports"]
    assert [r["model"]["name"] for r in both] == ["constant", "viewer"] and [r["passed"] for r in both] == [False, True]
    assert [r["summary"] for r in both] == [r["summary"] for r in reports]  # as when each model ran alone
    (tmp_path / "both.json").write_text(res.stdout)
    assert tables.load_report(f"{tmp_path / 'both.json'}:2") == both[1]
    with pytest.raises(SystemExit, match=r"holds 2 models' reports; name one: .*both.json:1 \(constant 0\)"):
        tables.load_report(str(tmp_path / "both.json"))


def test_the_check_picture_shows_each_sources_worst_margin_per_row(tmp_path):
    from talkqa.scoring.check_plot import check_grid, plot_check, plot_path_problem

    def outcome(check, measure, source, margin, status):
        return {"check": check, "source": source, "variant": "v", "measure": measure, "value": 1.0,
                "margin": margin, "status": status, "note": ""}

    rows = [{"check": "audio_off", "measure": "lip_sync <= 2", "status": "fail"},
            {"check": "clean", "measure": "lip_sync >= 3.5", "status": "pass"},
            {"check": "still", "measure": "lip_sync <= 2", "status": "error"}]
    report = {"model": {"name": "m", "version": "1"}, "quick": False, "sources": ["a/s1", "a/s2"], "summary": rows,
              "outcomes": [outcome("audio_off", "lip_sync <= 2", "a/s1", 0.3, "pass"),  # +0.5 s passes,
                           outcome("audio_off", "lip_sync <= 2", "a/s1", -0.2, "fail"),  # -0.5 s fails: -0.2
                           outcome("audio_off", "lip_sync <= 2", "a/s2", None, "not scored"),
                           outcome("clean", "lip_sync >= 3.5", "a/s1", 0.5, "pass"),
                           outcome("clean", "lip_sync >= 3.5", "a/s2", 0.1, "pass"),
                           outcome("still", "lip_sync <= 2", "a/s1", None, "error"),  # could not be scored
                           outcome("still", "lip_sync <= 2", "a/s2", 0.4, "pass")]}
    order, sources, margin, status = check_grid(report)
    assert order[:2] == [("audio_off", "lip_sync <= 2"), ("clean", "lip_sync >= 3.5")] and sources == ["a/s1", "a/s2"]
    # a source is only as good as its worse variant; not judged: 0; an error fails, without a margin
    assert status.tolist() == [[-1, 0], [1, 1], [-1, 1]]
    assert margin[0, 0] == pytest.approx(-0.2) and np.isnan(margin[0, 1]) and margin[1].tolist() == [0.5, 0.1]
    assert np.isnan(margin[2, 0]) and margin[2, 1] == pytest.approx(0.4)
    # several models side by side; a row one of them lacks stays blank, and the file is written whole
    other = {**report, "model": {"name": "m", "version": "2"}, "summary": rows[1:2],
             "outcomes": report["outcomes"][3:5]}
    out = plot_check([report, other], tmp_path / "sub" / "check.png", dpi=40)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in out.parent.iterdir()] == ["check.png"]
    plain = tmp_path / "plain.png"
    plain.write_bytes(b"")  # the mode a plain open() gives: what every talkqa file gets (tests/test_file_modes.py)
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    with pytest.raises(ValueError, match="no check report"):
        plot_check([], tmp_path / "none.png")
    assert plot_path_problem(tmp_path / "new" / "deeper" / "a.png") is None  # folders are made
    assert "ending in .png" in plot_path_problem(tmp_path / "a.txt")
    (tmp_path / "folder.png").mkdir()
    assert "is a folder" in plot_path_problem(tmp_path / "folder.png")
    with pytest.raises(ValueError, match="ending in"):
        plot_check([report], tmp_path / "check")


def test_check_tables_judges_ladders_on_the_mean_of_seeds(load_benchmark):
    """benchmarks/check_tables.py --mean-with: a ladder judged on the scores averaged over seeds, by the check's
    rule (Spearman <= -0.9 over clean + levels; a score that does not move fails)."""
    tables = load_benchmark("check_tables")
    keys = ["artifact(name=face_blur,severity=0.5)", "artifact(name=face_blur,severity=1)"]

    def report(values):  # one source, one ladder: the clean clip, then two levels
        return {"sources": ["s"], "scores": {"s": {k: {"visual_quality": v} for k, v in zip(["clean"] + keys, values)}},
                "outcomes": [{"check": "graded:face_blur", "source": "s", "variant": " → ".join(keys), "status": "fail",
                              "measure": "visual_quality falls with severity (Spearman <= -0.9)"}]}

    inverted, falling, flat = report([4.0, 3.0, 3.2]), report([4.0, 3.0, 2.0]), report([4.0, 4.0, 4.0])
    assert tables.mean_ladders([inverted, inverted])[-1].startswith(
        "ladder pairs passing on every source, on the mean of 2 reports: 0 of 1")
    assert "1 of 1 (face_blur → visual_quality)" in tables.mean_ladders([inverted, falling])[-1]  # 4.0, 3.0, 2.6
    assert "| face_blur → visual_quality | -1.00 | pass |" in tables.mean_ladders([inverted, falling])
    assert "0 of 1" in tables.mean_ladders([flat, flat])[-1]
    loose = report([4.0, 3.0, 3.2])  # the threshold is the one the report's own measure names
    loose["outcomes"][0]["measure"] = "visual_quality falls with severity (Spearman <= -0.5)"
    assert "1 of 1" in tables.mean_ladders([loose, loose])[-1]  # Spearman -0.5
    with pytest.raises(SystemExit, match="different source clips"):
        tables.mean_ladders([inverted, {**falling, "sources": ["t"]}])


def test_check_tables_puts_models_side_by_side_with_the_least_and_the_mean(load_benchmark):
    """benchmarks/check_tables.py --side-by-side: each model's sources passing in a column, the least and the mean
    over the models, and the counts row, so a row's spread across dealings of one recipe reads off a table."""
    tables = load_benchmark("check_tables")

    def report(version, still, ladder_status):
        rows = [{"check": "clean", "measure": "lip_sync >= 3.5", "passed": 2, "judged": 2, "status": "pass"},
                {"check": "still_photo", "measure": "lip_sync <= 2", "passed": still, "judged": 2,
                 "status": "pass" if still == 2 else "fail"}]
        ladder = {"check": "graded:face_blur", "source": "s", "variant": "a → b", "status": ladder_status,
                  "measure": "visual_quality falls with severity (Spearman <= -0.9)"}
        return {"sources": ["s", "t"], "model": {"name": "m", "version": version}, "summary": rows,
                "outcomes": [ladder]}

    lines = tables.side_by_side([report("1", 2, "pass"), report("2", 0, "fail"), report("3", 1, "fail")])
    assert lines[0] == "| check | expectation | m 1 | m 2 | m 3 | least | mean |"
    assert "| still_photo | lip_sync <= 2 | 2/2 | 0/2 | 1/2 | 0 | 1.0 |" in lines
    assert lines[-1] == ("| counts | plain rows / single outcomes / ladder pairs on every source | 2 / 4 / 1 | "
                         "1 / 2 / 0 | 1 / 3 / 0 | 1 / 2 / 0 | 1.3 / 3.0 / 0.3 |")
    with pytest.raises(SystemExit, match="different source clips"):
        tables.side_by_side([report("1", 2, "pass"), {**report("2", 0, "fail"), "sources": ["u"]}])

def test_check_tables_names_a_missing_or_unreadable_report(load_benchmark, tmp_path):
    """A wrong file name or a file that is not a report gets one line saying which file and what to give."""
    tables = load_benchmark("check_tables")
    with pytest.raises(SystemExit, match="nowhere.json: no such file"):
        tables.load_report(str(tmp_path / "nowhere.json"))
    (tmp_path / "log.json").write_text("check Obama_clip2 ...\n")
    with pytest.raises(SystemExit, match=r"log.json is not a `talkqa check --json` report"):
        tables.load_report(str(tmp_path / "log.json"))
    (tmp_path / "one.json").write_text(json.dumps({"summary": [], "outcomes": []}))
    assert tables.load_report(str(tmp_path / "one.json")) == {"summary": [], "outcomes": []}



def test_check_command_usage_errors_exit_2(sources, monkeypatch, tmp_path):
    monkeypatch.setenv("TALKQA_SHARED_DATA", str(tmp_path / "nowhere"))
    res = CliRunner().invoke(app, ["check", "--quick"])
    assert res.exit_code == 2 and "TALKQA_SHARED_DATA" in res.output and "--manifest" in res.output
    res = CliRunner().invoke(app, ["check", "--manifest", str(sources[1]), "--only", "nonsense"])
    assert res.exit_code == 2 and "unknown check" in res.output
    res = CliRunner().invoke(app, ["check", "--manifest", str(sources[1]), "--set", "graded.min_spearman=2"])
    assert res.exit_code == 2 and "min_spearman" in res.output


# A ratchet: the checks the shipped model passes on the --quick clip (README, "Does it move the way people
# do?") must stay passed. The ones it still fails there (another voice's consistency, blur, compression) are in
# the README's table, not hidden here; the stall passes there by 0.03 points, too thin to hold as a ratchet.
SHIPPED_PASSES = ("clean", "still_photo", "talking_photo", "audio_off_0.5s", "audio_off_0.2s", "audio_later_ladder",
                  "audio_earlier_ladder", "heavy_noise", "mirror")


@pytest.mark.integration
@pytest.mark.slow
def test_the_shipped_model_keeps_passing_the_checks_it_passes(shared_data, monkeypatch):
    monkeypatch.setenv("TALKQA_SHARED_DATA", str(shared_data))
    res = CliRunner().invoke(app, ["check", "--quick", "--json", "--only", ",".join(SHIPPED_PASSES)])
    assert res.exit_code in (0, 1), res.output
    report = json.loads(res.stdout)
    assert len(report["sources"]) == 1 and {r["check"] for r in report["summary"]} == set(SHIPPED_PASSES)
    assert res.exit_code == 0, [(r["check"], r["measure"], r["worst_value"]) for r in report["summary"]
                                if r["status"] in ("fail", "error")]


def test_check_evidence_tells_which_reading_separates_a_variant_from_the_clean_clips(load_benchmark, tmp_path):
    ev = load_benchmark("check_evidence")
    assert ev.clip_id("real__pcavs__x", "compression(crf=44)") == "real__pcavs__x/compression_crf_44"
    for source in ("a", "b", "c"):
        (tmp_path / "kept" / source).mkdir(parents=True)
        for variant in ("clean", "blur(sigma=2)"):
            (tmp_path / "kept" / source / f"{variant}.mp4").write_bytes(b"")
    manifest = ev.kept_manifest(tmp_path / "kept")
    assert len(manifest) == 6 and set(manifest["variant"]) == {"clean", "blur(sigma=2)"}
    blurred = manifest["variant"] != "clean"
    # 'sharpness' falls on every blurred copy (below every clean clip, whoever the speaker); 'speaker_pitch'
    # differs between speakers and not at all between a clip and its blurred copy
    columns = pd.DataFrame({"sharpness": np.where(blurred, 5.0, 10.0) + np.repeat([0.0, 1.0, 2.0], 2),
                            "speaker_pitch": np.repeat([100.0, 200.0, 150.0], 2)}, index=manifest["clip_id"])
    found = ev.evidence(manifest, columns, top=2)["blur(sigma=2) (n=3)"]
    assert list(found.index) == ["sharpness", "speaker_pitch"]
    assert found.loc["sharpness", "AUC"] == 0.0 and found.loc["sharpness", "same_way"] == 1.0
    assert found.loc["sharpness", "shift_sd"] == -5.0 and found.loc["speaker_pitch", "shift_sd"] == 0.0
    assert found.loc["speaker_pitch", "AUC"] == 0.5 and np.isnan(ev.auc(np.array([1.0]), np.array([np.nan])))
    report = {"scores": {"a": {"clean": {"visual_quality": 4.0, "audio_quality": None},
                               "blur(sigma=2)": {"visual_quality": 2.5, "audio_quality": None}}}}
    changes = ev.score_changes(report)
    assert changes.loc["blur(sigma=2)", "visual_quality"] == -1.5 and np.isnan(changes.loc["blur(sigma=2)", "audio_quality"])
    with pytest.raises(SystemExit, match="talkqa check --keep"):
        ev.kept_manifest(tmp_path / "kept" / "a")
