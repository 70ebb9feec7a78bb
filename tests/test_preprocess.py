"""Preprocessing: the PreprocessedClip contract on tiny synthetic clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clip_factory import bad_inputs, face_frames
from conftest import speech_like
from features.align import template
from features.clip import N_LANDMARKS, PreprocessedClip
from features.landmarks import ALIGN_ANCHORS
from features.preprocess import preprocess
from talkqa.config import PreprocessConfig
from talkqa.corpus.media import write_clip
from talkqa.errors import ClipError


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut):
    return bad_inputs(tmp_path_factory.mktemp("pre"), astronaut)


@pytest.fixture(scope="module")
def good(inputs):
    return preprocess(inputs["good"][0])


def test_contract_shapes_and_dtypes(good):
    cfg = PreprocessConfig()
    T = good.n_frames
    assert T == 40 and good.fps == 25
    assert good.face_valid.shape == (T,) and good.face_valid.all()
    assert good.landmarks.shape == (T, N_LANDMARKS, 3) and good.landmarks.dtype == np.float32
    assert good.aligned.shape == (T, N_LANDMARKS, 2)
    assert good.head_pose.shape == (T, 3)
    assert good.face_crops.shape == (T, cfg.face_size, cfg.face_size, 3) and good.face_crops.dtype == np.uint8
    assert good.mouth_crops.shape == (T, *cfg.mouth_size, 3)
    assert good.bbox.shape == (T, 4)
    assert good.audio.dtype == np.float32 and len(good.audio) == T * good.hop
    assert good.vad.shape == (T,) and good.vad.any() and not good.vad.all()
    assert np.isfinite(good.loudness_lufs)
    assert good.face_crops.std() > 10  # real image content, not blank


def test_alignment_puts_anchors_on_the_template(good):
    tmpl = template(PreprocessConfig().face_size)
    err = np.linalg.norm(good.aligned[:, list(ALIGN_ANCHORS)] - tmpl[None], axis=-1)
    assert np.median(err) < 4.0  # pixels in a 96 px crop


def test_save_load_round_trip(good, tmp_path):
    good.save(tmp_path / "c.npz", {"lipsync__aperture": np.arange(good.n_frames)})
    back = PreprocessedClip.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.aligned, good.aligned)
    np.testing.assert_array_equal(back.mouth_crops, good.mouth_crops)
    np.testing.assert_array_equal(back.audio, good.audio)
    assert back.info == good.info and back.warnings == good.warnings
    assert PreprocessedClip.load_series(tmp_path / "c.npz")["lipsync__aperture"].shape == (good.n_frames,)


@pytest.mark.parametrize("name,frames", [("fps60", 40), ("audio_8k", 40), ("audio_48k_stereo", 40), ("frame_4k", 28),
                                         ("portrait_1080x1920", 30)])
def test_resampled_to_the_analysis_clock(inputs, name, frames):
    clip = preprocess(inputs[name][0])
    assert clip.n_frames == frames
    assert len(clip.audio) == frames * clip.hop
    assert max(clip.frame_size) <= PreprocessConfig().analysis_max_side
    assert clip.face_valid.mean() > 0.9


def test_vfr_follows_timestamps(inputs):
    clip = preprocess(inputs["vfr"][0])
    # the VFR fixture spans about 2.2 s: 60 frames with 20-60 ms gaps
    assert abs(clip.n_frames - round(clip.info["duration_s"] * 25)) <= 1
    assert 50 <= clip.n_frames <= 62


def test_audio_channels_and_rates_are_recorded(inputs):
    clip = preprocess(inputs["audio_48k_stereo"][0])
    assert clip.info["audio_sr_src"] == 48000 and clip.info["audio_channels_src"] == 2


def test_partial_face_two_faces_and_black_frames(inputs, tmp_path, astronaut):
    half = preprocess(inputs["face_in_part"][0])
    assert 0.4 <= half.info["face_coverage"] <= 0.6
    assert np.isnan(half.landmarks[~half.face_valid]).all()
    two = preprocess(inputs["two_faces"][0])
    assert two.info["n_tracks"] == 2
    assert two.bbox[0, 0] < 256  # the bigger face on the left is the main speaker
    frames = face_frames(astronaut, 40)
    frames[10:15] = 0
    clip = preprocess(write_clip(tmp_path / "black.mp4", frames, 25, speech_like(1.6), 16000))
    assert clip.info["n_black"] == 5 and not clip.face_valid[10:15].any()


def test_roll_follows_image_rotation(tmp_path, astronaut):
    def rotated(angle):
        frames = face_frames(astronaut, 30)
        h, w = frames.shape[1:3]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        return np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in frames])

    r0 = preprocess(write_clip(tmp_path / "r0.mp4", rotated(0), 25)).head_pose[:, 2].mean()
    r20 = preprocess(write_clip(tmp_path / "r20.mp4", rotated(20), 25)).head_pose[:, 2].mean()
    # cv2 rotates counter-clockwise for positive angles: the image-right eye rises, roll decreases
    assert abs((r0 - r20) - 20) < 5


@pytest.mark.parametrize("name", ["missing_path", "directory", "zero_bytes", "truncated", "text_as_mp4", "audio_only",
                                  "no_face", "one_frame", "half_second"])
def test_bad_inputs_raise_clip_errors(inputs, name):
    path, code = inputs[name]
    with pytest.raises(ClipError) as info:
        preprocess(path)
    assert info.value.code == code
    assert str(path) in str(info.value)


def test_separate_audio_file_overrides_the_track(inputs):
    clip = preprocess(inputs["no_audio_track"][0], audio_path=inputs["good"][0])
    assert clip.audio is not None and clip.vad.any()
