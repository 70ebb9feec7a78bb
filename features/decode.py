"""Decoding any common container with PyAV onto the analysis clock.

Video is streamed: each source frame is scaled in swscale (long side <= `max_side`) only when the
analysis clock needs it, and the clock is driven by timestamps (output frame k shows the latest source
frame whose time is <= k/fps), so VFR, 60 fps, 29.97 fps and repeated or dropped frames all come out
as a constant `fps`. Of the full-resolution frames only the current one is referenced here.
Audio becomes `sr` mono float32, the mean of the source channels, with sample 0 at the first video frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import av
import numpy as np

from talkqa.errors import ClipError

# Timestamps are stored in ticks (1/12800 s, ms, ...): tolerate rounding when comparing with k/fps.
_TIME_EPS = 1e-3


@dataclass
class MediaInfo:
    """What the container header says, before decoding."""

    video_index: int | None
    audio_index: int | None
    src_fps: float = float("nan")
    src_width: int = 0  # as stored
    src_height: int = 0
    video_duration_s: float = float("nan")  # as declared by the header (NaN when it does not say)
    container_duration_s: float = float("nan")  # the longest stream, as declared
    audio_sr_src: int = 0
    audio_channels_src: int = 0

    @property
    def has_video(self) -> bool:
        return self.video_index is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_index is not None


@dataclass
class DecodeStats:
    n_src_frames: int = 0  # source frames decoded
    n_corrupt: int = 0  # packets the demuxer or decoder rejected, and frames flagged corrupt
    stopped_early: bool = False  # the demuxer failed before the end of the file
    t_first: float = 0.0  # container time of the first video frame (the clock's origin)
    span_s: float = 0.0  # decoded video, from t_first to the end of the last frame
    rotation: int = 0  # degrees counter-clockwise a player turns the stored picture (display matrix)
    display_size: tuple[int, int] = (0, 0)  # source (width, height) as displayed, i.e. after rotation


@dataclass
class DecodedAudio:
    samples: np.ndarray  # (N,) float32 mono at the requested rate
    sr: int
    t_first: float  # container time of samples[0]
    n_corrupt: int = 0

    @property
    def t_end(self) -> float:
        return self.t_first + len(self.samples) / self.sr


def check_file(path: Any, what: str = "video") -> None:
    """The checks that need no decoding, with the message a person needs."""
    if path is None or isinstance(path, float) or not str(path).strip():
        raise ClipError("missing_file", f"no {what} path given; give the path of a {what} file")
    p = Path(path)
    if not p.exists():
        raise ClipError("missing_file", f"{what} file does not exist; check the path", str(p))
    if not p.is_file():
        kind = "folder" if p.is_dir() else "special file"
        raise ClipError("not_a_file", f"is a {kind}, not a {what} file; pass a file "
                                      "(or build a manifest from a folder with `talkqa manifest`)", str(p))
    if p.stat().st_size == 0:
        raise ClipError("empty_file", f"{what} file is empty (0 bytes); re-export or re-download it", str(p))


def open_media(path: str | Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise ClipError("decode_error", f"cannot be read as a media file ({type(exc).__name__}); it may be "
                                        "truncated or not a video at all; re-export it", str(path)) from None


def _video_stream(container):
    # Cover art in audio files is a one-picture "video" stream: it is not a video.
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    return None


def probe(path: str | Path) -> MediaInfo:
    with open_media(path) as c:
        v = _video_stream(c)
        a = c.streams.audio[0] if c.streams.audio else None
        info = MediaInfo(video_index=v.index if v is not None else None, audio_index=a.index if a is not None else None)
        if c.duration:
            info.container_duration_s = float(c.duration / av.time_base)
        if v is not None:
            rate = v.average_rate or v.guessed_rate or v.base_rate
            info.src_fps = float(rate) if rate else float("nan")
            info.src_width, info.src_height = v.codec_context.width, v.codec_context.height
            if v.duration and v.time_base:
                info.video_duration_s = float(v.duration * v.time_base)
        if a is not None:
            info.audio_sr_src = a.codec_context.sample_rate or 0
            info.audio_channels_src = a.codec_context.channels or 0
    return info


def analysis_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # Even sizes keep swscale's chroma handling exact.
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def on_clock(timed: Iterable[tuple[float, Any]], fps: float, tail: float | None = None) -> Iterator[Any]:
    """Resample (time, item) pairs in presentation order onto a constant `fps` clock.

    Output frame k (time k/fps after the first item) is the latest item with time <= k/fps: fast
    sources drop items, slow or irregular ones repeat them. The last item lasts `tail` seconds (its
    nominal duration; 1/fps when None), and output frame k exists while its midpoint is inside the
    decoded span, so a 1.6 s source gives round(1.6 * fps) frames whatever its own rate.
    """
    k = 0
    last = None
    t0 = t_last = None
    for t, item in timed:
        if t0 is None:
            t0 = t
        t_rel = t - t0
        while last is not None and k / fps < t_rel - _TIME_EPS:
            yield last
            k += 1
        last, t_last = item, t_rel
    if last is None:
        return
    end = t_last + (tail if tail else 1.0 / fps)
    while (k + 0.5) / fps < end + _TIME_EPS:
        yield last
        k += 1


def iter_video(path: str | Path, fps: float, max_side: int, stats: DecodeStats) -> Iterator[np.ndarray]:
    """RGB uint8 frames on the `fps` clock, long side <= max_side, upright per the rotation metadata.
    Corrupt packets are counted in `stats` and skipped; a demuxer failure ends the stream early."""
    with open_media(path) as c:
        stream = _video_stream(c)
        if stream is None:
            raise ClipError("no_video", "has no video stream (audio only?); talkqa scores videos of faces", str(path))
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate) if stream.average_rate else None
        tail = 1.0 / rate if rate else None
        converted_from, converted = None, None
        for frame in on_clock(_timed_frames(c, stream, stats, rate or fps), fps, tail):
            if frame is not converted_from:  # a repeated source frame is converted once
                converted_from, converted = frame, _to_rgb(frame, max_side)
            yield converted


def _quarter_turns(frame) -> int:
    return int(round((frame.rotation or 0) / 90.0)) % 4


def _to_rgb(frame, max_side: int) -> np.ndarray:
    turns = _quarter_turns(frame)
    w, h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    out_w, out_h = analysis_size(w, h, max_side)
    if turns % 2:
        out_w, out_h = out_h, out_w
    rgb = frame.to_ndarray(width=out_w, height=out_h, format="rgb24")
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _timed_frames(container, stream, stats: DecodeStats, nominal_fps: float):
    """(seconds since the first frame, frame) in presentation order; updates `stats`."""
    t_first = None
    for frame in _decode_stream(container, stream, stats):
        t = frame.time if frame.time is not None else stats.n_src_frames / nominal_fps
        if t_first is None:
            t_first = stats.t_first = t
            stats.rotation = _quarter_turns(frame) * 90
            stats.display_size = (frame.height, frame.width) if stats.rotation % 180 else (frame.width, frame.height)
        stats.n_src_frames += 1
        stats.n_corrupt += bool(frame.is_corrupt)
        stats.span_s = max(stats.span_s, t - t_first + 1.0 / nominal_fps)
        yield t, frame


def _decode_stream(container, stream, stats):
    """Decoded frames of one stream; a bad packet is counted and skipped, not fatal."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            # The demuxer cannot go on (cut or damaged file): keep what the decoder still holds.
            stats.n_corrupt += 1
            stats.stopped_early = True
            try:
                yield from stream.codec_context.decode(None)
            except av.error.FFmpegError:
                pass
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            stats.n_corrupt += 1
            continue
        yield from frames


def decode_audio(path: str | Path, sr: int) -> DecodedAudio | None:
    """The first audio stream as mono float32 at `sr`, or None when the file has none.
    Channels are averaged (no +3 dB boost as in swresample's stereo->mono matrix)."""
    with open_media(path) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        resampler = None
        chunks: list[np.ndarray] = []
        stats = DecodeStats()
        t_first = None
        for frame in _decode_stream(c, stream, stats):
            if t_first is None:
                t_first = float(frame.time) if frame.time is not None else 0.0
            if resampler is None:
                resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sr)
            frame.pts = None  # the resampler follows sample counts, not gappy timestamps
            chunks += [out.to_ndarray().mean(axis=0) for out in resampler.resample(frame)]
        if resampler is not None:
            chunks += [out.to_ndarray().mean(axis=0) for out in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return DecodedAudio(np.clip(samples, -1.0, 1.0), sr, t_first or 0.0, stats.n_corrupt)


def on_video_clock(audio: DecodedAudio, n_samples: int, video_t_first: float | None) -> np.ndarray:
    """Audio cut or zero-padded to exactly n_samples, sample 0 at the first video frame.
    `video_t_first=None` (a separate audio file) puts the audio's own start at frame 0."""
    x = audio.samples
    if video_t_first is not None:
        shift = int(round((audio.t_first - video_t_first) * audio.sr))
        x = np.concatenate([np.zeros(shift, np.float32), x]) if shift > 0 else x[-shift:]
    return np.pad(x, (0, max(0, n_samples - len(x))))[:n_samples].astype(np.float32)
