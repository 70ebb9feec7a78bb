"""Visual-quality artifacts of `talkqa degrade`, each verified by a measurement on a rendered talking
head (256 px, still head, so a box from frame t's landmarks measures the same face part in every
variant): sharpness, detail, seam contrast, flicker, ghost weight, texture energy, teeth detail."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkqa.corpus.artifacts import ARTIFACTS, Sample
from talkqa.corpus.artifacts import visual
from talkqa.corpus.artifacts.regions import EYES, MOUTH, box, inter_ocular
from talkqa.features.landmarks import INNER_LIPS, NOSE_TIP

from conftest import speech_like

N = 50
HOP = 640
VISUAL = sorted(n for n in ARTIFACTS.names() if ARTIFACTS.get(n).__module__ == visual.__name__)


@pytest.fixture(scope="module")
def face(astronaut) -> Sample:
    from talkqa.corpus.render import TalkingHeadRenderer
    from talkqa.corpus.speech import controls_from_audio

    audio = speech_like(N / 25, seed=1)[: N * HOP]
    c = controls_from_audio(audio, 16000, rng=np.random.default_rng(0), n_frames=N)
    for k in ("yaw", "roll", "dx", "dy"):
        c[k] = np.zeros(N, np.float32)
    frames, lm = TalkingHeadRenderer(astronaut, size=256).render_with_landmarks(c)
    return Sample(frames, audio.astype(np.float32), lm.astype(np.float32))


def _apply(name, sample, severity, segment=None, seed=0) -> Sample:
    return ARTIFACTS.create(name).apply(sample, severity, segment, np.random.default_rng(seed))


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)


def _laplacian_var(frames: np.ndarray, boxes) -> float:
    return float(np.mean([cv2.Laplacian(_grey(f[y0:y1, x0:x1]), cv2.CV_64F).var()
                          for f, (x0, y0, x1, y1) in zip(frames, boxes)]))


def _boxes(sample: Sample, idx, pad: float):
    return [box(pts, idx, pad, sample.frames.shape[1:]) for pts in sample.landmarks]


def _strictly_decreasing(xs) -> bool:
    return all(b < a for a, b in zip(xs, xs[1:]))


def _strictly_increasing(xs) -> bool:
    return all(b > a for a, b in zip(xs, xs[1:]))


INNER_FACE = EYES + MOUTH + (NOSE_TIP,)


# ---------------------------------------------------------------------------- contract
def test_declarations():
    assert VISUAL == ["face_blur", "face_box_seam", "frame_ghosting", "mouth_paste_lowres", "teeth_smear",
                      "temporal_flicker", "texture_noise"]
    for name in VISUAL:
        cls = ARTIFACTS.get(name)
        assert cls.kind == "video" and len(cls.levels) >= 3 and "visual_quality" in cls.impacts
        assert 2.0 <= cls.impacts["visual_quality"] <= 3.0


@pytest.mark.parametrize("name", VISUAL)
def test_segment_only_and_input_untouched(name, face):
    before = (face.frames.copy(), face.audio.copy(), face.landmarks.copy())
    a, b = 10, 30
    out = _apply(name, face, 1.0, (a, b))
    assert np.array_equal(out.frames[:a], face.frames[:a]) and np.array_equal(out.frames[b:], face.frames[b:])
    assert not np.array_equal(out.frames[a:b], face.frames[a:b])
    assert np.array_equal(out.audio, face.audio)
    assert np.array_equal(face.frames, before[0]) and np.array_equal(face.audio, before[1])
    assert np.array_equal(face.landmarks, before[2]) and face.log == []
    entry = out.log[-1]
    assert entry["artifact"] == name and (entry["start_frame"], entry["stop_frame"]) == (a, b) and entry["effective"]


@pytest.mark.parametrize("name", VISUAL)
def test_labels_and_frame_exact_diagnostics(name, face):
    from talkqa.corpus.degrade import DegradeRecipe, _label

    recipe = DegradeRecipe.load()
    assert recipe.artifacts.get(name, 0) > 0  # a default `talkqa degrade` run uses it
    a, b = 10, 35
    out = _apply(name, face, 0.5, (a, b))
    row, diags = _label("src/v01", out.log, N, recipe)
    assert row["mos_visual_quality"] < 4.5 and row["mos_overall"] < 4.5
    assert all(row[f"mos_{d}"] == 4.5 for d in ("lip_sync", "expression", "audio_quality", "consistency"))
    assert row[f"severity__{name}"] == 0.5
    assert [d["dimension"] for d in diags] == ["visual_quality"]
    assert diags[0]["start"] * 25 == a and diags[0]["end"] * 25 == b and diags[0]["artifact"] == name


# ---------------------------------------------------------------------------- by measurement
def test_face_blur_sharpness_falls_with_severity(face):
    boxes = _boxes(face, INNER_FACE, 0)
    art = ARTIFACTS.get("face_blur")
    sharp = [_laplacian_var(face.frames, boxes)]
    for sev in art.severities():
        out = _apply("face_blur", face, sev)
        sharp.append(_laplacian_var(out.frames, boxes))
        assert np.array_equal(out.frames[:, :12, :12], face.frames[:, :12, :12])  # the background corner
    assert _strictly_decreasing(sharp), sharp
    assert sharp[-1] < 0.2 * sharp[0]


def test_mouth_paste_lowres_detail_falls_and_upper_face_stays(face):
    mouth = _boxes(face, MOUTH, 0.1 * inter_ocular(face.landmarks[0]))
    eyes = _boxes(face, EYES, 0)
    detail = [_laplacian_var(face.frames, mouth)]
    for sev in ARTIFACTS.get("mouth_paste_lowres").severities():
        out = _apply("mouth_paste_lowres", face, sev)
        detail.append(_laplacian_var(out.frames, mouth))
        for f, g, (x0, y0, x1, y1) in zip(out.frames, face.frames, eyes):
            assert np.array_equal(f[y0:y1, x0:x1], g[y0:y1, x0:x1])  # only the face below the nose is pasted
    assert _strictly_decreasing(detail), detail
    # a face already smaller than the paste resolution is left alone, and labelled clean for it
    small = Sample(face.frames[:, ::4, ::4].copy(), face.audio, face.landmarks / 4)
    assert visual.face_side(small.landmarks[0]) < 96 / 0.8
    out = _apply("mouth_paste_lowres", small, ARTIFACTS.get("mouth_paste_lowres").severities()[0])
    assert not out.log[-1]["effective"] and np.array_equal(out.frames, small.frames)


def _seam_contrast(frames: np.ndarray, sample: Sample) -> float:
    """Mean |gradient| across the box's left, right and bottom edges (between the pixel pairs that
    straddle them), over the box's extent along each edge."""
    vals = []
    for f, pts in zip(frames, sample.landmarks):
        g = _grey(f)
        x0, y0, x1, y1 = (int(round(v)) for v in visual.seam_box(pts, inter_ocular(pts)))
        rows, cols = slice(y0 + 2, y1 - 2), slice(x0 + 2, x1 - 2)
        vals += [np.abs(g[rows, x0] - g[rows, x0 - 1]).mean(), np.abs(g[rows, x1] - g[rows, x1 - 1]).mean(),
                 np.abs(g[y1, cols] - g[y1 - 1, cols]).mean()]
    return float(np.mean(vals))


def test_face_box_seam_contrast_grows_and_offset_is_the_level(face):
    art = ARTIFACTS.get("face_box_seam")
    contrast = [_seam_contrast(face.frames, face)]
    for sev, level in zip(art.severities(), art.levels):
        out = _apply("face_box_seam", face, sev, seed=3)
        contrast.append(_seam_contrast(out.frames, face))
        pts = face.landmarks[0]
        x0, y0, x1, y1 = (int(round(v)) for v in visual.seam_box(pts, inter_ocular(pts)))
        inner = (slice(y0 + 12, y1 - 12), slice(x0 + 12, x1 - 12))
        shift = np.mean(out.frames[0][inner].astype(float) - face.frames[0][inner].astype(float))
        assert abs(shift - out.log[-1]["brightness_offset"]) < 0.2 * level  # (clipping at white teeth costs a little)
        assert abs(out.log[-1]["brightness_offset"]) == level
    assert _strictly_increasing(contrast), contrast
    edges = [ARTIFACTS.create("face_box_seam").begin(face, lv, s, np.random.default_rng(0))["edge"]
             for s, lv in zip(art.severities(), art.levels)]
    assert _strictly_decreasing(edges) and edges[-1] == 0  # the edge hardens up to a hard seam


def test_temporal_flicker_frame_to_frame_change_grows(face):
    boxes = _boxes(face, INNER_FACE, 0)

    def brightness(frames):
        return np.array([_grey(f[y0:y1, x0:x1]).mean() for f, (x0, y0, x1, y1) in zip(frames, boxes)])

    base = brightness(face.frames)
    art = ARTIFACTS.get("temporal_flicker")
    change = [np.abs(np.diff(base)).mean()]
    for sev, level in zip(art.severities(), art.levels):
        out = _apply("temporal_flicker", face, sev, seed=4)
        b = brightness(out.frames)
        change.append(np.abs(np.diff(b)).mean())
        assert 0.7 * level < np.std(b - base) < 1.3 * level  # the injected sd, measured
        assert np.array_equal(out.frames[:, :12, :12], face.frames[:, :12, :12])
    assert _strictly_increasing(change), change


def test_frame_ghosting_blends_the_previous_frame(face):
    art = ARTIFACTS.get("frame_ghosting")
    a, b = 5, 45
    x = face.frames.astype(np.float64)
    residual = []
    for sev, w in zip(art.severities(), art.levels):
        y = _apply("frame_ghosting", face, sev, (a, b)).frames.astype(np.float64)
        # y[t] - x[t] = w (y[t-1] - x[t]): the regression slope is the weight
        d, g = (y[a + 1:b] - x[a + 1:b]).ravel(), (y[a:b - 1] - x[a + 1:b]).ravel()
        assert abs(d @ g / (g @ g) - w) < 0.02
        assert np.abs(y[a] - ((1 - w) * x[a] + w * x[a - 1])).max() <= 0.5  # starts from the unedited frame
        residual.append(np.abs(y[a:b] - x[a:b]).mean())
    assert _strictly_increasing(residual), residual
    still = Sample(np.repeat(face.frames[:1], 10, axis=0), face.audio[: 10 * HOP], face.landmarks[:10])
    assert not _apply("frame_ghosting", still, 1.0).log[-1]["effective"]  # nothing moves: nothing to ghost


def _pattern_seeds(sample) -> dict[str, int]:
    found = {}
    for seed in range(20):
        kind = ARTIFACTS.create("texture_noise").begin(sample, 1.0, 1.0, np.random.default_rng(seed))["pattern"]
        found.setdefault(kind, seed)
    return found


def test_texture_noise_high_frequency_energy_grows(face):
    face = Sample(face.frames[::5], face.audio[: N // 5 * HOP], face.landmarks[::5])  # 10 frames are enough here
    boxes = _boxes(face, INNER_FACE, 0)

    def hf(frames):  # RMS of what a 1.5 px blur removes
        crops = [_grey(f[y0:y1, x0:x1]) for f, (x0, y0, x1, y1) in zip(frames, boxes)]
        return float(np.mean([np.sqrt(np.mean((c - cv2.GaussianBlur(c, (0, 0), 1.5)) ** 2)) for c in crops]))

    seeds = _pattern_seeds(face)
    assert set(seeds) == {"noise", "checkerboard"}
    art = ARTIFACTS.get("texture_noise")
    for kind, seed in seeds.items():
        energy = [hf(face.frames)]
        for sev in art.severities():
            out = _apply("texture_noise", face, sev, seed=seed)
            assert out.log[-1]["pattern"].startswith(kind)
            energy.append(hf(out.frames))
        assert _strictly_increasing(energy), (kind, energy)
    # the checkerboard sticks to the (still) face; the noise is fresh every frame
    out = _apply("texture_noise", face, 1.0, seed=seeds["checkerboard"])
    x0, y0, x1, y1 = box(face.landmarks[0], EYES, 0, face.frames.shape[1:])
    diff = out.frames[:, y0:y1, x0:x1].astype(float) - face.frames[:, y0:y1, x0:x1].astype(float)
    assert np.median(np.abs(diff[1:] - diff[:-1])) <= 1.0
    assert np.sqrt(np.mean(diff ** 2)) > 0.25 * art.levels[-1]  # (the bilinear paste of a fine pattern dims it)
    noisy = _apply("texture_noise", face, 1.0, seed=seeds["noise"])
    grain = noisy.frames[:, y0:y1, x0:x1].astype(float) - face.frames[:, y0:y1, x0:x1].astype(float)
    assert np.median(np.abs(grain[1:] - grain[:-1])) > 0.5 * art.levels[-1]


def test_teeth_smear_removes_teeth_detail_only_when_open(face):
    mouth = _boxes(face, INNER_LIPS, 0)
    assert min(visual.mouth_gap(p) for p in face.landmarks) > visual.OPEN_MOUTH  # the rendered mouth stays open
    art = ARTIFACTS.get("teeth_smear")
    detail = [_laplacian_var(face.frames, mouth)]
    eyes = _boxes(face, EYES, 0)
    for sev in art.severities():
        out = _apply("teeth_smear", face, sev)
        detail.append(_laplacian_var(out.frames, mouth))
        for f, g, (x0, y0, x1, y1) in zip(out.frames, face.frames, eyes):
            assert np.array_equal(f[y0:y1, x0:x1], g[y0:y1, x0:x1])
    assert _strictly_decreasing(detail), detail
    assert detail[-1] < 0.3 * detail[0]
    # frames whose lips meet are left alone; a segment that never opens is labelled clean
    closed = Sample(face.frames, face.audio, face.landmarks.copy())
    closed.landmarks[:20, 14] = closed.landmarks[:20, 13]
    out = _apply("teeth_smear", closed, 1.0)
    assert np.array_equal(out.frames[:20], face.frames[:20]) and out.log[-1]["frames_edited"] == N - 20
    out = _apply("teeth_smear", closed, 1.0, (0, 20))
    assert not out.log[-1]["effective"]


# ---------------------------------------------------------------------------- through the corpus builder
@pytest.mark.slow
def test_degrade_corpus_with_visual_artifacts(tmp_path, face):
    import pandas as pd

    from talkqa.corpus.contact_sheet import contact_sheet
    from talkqa.corpus.degrade import DegradeRecipe, degrade_corpus
    from talkqa.corpus.media import write_clip
    from talkqa.store import read_parquet

    src = write_clip(tmp_path / "head.mp4", face.frames, 25, face.audio, 16000)
    recipe = DegradeRecipe.load().model_copy(update={"artifacts": {n: 1.0 for n in VISUAL}, "segment_p": 0.5,
                                                     "n_artifacts_p": [1.0]})
    man = degrade_corpus(pd.DataFrame({"clip_id": ["head"], "video": [str(src)]}), tmp_path / "deg", recipe,
                         seed=0, variants=8)
    assert len(man) == 8 and not man.attrs["failures"]
    degraded = man[man["artifacts"] != "clean"]
    assert len(degraded) == 7 and (degraded["mos_visual_quality"] < 4.5).all()
    diag = read_parquet(tmp_path / "deg" / "diagnostics.parquet")
    assert set(diag["dimension"]) == {"visual_quality"} and set(diag["artifact"]) <= set(VISUAL)
    assert len(diag) == len(degraded)
    for col in ("start", "end"):
        assert np.allclose(diag[col] * 25, np.round(diag[col] * 25), atol=1e-9)
    rows = man.set_index("clip_id")
    for r in diag.itertuples():
        assert rows.loc[r.clip_id, f"severity__{r.artifact}"] == r.severity
    assert contact_sheet(tmp_path / "deg", n=3, frames_per_row=2).stat().st_size > 1000
