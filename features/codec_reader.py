"""How hard a video coder squeezed the face, read from patches at the frame's own resolution.

The aligned 96 px face crop hides strong H.264 on a large face (at QP 44 a 512 px face's smeared 4x4
blocks are finer than a crop pixel), and no hand-made statistic of the native pixels (detail, flat
blocks, noise level, how much a second encoding changes) parts heavily coded faces from clean ones
across sources: each varies more between sources than with the quantiser (README, version 27). So a
small convolutional network reads three 48 px luma patches (nose and both cheekbones) cut on the
frame's 16 px grid, where a coder's macroblocks lie when the frame is the video's own size, and gives
one logit per patch: > 0 reads as coded at about CRF 38 or harder, < 0 as cleaner.

The network is trained by benchmarks/train_codec_reader.py on the default model's training corpora and
re-encodings of their clean clips; it ships as package data (features/models/codec_reader.npz, its
metadata lists the speakers and the held-out figures). Inference is plain numpy: preprocessing does not
load torch for three patches a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import landmarks as L
from .npz_file import read_npz, write_npz
from .texture import LUMA

PATCH = 48  # px of the analysis frame
GRID = 16  # H.264 macroblocks: patches start on this grid of the frame
CENTRES = (L.NOSE_TIP, L.RIGHT_CHEEK, L.LEFT_CHEEK)  # the nose tip and the cheekbones below the eyes
SCALE = 32.0  # grey levels per input unit, after the patch's mean is taken off
FORMAT = 1
# (out channels, stride) of the 3x3 convolutions (padding 1, ReLU after each), then a global mean and a
# linear unit. The training script builds the same layers in torch.
LAYERS = ((16, 1), (32, 2), (64, 2), (64, 2))


def patch_origins(points: np.ndarray, frame_shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(x0, y0) of each PATCH px patch around CENTRES, on the frame's GRID, moved inside the frame; none
    when the frame is smaller than a patch or a centre is not finite."""
    h, w = frame_shape[:2]
    if h < PATCH or w < PATCH:
        return []
    out = []
    for c in CENTRES:
        cx, cy = points[c, 0], points[c, 1]
        if not (np.isfinite(cx) and np.isfinite(cy)):
            continue
        x0 = int(np.floor((cx - PATCH / 2) / GRID)) * GRID
        y0 = int(np.floor((cy - PATCH / 2) / GRID)) * GRID
        out.append((min(max(x0, 0), (w - PATCH) // GRID * GRID), min(max(y0, 0), (h - PATCH) // GRID * GRID)))
    return out


def frame_patches(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P, PATCH, PATCH) float32 luma patches of an RGB uint8 frame at its mesh `points` (analysis pixels)."""
    origins = patch_origins(points, frame.shape)
    if not origins:
        return np.zeros((0, PATCH, PATCH), np.float32)
    return np.stack([frame[y:y + PATCH, x:x + PATCH].astype(np.float32) @ LUMA for x, y in origins])


def mirror_patches(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """frame_patches of the frame's mirror image, its mesh moved with it (the same skin, cut from the other side)."""
    mirrored = np.array(points, np.float64, copy=True)
    mirrored[:, 0] = frame.shape[1] - 1 - mirrored[:, 0]  # on a width that is a multiple of GRID, the same blocks
    return frame_patches(frame[:, ::-1], mirrored)


def normalise(patches: np.ndarray) -> np.ndarray:
    """The network's input: each patch minus its mean, in units of SCALE grey levels."""
    p = np.asarray(patches, np.float32)
    return (p - p.mean(axis=(-2, -1), keepdims=True)) / SCALE


def _conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """(N, C, H, W) -> (N, O, H', W'): a 3x3 convolution with zero padding 1, as torch.nn.Conv2d, as one
    matrix product over the 3x3 windows (a few ms for a frame's patches)."""
    n, c = x.shape[:2]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::stride, ::stride]  # N, C, H', W', 3, 3
    h, w = windows.shape[2:4]
    columns = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)
    out = columns @ weight.reshape(len(weight), c * 9).T + bias
    return out.reshape(n, h, w, -1).transpose(0, 3, 1, 2)


@dataclass
class CodecReader:
    weights: list[tuple[np.ndarray, np.ndarray]]  # per convolution (O, C, 3, 3), (O,); then the linear (1, C), (1,)
    meta: dict[str, Any] = field(default_factory=dict)

    def logits(self, patches: np.ndarray) -> np.ndarray:
        """(P,) logit of each (P, PATCH, PATCH) luma patch (grey levels 0-255)."""
        x = normalise(patches)[:, None]
        for (w, b), (_, stride) in zip(self.weights[:-1], LAYERS):
            x = np.maximum(_conv3x3(x, w, b, stride), 0.0)
        w, b = self.weights[-1]
        return (x.mean(axis=(2, 3)) @ w.T + b)[:, 0]

    def read_frame(self, frame: np.ndarray, points: np.ndarray) -> float:
        """The median logit of the frame's patches and that of its mirror image's, averaged; NaN without a
        patch. Read both ways because the network is not mirror-symmetric: a held-out clip and its mirror
        image (coded again at the same quality) read up to 1.26 logits apart (mean 0.58) one way, 0.58
        (mean 0.23) both ways (README, version 33), and no viewer's picture score moves with a mirror."""
        both = [frame_patches(frame, points), mirror_patches(frame, points)]
        sizes = [len(p) for p in both]
        if not sum(sizes):
            return float("nan")
        logits = self.logits(np.concatenate(both))
        return float(np.mean([np.median(part) for part in np.split(logits, [sizes[0]]) if len(part)]))

    def save(self, path: str | Path) -> None:
        arrays = {}
        for i, (w, b) in enumerate(self.weights):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        meta = {"format": FORMAT, "patch": PATCH, "grid": GRID, "layers": [list(v) for v in LAYERS], **self.meta}
        write_npz(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> "CodecReader":
        z, meta = read_npz(path, "codec reader", "train one with benchmarks/train_codec_reader.py")
        found = (meta.get("format"), meta.get("patch"), meta.get("layers"))
        if found != (FORMAT, PATCH, [list(v) for v in LAYERS]):
            raise ValueError(f"{path} holds another network (format, patch, layers: {found}); train it again "
                             "with benchmarks/train_codec_reader.py")
        weights = [(z[f"w{i}"].astype(np.float32), z[f"b{i}"].astype(np.float32)) for i in range(len(LAYERS) + 1)]
        return cls(weights, meta)


def default_path() -> Path:
    return Path(str(resources.files("talkqa.features").joinpath("models", "codec_reader.npz")))


@lru_cache(maxsize=4)
def load_reader(path: str | None = None) -> CodecReader | None:
    """The reader at `path` (the shipped one when None), read once per process; None when no reader is
    shipped, so a checkout without the file still extracts (the statistic stays NaN)."""
    target = Path(path) if path else default_path()
    if path is None and not target.is_file():
        return None
    return CodecReader.load(target)
