"""The visual family on the astronaut portrait with picture degradations of known, graded strength
(helpers_visual): each measure must move the right way at every step, not just at the extremes."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from helpers_families import neutral_mesh
from helpers_visual import (
    add_face_noise,
    alternate_brightness,
    block_quantise,
    blur_face,
    drifting,
    paste_mouth,
    portrait_clip,
    shift_face_colour,
)
from talkqa.features.families import FAMILIES, frame_windows
from talkqa.features.frame_stats import EVERY as FRAME_STATS_EVERY
from talkqa.features.frame_stats import FRAME_STATS, block_period, frame_stats
from talkqa.features.nss import NSSModel, face_nss_features, load_model
from talkqa.features.texture import nss_feature_names

N_FRAMES = 30


@pytest.fixture(scope="module")
def portrait(astronaut):
    """(frames, meshes) of the portrait drifting by whole pixels for N_FRAMES frames."""
    return drifting(astronaut, neutral_mesh(astronaut).astype(np.float32), N_FRAMES)


def visual(frames, meshes, **params) -> dict[str, float]:
    clip = portrait_clip(frames, meshes)
    out = FAMILIES.create("visual", **params).extract(clip, frame_windows(clip.n_frames, clip.fps))
    return {k.split("__", 1)[1]: v for k, v in out.clip.items()}


def graded(portrait, degrade, levels) -> list[dict[str, float]]:
    frames, meshes = portrait
    return [visual(np.stack([degrade(f, m, level) for f, m in zip(frames, meshes)]), meshes) for level in levels]


def assert_monotone(rows: list[dict], name: str, increasing: bool) -> None:
    values = [r[name] for r in rows]
    steps = np.diff(values)
    assert np.isfinite(values).all() and ((steps > 0) if increasing else (steps < 0)).all(), f"{name}: {values}"


def test_blurred_face_loses_sharpness(portrait):
    rows = graded(portrait, blur_face, [0, 1, 2, 3])
    for name in ("face_lapvar", "face_grad_energy", "mouth_lapvar", "mouth_grad_energy", "face_fine_share",
                 "teeth_detail"):
        assert_monotone(rows, name, increasing=False)
    for name in ("face_blur_effect", "mouth_blur_effect"):
        assert_monotone(rows, name, increasing=True)
    # The NSS reference is faces of real talking-head video, softer than this photograph: the first
    # pixel of blur makes the face no less natural, blur beyond that moves it away.
    assert_monotone(rows[1:], "nss_distance", increasing=True)
    # (with the reference refit on the training speakers only, sigma 3 lands ~1.4x the sharp photo)
    assert rows[-1]["nss_distance"] > 1.3 * rows[0]["nss_distance"]


def test_surround_detail_sees_a_face_softer_than_its_frame_not_a_soft_frame(portrait):
    """A face blurred on a sharp frame loses its finer detail against the hair, suit and background around it;
    the whole frame blurred alike (a soft or upscaled source) lowers the absolute readings as much but not
    this one."""
    face = graded(portrait, blur_face, [0, 1, 2, 3])
    assert_monotone(face, "surround_detail", increasing=False)
    assert face[-1]["surround_detail"] < 0.3 * face[0]["surround_detail"]
    whole = graded(portrait, lambda f, m, s: cv2.GaussianBlur(f, (0, 0), s) if s else f.copy(), [0, 1, 2, 3])
    assert_monotone(whole, "face_fine_share", increasing=False)
    assert min(r["surround_detail"] for r in whole) > 0.9 * whole[0]["surround_detail"]
    assert whole[2]["surround_detail"] > 3 * face[2]["surround_detail"]


def test_blurred_mouth_pasted_into_a_sharp_face(portrait):
    rows = graded(portrait, lambda f, m, s: paste_mouth(f, m, blur_sigma=s), [0, 0.5, 1, 2])
    for name in ("mouth_face_detail_ratio", "mouth_face_fine_ratio", "teeth_detail", "mouth_lapvar"):
        assert_monotone(rows, name, increasing=False)
    # the upper face is untouched
    assert np.ptp([r["face_fine_share"] for r in rows]) < 0.1


def test_low_resolution_mouth_pasted_into_a_sharp_face_leaves_a_seam(portrait):
    rows = graded(portrait, lambda f, m, k: paste_mouth(f, m, downscale=k), [1, 3, 4, 6])
    assert_monotone(rows, "mouth_face_detail_ratio", increasing=False)
    assert_monotone(rows, "seam_strength", increasing=True)
    assert rows[0]["seam_strength"] < 1.5 < rows[-1]["seam_strength"] - 0.5


def test_block_coding_raises_blockiness(portrait):
    rows = graded(portrait, lambda f, m, q: block_quantise(f, q), [0, 30, 45, 60])
    assert_monotone(rows, "blockiness", increasing=True)
    assert rows[0]["blockiness"] < 1.2 < rows[-1]["blockiness"]


def test_alternating_brightness_raises_flicker(portrait):
    frames, meshes = portrait
    rows = [visual(alternate_brightness(frames, a), meshes) for a in (0.0, 0.02, 0.05, 0.1)]
    assert_monotone(rows, "flicker", increasing=True)
    # 10 % brighter every other frame: each frame is 10 % off the mean of its neighbours; / sqrt(1.5)
    assert rows[0]["flicker"] < 0.5 and 6 < rows[-1]["flicker"] < 9


def test_colour_shifted_face_raises_face_neck_mismatch(portrait):
    rows = graded(portrait, shift_face_colour, [0, 0.05, 0.1, 0.2])
    assert_monotone(rows, "neck_chroma_delta", increasing=True)


def test_noise_that_changes_every_frame_raises_texture_instability(portrait):
    rng = np.random.default_rng(0)
    rows = graded(portrait, lambda f, m, sigma: add_face_noise(f, m, sigma, rng), [0, 2, 4, 8])
    assert_monotone(rows, "texture_instability", increasing=True)
    assert rows[0]["texture_instability"] < 0.05  # whole-pixel drift alone: aligned crops repeat exactly


def test_colour_drift_over_the_clip(portrait):
    frames, meshes = portrait
    steady = visual(frames, meshes)
    ramp = np.stack([shift_face_colour(f, m, 0.15 * i / (N_FRAMES - 1))
                     for i, (f, m) in enumerate(zip(frames, meshes))])
    drifting_colour = visual(ramp, meshes)
    assert steady["color_drift"] < 1.0 < drifting_colour["color_drift"]


def test_frames_without_a_face_and_clips_without_frame_stats(portrait):
    frames, meshes = portrait
    clip = portrait_clip(frames, meshes)
    fam = FAMILIES.create("visual")
    win = frame_windows(clip.n_frames, clip.fps)
    old = fam.extract(dataclasses.replace(clip, frame_stats=None), win).clip  # a track file from before frame stats
    assert np.isnan(old["visual__seam_strength"]) and np.isnan(old["visual__face_fine_share"])
    assert np.isfinite(old["visual__face_lapvar"]) and np.isfinite(old["visual__nss_distance"])
    lost = dataclasses.replace(clip, face_valid=np.zeros(clip.n_frames, bool))
    out = fam.extract(lost, win)
    assert np.isnan(list(out.clip.values())).all()
    assert all(np.isnan(v).all() for v in out.windows.values())
    half = clip.face_valid.copy()
    half[::2] = False
    part = fam.extract(dataclasses.replace(clip, face_valid=half), win).clip
    assert np.isfinite(part["visual__face_lapvar"]) and np.isfinite(part["visual__seam_strength"])


def test_frame_stats_without_room_below_the_chin(astronaut):
    mesh = neutral_mesh(astronaut)
    chin_y = int(mesh[152, 1])
    cut = np.ascontiguousarray(astronaut[: chin_y + 5])
    stats = dict(zip(FRAME_STATS, frame_stats(cut, mesh, 8)))
    assert np.isnan(stats["neck_chroma_delta"]) and np.isfinite(stats["face_fine_share"])
    assert np.isnan(frame_stats(astronaut, np.full((478, 3), np.nan), 8)).all()


@pytest.mark.parametrize("frame_w, source_w, period", [(640, 640, 8), (640, 1280, 4), (640, 1920, 0), (480, 720, 0)])
def test_block_period(frame_w, source_w, period):
    assert block_period(frame_w, source_w) == period


def test_nss_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    names = nss_feature_names()
    x = rng.normal(size=(400, len(names))) @ rng.normal(size=(len(names), len(names)))
    model = NSSModel.fit(x, {"face_size": 96, "clips": ["a"]})
    model.save(tmp_path / "m.npz")
    back = NSSModel.load(tmp_path / "m.npz")
    np.testing.assert_allclose(back.distance(x[:5]), model.distance(x[:5]))
    assert back.meta["clips"] == ["a"] and back.meta["n_frames"] == 400
    assert 0.7 < np.median(model.distance(x)) < 1.3  # a typical reference row reads about 1
    with pytest.raises(FileNotFoundError, match="fit_face_nss"):
        NSSModel.load(tmp_path / "missing.npz")


def test_shipped_nss_model_says_what_it_was_fitted_on():
    model = load_model()
    meta = model.meta
    assert meta["face_size"] == 96 and meta["features"] == list(nss_feature_names())
    assert meta["clips"] and {c["speaker"] for c in meta["clips"]} <= set(meta["speakers"])
    assert all(c["clip_id"].startswith("real/") for c in meta["clips"])
    assert model.precision.shape == (len(meta["features"]),) * 2


def test_nss_features_of_a_face_are_finite(portrait):
    frames, meshes = portrait
    clip = portrait_clip(frames[:4], meshes[:4])
    feats = face_nss_features(clip.face_crops)
    assert feats.shape == (4, len(nss_feature_names())) and np.isfinite(feats).all()


# ------------------------------------------------------------- end to end, through the real preprocessing
@pytest.mark.slow
def test_rendered_video_through_preprocessing(astronaut, tmp_path):
    """Rendered talking head -> H.264 file -> preprocess (MediaPipe) -> visual family: the analysis-frame
    statistics exist, survive the track file, and a blurred copy of the video is less sharp by every
    measure; a track file written before frame statistics existed still loads."""
    import cv2

    from conftest import speech_like
    from talkqa.corpus.media import write_clip
    from talkqa.corpus.render import TalkingHeadRenderer
    from talkqa.corpus.speech import controls_from_audio
    from talkqa.features.clip import PreprocessedClip
    from talkqa.features.preprocess import preprocess

    n, fps, sr = 50, 25.0, 16000
    audio = speech_like(n / fps, seed=2)
    frames = TalkingHeadRenderer(astronaut, size=256).prepare().render(
        controls_from_audio(audio, sr, fps, np.random.default_rng(0), n_frames=n))
    sharp = preprocess(write_clip(tmp_path / "sharp.mp4", frames, fps, audio, sr))
    blurred = preprocess(write_clip(tmp_path / "blur.mp4", np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames]),
                                    fps, audio, sr))
    assert set(sharp.frame_stats) == set(FRAME_STATS)
    every = FRAME_STATS_EVERY
    measured = np.isfinite(sharp.frame_stats["face_fine_share"])
    assert measured[::every].mean() > 0.9 and not measured[1::every].any()

    fam = FAMILIES.create("visual")
    win = frame_windows(sharp.n_frames, sharp.fps)
    a = fam.extract(sharp, win).clip
    b = fam.extract(blurred, win).clip
    for name in ("face_lapvar", "mouth_lapvar", "face_fine_share", "mouth_fine_share"):
        assert b[f"visual__{name}"] < a[f"visual__{name}"], name
    assert b["visual__face_blur_effect"] > a["visual__face_blur_effect"]

    sharp.save(tmp_path / "track.npz")
    back = PreprocessedClip.load(tmp_path / "track.npz")
    for k, v in sharp.frame_stats.items():
        np.testing.assert_array_equal(back.frame_stats[k], v)
    with np.load(tmp_path / "track.npz") as z:  # the same file as written before frame statistics existed
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if not k.startswith("frame_stats__")})
    old = PreprocessedClip.load(tmp_path / "old.npz")
    assert old.frame_stats is None
    c = fam.extract(old, win).clip
    assert np.isnan(c["visual__seam_strength"]) and c["visual__face_lapvar"] == a["visual__face_lapvar"]


def test_upper_change_sees_the_picture_above_the_mouth_not_the_mesh(astronaut):
    """The same picture under a jittered mesh changes by nothing; a head that moved by a pixel or two, or
    closed its eyes, does; a new mouth alone barely does; no earlier frame, no reading."""
    import cv2

    from talkqa.features import landmarks as L
    from talkqa.features.frame_stats import upper_change

    mesh = neutral_mesh(astronaut).astype(np.float32)
    i = FRAME_STATS.index("upper_change")
    jittered = mesh + np.random.default_rng(0).normal(0, 0.7, mesh.shape).astype(np.float32)
    assert frame_stats(astronaut, jittered, 8, before=astronaut)[i] == 0.0
    assert np.isnan(frame_stats(astronaut, mesh, 8)[i])
    moved = cv2.warpAffine(astronaut, np.float32([[1, 0, 1.5], [0, 1, 1.0]]), astronaut.shape[1::-1],
                           borderMode=cv2.BORDER_REFLECT)
    mouth_only = astronaut.copy()
    lips = mesh[list(L.OUTER_LIPS), :2]
    (x0, y0), (x1, y1) = lips.min(0).astype(int) - 4, lips.max(0).astype(int) + 4
    mouth_only[y0:y1, x0:x1] = 255 - mouth_only[y0:y1, x0:x1]  # the most a mouth can change
    head = frame_stats(moved, mesh, 8, before=astronaut)[i]
    mouth = frame_stats(mouth_only, mesh, 8, before=astronaut)[i]
    assert head > 1.0 and mouth < 0.2 * head, (head, mouth)
    assert np.isnan(upper_change(astronaut, astronaut, None))


def test_static_blocks_counts_what_the_coder_copied_forward(astronaut):
    """A block whose pixels all stayed put since the frame before counts as still, on the frame's own
    4-px grid; a repeated frame and a frame without the one before read nothing. Through a real encoder, a
    slowly drifting noisy portrait keeps more blocks still the coarser the quantiser."""
    from helpers_visual import drifting

    from talkqa.features.codec import h264_roundtrip
    from talkqa.features.frame_stats import static_blocks

    i = FRAME_STATS.index("static_blocks")
    mesh = neutral_mesh(astronaut).astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = np.clip(astronaut + rng.normal(0, 3, astronaut.shape), 0, 255).astype(np.uint8)
    assert frame_stats(noisy, mesh, 8, previous=astronaut)[i] == 0.0  # noise touches every block
    assert np.isnan(frame_stats(astronaut, mesh, 8, previous=astronaut)[i])  # a repeated frame
    assert np.isnan(frame_stats(astronaut, mesh, 8)[i])

    grey = rng.uniform(0, 255, (40, 40)).astype(np.float32)
    half = grey.copy()
    half[:, 20:] += 5.0  # the right half changed, the left half copied
    assert static_blocks(half, grey, (0, 0)) == 0.5
    # the region starts 2 px into a block: its partial blocks are left out, the whole ones split 4 : 5
    assert static_blocks(half[:, 2:], grey[:, 2:], (2, 0)) == pytest.approx(4 / 9)

    frames, meshes = drifting(astronaut, mesh, 12)
    frames = np.clip(frames + rng.normal(0, 2, frames.shape), 0, 255).astype(np.uint8)  # sensor noise

    def still(qp):
        coded = h264_roundtrip(frames, qp) if qp else frames
        return np.nanmedian([frame_stats(coded[t], meshes[t], 8, previous=coded[t - 1])[i] for t in range(1, 12)])

    levels = [still(qp) for qp in (0, 20, 44, 51)]
    assert levels[0] == 0.0 and levels[1] < 0.02, levels
    assert levels[1] < levels[2] < levels[3] and levels[3] > 0.5, levels


def test_heavy_coding_logit_reads_the_coder_only_where_its_grid_shows_and_the_reader_agrees(portrait):
    """heavy_coding_logit is the codec reading of a clip whose coding grid shows (blockiness >= GRID_BLOCKINESS)
    and which the reader calls coded (codec_logit >= 0), NaN elsewhere: a blur, which the reader takes for coding
    but which smooths the grid away, gives no reading, nor does a blocky still frame or a blocky source the reader
    calls uncoded. Both readings come from the analysis-frame statistics."""
    from talkqa.features.families.visual import GRID_BLOCKINESS

    frames, meshes = portrait
    clip = portrait_clip(frames, meshes)
    fam = FAMILIES.create("visual")
    win = frame_windows(clip.n_frames, clip.fps)
    assert "visual__heavy_coding_logit" in fam.columns() and "heavy_coding_logit" in fam.conditional_features

    def reading(blockiness, codec):
        stats = dict(clip.frame_stats, blockiness=np.full(clip.n_frames, blockiness, np.float32),
                     codec_logit=np.full(clip.n_frames, codec, np.float32))
        out = fam.extract(dataclasses.replace(clip, frame_stats=stats), win).clip
        return out["visual__heavy_coding_logit"], out["visual__codec_logit"], out["visual__blockiness"]

    heavy, codec, blocky = reading(1.40, 1.5)  # coded hard: the grid shows and the reader says squeezed
    assert heavy == pytest.approx(1.5) and codec == pytest.approx(1.5) and blocky == pytest.approx(1.4)
    assert reading(GRID_BLOCKINESS, 0.0)[0] == pytest.approx(0.0, abs=1e-6)  # both thresholds included
    assert np.isnan(reading(1.08, 2.5)[0])  # a blur: the reader says squeezed, no grid
    assert np.isnan(reading(1.60, -3.0)[0])  # a still frame refined by the coder: a grid, no squeeze
    assert np.isnan(reading(1.30, -0.3)[0])  # a small source coded mildly: the reader says not coded
    assert np.isnan(reading(np.nan, 1.5)[0])  # no blockiness measured: no reading
    # the clip as rendered (a sharp, uncoded portrait) reads no heavy coding
    assert np.isnan(fam.extract(clip, win).clip["visual__heavy_coding_logit"])
