"""A video codec in memory: frames through H.264 and back, for what a coarse encode does to a picture.

Used by the corpus's `compression` artifact (whole frames at the corpus's clock) and by the picture
expert's `video_codec` training family (aligned face crops at a drawn source size).
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def h264_roundtrip(frames: np.ndarray, qp: int, fps: float = 25.0) -> np.ndarray:
    """`frames` (T, H, W, 3) uint8 RGB encoded with libx264 at constant quantiser `qp` (in memory,
    raw Annex-B stream, default GOP and B-frames: x264 keeps its usual I/P/B quantiser offsets around
    `qp`) and decoded back, same shape. Odd sizes are padded by edge replication for the 4:2:0 encode."""

    t, h, w = frames.shape[:3]
    ph, pw = h % 2, w % 2
    padded = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else frames
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w + pw, h + ph
        stream.pix_fmt = "yuv420p"
        # one thread: x264's output is then a pure function of the frames and options
        stream.options = {"qp": str(int(qp)), "preset": "veryfast", "threads": "1"}
        for i, img in enumerate(padded):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r", format="h264") as container:
        out = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if len(out) != t:
        raise RuntimeError(f"H.264 round trip returned {len(out)} frames for {t}")
    return np.stack(out)[:, :h, :w]
