"""Awkward media for the preprocessing tests, made from small clips by stream copy (PyAV):
header-first MP4s, display rotation, corrupted packets, audio files with cover art, pure tones."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def remux(src: Path, dst: Path, faststart: bool = False, rotation: int = 0, audio_delay_s: float = 0.0) -> Path:
    """Copy the streams of `src` into `dst` without re-encoding: `faststart` writes the index first (so a
    cut-off copy still opens), `rotation` adds a display matrix (degrees counter-clockwise),
    `audio_delay_s` starts the audio later on the container clock."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for s in inp.streams.video:
            if rotation:
                streams[s.index].set_display_rotation(rotation)
        for packet in inp.demux():
            if packet.dts is None:  # flush packets carry no data
                continue
            if packet.stream.type == "audio" and audio_delay_s:
                delay = int(round(audio_delay_s / packet.time_base))
                packet.pts, packet.dts = packet.pts + delay, packet.dts + delay
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupt_packets(src: Path, dst: Path, which: tuple[int, ...], seed: int = 0) -> Path:
    """Overwrite the middle half of the chosen video packets with random bytes."""
    with av.open(str(src)) as c:
        spans = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    for i in which:
        pos, size = spans[i]
        data[pos + size // 4 : pos + size // 4 + size // 2] = rng.integers(0, 256, size // 2, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def add_cover_art(audio_file: Path, dst: Path) -> Path:
    """An audio file with an embedded picture: a one-frame 'video' stream marked attached_pic."""
    with av.open(str(audio_file)) as inp, av.open(str(dst), "w", format="mp4") as out:
        audio = out.add_stream_from_template(inp.streams.audio[0])
        cover = out.add_stream("png")
        cover.width = cover.height = 64
        cover.pix_fmt = "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")
        picture.pts = 0
        for packet in cover.encode(picture) + cover.encode():
            out.mux(packet)
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    return dst


def tone(freq: float, seconds: float, sr: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))
