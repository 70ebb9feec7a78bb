"""The motion expert: contract, save/load, shipped weights, and what it has learned."""

from __future__ import annotations

import numpy as np
import pytest

from talkqa.experts.motion import MotionConfig, MotionExpert
from talkqa.experts.motion_features import FEATURE_DIM, PERTURBATIONS, motion_features
from talkqa.features.clip import PreprocessedClip, empty_visual


def landmark_clip(n_frames: int, seed: int = 0) -> PreprocessedClip:
    """A clip whose aligned landmarks wander smoothly around a face-like layout."""
    rng = np.random.default_rng(seed)
    vis = empty_visual(n_frames, 96, (48, 96))
    base = rng.uniform(20, 76, (478, 2)).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.15, (n_frames, 478, 2)), axis=0).astype(np.float32)
    vis["aligned"] = base + drift
    vis["landmarks"] = np.concatenate([vis["aligned"] * 2, np.zeros((n_frames, 478, 1), np.float32)], axis=2)
    vis["head_pose"] = np.cumsum(rng.normal(0, 0.3, (n_frames, 3)), axis=0).astype(np.float32)
    vis["face_valid"][:] = True
    vis["face_valid"][5:8] = False  # a few frames without a face are interpolated over
    vis["aligned"][5:8] = np.nan
    return PreprocessedClip(clip_id="x", fps=25.0, n_frames=n_frames, frame_size=(192, 192), **vis)


def test_features_and_perturbations_keep_shapes():
    clip = landmark_clip(64)
    a, p = np.nan_to_num(clip.aligned), clip.head_pose
    assert motion_features(a, p).shape == (64, FEATURE_DIM)
    rng = np.random.default_rng(0)
    for name, fn in PERTURBATIONS.items():
        pa, pp = fn(a, p, rng)
        assert pa.shape == a.shape and pp.shape == p.shape, name
        assert np.isfinite(pa).all(), name
    frozen, _ = PERTURBATIONS["frozen"](a, p, rng)
    assert np.abs(np.diff(frozen, axis=0)).max() < 0.5  # only the tiny noise moves


def test_talking_photo_and_stall_perturbations():
    from talkqa.features import landmarks as L

    from talkqa.experts.motion_features import fill_invalid

    clip = landmark_clip(64)
    a, p = fill_invalid(clip.aligned, clip.face_valid), clip.head_pose
    rng = np.random.default_rng(1)
    still, pose = PERTURBATIONS["still_head"](a, p, rng)
    upper = list(L.UPPER_FACE)
    lips = list(L.MOUTH)
    assert still[:, upper].std(axis=0).mean() < 0.5 * a[:, upper].std(axis=0).mean()  # brows and eyes held
    assert pose.std(axis=0).mean() < 0.5 * p.std(axis=0).mean()  # head pose held (tracker jitter only)
    # the lips keep the real sequence's motion, relative to their own mean
    np.testing.assert_allclose(np.diff(still[:, lips], axis=0), np.diff(a[:, lips], axis=0), atol=1e-4)
    stalled, spose = PERTURBATIONS["stalled"](a, p, rng)
    held = np.abs(np.diff(stalled, axis=0)).max(axis=(1, 2)) < 0.5
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, held.astype(int), 0])))[::2]  # lengths of the held runs
    assert runs.max() >= 7  # at least 8 frames held in a row
    assert held.sum() < len(held) - 8  # the rest of the window moves


def test_untrained_expert_contract_and_round_trip(tmp_path):
    expert = MotionExpert(MotionConfig(hidden=16))
    expert.model_ = expert._new_model().eval()
    clip = landmark_clip(30)  # 1.2 s: short clips work
    tokens = expert.embed(clip)
    assert tokens.emb.shape == (len(tokens.t_start), expert.dim) == (6, 16)
    assert np.all(np.diff(tokens.t_start) > 0) and tokens.t_end[-1] == pytest.approx(1.2)
    assert np.isfinite(tokens.scalars["naturalness_logit"])
    expert.save(tmp_path / "w")
    again = MotionExpert(MotionConfig(hidden=16, weights=str(tmp_path / "w"))).load()
    np.testing.assert_allclose(again.embed(clip).emb, tokens.emb, atol=2e-2)  # weights are stored in float16
    assert (tmp_path / "w" / "model_card.md").is_file() and (tmp_path / "w" / "config.yaml").is_file()


def test_missing_weights_are_a_clear_error(tmp_path):
    from talkqa.errors import TalkqaError

    with pytest.raises(TalkqaError, match="train-expert motion"):
        MotionExpert(MotionConfig(weights=str(tmp_path / "none"))).load()


@pytest.fixture(scope="module")
def rendered_clip(tmp_path_factory):
    from talkqa.features.preprocess import preprocess
    from talkqa.corpus.synth import synth_corpus

    out = tmp_path_factory.mktemp("synth")
    m = synth_corpus(out, n=1, duration_s=3.0, workers=1)
    return preprocess(out / m.loc[0, "video"])


def test_shipped_weights_prefer_real_motion_over_frozen(rendered_clip):
    expert = MotionExpert().load()
    natural = expert.embed(rendered_clip).scalars["naturalness_logit"]
    a, p = PERTURBATIONS["frozen"](rendered_clip.aligned, rendered_clip.head_pose, np.random.default_rng(0))
    rendered_clip.aligned, rendered_clip.head_pose = a, p
    frozen = expert.embed(rendered_clip).scalars["naturalness_logit"]
    assert frozen < natural - 2.0
