"""Extraction through the CLI and the batch path: every awkward input of the foundation issue,
the Parquet schema, and cache / resume behaviour."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clip_factory import bad_inputs
from talkqa.features.families import FAMILIES
from talkqa.scoring.cli import app
from talkqa.config import ExtractConfig
from talkqa.errors import ERROR_CODES, PARTIAL_CODES
from talkqa.features import codec_reader as C
from talkqa.features.extract import run_extract
from talkqa.store import Store, parquet_meta, read_parquet

# Extraction runs of several clips through the process pool: the slow tier.
pytestmark = pytest.mark.slow

FAST = ["--set", "features.params={audio: {dnsmos: false, egemaps: false}}"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut):
    return bad_inputs(tmp_path_factory.mktemp("inputs"), astronaut)


@pytest.fixture(scope="module")
def batch(inputs, tmp_path_factory):
    """One batch over every input: the batch must go on past each bad clip."""
    root = tmp_path_factory.mktemp("batch")
    manifest = pd.DataFrame([{"clip_id": name, "video": str(path)} for name, (path, _) in inputs.items()])
    manifest.to_csv(root / "manifest.csv", index=False)
    res = CliRunner().invoke(app, ["extract", str(root / "manifest.csv"), "--store", str(root / "store")])
    return root, res


def test_batch_gives_expected_status_per_clip(inputs, batch):
    root, res = batch
    assert res.exit_code == 1, res.output  # some clips failed, the batch still finished
    status = read_parquet(root / "store" / "status.parquet").set_index("clip_id")
    assert list(status.index) == list(inputs)  # one row per manifest clip, in order
    for name, (_, expected) in inputs.items():
        assert status.loc[name, "status"] == expected, (name, status.loc[name, "message"])
        if expected in ERROR_CODES:
            assert status.loc[name, "message"], name
    assert "Traceback" not in res.output


def test_partial_face_and_two_faces_are_flagged(batch):
    root, _ = batch
    status = read_parquet(root / "store" / "status.parquet").set_index("clip_id")
    cov = status.loc["face_in_part", "face_coverage"]
    assert 0.3 < cov < 0.7
    assert "face" in status.loc["face_in_part", "warnings"].lower()
    assert status.loc["two_faces", "warnings"]


def test_handcrafted_schema(inputs, batch):
    root, _ = batch
    store = Store(root / "store")
    hand = read_parquet(store.handcrafted)
    windows = read_parquet(store.windows)
    ok = [n for n, (_, s) in inputs.items() if s == "ok" or s in PARTIAL_CODES]
    assert list(hand["clip_id"]) == ok
    expected = ["clip_id"] + [c for name in ExtractConfig().features.families for c in FAMILIES.create(name).columns()]
    assert list(hand.columns) == expected
    assert all(hand[c].dtype == np.float64 for c in expected[1:])
    assert list(windows.columns[:3]) == ["clip_id", "t_start", "t_end"]
    assert set(windows["clip_id"]) == set(ok)
    assert (windows["t_end"] > windows["t_start"]).all()
    for path in (store.handcrafted, store.windows, store.status):
        meta = parquet_meta(path)
        assert meta["producer"] == "talkqa.extract" and meta["params_hash"] and meta["code_version"]
    assert (store.root / "extract.yaml").is_file()
    # audio-dependent features are NaN without audio, visual ones are computed
    no_audio = hand.set_index("clip_id").loc["no_audio_track"]
    assert np.isnan(no_audio["audio__snr_db"])
    assert np.isfinite(no_audio["expression__blink_rate_per_min"])
    good = hand.set_index("clip_id").loc["good"]
    assert np.isfinite(good["lipsync__av_peak_corr"]) and np.isfinite(good["audio__snr_db"])


@pytest.mark.parametrize(
    "name",
    ["missing_path", "directory", "zero_bytes", "truncated", "text_as_mp4", "audio_only", "no_face", "one_frame",
     "half_second"],
)
def test_single_bad_clip_gives_one_clear_line(inputs, tmp_path, name):
    path, expected = inputs[name]
    res = CliRunner().invoke(app, ["extract", str(path), "--store", str(tmp_path / "s"), *FAST])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"[{expected}]" in res.output, res.output


@pytest.mark.parametrize("name", ["no_audio_track", "silent_audio", "spaces_non_ascii"])
def test_single_usable_clip_exits_zero(inputs, tmp_path, name):
    path, _ = inputs[name]
    res = CliRunner().invoke(app, ["extract", str(path), "--store", str(tmp_path / "s"), *FAST])
    assert res.exit_code == 0, res.output


def _manifest(inputs, names):
    return pd.DataFrame([{"clip_id": n, "video": str(inputs[n][0])} for n in names])


def test_rerun_uses_cache_and_param_change_recomputes(inputs, tmp_path):
    cfg = ExtractConfig.model_validate({"features": {"params": {"audio": {"dnsmos": False, "egemaps": False}}}})
    m = _manifest(inputs, ["good", "no_audio_track"])
    first = run_extract(m, tmp_path / "s", cfg)
    assert not first["cached"].any()
    before = read_parquet(tmp_path / "s" / "handcrafted.parquet")
    second = run_extract(m, tmp_path / "s", cfg)
    assert second["cached"].all()
    assert second["elapsed_s"].sum() < first["elapsed_s"].sum()
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "s" / "handcrafted.parquet"), before)
    changed = cfg.model_copy(deep=True)
    changed.features.window_s = 0.5
    third = run_extract(m, tmp_path / "s", changed)
    assert not third["cached"].any()
    assert len(read_parquet(tmp_path / "s" / "windows.parquet")) > 0


def test_killed_run_resumes(inputs, tmp_path):
    cfg = ExtractConfig.model_validate({"features": {"params": {"audio": {"dnsmos": False, "egemaps": False}}}})
    m = _manifest(inputs, ["good", "vfr", "fps60"])

    def kill_after_first(status):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_extract(m, tmp_path / "s", cfg, on_done=kill_after_first)
    assert not (tmp_path / "s" / "handcrafted.parquet").exists()  # never a half-written dataset
    resumed = run_extract(m, tmp_path / "s", cfg)
    assert list(resumed["cached"]) == [True, False, False]
    assert list(resumed["status"]) == ["ok", "ok", "ok"]
    assert not list((tmp_path / "s").rglob("*.tmp"))


def test_backfill_gives_an_old_store_the_new_frame_statistic(inputs, tmp_path, load_benchmark):
    """benchmarks/backfill_frame_stats.py on a store extracted before `upper_change`, `static_blocks` and
    `codec_logit` existed (simulated by taking them out of the tracks, the parts and handcrafted.parquet) gives
    back what extraction measured, from the stored mesh and the decoded video alone, with the columns where
    extraction puts them (stores are trained on together only when their columns agree in order); a stored
    statistic it cannot reproduce stops it."""
    backfill = load_benchmark("backfill_frame_stats")
    cfg = ExtractConfig.model_validate({"features": {"params": {"audio": {"dnsmos": False, "egemaps": False}}}})
    store = Store(tmp_path / "s")
    status = run_extract(_manifest(inputs, ["good", "face_in_part"]), store.root, cfg)
    extracted = read_parquet(store.handcrafted)
    # static_blocks: NaN on these still clips
    columns = ["expression__upper_change", "visual__static_blocks", "visual__codec_logit"]
    assert extracted[columns[0]].notna().all() and columns[1] in extracted
    assert extracted[columns[2]].notna().all() == C.default_path().is_file()
    keys = list(status.loc[status.status == "ok", "cache_key"])
    parts = {key: read_parquet(store.part(key, "clip.parquet")) for key in keys}
    for key in keys:  # the store as an older talkqa left it
        with np.load(store.track(key)) as z:
            kept = {k: z[k] for k in z.files if k not in ("frame_stats__upper_change", "frame_stats__static_blocks",
                                                          "frame_stats__codec_logit")}
        np.savez_compressed(store.track(key), **kept)
        parts[key].drop(columns=columns).to_parquet(store.part(key, "clip.parquet"))
    extracted.drop(columns=columns).to_parquet(store.handcrafted)

    assert backfill.main([str(store.root), "--workers", "1", "--families", "expression", "visual"]) == 0
    pd.testing.assert_frame_equal(read_parquet(store.handcrafted), extracted)  # values and column order
    for key in keys:
        pd.testing.assert_frame_equal(read_parquet(store.part(key, "clip.parquet")), parts[key])
    assert backfill.main([str(store.root), "--workers", "1"]) == 0  # a rerun finds nothing to do
    # a reading the visual family no longer computes (renamed since): dropped, as extraction would not write it
    stale = extracted.assign(visual__retired_reading=1.0)
    stale.to_parquet(store.handcrafted)
    assert backfill.main([str(store.root), "--workers", "1", "--families", "visual"]) == 0
    pd.testing.assert_frame_equal(read_parquet(store.handcrafted), extracted)
    # a family's new clip feature from what the tracks hold (the longest held picture): no decoding needed
    held = "expression__held_longest_s"
    for key in keys:
        parts[key].drop(columns=[held]).to_parquet(store.part(key, "clip.parquet"))
    extracted.drop(columns=[held]).to_parquet(store.handcrafted)
    written = {key: store.track(key).stat().st_mtime_ns for key in keys}
    assert backfill.main([str(store.root), "--workers", "1", "--families", "expression"]) == 0
    pd.testing.assert_frame_equal(read_parquet(store.handcrafted), extracted)
    for key in keys:
        pd.testing.assert_frame_equal(read_parquet(store.part(key, "clip.parquet")), parts[key])
        assert store.track(key).stat().st_mtime_ns == written[key]  # the tracks were not rewritten
    # a family whose rule changed: its columns are there, so only --refresh-families computes them again
    stale = "expression__frozen_share"
    for key in keys:
        parts[key].assign(**{stale: 0.999}).to_parquet(store.part(key, "clip.parquet"))
    extracted.assign(**{stale: 0.999}).to_parquet(store.handcrafted)
    assert backfill.main([str(store.root), "--workers", "1", "--families", "expression"]) == 0
    assert (read_parquet(store.handcrafted)[stale] == 0.999).all()
    assert backfill.main([str(store.root), "--workers", "1", "--families", "expression", "--refresh-families"]) == 0
    pd.testing.assert_frame_equal(read_parquet(store.handcrafted), extracted)
    for key in keys:
        pd.testing.assert_frame_equal(read_parquet(store.part(key, "clip.parquet")), parts[key])

    with np.load(store.track(keys[0])) as z:  # a stored statistic the code no longer reproduces
        kept = {k: z[k] for k in z.files if k != "frame_stats__upper_change"}
    kept["frame_stats__blockiness"] = kept["frame_stats__blockiness"] + 1
    np.savez_compressed(store.track(keys[0]), **kept)
    with pytest.raises(SystemExit, match="blockiness not reproduced"):
        backfill.main([str(store.root), "--workers", "1"])
    # a statistic whose computation changed is measured again and replaced instead of compared, once
    assert backfill.main([str(store.root), "--workers", "1", "--families", "expression", "visual",
                          "--recompute", "blockiness"]) == 0
    pd.testing.assert_frame_equal(read_parquet(store.handcrafted), extracted)
    with np.load(store.track(keys[0])) as z:
        assert np.allclose(z["frame_stats__blockiness"], kept["frame_stats__blockiness"] - 1, equal_nan=True)
    recorded = json.loads((store.root / backfill.RECOMPUTED).read_text())
    ok = set(status.loc[status.status == "ok", "clip_id"])
    assert set(recorded) == {"blockiness"} and ok <= set(recorded["blockiness"])
    with np.load(store.track(keys[0])) as z:  # a rerun does not measure the clips again
        kept = {k: z[k] for k in z.files}
    kept["frame_stats__blockiness"] = kept["frame_stats__blockiness"] + 1
    np.savez_compressed(store.track(keys[0]), **kept)
    assert backfill.main([str(store.root), "--workers", "1", "--recompute", "blockiness"]) == 0
    with np.load(store.track(keys[0])) as z:
        assert np.allclose(z["frame_stats__blockiness"], kept["frame_stats__blockiness"], equal_nan=True)
    assert backfill.main([str(store.root), "--recompute", "sharpness_of_the_moon"]) == 2
    assert backfill.main([str(tmp_path / "nowhere")]) == 2
