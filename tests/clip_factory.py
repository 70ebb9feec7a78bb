"""Tiny synthetic clips for tests, written with ffmpeg (PyAV) from numpy arrays.

`bad_inputs(folder, portrait)` makes every awkward input the extractor must handle and returns
{name: (path, expected_status)}. Clips are short and small so the whole set builds in seconds.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from talkqa.corpus.media import write_clip

from conftest import speech_like


def face_frames(portrait: np.ndarray, n: int, size: tuple[int, int] = (256, 256), seed: int = 0) -> np.ndarray:
    """The portrait with a slow drift, so the face moves a little like a real one."""
    h, w = size
    rng = np.random.default_rng(seed)
    face = portrait[0:300, 110:410] if portrait.shape[:2] == (512, 512) else portrait  # astronaut: head and shoulders
    base = cv2.resize(face, (min(w, h), min(w, h)))
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:] = 40
    for i in range(n):
        dx = int(3 * np.sin(i / 9.0)) + int(rng.integers(-1, 2))
        s = base.shape[0]
        y0 = (h - s) // 2
        x0 = (w - s) // 2 + dx
        x0 = int(np.clip(x0, 0, w - s))
        frames[i, y0 : y0 + s, x0 : x0 + s] = base
    return frames


def noise_frames(n: int, size=(128, 128), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (n, *size, 3), dtype=np.uint8)


def bad_inputs(folder: Path, portrait: np.ndarray) -> dict[str, tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    sr, fps = 16000, 25
    speech = speech_like(1.6, sr)
    faces = face_frames(portrait, 40)
    made: dict[str, tuple[Path, str]] = {}

    def add(name, path, status):
        made[name] = (Path(path), status)

    add("missing_path", folder / "does_not_exist.mp4", "missing_file")
    (folder / "a_folder.mp4").mkdir(exist_ok=True)
    add("directory", folder / "a_folder.mp4", "not_a_file")
    (folder / "empty.mp4").write_bytes(b"")
    add("zero_bytes", folder / "empty.mp4", "empty_file")
    good = write_clip(folder / "good.mp4", faces, fps, speech, sr)
    add("good", good, "ok")
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    add("truncated", folder / "truncated.mp4", "decode_error")
    (folder / "text.mp4").write_text("this is not a video\n" * 50)
    add("text_as_mp4", folder / "text.mp4", "decode_error")
    add("audio_only", write_clip(folder / "audio_only.m4a", None, audio=speech, sr=sr), "no_video")
    add("no_audio_track", write_clip(folder / "no_audio.mp4", faces, fps), "no_audio")
    add("silent_audio", write_clip(folder / "silent.mp4", faces, fps, np.zeros_like(speech), sr), "silent_audio")
    add("no_face", write_clip(folder / "noise.mp4", noise_frames(40), fps, speech, sr), "no_face")
    half = faces.copy()
    half[20:] = noise_frames(20, faces.shape[1:3], seed=1)
    add("face_in_part", write_clip(folder / "half_face.mp4", half, fps, speech, sr), "ok")
    two = np.zeros((40, 256, 512, 3), np.uint8)
    two[:, :, :256] = faces  # the bigger face is the main speaker
    two[:, 48:224, 300:476] = face_frames(portrait, 40, (176, 176), seed=2)
    add("two_faces", write_clip(folder / "two_faces.mp4", two, fps, speech, sr), "ok")
    add("one_frame", write_clip(folder / "one_frame.mp4", faces[:1], fps), "too_short")
    add("half_second", write_clip(folder / "half_second.mp4", faces[:12], fps, speech[: sr // 2], sr), "too_short")
    ts = np.cumsum(np.r_[0.0, np.random.default_rng(3).choice([0.02, 0.04, 0.06], 59)])
    vfr = face_frames(portrait, 60)
    add("vfr", write_clip(folder / "vfr.mp4", vfr, fps, speech_like(ts[-1] + 0.05, sr), sr, timestamps=ts), "ok")
    add("fps60", write_clip(folder / "fps60.mp4", face_frames(portrait, 96), 60, speech, sr), "ok")
    add("audio_8k", write_clip(folder / "audio8k.mp4", faces, fps, speech_like(1.6, 8000), 8000), "ok")
    stereo = np.stack([speech_like(1.6, 48000), speech_like(1.6, 48000, seed=1)], axis=1)
    add("audio_48k_stereo", write_clip(folder / "audio48k.mp4", faces, fps, stereo, 48000), "ok")
    add("frame_4k", write_clip(folder / "uhd.mp4", face_frames(portrait, 28, (2160, 3840)), fps, speech_like(1.12, sr), sr), "ok")
    add("portrait_1080x1920", write_clip(folder / "portrait.mp4", face_frames(portrait, 30, (1920, 1080)), fps, speech_like(1.2, sr), sr), "ok")
    add("spaces_non_ascii", write_clip(folder / "dir with space" / "clip é 视频.mp4", faces, fps, speech, sr), "ok")
    return made
