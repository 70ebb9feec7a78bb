"""The voice expert: contract, backbone swap by config (tiny random HuBERT), save/load, shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import speech_like
from talkqa.experts.voice import VoiceConfig, VoiceExpert
from talkqa.experts.voice_degradations import DEGRADATIONS
from talkqa.features.clip import PreprocessedClip, empty_visual
from talkqa.errors import TalkqaError

FAST = dict(dnsmos=False, opensmile_lld=False)


def audio_clip(seconds: float = 2.0, seed: int = 0) -> PreprocessedClip:
    n = int(seconds * 25)
    x = speech_like(seconds, seed=seed)
    return PreprocessedClip(clip_id="a", fps=25.0, n_frames=n, frame_size=(96, 96), audio=x, audio_norm=x,
                            vad=np.ones(n, bool), **empty_visual(n, 96, (48, 96)))


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory):
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    path = tmp_path_factory.mktemp("hubert")
    HubertModel(cfg).save_pretrained(path)
    return path


def test_logmel_backbone_contract_and_round_trip(tmp_path):
    expert = VoiceExpert(VoiceConfig(hidden=16, n_mels=32, **FAST))
    expert.model_ = expert._new_model().eval()
    tokens = expert.embed(audio_clip(1.2))
    assert tokens.emb.shape == (6, expert.dim) == (6, 16)
    assert set(tokens.scalars) == set(expert.scalar_names) == {"quality_logit"}
    assert expert.backbone_name() == "logmel_cnn"
    expert.save(tmp_path / "w")
    again = VoiceExpert(VoiceConfig(hidden=16, n_mels=32, weights=str(tmp_path / "w"), **FAST)).load()
    np.testing.assert_allclose(again.embed(audio_clip(1.2)).emb, tokens.emb, atol=5e-2)


def test_swapping_to_hubert_is_only_a_config_change(tiny_hubert):
    expert = VoiceExpert(VoiceConfig(backbone="hubert", hubert_path=str(tiny_hubert), hubert_layer=1, **FAST))
    assert expert.dim == 32  # known from the model's config before any weights load
    expert.load()  # the same code a user with real HuBERT weights runs
    tokens = expert.embed(audio_clip(2.0))
    assert tokens.emb.shape[1] == 32 and len(tokens.t_start) == 10
    assert np.isfinite(tokens.emb).all()
    assert np.isnan(tokens.scalars["quality_logit"])  # no head trained on this backbone: no made-up score
    assert expert.backbone_name().startswith("hubert:")


def test_bad_hubert_path_is_a_clear_error(tmp_path):
    expert = VoiceExpert(VoiceConfig(backbone="hubert", hubert_path=str(tmp_path / "nowhere"), **FAST))
    with pytest.raises(TalkqaError, match="hubert"):
        expert.load()


def test_scalars_declared_with_dnsmos_and_lld():
    expert = VoiceExpert(VoiceConfig())
    assert "dnsmos_ovrl" in expert.scalar_names and "lld_hnrdbacf" in expert.scalar_names
    assert expert.columns()[0] == "voice__quality_logit"


def test_degradations_keep_length_and_hurt_the_signal():
    rng = np.random.default_rng(0)
    x = speech_like(2.0)
    for name, fn in DEGRADATIONS.items():
        y = fn(x, 0.8, rng)
        assert y.shape == x.shape and np.isfinite(y).all(), name
        assert not np.allclose(y, x), name


def test_shipped_weights_rank_noise_below_clean():
    expert = VoiceExpert(VoiceConfig(**FAST))
    if not (expert.weights_dir() / "model.pt").is_file():
        pytest.skip("no shipped voice weights")
    expert.load()
    from talkqa.corpus.speech import SENTENCES, synthesize

    try:
        speech = np.concatenate([synthesize(s, "en") for s in SENTENCES["en"][:2]])
    except Exception as exc:
        pytest.skip(f"no eSpeak NG speech here: {exc}")
    rng = np.random.default_rng(0)
    clip = audio_clip(len(speech) / 16000)
    clip.audio = clip.audio_norm = speech[: clip.n_frames * 640].astype(np.float32)
    clean = expert.embed(clip).scalars["quality_logit"]
    for name in ("white_noise", "clipping", "low_pass"):
        clip.audio_norm = DEGRADATIONS[name](clip.audio, 0.9, rng)
        assert expert.embed(clip).scalars["quality_logit"] < clean, name
