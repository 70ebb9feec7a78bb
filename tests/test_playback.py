"""Delivery artifacts (compression, stall) verified by measurement, their labels in a corpus row,
and the default recipe producing the whole-clip faults people rate (still photo, no blinks, stalls)."""

from __future__ import annotations

import numpy as np
import pytest

from talkqa.corpus.artifacts import ARTIFACTS, Sample

from conftest import speech_like

HOP = 640


@pytest.fixture(scope="module")
def panning(astronaut) -> Sample:
    """2 s of a 160 px window panning over a real photo (every frame differs), with speech-like sound."""
    n, side = 50, 160
    frames = np.stack([astronaut[40 + t: 40 + t + side, 100 + 2 * t: 100 + 2 * t + side] for t in range(n)])
    return Sample(frames, speech_like(n / 25, seed=2)[: n * HOP].astype(np.float32))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def blockiness(frames: np.ndarray) -> float:
    """Mean luma step across 8x8 block edges over the mean step elsewhere (1 = no block structure)."""
    y = frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    dx, dy = np.abs(np.diff(y, axis=2)), np.abs(np.diff(y, axis=1))
    ex, ey = np.arange(dx.shape[2]) % 8 == 7, np.arange(dy.shape[1]) % 8 == 7
    return 0.5 * (dx[:, :, ex].mean() / dx[:, :, ~ex].mean() + dy[:, ey].mean() / dy[:, ~ey].mean())


# ---------------------------------------------------------------------------- compression
def test_compression_psnr_falls_and_blockiness_rises_with_severity(panning):
    art = ARTIFACTS.create("compression")
    psnr, block = [], []
    for sev, qp in zip(art.severities(), art.levels):
        out = art.apply(panning, sev, None, np.random.default_rng(0))
        assert out.frames.shape == panning.frames.shape and out.frames.dtype == np.uint8
        assert np.array_equal(out.audio, panning.audio)
        assert out.log[-1]["parameter"] == qp
        psnr.append(_psnr(out.frames, panning.frames))
        block.append(blockiness(out.frames))
    assert all(a > b + 1.0 for a, b in zip(psnr, psnr[1:])), psnr  # > 1 dB per 4-QP step
    assert 33 < psnr[0] and psnr[-1] < 30, psnr  # near-clean ... coarse
    # x264's deblocking filter hides much of the grid on a small picture: the rise is steady, not large
    assert all(b > a for a, b in zip(block, block[1:])), block
    assert block[-1] > block[0] + 0.04 and block[-1] > blockiness(panning.frames) + 0.04, block


def test_compression_is_deterministic_and_local(panning):
    art = ARTIFACTS.create("compression")
    a = art.apply(panning, 1.0, (10, 40), np.random.default_rng(0))
    b = art.apply(panning, 1.0, (10, 40), np.random.default_rng(1))
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.frames[:10], panning.frames[:10]) and np.array_equal(a.frames[40:], panning.frames[40:])
    assert not np.array_equal(a.frames[10:40], panning.frames[10:40])


def test_h264_roundtrip_handles_odd_sizes():
    from talkqa.features.codec import h264_roundtrip

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 33, 47, 3), dtype=np.uint8)
    out = h264_roundtrip(frames, 30)
    assert out.shape == frames.shape


# ---------------------------------------------------------------------------- stall
def test_stall_freezes_exactly_its_frames_while_the_sound_goes_on(panning):
    art = ARTIFACTS.create("stall")
    seen = set()
    for seed in range(6):
        for sev, seconds in zip(art.severities(), art.levels):
            out = art.apply(panning, sev, None, np.random.default_rng(seed))
            e = out.log[-1]
            a, b = e["start_frame"], e["stop_frame"]
            assert b - a == min(len(panning.frames), int(round(seconds * 25))) and e["parameter"] == (b - a) / 25
            assert np.array_equal(out.audio, panning.audio)  # the sound goes on, untouched
            assert all(np.array_equal(out.frames[t], panning.frames[a]) for t in range(a, b))
            assert np.array_equal(out.frames[:a + 1], panning.frames[:a + 1])
            assert np.array_equal(out.frames[b:], panning.frames[b:])  # back in sync right after
            assert e["mode"] == ("start" if a < 25 else "middle")
            seen.add((e["mode"], a == 0))
    assert ("start", True) in seen  # a stall at the very start is drawn too


def test_stall_position_in_a_long_clip_and_a_range():
    frames = np.repeat(np.arange(250, dtype=np.uint8)[:, None, None, None], 8, axis=1).repeat(8, 2).repeat(3, 3)
    sample = Sample(frames, np.zeros(250 * HOP, np.float32))
    art = ARTIFACTS.create("stall")
    modes = {}
    for seed in range(8):
        out = art.apply(sample, 2 / 3, None, np.random.default_rng(seed))
        e = out.log[-1]
        modes[e["mode"]] = e["start_frame"]
    assert modes == {"start": 0, "middle": (250 - 25) // 2}
    short = art.apply(sample, 1.0, (100, 120), np.random.default_rng(0)).log[-1]  # 2 s cut to a 20-frame range
    assert (short["start_frame"], short["stop_frame"], short["parameter"]) == (100, 120, 0.8)
    assert short["mode"] == "middle"


def test_stall_label_is_not_diluted_by_clip_length():
    from talkqa.corpus.degrade import DegradeRecipe, _label

    recipe = DegradeRecipe.load()
    log = [{"artifact": "stall", "severity": 2 / 3, "start_frame": 100, "stop_frame": 125, "effective": True,
            "mode": "middle", "parameter": 1.0, "issue": "stall"}]
    row_long, diags = _label("c/v01", log, 250, recipe)
    row_short, _ = _label("c/v01", log, 150, recipe)
    assert row_long["mos_overall"] == row_short["mos_overall"] < 2.7
    assert {(d["start"], d["end"]) for d in diags} == {(4.0, 5.0)}  # the frozen span, frame-exact
    assert {d["dimension"] for d in diags} == {"expression", "lip_sync"}  # not its direct share of overall


# ---------------------------------------------------------------------------- the default recipe
def test_default_recipe_makes_whole_clip_still_photos_no_blinks_and_stalls():
    from talkqa.corpus.degrade import DegradeRecipe, plan_variant

    recipe = DegradeRecipe.load()
    applied = []
    for i in range(60):
        for j in range(1, recipe.variants):
            applied += plan_variant(f"src{i}", j, recipe, 0, 250, True, True)["artifacts"]
    by_name: dict[str, list] = {}
    for name, sev, seg in applied:
        by_name.setdefault(name, []).append((sev, seg))
    assert set(by_name) == set(ARTIFACTS.names())  # every artifact, the new ones included
    for name in ("still_portrait", "photo_animation", "blink_removal", "stall"):
        assert all(seg is None for _, seg in by_name[name]), name  # whole clip only
    # full severity drawn: among them the talking photo (still_portrait) and the still photo (frame_stutter)
    for name in ("still_portrait", "frame_stutter", "blink_removal", "stall", "compression", "av_offset"):
        assert any(sev == 1.0 for sev, _ in by_name[name]), name
    assert any(sev == 1.0 and seg is None for sev, seg in by_name["frame_stutter"])  # a whole-clip still photo
    assert any(seg is not None for _, seg in by_name["compression"])  # others keep their segments
    assert len(by_name["compression"]) > len(by_name["mouth_blur"])  # weighted 2 : 1
