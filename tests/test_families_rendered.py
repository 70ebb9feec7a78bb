"""Hand-crafted features where the truth is known, end to end: rendered talking heads with
controlled audio offsets and blinks go through encoding, decoding and MediaPipe; tone bursts at
known SNR, band-limited and clipped audio; plus the contract of every registered family."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from conftest import speech_like
from talkqa.features.audio_prep import vad_per_frame
from talkqa.features.clip import PreprocessedClip, empty_visual
from talkqa.features.families import FAMILIES, frame_windows
from talkqa.features.preprocess import preprocess
from talkqa.corpus.media import write_clip

# Renders talking heads and runs the real face pipeline on them: the slow tier.
pytestmark = pytest.mark.slow

FPS, SR, HOP = 25.0, 16000, 640
FAST_AUDIO = {"dnsmos": False, "egemaps": False}


@pytest.fixture(scope="module")
def head(astronaut):
    from talkqa.corpus.render import TalkingHeadRenderer

    return TalkingHeadRenderer(astronaut, size=256).prepare()


@pytest.fixture(scope="module")
def talking(head):
    """8 s of eSpeak speech (or syllable-like bursts without eSpeak) and the frames it drives."""
    from talkqa.corpus.speech import controls_from_audio

    try:
        from talkqa.corpus.speech import SENTENCES, synthesize

        audio = np.concatenate([synthesize(s, "en", SR) for s in SENTENCES["en"][:4]])[: 8 * SR]
    except Exception:
        audio = speech_like(8.0)
    audio = np.pad(audio, (0, max(0, 8 * SR - len(audio))))
    controls = controls_from_audio(audio, SR, FPS, np.random.default_rng(0), n_frames=200)
    for k in ("blink_l", "blink_r"):
        controls[k][:] = 0  # eyes never close in this clip
    return head.render(controls), audio


def shifted(audio: np.ndarray, k: int) -> np.ndarray:
    """Delay the audio by k frames (k > 0: the sound comes after the lips), same length."""
    n = abs(k) * HOP
    if k > 0:
        return np.concatenate([np.zeros(n, audio.dtype), audio[:-n]])
    if k < 0:
        return np.concatenate([audio[n:], np.zeros(n, audio.dtype)])
    return audio


def extract(clip, family, **params):
    fam = FAMILIES.create(family, **params)
    return fam.extract(clip, frame_windows(clip.n_frames, clip.fps))


@pytest.mark.parametrize("k", [-8, -3, 0, 4, 10])
def test_av_offset_recovered_within_one_frame(talking, tmp_path, k):
    frames, audio = talking
    clip = preprocess(write_clip(tmp_path / f"shift{k}.mp4", frames, FPS, shifted(audio, k), SR))
    out = extract(clip, "lipsync")
    assert abs(out.clip["lipsync__av_offset_frames"] - k) <= 1
    assert out.clip["lipsync__av_peak_corr"] > 0.3


def test_no_eye_closure_gives_no_blinks_and_blinks_are_counted(talking, head, tmp_path):
    frames, audio = talking
    still = preprocess(write_clip(tmp_path / "noblink.mp4", frames, FPS, audio, SR))
    assert extract(still, "expression").clip["expression__blink_rate_per_min"] == 0

    from talkqa.corpus.render import neutral_controls

    controls = neutral_controls(200)
    for start in (20, 60, 100, 140, 180):  # five 4-frame blinks in 8 s
        for k in ("blink_l", "blink_r"):
            controls[k][start : start + 4] = [0.6, 1.0, 1.0, 0.6]
    clip = preprocess(write_clip(tmp_path / "blinks.mp4", head.render(controls), FPS, audio, SR))
    rate = extract(clip, "expression").clip["expression__blink_rate_per_min"]
    assert abs(rate * 8 / 60 - 5) <= 1  # about five blinks found


def audio_clip(audio: np.ndarray) -> PreprocessedClip:
    n = len(audio) // HOP
    audio = audio[: n * HOP].astype(np.float32)
    return PreprocessedClip(clip_id="a", fps=FPS, n_frames=n, frame_size=(96, 96), audio=audio, audio_norm=audio,
                            vad=vad_per_frame(audio, SR, n, HOP), **empty_visual(n, 96, (48, 96)))


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_snr_of_tone_bursts_in_noise(snr):
    t = np.arange(8 * SR) / SR
    tone = np.sin(2 * np.pi * 440 * t) * ((t % 1.0) < 0.5)  # 0.5 s on, 0.5 s off
    p_tone = np.mean(np.sin(2 * np.pi * 440 * t) ** 2)
    noise = np.random.default_rng(0).normal(0, np.sqrt(p_tone / 10 ** (snr / 10)), len(t))
    x = 0.1 * (tone + noise) / np.sqrt(p_tone)
    measured = extract(audio_clip(x), "audio", **FAST_AUDIO).clip["audio__snr_db"]
    assert abs(measured - snr) <= 2.0


def test_band_limit_and_clipping_are_measured():
    x = speech_like(4.0, rate_hz=5.0) + 0.02 * np.random.default_rng(1).normal(size=4 * SR)
    x = x.astype(np.float32)
    low = signal.sosfilt(signal.butter(10, 4000, fs=SR, output="sos"), x).astype(np.float32)
    full = extract(audio_clip(x), "audio", **FAST_AUDIO).clip
    lowpassed = extract(audio_clip(low), "audio", **FAST_AUDIO).clip
    assert lowpassed["audio__bandwidth_hz"] < 4500 < full["audio__bandwidth_hz"]
    clipped = np.clip(x * 4, -0.3, 0.3).astype(np.float32)
    assert extract(audio_clip(clipped), "audio", **FAST_AUDIO).clip["audio__clipping_ratio"] > 10 * full["audio__clipping_ratio"]


def test_frozen_and_jittered_motion(talking, tmp_path):
    frames, audio = talking
    frozen = preprocess(write_clip(tmp_path / "frozen.mp4", np.repeat(frames[:1], 100, 0), FPS, audio[: 4 * SR], SR))
    assert extract(frozen, "expression").clip["expression__frozen_share"] > 0.9
    live = preprocess(write_clip(tmp_path / "live.mp4", frames[:100], FPS, audio[: 4 * SR], SR))
    live_out = extract(live, "expression").clip
    assert live_out["expression__frozen_share"] < 0.5
    rng = np.random.default_rng(0)
    shaky = live.aligned + rng.normal(0, 1.0, live.aligned.shape).astype(np.float32)
    live.aligned = shaky
    assert extract(live, "expression").clip["expression__jitter"] > 2 * live_out["expression__jitter"]


def test_speech_rate_ranks_syllable_rates():
    slow = speech_like(8.0, rate_hz=2.5, seed=1)
    fast = speech_like(8.0, rate_hz=6.0, seed=1)
    rates = []
    for x in (slow, fast):
        clip = audio_clip(x)
        clip.face_valid[:] = False
        rates.append(extract(clip, "consistency").clip["consistency__speech_rate"])
    assert rates[0] < rates[1]


@pytest.mark.parametrize("name", FAMILIES.names())
def test_family_contract(name, talking, tmp_path):
    """Every registered family: declared names, finite on a normal clip, NaN without audio."""
    frames, audio = talking
    clip = preprocess(write_clip(tmp_path / "c.mp4", frames[:50], FPS, audio[: 2 * SR], SR))
    fam = FAMILIES.create(name)
    windows = frame_windows(clip.n_frames, clip.fps)
    out = fam.extract(clip, windows)
    assert list(out.clip) == fam.columns()
    assert all(k.startswith(f"{name}__") for k in out.clip)
    assert list(out.windows) == fam.window_columns()
    assert all(v.shape == (len(windows),) for v in out.windows.values())
    core = [k for k in out.clip if "egemaps" not in k and "corr" not in k]
    finite = np.isfinite([out.clip[k] for k in core]).mean()
    assert finite > 0.8, {k: out.clip[k] for k in core if not np.isfinite(out.clip[k])}
    clip.audio = clip.audio_norm = clip.vad = None
    silent = fam.extract(clip, windows)
    assert list(silent.clip) == fam.columns()  # same shape whatever the input


def test_a_talking_photo_keeps_the_face_above_the_mouth_still(talking, head, tmp_path):
    """Only the mouth animated (head, eyes, brows still: the `talking photo` of `talkqa check`) against the
    same speech with the renderer's head motion and blinks, through H.264 and MediaPipe: the picture above
    the mouth changes by ~0 in the first, by grey levels in the second; the frozen share, which the
    moving mouth keeps low, cannot tell them apart."""
    from talkqa.corpus.render import neutral_controls
    from talkqa.corpus.speech import controls_from_audio

    frames, audio = talking
    mouth = neutral_controls(len(frames))
    moving = controls_from_audio(audio, SR, FPS, np.random.default_rng(1), n_frames=len(frames))
    mouth["jaw"] = moving["jaw"]
    photo = preprocess(write_clip(tmp_path / "photo.mp4", head.render(mouth), FPS, audio, SR))
    live = preprocess(write_clip(tmp_path / "live.mp4", head.render(moving), FPS, audio, SR))
    a, b = (extract(c, "expression").clip for c in (photo, live))
    assert np.isfinite(photo.frame_stats["upper_change"]).sum() >= 30
    assert a["expression__upper_change"] < 0.3 < 1.0 < b["expression__upper_change"], (a, b)
    assert a["expression__frozen_share"] < 0.5
