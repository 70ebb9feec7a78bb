"""Preprocessing: the PreprocessedClip contract on tiny synthetic clips (the bundled astronaut portrait)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clip_factory import bad_inputs, face_frames, noise_frames
from conftest import speech_like
from helpers_preprocess import add_cover_art, corrupt_packets, dominant_freq, remux, tone, truncate
from talkqa.features.align import POSE_POINTS, POSE_REFERENCE, head_pose, template
from talkqa.features.audio_prep import vad_per_frame
from talkqa.features.clip import N_LANDMARKS, PreprocessedClip
from talkqa.features.decode import on_clock
from talkqa.features.landmarks import ALIGN_ANCHORS
from talkqa.features.preprocess import preprocess
from talkqa.config import PreprocessConfig
from talkqa.corpus.media import write_clip
from talkqa.errors import ClipError

SR, FPS = 16000, 25
INFO_KEYS = {"src_fps", "src_width", "src_height", "duration_s", "n_src_frames", "n_corrupt", "n_black",
             "face_coverage", "n_tracks", "audio_sr_src", "audio_channels_src", "silent_audio"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut):
    return bad_inputs(tmp_path_factory.mktemp("pre"), astronaut)


@pytest.fixture(scope="module")
def good(inputs):
    return preprocess(inputs["good"][0])


@pytest.fixture(scope="module")
def small_faces(astronaut):
    """40 frames (1.6 s) of a drifting astronaut, 192 px: the cheapest clip MediaPipe still meshes well."""
    return face_frames(astronaut, 40, (192, 192))


# ---------------------------------------------------------------------------------------------- contract
def test_contract_shapes_and_dtypes(good):
    cfg = PreprocessConfig()
    T = good.n_frames
    assert T == 40 and good.fps == 25 and good.clip_id == "good"
    assert good.face_valid.shape == (T,) and good.face_valid.dtype == bool and good.face_valid.all()
    assert good.landmarks.shape == (T, N_LANDMARKS, 3) and good.landmarks.dtype == np.float32
    assert good.aligned.shape == (T, N_LANDMARKS, 2) and good.aligned.dtype == np.float32
    assert good.head_pose.shape == (T, 3) and good.head_pose.dtype == np.float32
    assert good.face_crops.shape == (T, cfg.face_size, cfg.face_size, 3) and good.face_crops.dtype == np.uint8
    assert good.mouth_crops.shape == (T, *cfg.mouth_size, 3) and good.mouth_crops.dtype == np.uint8
    assert good.bbox.shape == (T, 4) and good.bbox.dtype == np.float32
    assert good.frame_diff.shape == (T,) and np.isnan(good.frame_diff[0]) and np.isfinite(good.frame_diff[1:]).all()
    assert good.audio.dtype == np.float32 and good.audio.shape == (T * good.hop,)
    assert good.audio_norm.dtype == np.float32 and good.audio_norm.shape == good.audio.shape
    assert good.vad.shape == (T,) and good.vad.dtype == bool and good.vad.any() and not good.vad.all()
    assert np.isfinite(good.loudness_lufs)
    assert INFO_KEYS <= set(good.info) and good.warnings == []
    assert good.face_crops.std() > 10  # real image content, not blank
    # landmarks lie inside their box, in analysis-frame pixels
    x, y = good.landmarks[..., 0], good.landmarks[..., 1]
    assert (x.mean(1) > good.bbox[:, 0]).all() and (x.mean(1) < good.bbox[:, 2]).all()
    assert (y.min() >= 0) and (x.max() <= good.frame_size[0])


def test_alignment_puts_anchors_on_the_template(good):
    tmpl = template(PreprocessConfig().face_size)
    err = np.linalg.norm(good.aligned[:, list(ALIGN_ANCHORS)] - tmpl[None], axis=-1)
    assert np.median(err) < 4.0  # pixels in a 96 px crop


def test_loudness_is_normalised(good):
    import pyloudnorm

    measured = pyloudnorm.Meter(SR).integrated_loudness(good.audio_norm.astype(np.float64))
    assert abs(measured - PreprocessConfig().target_lufs) < 1.0
    assert np.abs(good.audio_norm).max() <= 1.0


def test_save_load_round_trip(good, tmp_path):
    good.save(tmp_path / "c.npz", {"lipsync__aperture": np.arange(good.n_frames)})
    back = PreprocessedClip.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.aligned, good.aligned)
    np.testing.assert_array_equal(back.mouth_crops, good.mouth_crops)
    np.testing.assert_array_equal(back.audio, good.audio)
    assert back.info == good.info and back.warnings == good.warnings
    assert PreprocessedClip.load_series(tmp_path / "c.npz")["lipsync__aperture"].shape == (good.n_frames,)


# ------------------------------------------------------------------------------------------ the clock
def test_clock_repeats_and_drops_by_timestamp():
    # 60 fps -> 25 fps: output k shows the source frame at or just before k/25 s
    src = [(i / 60, i) for i in range(96)]
    assert list(on_clock(src, 25, tail=1 / 60)) == [int(np.floor(k * 60 / 25 + 1e-9)) for k in range(40)]
    # irregular times: a frame repeats until the next one is due; a 1-frame source gives 1 frame
    assert list(on_clock([(0.0, "a"), (0.1, "b"), (0.12, "c")], 25, tail=0.04)) == ["a", "a", "a", "c"]
    assert list(on_clock([(5.0, "only")], 25)) == ["only"]
    assert list(on_clock([], 25)) == []


@pytest.mark.parametrize("name,frames", [("fps60", 40), ("audio_8k", 40), ("audio_48k_stereo", 40), ("frame_4k", 28),
                                         ("portrait_1080x1920", 30), ("spaces_non_ascii", 40)])
def test_resampled_to_the_analysis_clock(inputs, name, frames):
    clip = preprocess(inputs[name][0])
    assert clip.n_frames == frames
    assert len(clip.audio) == frames * clip.hop
    assert max(clip.frame_size) <= PreprocessConfig().analysis_max_side
    assert clip.face_valid.mean() > 0.9


def test_ntsc_rate_and_portrait_shape(tmp_path, astronaut):
    frames = face_frames(astronaut, 48, (256, 144))  # 48 frames at 29.97 fps = 1.6016 s
    clip = preprocess(write_clip(tmp_path / "ntsc.mp4", frames, 30000 / 1001))
    assert clip.n_frames == 40 and clip.frame_size == (144, 256)
    assert abs(clip.info["src_fps"] - 29.97) < 0.01 and clip.info["src_width"] == 144


def test_vfr_follows_timestamps(inputs):
    clip = preprocess(inputs["vfr"][0])
    # the VFR fixture spans about 2.2 s: 60 frames with 20-60 ms gaps
    assert abs(clip.n_frames - round(clip.info["duration_s"] * 25)) <= 1
    assert 50 <= clip.n_frames <= 62


def test_rotation_metadata_is_applied(tmp_path, small_faces):
    stored = np.ascontiguousarray(np.rot90(small_faces[:, :, :128], -1, axes=(1, 2)))  # 128x192 stored on its side
    plain = write_clip(tmp_path / "side.mp4", stored, FPS)
    clip = preprocess(remux(plain, tmp_path / "rotated.mp4", rotation=90))
    assert clip.frame_size == (128, 192) and clip.info["rotation"] == 90
    assert clip.face_valid.mean() > 0.9


# ------------------------------------------------------------------------------------------------ audio
def test_audio_rates_and_channels_become_16k_mono(tmp_path, small_faces):
    clip8k = preprocess(write_clip(tmp_path / "a8k.mp4", small_faces, FPS, tone(440, 1.6, 8000), 8000))
    assert clip8k.info["audio_sr_src"] == 8000 and len(clip8k.audio) == 40 * 640
    assert abs(dominant_freq(clip8k.audio[1600:24000], SR) - 440) < 5
    stereo = np.stack([tone(300, 1.6, 48000, 0.4), tone(700, 1.6, 48000, 0.4)], axis=1)
    clip48 = preprocess(write_clip(tmp_path / "a48k.mp4", small_faces, FPS, stereo, 48000))
    assert clip48.info["audio_sr_src"] == 48000 and clip48.info["audio_channels_src"] == 2
    spectrum = np.abs(np.fft.rfft(clip48.audio[1600:24000]))
    freqs = np.fft.rfftfreq(22400, 1 / SR)
    peaks = sorted(freqs[np.argsort(spectrum)[-2:]])
    assert abs(peaks[0] - 300) < 5 and abs(peaks[1] - 700) < 5
    # the mean of the channels: each tone at half its level, no +3 dB boost
    assert 0.35 < np.abs(clip48.audio[1600:24000]).max() < 0.5


def test_audio_sample_zero_is_the_first_video_frame(tmp_path, small_faces):
    click = np.zeros(int(1.6 * 48000), np.float32)
    click[48000 : 48000 + 48] = 0.9  # 1 ms at t = 1.000 s
    made = write_clip(tmp_path / "click.mp4", small_faces, FPS, click, 48000)
    clip = preprocess(made)
    assert abs(int(np.argmax(np.abs(clip.audio) > 0.3)) - SR) <= 16  # within 1 ms
    # an audio stream that starts later on the container clock stays later
    late = preprocess(remux(made, tmp_path / "late.mkv", audio_delay_s=0.2))
    assert abs(int(np.argmax(np.abs(late.audio) > 0.3)) - 1.2 * SR) <= 16


def test_vad_marks_the_frames_that_hold_speech():
    audio = np.zeros(SR * 2, np.float32)
    burst = speech_like(0.4, seed=3)
    audio[SR // 2 : SR // 2 + len(burst)] = burst  # speech in 0.5-0.9 s: frames 12-22
    vad = vad_per_frame(audio, SR, 50, 640, 2)
    assert not vad[:10].any() and not vad[26:].any() and vad[13:21].mean() > 0.6
    # a rate WebRTC VAD does not take is resampled for it
    assert vad_per_frame(audio[::2].copy(), 8000, 50, 320, 2)[13:21].mean() > 0.6


def test_no_audio_track_and_separate_audio_file(inputs):
    clip = preprocess(inputs["no_audio_track"][0])
    assert clip.audio is None and clip.audio_norm is None and clip.vad is None and np.isnan(clip.loudness_lufs)
    assert any("no audio" in w for w in clip.warnings) and clip.info["audio_sr_src"] == 0
    dubbed = preprocess(inputs["no_audio_track"][0], audio_path=inputs["good"][0])
    assert dubbed.audio is not None and dubbed.vad.any() and len(dubbed.audio) == dubbed.n_frames * dubbed.hop


def test_silent_audio_is_kept_and_flagged(inputs):
    clip = preprocess(inputs["silent_audio"][0])
    assert clip.info["silent_audio"] and clip.audio is not None and not clip.vad.any()
    assert np.array_equal(clip.audio_norm, clip.audio)  # nothing to normalise
    assert any("silent" in w for w in clip.warnings)


# ----------------------------------------------------------------------------------------------- faces
def test_partial_face_two_faces_and_black_frames(inputs, tmp_path, small_faces):
    half = preprocess(inputs["face_in_part"][0])
    assert 0.4 <= half.info["face_coverage"] <= 0.6 and any("face found in" in w for w in half.warnings)
    assert np.isnan(half.landmarks[~half.face_valid]).all() and (half.face_crops[~half.face_valid] == 0).all()
    two = preprocess(inputs["two_faces"][0])
    assert two.info["n_tracks"] == 2 and any("faces seen at once" in w for w in two.warnings)
    assert two.bbox[:, 2].max() < 300  # the bigger face on the left is the main speaker
    frames = small_faces.copy()
    frames[10:15] = 0
    clip = preprocess(write_clip(tmp_path / "black.mp4", frames, FPS))
    assert clip.info["n_black"] == 5 and not clip.face_valid[10:15].any() and clip.face_valid[15:].all()


def test_a_face_that_comes_back_keeps_its_track(tmp_path, astronaut):
    frames = face_frames(astronaut, 60, (192, 192))
    frames[20:42] = noise_frames(22, (192, 192), seed=4)  # gone for 0.9 s, longer than a track holds
    clip = preprocess(write_clip(tmp_path / "back.mp4", frames, FPS))
    assert clip.face_valid[:18].all() and clip.face_valid[44:].all()
    assert clip.info["n_tracks"] == 1


def test_head_pose_recovers_known_rotations():
    def rot(axis, deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i] = r[j, j] = c
        r[i, j], r[j, i] = -s, s
        return r

    lm = np.zeros((N_LANDMARKS, 3))
    for axis, index in ((1, 0), (0, 1), (2, 2)):  # turning about y = yaw, about x = pitch, about z = roll
        for deg in (-25, 10, 30):
            lm[list(POSE_POINTS)] = 20 * POSE_REFERENCE @ rot(axis, deg).T + [300, 200, 0]
            pose = head_pose(lm.astype(np.float32))
            assert abs(pose[index] - deg) < 0.5 and np.abs(np.delete(pose, index)).max() < 0.5


def test_roll_follows_image_rotation_and_flip(tmp_path, small_faces):
    def turned(angle, flip=False):
        h, w = small_faces.shape[1:3]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out = np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in small_faces[:30]])
        return np.ascontiguousarray(out[:, :, ::-1]) if flip else out

    pose = {name: np.nanmean(preprocess(write_clip(tmp_path / f"{name}.mp4", frames, FPS)).head_pose, axis=0)
            for name, frames in (("r0", turned(0)), ("r20", turned(20)), ("flip", turned(0, flip=True)))}
    # cv2 turns counter-clockwise for positive angles: the image-right eye rises, roll decreases
    assert abs((pose["r0"][2] - pose["r20"][2]) - 20) < 5
    # a mirror image mirrors yaw and roll
    assert abs(pose["flip"][2] + pose["r0"][2]) < 3 and abs(pose["flip"][0] + pose["r0"][0]) < 5


# ---------------------------------------------------------------------------------------- damaged input
@pytest.mark.parametrize("name", ["missing_path", "directory", "zero_bytes", "truncated", "text_as_mp4", "audio_only",
                                  "no_face", "one_frame", "half_second"])
def test_bad_inputs_raise_clip_errors(inputs, name):
    path, code = inputs[name]
    with pytest.raises(ClipError) as info:
        preprocess(path)
    assert info.value.code == code
    assert str(path) in str(info.value)


def test_audio_with_cover_art_is_not_a_video(inputs, tmp_path):
    with pytest.raises(ClipError) as info:
        preprocess(add_cover_art(inputs["audio_only"][0], tmp_path / "song.m4a"))
    assert info.value.code == "no_video"


def test_cut_off_end_still_decodes_with_a_warning(tmp_path, astronaut):
    full = write_clip(tmp_path / "full.mp4", face_frames(astronaut, 75, (192, 192)), FPS, speech_like(3.0), SR)
    cut = truncate(remux(full, tmp_path / "faststart.mp4", faststart=True), tmp_path / "cut.mp4", 0.6)
    clip = preprocess(cut)
    assert 25 <= clip.n_frames < 75 and clip.info["truncated"]
    assert any("cut short" in w for w in clip.warnings) and clip.face_valid.mean() > 0.9


def test_corrupt_packets_are_counted_and_skipped(tmp_path, small_faces):
    good = write_clip(tmp_path / "ok.mp4", small_faces, FPS)
    clip = preprocess(corrupt_packets(good, tmp_path / "damaged.mp4", (10, 20, 30)))
    assert clip.n_frames == 40 and clip.info["n_corrupt"] >= 1
    assert any("corrupt" in w for w in clip.warnings) and clip.face_valid.mean() > 0.5


# ------------------------------------------------------------------------------------------- background producer
def test_in_background_yields_every_item_in_order_and_raises_producer_errors():
    from talkqa.features.background import in_background

    assert list(in_background(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad packet")

    got = []
    with pytest.raises(ValueError, match="bad packet"):
        for x in in_background(failing()):
            got.append(x)
    assert got == [1]


def test_in_background_stops_and_closes_the_producer_when_the_consumer_leaves():
    import threading

    from talkqa.features.background import in_background

    closed = threading.Event()
    produced = []

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    for x in in_background(endless(), depth=2):
        if x == 5:
            break
    assert closed.wait(5) and len(produced) <= 5 + 1 + 2 + 1  # taken + in flight + queue depth
    assert not any(t.name == "talkqa-producer" for t in threading.enumerate())
