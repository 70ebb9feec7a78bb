"""Offline speech for the synthetic corpus, and facial controls driven by a speech signal.

`synthesize` drives the eSpeak NG shared library that the `espeakng-loader` wheel ships (through
ctypes, so `pip install` is all it needs); an `espeak-ng` program on PATH is the fallback.
`controls_from_audio` turns any speech signal into the per-frame control curves that
`render.TalkingHeadRenderer` understands: jaw from the speech envelope, natural blinks, head sway
and brow raises on stressed syllables.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import threading
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from talkqa.errors import UsageError

# Short sentences written for this corpus: everyday, varied in length and rhythm.
SENTENCES: dict[str, list[str]] = {
    "en": [
        "The morning train was late again, so I walked to work.",
        "Please put the blue folder on the table by the window.",
        "We planted tomatoes in April and picked them in July.",
        "My brother fixes old radios in his garage on weekends.",
        "The museum opens at nine and closes early on Sundays.",
        "Could you tell me where the nearest pharmacy is?",
        "She finished the whole crossword puzzle before breakfast.",
        "The river rose quickly after three days of heavy rain.",
        "I think the meeting should start a little later today.",
        "Our neighbours bought a small boat and named it Pepper.",
        "Turn left at the bakery, then follow the signs to the harbour.",
        "He reads two chapters every night before he falls asleep.",
        "The new bridge will be finished by the end of next year.",
        "Thank you for coming, it was really good to see you.",
        "Most of the students chose the evening class this term.",
        "A cold wind blew across the field and the sheep huddled together.",
        "The soup needs more salt, and maybe a little pepper.",
        "Remember to water the plants while I am away.",
        "The library has a quiet room on the second floor.",
        "We counted forty seven birds on the lake this morning.",
        "Her grandmother taught her how to bake bread by hand.",
        "The battery is almost empty, so let me charge my phone.",
        "On clear nights you can see the lights of the city from here.",
        "They painted the kitchen yellow, and it looks much brighter now.",
        "I would like a cup of tea with milk, please.",
        "The football match was cancelled because of the storm.",
        "Every summer the village holds a music festival in the park.",
        "Can we move the appointment to Thursday afternoon?",
        "The old clock in the hall still keeps perfect time.",
        "Nobody expected the small team to win the final.",
        "Write down the numbers before you forget them.",
        "The cat sleeps on the warm windowsill all afternoon.",
    ],
    "zh": [
        "今天早上的公交车又晚了，我只好走路去上班。",
        "请把蓝色的文件夹放在窗户旁边的桌子上。",
        "我们四月种了西红柿，七月就可以摘了。",
        "我哥哥周末喜欢在车库里修理旧收音机。",
        "博物馆早上九点开门，星期天关得比较早。",
        "请问附近哪里有药店？",
        "她在吃早饭之前就做完了整个填字游戏。",
        "下了三天大雨以后，河水涨得很快。",
        "我觉得今天的会议可以晚一点开始。",
        "邻居买了一条小船，给它起名叫胡椒。",
        "在面包店向左转，然后跟着路牌走到港口。",
        "他每天晚上睡觉前都要读两章书。",
        "新桥明年年底就能建好。",
        "谢谢你来，见到你真的很高兴。",
        "这个学期大部分学生都选了晚上的课。",
        "冷风吹过田野，羊群挤在一起取暖。",
        "这碗汤需要多放一点盐，也许再加点胡椒。",
        "我不在家的时候，记得给花浇水。",
        "图书馆二楼有一个安静的阅览室。",
        "今天早上我们在湖边数了四十七只鸟。",
        "奶奶教她怎么用手揉面做面包。",
        "手机快没电了，我先去充一下。",
        "天气晴朗的晚上，从这里能看见城市的灯光。",
        "他们把厨房刷成了黄色，现在亮多了。",
        "我想要一杯加牛奶的茶，谢谢。",
        "因为暴风雨，足球比赛取消了。",
        "每年夏天，村里都会在公园举办音乐节。",
        "我们能把约会改到星期四下午吗？",
        "走廊里的那座老钟到现在还走得很准。",
        "谁也没想到那支小球队能赢得决赛。",
        "趁还没忘，先把这些数字写下来。",
        "小猫整个下午都睡在暖和的窗台上。",
    ],
}

# eSpeak voice names per language key ('cmn' is eSpeak's Mandarin voice).
VOICES = {"en": "en", "zh": "cmn", "cmn": "cmn"}
ESPEAK_SR = 22050  # what espeak_Initialize reports for every stock voice

_INSTALL_HINT = ("install the Python package `espeakng-loader` (pip install espeakng-loader, it ships the eSpeak NG "
                 "library and data) or the system program `espeak-ng` (apt-get install espeak-ng)")


def _language_voice(lang: str) -> str:
    if lang not in VOICES:
        raise UsageError(f"language {lang!r} is not supported for speech synthesis; use one of {', '.join(VOICES)}")
    return VOICES[lang]


class _ESpeakLibrary:
    """The eSpeak NG C library, initialised once per process (it keeps global state; calls are serialised)."""

    AUDIO_OUTPUT_SYNCHRONOUS = 2
    INITIALIZE_DONT_EXIT = 0x8000
    CHARS_UTF8 = 1
    POS_CHARACTER = 1
    RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4

    def __init__(self):
        import espeakng_loader  # lazy: optional dependency (ImportError is handled by the caller)

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        sr = self.lib.espeak_Initialize(self.AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), self.INITIALIZE_DONT_EXIT)
        if sr <= 0:
            raise RuntimeError(f"espeak_Initialize failed with data path {data}")
        self.sr = int(sr)
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav, n, _events):
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0  # 0 = continue synthesis

        self._callback = callback_type(collect)  # keep a reference: the C side holds only the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                          ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._lock = threading.Lock()

    def synth(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise UsageError(f"eSpeak NG has no voice {voice!r}")
            self.lib.espeak_SetParameter(self.RATE, int(rate_wpm), 0)
            self.lib.espeak_SetParameter(self.PITCH, int(pitch), 0)
            if hasattr(self.lib, "espeak_ng_SetRandSeed"):
                self.lib.espeak_ng_SetRandSeed(ctypes.c_long(0))  # fewer run-to-run differences (not bit-exact)
            self._chunks = []
            data = text.encode("utf-8") + b"\0"
            err = self.lib.espeak_Synth(data, len(data), 0, self.POS_CHARACTER, 0, self.CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed (error {err})")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0


_LIBRARY: _ESpeakLibrary | None = None
_LIBRARY_ERROR: str | None = None


def _library() -> _ESpeakLibrary | None:
    global _LIBRARY, _LIBRARY_ERROR
    if _LIBRARY is None and _LIBRARY_ERROR is None:
        try:
            _LIBRARY = _ESpeakLibrary()
        except (ImportError, OSError, RuntimeError, AttributeError) as exc:
            _LIBRARY_ERROR = f"{type(exc).__name__}: {exc}"
    return _LIBRARY


def speech_backend() -> str | None:
    """'library' (espeakng-loader), 'program' (espeak-ng on PATH), or None when neither works."""
    if _library() is not None:
        return "library"
    if shutil.which("espeak-ng"):
        return "program"
    return None


def _synth_program(text: str, voice: str, rate_wpm: int, pitch: int) -> tuple[np.ndarray, int]:
    import soundfile as sf  # lazy: slow import, only on this path

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [shutil.which("espeak-ng") or "espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch),
               "-w", str(wav), text]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not wav.exists():
            raise RuntimeError(f"espeak-ng failed: {proc.stderr.strip()}")
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.asarray(audio, np.float32)
    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(audio, sr_out // g, sr_in // g).astype(np.float32)


def synthesize(text: str, lang: str = "en", sr: int = 16000, speed: float = 1.0, pitch: int = 50,
               variant: str | None = None) -> np.ndarray:
    """Speak `text` with eSpeak NG; float32 mono at `sr`, peak-normalised to 0.7.

    `lang` is 'en', 'zh' or 'cmn' (both Mandarin). `speed` scales eSpeak's default 175 words/min;
    `pitch` is eSpeak's 0-100 base pitch; `variant` is an eSpeak voice variant ('f3', 'm2', ...).
    Repeated calls give the same words and timing but not bit-identical samples (eSpeak's noise sources).
    """
    voice = _language_voice(lang) + (f"+{variant}" if variant else "")
    rate = int(np.clip(round(175 * speed), 80, 450))
    lib = _library()
    if lib is not None:
        audio, native_sr = lib.synth(text, voice, rate, pitch), lib.sr
    elif shutil.which("espeak-ng"):
        audio, native_sr = _synth_program(text, voice, rate, pitch)
    else:
        raise UsageError(f"no speech synthesiser available ({_LIBRARY_ERROR}); {_INSTALL_HINT}")
    audio = resample(audio, native_sr, sr)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * (0.7 / peak)
    return audio.astype(np.float32)


# ---------------------------------------------------------------- controls from a speech signal

# the controls `controls_from_audio` sets (the renderer's `zoom` stays at rest)
AUDIO_CONTROLS = ("jaw", "blink_l", "blink_r", "brow", "smile", "yaw", "roll", "dx", "dy")

def speech_envelope(audio: np.ndarray, sr: int, fps: float = 25.0) -> np.ndarray:
    """Per-frame loudness in dB (RMS of the 100 Hz-4 kHz band over a 2-frame window), one value per video frame."""
    from scipy.signal import butter, sosfiltfilt  # lazy: slow import, only on this path

    audio = np.asarray(audio, np.float32)
    n_frames = int(np.ceil(len(audio) / sr * fps))
    if n_frames == 0:
        return np.zeros(0, np.float32)
    sos = butter(2, [100, min(4000, 0.45 * sr)], btype="band", fs=sr, output="sos")
    band = sosfiltfilt(sos, audio) if len(audio) > 30 else audio
    hop = sr / fps
    centers = (np.arange(n_frames) + 0.5) * hop
    half = hop  # window of two frames
    csum = np.concatenate([[0.0], np.cumsum(band.astype(np.float64) ** 2)])
    lo = np.clip((centers - half).astype(int), 0, len(band))
    hi = np.clip((centers + half).astype(int), 0, len(band))
    power = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    return (10 * np.log10(power + 1e-10)).astype(np.float32)


def _attack_decay(x: np.ndarray, attack: float, decay: float) -> np.ndarray:
    y = np.empty_like(x)
    prev = 0.0
    for i, v in enumerate(x):
        k = attack if v > prev else decay
        prev = prev + k * (v - prev)
        y[i] = prev
    return y


def _smooth_noise(n: int, fps: float, rng: np.random.Generator, max_hz: float = 0.6, n_waves: int = 4) -> np.ndarray:
    """Sum of a few random low-frequency sinusoids, unit standard deviation: slow, natural-looking drift."""
    t = np.arange(n) / fps
    out = np.zeros(n)
    for _ in range(n_waves):
        f = rng.uniform(0.08, max_hz)
        out += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    sd = out.std() if n > 1 else 1.0
    return out / (sd if sd > 1e-9 else 1.0)


def _blink_track(n: int, fps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    left, right = np.zeros(n), np.zeros(n)
    t = rng.uniform(0.3, 3.0)
    while True:
        start = int(round(t * fps))
        length = int(rng.integers(3, 7))  # 3-6 frames
        if start >= n:
            break
        # quick closing, slower opening
        close = max(1, length // 3)
        shape = np.concatenate([np.linspace(0.0, 1.0, close + 1)[1:], np.linspace(1.0, 0.0, length - close + 2)[1:-1]])
        depth = rng.uniform(0.85, 1.0)
        asym = rng.uniform(0.9, 1.0)
        seg = slice(start, min(n, start + length))
        k = seg.stop - seg.start
        left[seg] = np.maximum(left[seg], depth * shape[:k])
        right[seg] = np.maximum(right[seg], depth * asym * shape[:k])
        t += rng.uniform(2.0, 6.0)
    return left, right


def controls_from_audio(audio: np.ndarray, sr: int, fps: float = 25.0, rng: np.random.Generator | None = None,
                        n_frames: int | None = None) -> dict[str, np.ndarray]:
    """Per-frame controls for `TalkingHeadRenderer.render` from a speech signal.

    jaw: band envelope in dB above the noise floor, normalised to the clip's 95th percentile, attack/decay
    smoothed; blinks every 2-6 s lasting 3-6 frames; yaw/roll/dx/dy: low-frequency sway that grows a
    little while speaking; brow: short raises on some stressed syllables (envelope peaks); smile: slow drift.
    """
    from scipy.signal import find_peaks  # lazy: slow import, only on this path

    rng = rng if rng is not None else np.random.default_rng()
    env_db = speech_envelope(audio, sr, fps)
    n = n_frames if n_frames is not None else len(env_db)
    env_db = np.pad(env_db, (0, max(0, n - len(env_db))), constant_values=env_db.min() if len(env_db) else -100)[:n]
    if n == 0:
        return {k: np.zeros(0, np.float32) for k in AUDIO_CONTROLS}
    top = np.percentile(env_db, 95)
    floor = max(np.percentile(env_db, 5), top - 40.0)
    level = np.clip((env_db - floor - 6.0) / max(top - floor - 6.0, 1e-6), 0, 1)  # 6 dB over the floor is silence
    jaw = _attack_decay(level ** 1.5, attack=0.75, decay=0.45)
    jaw = np.clip(jaw * rng.uniform(0.5, 0.8), 0, 1)  # speakers differ in how wide they open

    blink_l, blink_r = _blink_track(n, fps, rng)
    activity = np.convolve(level, np.ones(25) / 25, mode="same")  # ~1 s speaking activity
    sway_gain = 0.7 + 0.6 * activity
    yaw = 0.25 * _smooth_noise(n, fps, rng) * sway_gain
    roll = 1.5 * _smooth_noise(n, fps, rng) * sway_gain
    dx = 1.5 * _smooth_noise(n, fps, rng) * sway_gain
    nod = 0.6 * (jaw - jaw.mean())  # the head dips a little with loud syllables
    dy = 1.0 * _smooth_noise(n, fps, rng, max_hz=0.9) * sway_gain + nod

    brow = np.zeros(n)
    peaks, props = find_peaks(level, height=0.75, distance=max(1, int(0.4 * fps)), prominence=0.3)
    bump = np.sin(np.linspace(0, np.pi, 9))
    for p in peaks:
        if rng.random() < 0.45:
            a = rng.uniform(0.3, 0.7)
            lo, hi = max(0, p - 3), min(n, p + 6)
            brow[lo:hi] = np.maximum(brow[lo:hi], a * bump[lo - (p - 3): lo - (p - 3) + hi - lo])
    smile = np.clip(0.15 + 0.12 * _smooth_noise(n, fps, rng, max_hz=0.25), 0, 1) * rng.uniform(0.3, 1.0)

    out = dict(jaw=jaw, blink_l=blink_l, blink_r=blink_r, brow=brow, smile=smile, yaw=yaw, roll=roll, dx=dx, dy=dy)
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
