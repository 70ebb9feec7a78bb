"""Hand-crafted feature families on synthetic clips with known truth (helpers_families), plus the
contract every registered family must keep (declared names, finite values, NaN without audio)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from talkqa.features import signals as S
from talkqa.features.families import FAMILIES, frame_windows
from helpers_families import (
    FPS,
    HOP,
    SR,
    FaceRig,
    aac_roundtrip,
    blink_closure,
    frame_mean,
    make_clip,
    neutral_mesh,
    shift,
    syllable_envelope,
    tone_bursts,
    voice,
    white_noise,
)

FAST_AUDIO = {"dnsmos": False, "egemaps": False}


@pytest.fixture(scope="session")
def rig(astronaut) -> FaceRig:
    return FaceRig.from_mesh(neutral_mesh(astronaut), astronaut)


def windows(clip):
    return frame_windows(clip.n_frames, clip.fps)


def features(name, clip, **params):
    fam = FAMILIES.create(name, **params)
    out = fam.extract(clip, windows(clip))
    strip = lambda d: {k.split("__", 1)[1]: v for k, v in d.items()}  # noqa: E731
    return strip(out.clip), strip(out.windows), out


def talking(duration_s: float, rate_hz: float = 4.0, seed: int = 0, pauses: bool = True):
    """(envelope at SR, mouth aperture per frame): the mouth follows the syllables the way a real one
    does only roughly: compressed, smoothed over ~2 frames and with its own noise."""
    env = syllable_envelope(duration_s, rate_hz, seed)
    if pauses:  # a second of silence every four, so speech and silence both occur
        t = np.arange(len(env)) / SR
        env[(t % 4.0) > 3.0] = 0.0
    n = int(round(duration_s * FPS))
    rng = np.random.default_rng(seed + 100)
    aperture = 0.3 * np.sqrt(np.maximum(frame_mean(env, n), 0))
    aperture = S.smooth(aperture, 0.8) + rng.normal(0, 0.01, n)
    return env, np.clip(aperture, 0, None)


def normal_clip(rig, duration_s=10.0, seed=0, **kw):
    """A plausible talking clip: speech with pauses over a faint noise floor, a mouth that follows it,
    four blinks, head sway, mesh noise."""
    env, aperture = talking(duration_s, seed=seed)
    n = len(aperture)
    audio = 0.3 * voice(duration_s, seed=seed) * env + 3e-4 * white_noise(len(env), seed)
    kw.setdefault("eye_closure", blink_closure(n, [30, 95, 160, 220]))
    return make_clip(rig, n, aperture=aperture, audio=audio, seed=seed, **kw)


# ------------------------------------------------------------------------------------- (a) lipsync
@pytest.mark.parametrize("k", [-8, -3, 0, 4, 10])
def test_av_offset_recovers_audio_shift(rig, k):
    duration = 10.0
    env, aperture = talking(duration, seed=k + 20, pauses=False)
    audio = 0.3 * voice(duration, seed=1) * shift(env, k * HOP)  # k > 0: the sound comes k frames late
    clip = make_clip(rig, len(aperture), aperture=aperture, audio=audio, seed=3)
    c, w, _ = features("lipsync", clip)
    assert abs(c["av_offset_frames"] - k) <= 1, c
    if k:
        assert np.sign(c["av_offset_frames"]) == np.sign(k)
    assert c["av_peak_corr"] > 0.5 and c["av_confidence"] > 0.3
    assert abs(np.nanmedian(w["av_offset_frames"]) - k) <= 1  # the local estimates agree
    if abs(k) >= 3:
        assert c["av_corr_lag0"] < c["av_peak_corr"] - 0.1


def test_closed_mouth_during_speech_is_flagged(rig):
    good = normal_clip(rig)
    frozen_mouth = make_clip(rig, good.n_frames, audio=good.audio, seed=0)  # lips shut throughout
    assert features("lipsync", frozen_mouth)[0]["closed_mouth_speech_share"] > 0.9
    assert features("lipsync", good)[0]["closed_mouth_speech_share"] < 0.5


# ---------------------------------------------------------------------------------- (b) blinks
def test_no_eye_closure_gives_no_blinks(rig):
    n = int(60 * FPS)  # a full minute of a noisy mesh: any false trigger would show
    env, aperture = talking(60.0, seed=5)
    for jitter in (0.15, 0.4):
        clip = make_clip(rig, n, aperture=aperture, jitter_px=jitter, seed=7)
        c, _, _ = features("expression", clip)
        assert c["blink_rate_per_min"] == 0.0 and c["blink_count"] == 0.0, jitter


def test_injected_blinks_are_counted(rig):
    n = int(20 * FPS)
    starts = [40, 150, 260, 330, 440]
    _, aperture = talking(20.0, seed=2)
    for depth, frames in ((1.0, 6), (0.7, 4)):  # full blinks and quick partial ones
        clip = make_clip(rig, n, aperture=aperture, eye_closure=depth * blink_closure(n, starts, frames), jitter_px=0.2)
        c, w, _ = features("expression", clip)
        assert c["blink_count"] == 5, (depth, c["blink_count"])
        assert c["blink_rate_per_min"] == pytest.approx(15.0)
        assert 0.04 <= c["blink_duration_s"] <= 0.3
        assert w["blink_count"].sum() == 5


def test_blink_during_a_glance_down_is_counted(rig):
    """Looking down lowers the eyelids for a second or so; a blink inside that must still count,
    and the glance itself must not."""
    n = int(10 * FPS)
    t = np.arange(n)
    glance = 0.5 * np.clip(np.minimum(t - 95, 125 - t) / 5.0, 0, 1)  # lids half down over frames 95-125
    closure = np.maximum(glance, blink_closure(n, [40, 110, 200]))  # (a 2 s EAR baseline missed the 2nd)
    _, aperture = talking(10.0, seed=4)
    clip = make_clip(rig, n, aperture=aperture, eye_closure=closure, jitter_px=0.2, seed=4)
    assert features("expression", clip)[0]["blink_count"] == 3
    assert features("expression", make_clip(rig, n, aperture=aperture, eye_closure=glance))[0]["blink_count"] == 0


# -------------------------------------------------------------------------------------- (c) SNR
@pytest.mark.parametrize("snr", [0, 10, 20])
def test_snr_of_tone_bursts_in_white_noise(rig, snr):
    n = int(10 * FPS)
    tone, _ = tone_bursts(10.0, 440.0)
    sigma = 0.02
    amplitude = np.sqrt(2 * sigma**2 * 10 ** (snr / 10))  # tone power A^2/2 = snr x noise power
    audio = amplitude * tone + sigma * white_noise(len(tone), seed=snr)
    for vad in ("webrtc", None):  # the real VAD (unreliable on tones) and no VAD at all
        c, _, _ = features("audio", make_clip(rig, n, audio=audio, vad=vad), **FAST_AUDIO)
        assert abs(c["snr_db"] - snr) <= 2.0, (vad, c["snr_db"])


# ------------------------------------------------------------------------- (d) bandwidth, (e) clipping
def test_bandwidth_of_band_limited_audio(rig):
    duration, n = 8.0, int(8 * FPS)
    env = syllable_envelope(duration, seed=4)
    rng_noise = white_noise(len(env), seed=4)
    speechy = 0.3 * env * (0.7 * voice(duration) + 0.1 * rng_noise)  # voiced + breathy: energy to 8 kHz
    low = sosfiltfilt(butter(10, 4000, fs=SR, output="sos"), speechy)
    full = features("audio", make_clip(rig, n, audio=speechy), **FAST_AUDIO)[0]
    limited = features("audio", make_clip(rig, n, audio=low), **FAST_AUDIO)[0]
    assert limited["bandwidth_hz"] < 4500 < 6000 < full["bandwidth_hz"]
    assert limited["rolloff_hz"] <= full["rolloff_hz"]


def test_hard_clipping_raises_clipping_ratio(rig):
    duration, n = 6.0, int(6 * FPS)
    clean = 0.3 * voice(duration) * syllable_envelope(duration, seed=1)
    clipped = np.clip(4 * clean, -0.3, 0.3)
    c_clean = features("audio", make_clip(rig, n, audio=clean), **FAST_AUDIO)[0]
    c_clip, w_clip, _ = features("audio", make_clip(rig, n, audio=clipped), **FAST_AUDIO)
    assert c_clean["clipping_ratio"] < 0.005
    assert c_clip["clipping_ratio"] > 0.05
    assert np.nanmax(w_clip["clipping_share"]) > 0.05


def test_clipping_survives_a_lossy_codec(rig):
    """AAC ripples and overshoots a clipped plateau; the ratio must still see it."""
    n = int(4 * FPS)
    clean = 0.3 * voice(4.0) * syllable_envelope(4.0, seed=1)
    ratios = []
    for gain in (1, 4):
        audio = aac_roundtrip(np.clip(gain * clean, -0.3, 0.3))
        ratios.append(features("audio", make_clip(rig, n, audio=audio), **FAST_AUDIO)[0]["clipping_ratio"])
    assert ratios[0] < 0.005 and ratios[1] > 0.05


# ------------------------------------------------------------------------- (f) frozen and jitter
def test_frozen_landmarks_and_jitter(rig):
    n = int(8 * FPS)
    still = np.zeros((n, 3))
    frozen = features("expression", make_clip(rig, n, jitter_px=0.0, drift_px=0.0, head_pose=still))[0]
    _, aperture = talking(8.0)
    normal = features("expression", make_clip(rig, n, aperture=aperture, jitter_px=0.15))[0]
    shaky = features("expression", make_clip(rig, n, aperture=aperture, jitter_px=1.0))[0]
    assert frozen["frozen_share"] >= 0.95 and frozen["jitter"] < 1e-6
    assert normal["frozen_share"] < 0.05
    assert shaky["jitter"] > 2.5 * normal["jitter"]
    # jitter reads as the per-axis noise in IOD units: 1 px on a ~40 px IOD
    assert shaky["jitter"] == pytest.approx(1.0 / rig.iod, rel=0.25)


def test_repeated_picture_is_frozen_even_with_a_jittering_mesh(rig):
    """MediaPipe's tracker jitters on a still image; the picture change says what the mesh cannot."""
    n = int(6 * FPS)
    still_picture = np.r_[np.nan, np.full(n - 1, 0.004)]
    live_picture = np.r_[np.nan, np.full(n - 1, 1.5)]
    frozen = features("expression", make_clip(rig, n, jitter_px=0.3, frame_diff=still_picture))[0]
    live = features("expression", make_clip(rig, n, jitter_px=0.3, frame_diff=live_picture))[0]
    assert frozen["frozen_share"] >= 0.95 and live["frozen_share"] < 0.05
    assert frozen["held_longest_s"] == pytest.approx((n - 1) / FPS) and live["held_longest_s"] == 0.0


def test_a_lower_frame_rate_is_not_a_frozen_face(rig):
    """A 15 fps source on the 25 fps clock shows 2 frames in 5 twice (hellomeme/nice read 40 % frozen): a frame
    repeated once, between frames that move, is no freeze. A stutter holding each frame 3x, a stall and a still
    photo repeat for 2 frames and more, and stay frozen."""
    n = int(6 * FPS)
    _, aperture = talking(6.0)

    def frozen_share(repeats_of):
        diff = np.r_[np.nan, np.full(n - 1, 1.5)]
        diff[[t for t in range(1, n) if repeats_of(t)]] = 0.004
        return features("expression", make_clip(rig, n, aperture=aperture, jitter_px=0.3, frame_diff=diff))[0]

    fps15 = frozen_share(lambda t: int(t * 15 / FPS) == int((t - 1) * 15 / FPS))  # each source frame 1-2x
    hold3 = frozen_share(lambda t: t % 3 != 0)  # each frame shown 3x
    stall = frozen_share(lambda t: 50 <= t < 90)
    assert fps15["frozen_share"] < 0.01 and fps15["held_longest_s"] == 0.0
    assert hold3["frozen_share"] == pytest.approx(2 / 3, abs=0.02)
    assert stall["frozen_share"] == pytest.approx(40 / n, abs=0.01) and stall["held_longest_s"] == pytest.approx(1.6)


def test_motion_is_read_as_the_source_recorded_it_not_as_the_clock_repeats_it(rig):
    """On the 25 fps clock a 15 fps head stops on every repeated frame and jumps on the next: a head jerk and a
    landmark jitter no viewer sees. Read halfway between its neighbours, a repeated frame leaves the motion of the
    source; footage whose every frame moves reads exactly as before."""
    n = int(6 * FPS)
    src = np.floor(np.arange(n) * 15 / FPS).astype(int)  # the source frame each clock frame shows
    t = src / 15.0
    sway = np.stack([8 * np.sin(2 * np.pi * 0.7 * t), 4 * np.sin(2 * np.pi * 0.5 * t + 1), np.zeros(n)], 1)
    aperture = 0.2 + 0.15 * np.sin(2 * np.pi * 3.0 * t)
    repeated = np.r_[False, src[1:] == src[:-1]]
    diff = np.where(repeated, 0.004, 1.5)
    diff[0] = np.nan

    def read(frame_diff):
        clip = make_clip(rig, n, aperture=aperture, head_pose=sway, jitter_px=0.0, drift_px=0.0, frame_diff=frame_diff)
        return features("expression", clip)[0]

    as_clock = read(None)  # without the picture change nothing tells a repeat
    as_source = read(diff)
    assert as_source["head_jerk"] < 0.5 * as_clock["head_jerk"]  # 0.34: the uneven spacing of 15 in 25 remains
    assert as_source["jitter"] < 0.5 * as_clock["jitter"]
    moving = read(np.r_[np.nan, np.full(n - 1, 1.5)])  # every frame moves: no repeat, the same reading
    assert moving["head_jerk"] == as_clock["head_jerk"] and moving["jitter"] == as_clock["jitter"]


def test_a_still_picture_is_told_from_a_talking_photo_by_its_lips(rig):
    """A talking photo (head and face still, only the mouth opening and closing) reads as frozen by the mesh's
    median point just as a still photo does; the lips tell them apart (the lip_sync ceiling of version 40)."""
    n = int(6 * FPS)
    still = np.zeros((n, 3))
    _, aperture = talking(6.0)
    photo = features("expression", make_clip(rig, n, jitter_px=0.0, drift_px=0.0, head_pose=still))[0]
    talking_photo = features("expression", make_clip(rig, n, aperture=aperture, jitter_px=0.0, drift_px=0.0,
                                                     head_pose=still))[0]
    live = features("expression", make_clip(rig, n, aperture=aperture, jitter_px=0.15))[0]
    assert photo["frozen_share"] >= 0.95 and talking_photo["frozen_share"] >= 0.95  # the mesh cannot tell them
    assert photo["still_lips_share"] >= 0.95 and photo["still_picture"] == 1.0
    assert talking_photo["still_lips_share"] < 0.6 and talking_photo["still_picture"] == 0.0
    assert live["still_lips_share"] < 0.05 and live["still_picture"] == 0.0
    # a still image re-encoded with a jittering mesh: the picture repeats and the lips hold still
    diff = np.r_[np.nan, np.full(n - 1, 0.004)]
    repeated = features("expression", make_clip(rig, n, jitter_px=0.3, frame_diff=diff))[0]
    assert repeated["still_lips_share"] >= 0.95 and repeated["still_picture"] == 1.0
    # ... and by a coder without lookahead, which keeps refining it: every fourth frame changes by 0.12 of 255,
    # over what a frozen frame may, so the frozen share falls short; the held picture does not
    refine = np.r_[np.nan, np.tile([0.12, 0.01, 0.01, 0.01], n // 4 + 1)[: n - 1]]
    refined = features("expression", make_clip(rig, n, jitter_px=0.3, frame_diff=refine))[0]
    assert refined["frozen_share"] < 0.8
    assert refined["still_lips_share"] >= 0.95 and refined["still_picture"] == 1.0


def test_a_stall_is_named_by_its_own_frames_not_by_the_windows_it_straddles(rig):
    """A 1.2 s stall from 2.6 s leaves no 1 s window 90 % frozen; the per-frame series names it exactly."""
    from talkqa.scoring.diagnostics import frozen_diagnostics

    n, a, b = int(8 * FPS), int(2.6 * FPS), int(3.8 * FPS)
    diff = np.r_[np.nan, np.full(n - 1, 1.5)]
    diff[a + 1:b] = 0.004  # the frame at a is shown for 1.2 s: every frame after it repeats it
    _, aperture = talking(8.0)
    clip = make_clip(rig, n, aperture=aperture, jitter_px=0.3, frame_diff=diff)
    c, win, out = features("expression", clip)
    assert np.nanmax(win["frozen_share"]) < 0.9  # what the former window rule needed
    held = out.series["expression__held"]
    assert np.nansum(held) == b - a - 1 and held[a + 1:b].all()
    # the clip feature says how long, where the frozen share dilutes it by the clip's length
    assert c["held_longest_s"] == pytest.approx((b - a - 1) / FPS) and c["frozen_share"] < 0.2
    [seg] = frozen_diagnostics(held, FPS, skip=set())
    assert (seg["dimension"], seg["start"], seg["end"]) == ("expression", round((a + 1) / FPS, 2), round(b / FPS, 2))
    assert seg["issue"] == "picture frozen for 1.2 s"
    assert frozen_diagnostics(held, FPS, skip={"expression"}) == []


def test_a_held_frame_the_encoder_keeps_refining_is_still_held(rig):
    """Without lookahead x264 refines a repeated frame: every fourth frame changes by up to 0.17 (of 255), over
    the 0.03 a frozen frame may, yet over 0.2 s the picture changes far less than moving footage."""
    n, a, b = int(8 * FPS), int(3 * FPS), int(4.5 * FPS)
    diff = np.r_[np.nan, np.full(n - 1, 0.3)]  # a calm speaker: 0.3 per frame
    refine = np.tile([0.12, 0.01, 0.01, 0.01], (b - a) // 4 + 1)[: b - a - 1]
    diff[a + 1:b] = refine * np.linspace(1.0, 0.2, b - a - 1)
    _, aperture = talking(8.0)
    clip = make_clip(rig, n, aperture=aperture, jitter_px=0.3, frame_diff=diff)
    c, _, out = features("expression", clip)
    # frame by frame the stall reads as runs of three frozen frames, none near half a second
    assert c["frozen_share"] < 0.2 and np.max(np.diff(np.flatnonzero(diff[a + 1:b] >= 0.03))) == 4
    held = out.series["expression__held"]
    assert np.nanmean(held[a + 3:b - 2]) == 1.0 and np.nansum(held[: a - 2]) == 0 and np.nansum(held[b + 3:]) == 0
    from talkqa.scoring.diagnostics import frozen_diagnostics

    [seg] = frozen_diagnostics(held, FPS, skip=set())
    assert abs(seg["start"] - a / FPS) <= 0.12 and abs(seg["end"] - b / FPS) <= 0.12


def test_a_refined_hold_is_frozen_where_the_face_above_the_mouth_and_the_lips_hold_still(rig):
    """An encoder refining a repeated frame keeps the thumbnail over the frozen limit on a third of the frames, so a
    1.5 s stall read about 0.6 of its frozen share; over 0.2 s the face above the mouth hardly changes (frame_stats
    upper_change, measured every fifth frame) and the lips hold, so a run of at least half a second of both is frozen
    too. A talking photo's lips move, and a short still moment is no stall."""
    n, a, b = int(8 * FPS), int(3 * FPS), int(4.5 * FPS)
    diff = np.r_[np.nan, np.full(n - 1, 0.3)]
    diff[a + 1:b] = np.tile([0.12, 0.01, 0.01, 0.01], (b - a) // 4 + 1)[: b - a - 1]
    _, aperture = talking(8.0)
    held_lips = aperture.copy()
    held_lips[a:b] = aperture[a]
    upper = np.full(n, np.nan)
    upper[::5] = 3.0  # moving footage: 1.9 and more on the training clips
    upper[np.arange(a + 5, b, 5)] = 0.2  # a refined hold: 0.07-0.46
    upper[b - b % 5 + 5 if b % 5 else b] = 3.0  # the first window after the stall moves again

    def read(lips, change):
        clip = make_clip(rig, n, aperture=lips, jitter_px=0.3, frame_diff=diff)
        clip.frame_stats = {"upper_change": change}
        return features("expression", clip)

    before = features("expression", make_clip(rig, n, aperture=held_lips, jitter_px=0.3, frame_diff=diff))[0]
    stall, _, out = read(held_lips, upper)
    assert before["frozen_share"] < 0.8 * (b - a) / n  # the thumbnail rule alone: runs of three frames
    held = out.series["expression__held"]
    assert held[a + 2:b - 1].all() and stall["frozen_share"] > 0.95 * (b - a) / n
    assert stall["held_longest_s"] == pytest.approx((b - a) / FPS, abs=0.25)
    _, speaking = talking(8.0, pauses=False)
    moving_lips = features("expression", make_clip(rig, n, aperture=speaking, jitter_px=0.3, frame_diff=diff))[0]
    talking_photo = read(speaking, upper)[0]  # the same still upper face, the lips moving throughout
    assert talking_photo["frozen_share"] == pytest.approx(moving_lips["frozen_share"], abs=0.01)
    short = upper.copy()
    short[np.arange(a + 5, b, 5)] = 3.0
    short[a + 5] = 0.2  # one window (0.2 s) of a still face above still lips
    assert read(held_lips, short)[0]["frozen_share"] == pytest.approx(before["frozen_share"], abs=0.01)


# ------------------------------------------------------------------------------ (h) speech rate
def test_speech_rate_tracks_syllable_rate(rig):
    rates = {}
    for rate in (3.0, 6.0):
        env, aperture = talking(10.0, rate_hz=rate, seed=int(rate), pauses=False)
        audio = 0.3 * voice(10.0) * env
        clip = make_clip(rig, len(aperture), aperture=aperture, audio=audio)
        truth = np.sum(np.diff((env > 0).astype(int)) == 1) / (clip.vad.sum() / FPS)  # per second of speech
        c, _, _ = features("consistency", clip)
        assert c["speech_rate"] == pytest.approx(truth, rel=0.25)
        assert c["mouth_rate"] == pytest.approx(truth, rel=0.35)
        rates[rate] = c
    assert rates[6.0]["speech_rate"] > 1.4 * rates[3.0]["speech_rate"]
    assert rates[6.0]["mouth_rate"] > 1.4 * rates[3.0]["mouth_rate"]
    assert 0.7 < rates[3.0]["rate_ratio"] < 1.3


def test_silent_face_with_fast_speech_is_inconsistent(rig):
    env, aperture = talking(10.0, rate_hz=5.0, pauses=False)
    audio = 0.3 * voice(10.0) * env
    still_mouth = make_clip(rig, len(aperture), aperture=0.02 + 0 * aperture, audio=audio)
    c, _, _ = features("consistency", still_mouth)
    assert c["mouth_rate"] < 0.5 < 3.0 < c["speech_rate"]
    match = c["syllable_mouth_match"]
    assert np.isnan(match) or match < 0.2


# ------------------------------------------------------------------------- (g) contract, every family
@pytest.fixture(scope="module")
def normal(rig):
    return normal_clip(rig)


@pytest.mark.parametrize("name", FAMILIES.names())
def test_family_declares_and_fills_every_feature(name, normal):
    fam = FAMILIES.create(name, **(FAST_AUDIO if name == "audio" else {}))
    out = fam.extract(normal, windows(normal))
    assert list(out.clip) == fam.columns()
    assert list(out.windows) == fam.window_columns()
    conditional = {f"{name}__{c}" for c in fam.conditional_features}
    assert conditional <= set(out.clip)
    bad = [k for k, v in out.clip.items() if not np.isfinite(v) and k not in conditional]
    assert not bad, f"non-finite on a normal clip: {bad}"
    for k, v in out.windows.items():
        assert np.isfinite(v).any(), f"{k} is NaN in every window"
    declared = {f"{name}__{s}" for s in fam.series_names}
    assert set(out.series) <= declared and all(len(v) == normal.n_frames for v in out.series.values())


def test_audio_family_full_defaults(normal):
    """DNSMOS and eGeMAPS on: their names are known before extraction and filled after."""
    fam = FAMILIES.create("audio")
    names = fam.columns()
    assert "audio__dnsmos_ovrl" in names and sum(n.startswith("audio__egemaps_") for n in names) == 88
    out = fam.extract(normal, windows(normal))
    assert list(out.clip) == names
    assert all(np.isfinite(out.clip[n]) for n in names)
    assert 1.0 <= out.clip["audio__dnsmos_ovrl"] <= 5.0


@pytest.mark.parametrize("name", FAMILIES.names())
def test_no_audio_gives_nan_not_an_error(name, rig, normal):
    silent = make_clip(rig, normal.n_frames, aperture=np.full(normal.n_frames, 0.1), audio=None)
    fam = FAMILIES.create(name, **(FAST_AUDIO if name == "audio" else {}))
    out = fam.extract(silent, windows(silent))
    assert list(out.clip) == fam.columns()
    audio_bound = {
        "audio": fam.columns(),
        "lipsync": ["lipsync__av_offset_frames", "lipsync__av_peak_corr", "lipsync__speech_share"],
        "consistency": ["consistency__speech_rate", "consistency__arousal_activity_corr"],
        "expression": [],
        "visual": [],
    }[name]
    assert all(np.isnan(out.clip[k]) for k in audio_bound)
    visual = {
        "lipsync": "lipsync__aperture_mean",
        "expression": "expression__jitter",
        "consistency": "consistency__mouth_rate",
        "visual": "visual__face_lapvar",
    }
    if name in visual:
        assert np.isfinite(out.clip[visual[name]])


@pytest.mark.parametrize("name", FAMILIES.names())
def test_lost_face_and_missing_vad_are_survived(name, rig, normal):
    clip = normal_clip(rig, vad=None)
    clip.face_valid[40:80] = False
    clip.aligned[40:80] = np.nan
    clip.head_pose[40:80] = np.nan
    fam = FAMILIES.create(name, **(FAST_AUDIO if name == "audio" else {}))
    out = fam.extract(clip, windows(clip))
    assert np.isfinite(list(out.clip.values())).mean() > 0.8


@pytest.mark.parametrize("duration_s", [1.0, 1.2])
def test_short_clip(rig, duration_s):
    """25 frames (one window) must still give the visual and level features, and no warning."""
    clip = normal_clip(rig, duration_s=duration_s)
    assert len(windows(clip)) == 1
    for name in FAMILIES.names():
        fam = FAMILIES.create(name, **(FAST_AUDIO if name == "audio" else {}))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            out = fam.extract(clip, windows(clip))
        assert list(out.clip) == fam.columns()
    lip, _, _ = features("lipsync", clip)
    assert np.isfinite([lip["aperture_mean"], lip["av_peak_corr"], lip["speech_share"]]).all()


@pytest.mark.parametrize("name", FAMILIES.names())
def test_silent_audio_is_survived(name, rig):
    """An all-zero track (and one frame short of the video): NaN where nothing is measurable, no error."""
    n = 100
    _, aperture = talking(4.0)
    clip = make_clip(rig, n, aperture=aperture, audio=np.zeros(n * HOP - 300), vad=np.zeros(n, bool))
    fam = FAMILIES.create(name, **(FAST_AUDIO if name == "audio" else {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = fam.extract(clip, windows(clip))
    assert list(out.clip) == fam.columns()
    if name == "audio":
        c = {k.split("__", 1)[1]: v for k, v in out.clip.items()}
        assert c["speech_share"] == 0.0 and c["rms_dbfs"] <= -100
        assert np.isnan(c["snr_db"]) and np.isnan(c["hnr_db"])


def test_snr_ignores_a_vad_that_marks_only_burst_edges():
    """WebRTC's VAD may flag only the on- and offsets of steady tone bursts; their loud middles then
    sit among its "non-speech" frames and must not be taken for the noise floor."""
    from talkqa.features.families.audio import snr_db

    phase = np.arange(250) % 25  # a 0.48 s burst at 25 dB, one fading frame, then the noise floor
    level = np.select([phase < 12, phase == 12], [10**2.5, 10**1.7], 1.0)
    power = level * np.random.default_rng(0).uniform(0.9, 1.1, 250)
    edges = (phase < 2) | ((phase >= 12) & (phase <= 14))  # as WebRTC flagged a 660 Hz tone at 25 dB SNR
    snr, split = snr_db(power, edges)
    assert split and abs(snr - 25) <= 1


# ------------------------------------------------------------------------------------ signal tools
def test_lagged_xcorr_sign_convention():
    rng = np.random.default_rng(0)
    mouth = rng.normal(size=300)
    audio = np.r_[np.zeros(5), mouth[:-5]]  # the same signal, 5 frames later
    peak = S.xcorr_peak(*S.lagged_xcorr(mouth, audio, 15))
    assert peak["offset"] == 5 and peak["peak"] > 0.99


def test_fill_gaps_and_robust_z():
    x = np.array([0.0, np.nan, 2.0, np.nan, np.nan, np.nan, 6.0, np.nan])
    filled = S.fill_gaps(x, max_gap=2)
    assert filled[1] == 1.0 and np.isnan(filled[3:6]).all() and np.isnan(filled[7])
    z = S.robust_z(np.r_[np.zeros(50), 100.0])
    assert np.isfinite(z).all()
    assert 0.0 < S.otsu_threshold(np.r_[np.zeros(50), np.ones(50) * 10]) < 10.0


def test_runs_and_the_longest_run():
    mask = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1], bool)
    assert S.runs(mask).tolist() == [[1, 3], [4, 7], [8, 9]]
    assert S.longest_run(mask) == 3 and S.longest_run(np.zeros(5, bool)) == 0 and S.longest_run(np.ones(4, bool)) == 4


def test_moving_mean_skips_nan_and_needs_half_a_window():
    x = np.array([np.nan, 1.0, 2.0, np.nan, 4.0, 5.0, np.nan, np.nan, np.nan])
    m = S.moving_mean(x, 3)
    assert m[1] == 1.5 and m[2] == 1.5 and m[3] == 3.0 and m[4] == 4.5  # the mean of the finite neighbours
    assert np.isnan(m[6]) and np.isnan(m[7])  # one and no finite sample within reach; 2 of 3 are needed
    assert np.isnan(S.moving_mean(x, 3, min_count=3)).all()  # never three finite in a row
    np.testing.assert_array_equal(S.moving_mean(np.array([1.0, 2.0, 3.0]), 3, min_count=3), [np.nan, 2.0, np.nan])


# ------------------------------------------------------------- end to end, through the real preprocessing
@pytest.mark.slow
def test_rendered_video_through_preprocessing(astronaut, tmp_path):
    """Rendered talking head -> video file -> preprocess (MediaPipe, VAD) -> families: an audio delay
    of 4 frames, five blinks, and a frozen video are found on real tracker output."""
    render = pytest.importorskip("talkqa.corpus.render")
    from conftest import speech_like
    from talkqa.features.preprocess import preprocess
    from talkqa.corpus.media import write_clip
    from talkqa.corpus.speech import controls_from_audio

    head = render.TalkingHeadRenderer(astronaut, size=256).prepare()
    n = 150
    audio = speech_like(n / FPS, seed=3)
    controls = controls_from_audio(audio, SR, FPS, np.random.default_rng(0), n_frames=n)
    for eye in ("blink_l", "blink_r"):
        controls[eye][:] = 0
        for start in (15, 45, 75, 105, 135):
            controls[eye][start : start + 4] = [0.6, 1.0, 1.0, 0.6]
    frames = head.render(controls)
    clip = preprocess(write_clip(tmp_path / "late.mp4", frames, FPS, shift(audio, 4 * HOP), SR))
    lip, _, _ = features("lipsync", clip)
    expr, _, _ = features("expression", clip)
    assert abs(lip["av_offset_frames"] - 4) <= 1
    assert abs(expr["blink_count"] - 5) <= 1 and expr["frozen_share"] < 0.2
    frozen = preprocess(write_clip(tmp_path / "frozen.mp4", np.repeat(frames[:1], 75, 0), FPS, audio[: 3 * SR], SR))
    assert features("expression", frozen)[0]["frozen_share"] > 0.9
