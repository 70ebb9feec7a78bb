"""Decoding any common container with PyAV into the analysis clock.

Video is streamed: each decoded frame is scaled (in swscale) so its long side is at most
`max_side`, and frames are resampled to a constant `fps` by timestamp (output frame k shows the
latest source frame whose time is <= k/fps), which handles VFR, 60 fps and 22.13 fps sources alike.
Nothing at full resolution is kept. Audio is resampled to `sr` mono float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from talkqa.errors import ClipError

_EPS = 1e-3


@dataclass
class MediaInfo:
    has_video: bool
    has_audio: bool
    src_fps: float = float("nan")
    src_width: int = 0
    src_height: int = 0
    duration_s: float = float("nan")
    audio_sr_src: int = 0
    audio_channels_src: int = 0
    video_codec: str = ""


@dataclass
class DecodeStats:
    n_src_frames: int = 0
    n_corrupt: int = 0
    n_black: int = 0
    notes: list[str] = field(default_factory=list)


def check_file(path, what: str = "video") -> None:
    """The checks that need no decoding, with the message a person needs."""
    if path is None or isinstance(path, float) or not str(path).strip():
        raise ClipError("missing_file", f"no {what} path given")
    p = Path(path)
    if not p.exists():
        raise ClipError("missing_file", f"{what} file does not exist; check the path", str(p))
    if not p.is_file():
        raise ClipError("not_a_file", f"is a {'folder' if p.is_dir() else 'special file'}, not a {what} file; "
                                      "pass a file (or build a manifest from a folder with `talkqa manifest`)", str(p))
    if p.stat().st_size == 0:
        raise ClipError("empty_file", f"{what} file is empty (0 bytes); re-export or re-download it", str(p))


def _open(path: str | Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise ClipError("decode_error", f"cannot be read as a media file ({exc.__class__.__name__}); "
                                        "it may be truncated or not a video — re-export it", str(path)) from None


def probe(path: str | Path) -> MediaInfo:
    with _open(path) as c:
        v = c.streams.video[0] if c.streams.video else None
        a = c.streams.audio[0] if c.streams.audio else None
        duration = float(c.duration / av.time_base) if c.duration else float("nan")
        info = MediaInfo(has_video=v is not None, has_audio=a is not None, duration_s=duration)
        if v is not None:
            rate = v.average_rate or v.guessed_rate or v.base_rate
            info.src_fps = float(rate) if rate else float("nan")
            info.src_width, info.src_height = v.codec_context.width, v.codec_context.height
            info.video_codec = v.codec_context.name
            if v.duration and v.time_base:
                info.duration_s = float(v.duration * v.time_base)
        if a is not None:
            info.audio_sr_src = a.codec_context.sample_rate or 0
            info.audio_channels_src = a.codec_context.channels or 0
    return info


def analysis_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # even sizes keep swscale and the encoders happy
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def iter_video(path: str | Path, fps: float, max_side: int, stats: DecodeStats) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames at `fps`, long side <= max_side. Corrupt packets are counted and skipped."""
    with _open(path) as c:
        if not c.streams.video:
            raise ClipError("no_video", "has no video stream (audio only?); talkqa scores videos of faces", str(path))
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        size = None
        last = None  # latest decoded source frame, converted lazily
        last_rgb = None
        t_first = None
        t_last = 0.0
        k = 0
        for frame in _frames(c, stream, stats):
            t = frame.time if frame.time is not None else stats.n_src_frames / (float(stream.average_rate or fps))
            if t_first is None:
                t_first = t
            t_rel = t - t_first
            while last is not None and k / fps < t_rel - _EPS:
                if last_rgb is None:
                    last_rgb = last.to_ndarray(width=size[0], height=size[1], format="rgb24")
                yield last_rgb
                k += 1
            if size is None:
                size = analysis_size(frame.width, frame.height, max_side)
            last, last_rgb, t_last = frame, None, t_rel
        if last is None:
            return
        rate = float(stream.average_rate) if stream.average_rate else fps
        t_end = t_last + 1.0 / rate
        while k / fps < t_end - _EPS:
            if last_rgb is None:
                last_rgb = last.to_ndarray(width=size[0], height=size[1], format="rgb24")
            yield last_rgb
            k += 1


def _frames(container, stream, stats: DecodeStats):
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            stats.n_corrupt += 1
            continue
        for frame in frames:
            stats.n_src_frames += 1
            yield frame
    # demux ends silently on a truncated file; decoders have already flushed what they could


def decode_audio(path: str | Path, sr: int) -> np.ndarray | None:
    """Mono float32 at `sr`, or None when the file has no audio stream."""
    with _open(path) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks = []
        for packet in c.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                frame.pts = None  # let the resampler follow sample counts, not gappy timestamps
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, np.float32)
    return np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)
