"""ONNX exports: every expert's graphs and the fusion network give the torch numbers (any sequence length),
a stale or missing export falls back to torch, and the shipped model scores a clip the same both ways."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from talkqa.experts.motion import MotionConfig, MotionExpert
from talkqa.experts.picture import PictureConfig, PictureExpert
from talkqa.experts.sync import SyncConfig, SyncExpert
from talkqa.experts.voice import VoiceConfig, VoiceExpert
from talkqa.onnx_model import EXPORTS_FILE, OnnxModel, fresh_exports
from talkqa.errors import TalkqaError

from test_expert_motion import landmark_clip
from test_expert_picture import crops_clip
from test_expert_sync import talking_clip
from test_expert_voice import audio_clip

pytest.importorskip("onnx")

TINY = {
    "sync": (SyncExpert, SyncConfig, dict(emb_dim=8, n_mels=16)),
    "motion": (MotionExpert, MotionConfig, dict(hidden=16)),
    "voice": (VoiceExpert, VoiceConfig, dict(hidden=16, n_mels=32, dnsmos=False, opensmile_lld=False)),
    "picture": (PictureExpert, PictureConfig, dict(channels=[4, 8], hidden=8, chunk_frames=16)),
}


def clips(name: str, astronaut) -> list:
    """Clips of several lengths (sync: past one 256-frame chunk, picture: past one 16-frame chunk)."""
    if name == "sync":
        return [talking_clip(s) for s in (1.0, 2.6, 11.0)]
    if name == "motion":
        return [landmark_clip(n) for n in (12, 31, 90)]
    if name == "voice":
        return [audio_clip(s) for s in (0.5, 1.3, 4.1)]
    return [crops_clip(astronaut, n) for n in (3, 11, 40)]


def saved(name: str, folder):
    """A tiny untrained expert saved into `folder` (weights, card and ONNX exports)."""
    cls, cfg_cls, cfg = TINY[name]
    expert = cls(cfg_cls(**cfg))
    expert.model_ = expert._new_model().eval()
    expert.save(folder)
    return lambda: cls(cfg_cls(**cfg, weights=str(folder)))


def torch_only(make):
    expert = make()
    expert.model_ = expert._load_network()
    return expert


@pytest.mark.parametrize("name", sorted(TINY))
def test_expert_graphs_give_the_torch_numbers(name, astronaut, tmp_path):
    make = saved(name, tmp_path / "w")
    manifest = json.loads((tmp_path / "w" / EXPORTS_FILE).read_text())
    assert set(manifest["weights"]) == {"model.pt"} and manifest["graphs"]
    onnx, torch_ = make().load(), torch_only(make)
    assert onnx.sessions_ is not None and onnx.model_ is None
    for clip in clips(name, astronaut):
        a, b = torch_.embed(clip), onnx.embed(clip)
        np.testing.assert_allclose(b.emb, a.emb, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(b.t_start, a.t_start)
        for k, v in a.scalars.items():
            np.testing.assert_allclose(b.scalars[k], v, atol=1e-5, rtol=1e-4, err_msg=k)


def test_exports_are_no_part_of_the_weights_hash(tmp_path):
    make = saved("motion", tmp_path / "w")
    with_exports = make().weights_hash()
    for p in tmp_path.joinpath("w").iterdir():
        if p.suffix == ".onnx" or p.name == EXPORTS_FILE:
            p.unlink()
    assert make().weights_hash() == with_exports


def test_stale_or_missing_exports_fall_back_to_torch(tmp_path):
    make = saved("motion", tmp_path / "w")
    clip = landmark_clip(20)
    reference = make().load().embed(clip)
    # new weights under the same folder: the exports are stale
    original = (tmp_path / "w" / "model.pt").read_bytes()
    other = MotionExpert(MotionConfig(hidden=16))
    other.model_ = other._new_model().eval()
    from talkqa.experts.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "w", other.model_, other.config, {"name": "motion"})
    assert fresh_exports(tmp_path / "w", ["model.pt"]) is None
    stale = make().load()
    assert stale.sessions_ is None and stale.model_ is not None
    assert not np.allclose(stale.embed(clip).emb, reference.emb)
    # the old weights again, but a graph file missing or damaged: torch too
    (tmp_path / "w" / "model.pt").write_bytes(original)
    assert make().load().sessions_ is not None
    (tmp_path / "w" / "motion.onnx").write_bytes(b"not a graph")
    fallback = make().load()
    assert fallback.sessions_ is None
    np.testing.assert_allclose(fallback.embed(clip).emb, reference.emb, atol=1e-5)
    (tmp_path / "w" / EXPORTS_FILE).unlink()
    assert make().load().sessions_ is None


def test_a_broken_graph_file_is_a_clear_error(tmp_path):
    with pytest.raises(TalkqaError, match="missing"):
        OnnxModel(tmp_path / "nowhere.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(TalkqaError, match="cannot be loaded"):
        OnnxModel(tmp_path / "bad.onnx")


def test_export_onnx_is_idempotent(tmp_path):
    make = saved("sync", tmp_path / "w")
    first = {p.name: p.read_bytes() for p in (tmp_path / "w").glob("*.onnx")}
    assert make().export_onnx() == ["visual", "audio"]
    assert fresh_exports(tmp_path / "w", ["model.pt"]) is not None
    assert {p.name for p in (tmp_path / "w").glob("*.onnx")} == set(first)


# ------------------------------------------------------------------------------------------ fusion
@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    from synthetic_store import make_synthetic_store
    from talkqa.labels import common_clips, load_labels
    from talkqa.store_data import load_store

    paths = make_synthetic_store(tmp_path_factory.mktemp("synth"))
    data = load_store(paths.store)
    labels = load_labels(paths.manifest, pairs=paths.pairs)
    return data, labels, common_clips(data, labels)


@pytest.mark.parametrize("architecture", ["cross_attention", "concat_mlp"])
def test_fusion_graph_gives_the_torch_numbers(synth_data, architecture, tmp_path):
    from talkqa.fusion.config import FusionConfig
    from talkqa.fusion.train import FusionRegressor

    data, labels, ids = synth_data
    cfg = FusionConfig.model_validate({"model": {"architecture": architecture, "width": 16, "heads": 2, "layers": 1,
                                                 "encoder_layers": 1, "dropout": 0.0},
                                       "train": {"epochs": 1, "threads": 1}})
    FusionRegressor(cfg).fit(data, labels, ids).save(tmp_path / "fusion")
    assert (tmp_path / "fusion" / "fusion.onnx").is_file()
    onnx = FusionRegressor.load(tmp_path / "fusion")
    torch_ = FusionRegressor.load(tmp_path / "fusion", onnx=False)
    assert onnx.session_ is not None and torch_.session_ is None
    lengths = {c: len(data.experts["voice"].emb[c]) for c in ids}
    assert len(set(lengths.values())) > 1  # token counts differ between clips: padded batches
    for chunk in (ids[:1], ids[1:2], ids):  # one clip (no padding) and all of them together
        np.testing.assert_allclose(onnx.predict(data, chunk), torch_.predict(data, chunk), atol=1e-5)
        a, b = torch_.predict_windows(data, chunk), onnx.predict_windows(data, chunk)
        assert a.keys() == b.keys()
        for c in a:
            np.testing.assert_allclose(b[c].to_numpy(), a[c].to_numpy(), atol=1e-5)
    # stale: the weights changed after the export
    (tmp_path / "fusion" / "weights.pt").write_bytes((tmp_path / "fusion" / "weights.pt").read_bytes() + b"\0")
    assert FusionRegressor.load(tmp_path / "fusion").session_ is None


# ------------------------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def talking_head_video(astronaut, tmp_path_factory):
    """A 3 s rendered talking head with syllable-like sound, as a video file."""
    from talkqa.corpus.media import write_clip
    from talkqa.corpus.render import TalkingHeadRenderer
    from talkqa.corpus.speech import controls_from_audio

    from conftest import speech_like

    fps, sr, n = 25.0, 16000, 75
    audio = speech_like(n / fps, sr, seed=3)
    frames = TalkingHeadRenderer(astronaut, size=192).prepare().render(
        controls_from_audio(audio, sr, fps, np.random.default_rng(0), n_frames=n))
    return write_clip(tmp_path_factory.mktemp("onnx") / "head.mp4", frames, fps, audio, sr)


@pytest.mark.slow  # scores one clip twice (~15 s on 2 cores)
def test_shipped_model_scores_the_same_through_onnx_and_torch(talking_head_video, monkeypatch):
    import talkqa.experts.base
    import talkqa.fusion.train
    from talkqa.scoring.scorer import Scorer

    onnx = Scorer()
    assert all(e.sessions_ is not None for e in onnx.experts.values()), "shipped expert weights lack ONNX exports"
    assert onnx.bundle.fusion.session_ is not None, "the shipped fusion model lacks its ONNX export"
    a = onnx.score(talking_head_video, keep_details=True)
    monkeypatch.setattr(talkqa.experts.base, "load_exports", lambda *args: None)
    monkeypatch.setattr(talkqa.fusion.train, "load_exports", lambda *args: None)
    torch_ = Scorer()
    assert all(e.sessions_ is None for e in torch_.experts.values()) and torch_.bundle.fusion.session_ is None
    b = torch_.score(talking_head_video, keep_details=True)
    assert a.error is None and b.error is None
    for dim, v in a.scores.items():
        assert (v is None) == (b.scores[dim] is None) and (v is None or abs(v - b.scores[dim]) < 1e-3), dim
    for k, v in a.details["fusion"].items():
        assert abs(v - b.details["fusion"][k]) < 1e-4, k
    assert a.sync == b.sync
