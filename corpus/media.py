"""Writing clips to disk (PyAV): used by `synth`, `degrade` and the test fixtures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from talkqa.store import atomic_path


def write_clip(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray] | None,
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    vcodec: str = "libx264",
    crf: int = 20,
    acodec: str = "aac",
    audio_bitrate: int | None = None,
    timestamps: "np.ndarray | list[float] | None" = None,
    reproducible: bool = False,
) -> Path:
    """Write RGB uint8 frames (T, H, W, 3) and optional audio ((N,) mono or (N, C)) in [-1, 1].

    The file appears atomically: it is encoded to a temporary name in the same folder and renamed.
    `frames=None` writes an audio-only file. `timestamps` (seconds, one per frame) writes a
    variable-frame-rate stream instead of a constant `fps` one. `reproducible` turns off x264's
    macroblock-tree rate control: with it, the x264 of PyAV's wheels encodes the same frames into a
    different bitstream from run to run (even on one thread; decoded pixels differ by up to ~50 levels),
    without it the file is byte-identical. Off by default because the degrade corpus, and the compression
    levels fitted to human ratings, were made with it.
    """
    path = Path(path)
    # the temporary name keeps the suffix: PyAV picks the container format from it
    with atomic_path(path, path.suffix or ".mp4") as tmp, av.open(str(tmp), mode="w") as container:
        vstream = astream = None
        frame_iter = iter(frames) if frames is not None else None
        first = next(frame_iter, None) if frame_iter is not None else None
        if first is not None:
            h, w = first.shape[:2]
            rate = Fraction(fps).limit_denominator(1001)
            vstream = container.add_stream(vcodec, rate=rate)
            vstream.width, vstream.height = w - (w % 2), h - (h % 2)
            vstream.pix_fmt = "yuv420p"
            if vcodec == "libx264":
                vstream.options = {"crf": str(crf), "preset": "veryfast",
                                   **({"x264-params": "no-mbtree=1"} if reproducible else {})}
            if timestamps is not None:
                # millisecond clock so irregular frame times survive muxing
                vstream.codec_context.time_base = Fraction(1, 1000)
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            channels = 1 if audio.ndim == 1 else audio.shape[1]
            astream = container.add_stream(acodec, rate=sr, layout="mono" if channels == 1 else "stereo")
            if audio_bitrate:
                astream.bit_rate = audio_bitrate
        if vstream is not None:
            for i, img in enumerate(_chain(first, frame_iter)):
                img = np.ascontiguousarray(img[: vstream.height, : vstream.width, :3], dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                if timestamps is not None:
                    vf.pts = int(round(float(timestamps[i]) * 1000))
                    vf.time_base = Fraction(1, 1000)
                else:
                    vf.pts = i
                for packet in vstream.encode(vf):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
        if astream is not None:
            planar = audio.reshape(-1, 1).T if audio.ndim == 1 else audio.T
            planar = np.ascontiguousarray(np.clip(planar, -1, 1))
            layout = "mono" if planar.shape[0] == 1 else "stereo"
            block = 4096
            for start in range(0, planar.shape[1], block):
                af = av.AudioFrame.from_ndarray(planar[:, start : start + block].copy(), format="fltp", layout=layout)
                af.sample_rate = sr
                af.pts = start
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


def _chain(first, rest):
    if first is not None:
        yield first
    if rest is not None:
        yield from rest
