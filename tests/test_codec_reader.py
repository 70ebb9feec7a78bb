"""The codec reader (features/codec_reader.py): its numpy network is torch's, its patches lie on the coding
grid, its file refuses another network, and the shipped weights read a heavily coded face as coded."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_families import neutral_mesh

from talkqa.features import codec_reader as C
from talkqa.features.frame_stats import FRAME_STATS, frame_stats


def test_numpy_network_is_the_training_network(load_benchmark):
    """The weights a torch network of the training script holds give the same logits in numpy."""
    import torch

    train = load_benchmark("train_codec_reader")
    torch.manual_seed(0)
    net = train.network().eval()
    reader = train.to_reader(net, {})
    patches = np.random.default_rng(0).uniform(0, 255, (5, C.PATCH, C.PATCH)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(C.normalise(patches))[:, None])[:, 0].numpy()
    np.testing.assert_allclose(reader.logits(patches), expected, atol=1e-4)


def test_patches_start_on_the_grid_inside_the_frame():
    points = np.zeros((478, 3))
    points[list(C.CENTRES), :2] = [[100, 90], [3, 5], [630, 470]]  # the middle, and two beyond the corners
    origins = C.patch_origins(points, (480, 640, 3))
    assert origins == [(64, 64), (0, 0), (592, 432)]
    assert all(x % C.GRID == 0 and y % C.GRID == 0 for x, y in origins)
    assert C.patch_origins(points, (40, 640, 3)) == []  # smaller than a patch
    points[C.CENTRES[0]] = np.nan
    assert len(C.patch_origins(points, (480, 640, 3))) == 2
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    patches = C.frame_patches(frame, points)
    assert patches.shape == (2, C.PATCH, C.PATCH) and patches.dtype == np.float32


def test_weights_file_round_trip_and_refusals(tmp_path, monkeypatch, load_benchmark):
    import torch

    train = load_benchmark("train_codec_reader")
    torch.manual_seed(1)
    reader = train.to_reader(train.network().eval(), {"trained_on": "noise"})
    path = tmp_path / "reader.npz"
    reader.save(path)
    loaded = C.CodecReader.load(path)
    patches = np.random.default_rng(1).uniform(0, 255, (3, C.PATCH, C.PATCH)).astype(np.float32)
    np.testing.assert_allclose(loaded.logits(patches), reader.logits(patches), atol=1e-6)
    assert loaded.meta["trained_on"] == "noise" and loaded.meta["patch"] == C.PATCH

    monkeypatch.setattr(C, "LAYERS", ((8, 1),))  # code that expects another network refuses the file
    with pytest.raises(ValueError, match="another network"):
        C.CodecReader.load(path)
    with pytest.raises(FileNotFoundError, match="train_codec_reader"):
        C.CodecReader.load(tmp_path / "missing.npz")
    monkeypatch.setattr(C, "default_path", lambda: tmp_path / "missing.npz")
    C.load_reader.cache_clear()
    try:
        assert C.load_reader() is None  # a checkout without shipped weights still extracts
    finally:
        C.load_reader.cache_clear()


def test_a_frame_and_its_mirror_image_read_the_same(load_benchmark):
    """read_frame reads the frame and its mirror image (points moved with it) and averages, so a mirrored clip
    reads as its original although the network alone is not mirror-symmetric."""
    import torch

    train = load_benchmark("train_codec_reader")
    torch.manual_seed(2)
    reader = train.to_reader(train.network().eval(), {})
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # 320 = 20 blocks: the mirror's grid is the same
    points = np.column_stack([rng.uniform(40, 280, 478), rng.uniform(40, 200, 478), np.zeros(478)])
    mirror, mirrored = frame[:, ::-1], points.copy()
    mirrored[:, 0] = 319 - points[:, 0]

    def one_way(image, pts):
        return float(np.median(reader.logits(C.frame_patches(image, pts))))

    assert abs(one_way(frame, points) - one_way(mirror, mirrored)) > 1e-4  # the network alone is not symmetric
    both = reader.read_frame(frame, points)
    assert both == pytest.approx(reader.read_frame(mirror, mirrored), abs=1e-7)
    assert both == pytest.approx((one_way(frame, points) + one_way(mirror, mirrored)) / 2, abs=1e-7)
    assert np.isnan(reader.read_frame(frame[:40], points))  # no patch fits


@pytest.mark.skipif(not C.default_path().is_file(), reason="no shipped codec reader")
def test_shipped_reader_reads_a_heavily_coded_face_as_coded(astronaut):
    """Through a real encoder, the portrait (a slow drift with sensor noise, like a filmed face) reads higher
    the coarser the quantiser (QP 20, 38, 44: -8.4, -2.9, -0.3 when the weights shipped), and frame_stats
    carries the reading."""
    from helpers_visual import drifting

    from talkqa.features.codec import h264_roundtrip

    mesh = neutral_mesh(astronaut).astype(np.float32)
    frames, meshes = drifting(astronaut, mesh, 10)
    rng = np.random.default_rng(0)
    frames = np.clip(frames + rng.normal(0, 2, frames.shape), 0, 255).astype(np.uint8)
    i = FRAME_STATS.index("codec_logit")

    def reading(qp):
        coded = h264_roundtrip(frames, qp)
        return np.median([frame_stats(coded[t], meshes[t], 8)[i] for t in range(10)])

    light, middle, heavy = reading(20), reading(38), reading(44)
    assert np.isfinite(light) and light < middle < heavy and heavy > light + 4.0, (light, middle, heavy)


def test_training_script_asks_for_the_corpora(tmp_path, load_benchmark, capsys):
    train = load_benchmark("train_codec_reader")
    assert train.main(["--corpus", str(tmp_path), "--out", str(tmp_path / "r.npz")]) == 2
    assert "make default-model" in capsys.readouterr().err
    assert not (tmp_path / "r.npz").exists()
