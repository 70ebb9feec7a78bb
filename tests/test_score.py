"""`talkqa train` + `talkqa score` end to end on tiny clips: a small real store (extract + experts) with
made-up labels trains a tiny model bundle once per session (tests/tiny_model.py); every test scores with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from talkqa.scoring.cli import app
from talkqa.errors import ERROR_CODES
from talkqa.tasks import DIMENSION_NAMES
from tiny_model import TINY_TRAIN

# Trains a tiny model and scores clips end to end (process pools, Ray): the slow tier.
pytestmark = pytest.mark.slow

ERROR_INPUTS = ["missing_path", "directory", "zero_bytes", "truncated", "text_as_mp4", "audio_only", "no_face",
                "one_frame", "half_second"]
SCORED = ["good", "no_audio_track", "spaces_non_ascii"]
KEYS = ["clip", "scores", "sync", "diagnostics", "warnings", "error", "model"]


@pytest.fixture(scope="session")
def inputs(score_inputs):
    return score_inputs


@pytest.fixture(scope="session")
def scored(inputs, bundle):
    """One CLI call over good clips and every bad input, --json."""
    names = ["good", *ERROR_INPUTS[:4], "no_audio_track", *ERROR_INPUTS[4:], "spaces_non_ascii"]
    res = CliRunner().invoke(app, ["score", *[str(inputs[n][0]) for n in names], "--json", "--model", str(bundle)])
    return names, res


# ------------------------------------------------------------------------------------------- train
def test_train_writes_a_self_describing_loadable_bundle(bundle):
    from talkqa.scoring.bundle import load_bundle

    for name in ("model.json", "model_card.md", "train.yaml", "extract.yaml", "fusion/weights.pt",
                 "stacking/state.json", "stacking/overall.txt"):
        assert (bundle / name).is_file(), name
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["name"] == "tiny-test" and meta["combine"] == "auto"  # configs/train/default.yaml
    # auto: per dimension, chosen on the validation speakers, with the figures that decided it
    assert set(meta["combine_per_dimension"]) == set(DIMENSION_NAMES)
    for c in meta["combine_per_dimension"].values():
        assert c["choice"] in ("mean", "fusion", "stacking") and c["why"]
    assert set(meta["experts"]) == {"motion", "voice"}
    for entry in meta["experts"].values():
        assert entry["version"] and entry["weights_hash"] and isinstance(entry["config"], dict)
    assert meta["extraction"]["params_hash"] and meta["input_schema"]["handcrafted_columns"]
    td = meta["training_data"]
    assert len(td["stores"]) == 2 and len(td["labels"]) == 2
    assert td["clips"] >= 8 and td["speakers"] == 4 and td["diagnostics_labels"] and td["val_clips"] > 0 and set(td["label_means"]) == set(DIMENSION_NAMES)
    assert set(meta["diagnostic_thresholds"]) == set(DIMENSION_NAMES)
    assert all(0 < t["threshold"] < 1 for t in meta["diagnostic_thresholds"].values())
    card = (bundle / "model_card.md").read_text()
    assert meta["val_metrics"] and "combine: auto" in card and "Which score is shipped, per dimension" in card
    # configs/train/default.yaml gates the window segments by the clip score; model.json and the card say so
    assert meta["diagnostics_only_below"] == 3.5 and "listed only when the clip scores below 3.5" in card
    b = load_bundle(bundle)
    assert b.name == "tiny-test" and set(b.expert_names) == {"motion", "voice"}


def test_training_on_several_stores_refuses_what_cannot_be_merged(bundle, tmp_path):
    from talkqa.labels import load_labels, merge_labels
    from talkqa.store_data import load_store, merge_store_data
    from talkqa.errors import UsageError

    a, b = bundle.parent / "a", bundle.parent / "b"
    merged = merge_store_data([load_store(a / "store"), load_store(b / "store")])
    assert len(merged.clip_ids) == len(set(merged.clip_ids)) == 8
    assert set(merged.windows) == set(merged.experts["motion"].emb) == set(merged.clip_ids)
    assert list(merged.scalars.index) == merged.clip_ids
    labels = merge_labels([load_labels(a / "manifest.csv"), load_labels(b / "manifest.csv")])
    assert len(labels.table) == 8 and len(labels.diagnostics) == 6
    with pytest.raises(UsageError, match="different experts"):
        merge_store_data([load_store(a / "store", ["motion"]), load_store(b / "store")])

    def train(*args):
        return CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path / "m"), "-q", *TINY_TRAIN])

    res = train("--store", str(a / "store"), "--store", str(a / "store"), "--labels", str(a / "manifest.csv"))
    assert res.exit_code == 2 and "is in both" in res.output
    res = train("--store", str(a / "store"), "--store", str(b / "store"), *["--labels", str(a / "manifest.csv")] * 3)
    assert res.exit_code == 2 and "2 stores but 3 label files" in res.output
    assert not (tmp_path / "m" / "model.json").exists()


def test_embed_command_reports_each_expert(bundle):
    store = bundle.parent / "a" / "store"
    res = CliRunner().invoke(app, ["embed", "--store", str(store), "--experts", "motion"])
    assert res.exit_code == 0, res.output
    assert "motion: 4 clips (4 cached)" in res.output


# ------------------------------------------------------------------------------------------- JSON, exit codes
def test_json_lines_follow_the_schema_in_input_order(inputs, scored):
    names, res = scored
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) == len(names)
    for name, obj in zip(names, lines):
        assert list(obj) == KEYS
        assert obj["clip"] == str(inputs[name][0])
        assert list(obj["scores"]) == list(DIMENSION_NAMES)
        assert list(obj["sync"]) == ["offset_frames", "confidence"]
        assert obj["model"] == {"name": "tiny-test", "version": "1"}
        assert isinstance(obj["warnings"], list) and isinstance(obj["diagnostics"], list)
        for d in obj["diagnostics"]:
            assert list(d) == ["start", "end", "dimension", "issue", "severity"]
            assert d["dimension"] in DIMENSION_NAMES and d["end"] > d["start"] and isinstance(d["issue"], str)
        for v in [*obj["scores"].values(), *obj["sync"].values()]:
            assert v is None or isinstance(v, float)


def test_every_bad_input_is_one_clear_error_and_the_others_are_scored(inputs, scored):
    names, res = scored
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    by_name = dict(zip(names, (json.loads(x) for x in res.stdout.splitlines() if x.strip())))
    for name in ERROR_INPUTS:
        obj = by_name[name]
        assert isinstance(obj["error"], str) and obj["error"].strip(), name
        assert "\n" not in obj["error"] and "internal error" not in obj["error"], obj["error"]
        assert all(v is None for v in obj["scores"].values()) and obj["diagnostics"] == []
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(ERROR_INPUTS)
    for name in ("good", "spaces_non_ascii"):
        obj = by_name[name]
        assert obj["error"] is None
        assert all(isinstance(v, float) and 1.0 <= v <= 5.0 for v in obj["scores"].values()), obj
        assert obj["sync"]["offset_frames"] is not None


def test_no_audio_clip_scores_visual_dimensions_only(scored):
    names, res = scored
    obj = dict(zip(names, (json.loads(x) for x in res.stdout.splitlines() if x.strip())))["no_audio_track"]
    assert obj["error"] is None
    for d in ("lip_sync", "audio_quality", "consistency"):
        assert obj["scores"][d] is None
    for d in ("expression", "overall"):
        assert isinstance(obj["scores"][d], float)
    assert obj["sync"] == {"offset_frames": None, "confidence": None}
    assert any("no audio" in w and "lip_sync" in w for w in obj["warnings"])
    assert all(d["dimension"] not in ("lip_sync", "audio_quality", "consistency") for d in obj["diagnostics"])


def test_exit_zero_table_and_html_report(inputs, bundle, tmp_path):
    res = CliRunner().invoke(app, ["score", str(inputs["good"][0]), "--model", str(bundle), "--html", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "lip_sync" in res.stdout and "good" in res.stdout
    page = (tmp_path / "good.html").read_text()
    assert page.count("data:image/png;base64,") >= 9  # timeline, offset, aperture, blinks, a factor waterfall per dimension
    assert 'src="http' not in page and "<script src" not in page
    # why: a sentence per dimension, named factors and their readings, never an embedding dimension
    assert "Why these scores" in page and page.count('<ul class="why">') == len(DIMENSION_NAMES)
    assert "motion expert" in page and "vs a typical clip" in page and "factors and their readings" in page
    assert "__emb_" not in page


def test_explain_names_factors_never_embedding_dimensions(inputs, bundle):
    """Every factor of every explained score is an expert (its embedding and scalar columns summed) or one
    hand-crafted feature, described in words; the factors and the base value add up to the stacking
    prediction."""
    from talkqa.scoring.scorer import Scorer

    scorer = Scorer(bundle, explain_top=10_000)  # every factor, not just the top ones
    featurizer = scorer.bundle.stacking.featurizer_
    assert any("__emb_" in c for c in featurizer.columns_)  # there are embedding columns to hide
    r = scorer.score(inputs["good"][0], explain=True, keep_details=True)
    assert r.ok and list(r.to_dict()) == KEYS  # the documented keys stay exactly as they are
    block = r.to_dict(explain=True)["explain"]
    assert list(r.to_dict(explain=True)) == [*KEYS, "explain"] and "__emb_" not in json.dumps(block)
    assert block["explains"] == "stacking" and block["combine"] == scorer.bundle.meta["combine"] == "auto"
    chosen = scorer.bundle.meta["combine_per_dimension"]
    assert all(d["combine"] == chosen[dim]["choice"] for dim, d in block["dimensions"].items())
    assert list(block["dimensions"]) == [d for d in DIMENSION_NAMES if r.scores[d] is not None]
    for dim, d in block["dimensions"].items():
        factors = d["factors"]
        assert d["score"] == r.scores[dim] and d["other_factors"] == 0
        assert d["base_value"] + sum(f["contribution"] for f in factors) == pytest.approx(d["stacking"], abs=1e-3)
        assert np.clip(d["stacking"], 1, 5) == pytest.approx(r.details["stacking"][dim], abs=1e-3)
        experts = [f for f in factors if f["kind"] == "expert"]
        assert sorted(f["factor"] for f in experts) == sorted(featurizer.experts_)
        assert {f["name"] for f in experts} == {"motion expert", "voice expert"}
        for f in factors:
            assert f["name"] and f["reading"] and f["text"].startswith(f["name"])
        for f in experts:
            assert f["from_readings"] + f["from_learned_features"] == pytest.approx(f["contribution"], abs=1e-3)
        assert d["sentence"].startswith(f"{dim} {r.scores[dim]:.2f}") and "vs a typical clip" in d["sentence"]
        if abs(factors[0]["contribution"]) >= 0.005:  # a tree that never split has no reason to give
            assert factors[0]["text"] in d["sentence"]


def test_score_explain_json_and_sentences(inputs, bundle):
    good, no_audio = str(inputs["good"][0]), str(inputs["no_audio_track"][0])
    res = CliRunner().invoke(app, ["score", good, no_audio, "--json", "--explain", "--model", str(bundle)])
    assert res.exit_code == 0, res.output
    objs = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert [list(o) for o in objs] == [[*KEYS, "explain"]] * 2 and "__emb_" not in res.stdout
    for o in objs:
        dims = o["explain"]["dimensions"]
        assert set(dims) == {d for d, v in o["scores"].items() if v is not None}
        for d in dims.values():
            assert 1 <= len(d["factors"]) <= 5 and all(isinstance(f["contribution"], float) for f in d["factors"])
    assert "lip_sync" not in objs[1]["explain"]["dimensions"]  # not scored without audio: nothing to explain
    table = CliRunner().invoke(app, ["score", good, "--explain", "--model", str(bundle)])
    assert table.exit_code == 0 and "why (stacking model" in table.stdout
    assert "overall" in table.stdout and "vs a typical clip" in table.stdout and "__emb_" not in table.stdout
    plain = CliRunner().invoke(app, ["score", good, "--json", "--model", str(bundle)])
    assert list(json.loads(plain.stdout)) == KEYS


@pytest.mark.slow
def test_a_folder_is_every_video_under_it_in_path_order(inputs, bundle, tmp_path):
    clips, empty = tmp_path / "clips", tmp_path / "empty"
    (clips / "b_sub").mkdir(parents=True)
    (empty / "deeper").mkdir(parents=True)
    shutil.copy(inputs["good"][0], clips / "z_last.mp4")
    shutil.copy(inputs["no_audio_track"][0], clips / "b_sub" / "a.MOV")
    (clips / "notes.txt").write_text("not a video")
    (clips / ".hidden.mp4").write_bytes(b"")
    res = CliRunner().invoke(app, ["score", str(clips), str(empty), "--json", "--html", str(tmp_path / "html"),
                                   "--model", str(bundle)])
    assert res.exit_code == 1, res.output  # the empty folder
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert [obj["clip"] for obj in lines] == [str(clips / "b_sub" / "a.MOV"), str(clips / "z_last.mp4"), str(empty)]
    assert lines[0]["error"] is None and lines[1]["error"] is None
    assert "no videos (.mp4" in lines[2]["error"] and str(empty) in lines[2]["error"]
    assert sorted(p.name for p in (tmp_path / "html").iterdir()) == ["a.html", "z_last.html"]
    # the table: an empty folder is one clear error, not a usage error or a traceback
    res = CliRunner().invoke(app, ["score", str(empty), "--model", str(bundle)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")] and "not_a_file" in res.stdout
    res = CliRunner().invoke(app, ["score", str(clips), "--audio", str(inputs["good"][0])])
    assert res.exit_code == 2 and "exactly one VIDEO" in res.output


@pytest.mark.parametrize("args", [[], ["--workers", "0", "x.mp4"], ["--manifest", "m.csv"], ["--bogus-option"],
                                  ["--manifest", "m.csv", "--out", "s.parquet", "--explain"],
                                  ["--manifest", "m.csv", "--out", "s.parquet", "--json"], ["a.mp4", "--out", "s.parquet"],
                                  [""], ["a.mp4", " "]])
def test_usage_errors_exit_2(args):
    res = CliRunner().invoke(app, ["score", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output


def test_missing_model_folder_exits_2(inputs, tmp_path):
    res = CliRunner().invoke(app, ["score", str(inputs["good"][0]), "--model", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "model folder" in res.output and "Traceback" not in res.output


def test_schema_mismatch_is_refused_with_one_message(inputs, bundle, tmp_path):
    from talkqa.scoring.bundle import ModelMismatchError
    from talkqa.scoring.scorer import Scorer

    bad = tmp_path / "bad_model"
    shutil.copytree(bundle, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["experts"]["motion"]["version"] = "99"
    meta["experts"]["sync"] = {**meta["experts"]["voice"], "version": "1"}
    meta["input_schema"]["handcrafted_columns"].append("lipsync__no_such_feature")
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError) as exc:
        Scorer(bad)
    msg = str(exc.value)
    assert "motion" in msg and "99" in msg and "sync" in msg and "lipsync__no_such_feature" in msg
    assert "retrain" in msg
    res = CliRunner().invoke(app, ["score", str(inputs["good"][0]), "--model", str(bad), "--json"])
    assert res.exit_code == 2
    assert [line for line in res.output.splitlines() if line.startswith("error:")] and not res.stdout.strip()


# ------------------------------------------------------------------------------------------- batch
def _manifest(inputs, names, path):
    pd.DataFrame({"clip_id": names, "video": [str(inputs[n][0]) for n in names]}).to_csv(path, index=False)
    return path


def test_batch_resumes_after_interruption(inputs, bundle, tmp_path):
    from talkqa.manifest import load_manifest
    from talkqa.scoring.batch import batch_cache_dir, run_batch

    names = ["good", "no_face", "no_audio_track"]
    m, _ = load_manifest(_manifest(inputs, names, tmp_path / "m.csv"))
    out = tmp_path / "scores.parquet"
    seen = []

    def stop_after_two(row):
        seen.append(row["clip_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(m, out, bundle, on_done=stop_after_two)
    assert not out.exists() and len(list(batch_cache_dir(out).glob("*.json"))) == 2
    res = CliRunner().invoke(app, ["score", "--manifest", str(tmp_path / "m.csv"), "--out", str(out),
                                   "--model", str(bundle)])
    assert res.exit_code == 1, res.output  # no_face failed; the batch still finished
    table = pd.read_parquet(out)
    assert list(table["clip_id"]) == names
    assert list(table["cached"]) == [True, True, False]
    assert list(table["status"]) == ["ok", "no_face", "ok"]
    assert table.loc[1, "message"] and np.isnan(table.loc[1, "score_overall"])
    assert np.isfinite(table.loc[0, [f"score_{d}" for d in DIMENSION_NAMES]].astype(float)).all()
    assert np.isnan(table.loc[2, "score_lip_sync"]) and np.isfinite(table.loc[2, "score_expression"])
    assert not list(tmp_path.rglob("*.tmp"))


def test_ray_and_local_engines_give_identical_scores(inputs, bundle, tmp_path):
    ray = pytest.importorskip("ray")
    from talkqa.manifest import load_manifest
    from talkqa.scoring.batch import run_batch

    m, _ = load_manifest(_manifest(inputs, ["good", "no_face"], tmp_path / "m.csv"))
    local = run_batch(m, tmp_path / "local.parquet", bundle, engine="local", workers=1)
    # a local 2-CPU Ray instance; one actor keeps the test short (actor start-up dominates)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_ = run_batch(m, tmp_path / "ray.parquet", bundle, engine="ray", workers=1)
    finally:
        ray.shutdown()
    assert not ray_["cached"].any()
    cols = ["clip_id", "status", "message", *[f"score_{d}" for d in DIMENSION_NAMES], "sync_offset_frames",
            "sync_confidence", "diagnostics", "warnings"]
    pd.testing.assert_frame_equal(local[cols], ray_[cols])
    assert local.loc[0, "status"] == "ok" and np.isfinite(local.loc[0, "score_overall"])


# ------------------------------------------------------------------------------------------- Python API
def test_python_api(inputs, bundle):
    import talkqa

    r = talkqa.score(inputs["good"][0], model_dir=bundle)
    assert isinstance(r, talkqa.Result) and r.ok and list(r.to_dict()) == KEYS
    assert r.windows and {"t_start", "t_end", *DIMENSION_NAMES} <= set(r.windows[0])
    bad = talkqa.Scorer(bundle).score(inputs["text_as_mp4"][0])
    assert bad.error and bad.error_code in ERROR_CODES and all(v is None for v in bad.scores.values())


def test_scoring_in_two_lanes_gives_what_extract_and_embed_give(inputs, bundle):
    """The scorer runs the audio side on a second thread; the values must be those of a sequential run."""
    from talkqa.features.preprocess import preprocess
    from talkqa.features.extract import compute_features
    from talkqa.scoring.scorer import Scorer

    scorer = Scorer(bundle)
    clip = preprocess(inputs["good"][0], scorer.bundle.extract_config.preprocess)
    row, windows, series, tokens, failed = scorer._analyse(clip)
    row0, windows0, series0 = compute_features(clip, scorer.bundle.extract_config)
    assert not failed and list(row) == list(row0) and np.array_equal(list(row.values()), list(row0.values()), equal_nan=True)
    pd.testing.assert_frame_equal(windows.reset_index(drop=True), windows0)
    assert set(series) == set(series0) and all(np.array_equal(series[k], series0[k], equal_nan=True) for k in series)
    assert list(tokens) == list(scorer.experts)
    for name, expert in scorer.experts.items():
        ref = expert.embed(clip)
        assert np.array_equal(tokens[name].emb, ref.emb) and tokens[name].scalars == ref.scalars, name


def test_models_that_read_alike_score_one_shared_reading_as_they_would_alone(inputs, bundle, tmp_path):
    """`talkqa check --model A --model B`: a second model with the same extraction and experts scores the first
    one's reading of a clip and gets exactly what it gets reading the clip itself, errors included."""
    from talkqa.scoring.scorer import Scorer

    shutil.copytree(bundle, tmp_path / "copy")
    first, second = Scorer(bundle), Scorer(tmp_path / "copy")
    assert first.reading_key() == second.reading_key()
    for name in ("good", "no_audio_track", "text_as_mp4"):
        path = inputs[name][0]
        try:
            reading = first.analyse(path)
        except Exception as exc:
            reading = exc
        assert second.score(path, analysis=reading).to_dict() == second.score(path).to_dict(), name
    other = Scorer(bundle)
    next(iter(other.experts.values())).weights_hash_ = "other weights"
    assert other.reading_key() != first.reading_key()


def test_import_talkqa_stays_cheap():
    code = "import sys, talkqa; assert 'torch' not in sys.modules and 'talkqa.scoring' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_default_model_loads_when_installed():
    from talkqa.scoring.bundle import DEFAULT_MODEL_DIR, load_bundle

    if not (DEFAULT_MODEL_DIR / "model.json").is_file():
        pytest.skip("no default model in talkqa/models/default")
    b = load_bundle()
    assert b.meta["input_schema"]["handcrafted_columns"] and b.fusion is not None and b.stacking is not None
