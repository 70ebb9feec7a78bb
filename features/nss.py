"""Natural-face statistics: how far a face crop's MSCN statistics are from those of real faces.

In the spirit of NIQE (Mittal et al. 2013): the NSS features of texture.nss_features (GGD / AGGD fits
of mean-subtracted contrast-normalised coefficients at two scales) of the inner face of the aligned
crop are compared with a multivariate Gaussian fitted on real talking faces. Unlike NIQE the
reference is fitted on aligned faces, not on generic sharp photographs, so what counts as natural
here is a real face filmed for a talking-head video. The distance of one frame is a Mahalanobis
distance in standardised feature space divided by the square root of the number of features, so a
typical real frame reads about 1.

The reference ships as package data (features/models/face_nss.npz) and is fitted by
benchmarks/fit_face_nss.py on a documented subset of speakers; the file's metadata lists the clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .align import EYE_Y, IOD
from .npz_file import read_npz, write_npz
from .texture import grey, nss_feature_names, nss_features

# The inner face in the aligned crop, in IOD units around the eye midpoint (x0, y0, x1, y1): brows to
# lower lip, cheek to cheek: skin, eyes, nose and mouth, hardly any background or hair.
INNER_FACE = (-0.6, -0.3, 0.6, 0.9)
RIDGE = 0.05  # added to the standardised covariance's diagonal: 36 correlated features, few clips
FORMAT = 1


def crop_box(face_size: int, box_iod: tuple[float, float, float, float]) -> tuple[slice, slice]:
    """(rows, cols) slices of the aligned face crop for a box in IOD units around the eye midpoint
    (the template of align.py: eyes at EYE_Y of the side, IOD of the side apart)."""
    unit = IOD * face_size
    cx, cy = face_size / 2, EYE_Y * face_size
    x0, x1 = (int(round(np.clip(cx + v * unit, 0, face_size))) for v in (box_iod[0], box_iod[2]))
    y0, y1 = (int(round(np.clip(cy + v * unit, 0, face_size))) for v in (box_iod[1], box_iod[3]))
    return slice(y0, y1), slice(x0, x1)


def face_nss_features(face_crops: np.ndarray) -> np.ndarray:
    """(N, F) NSS features of the inner face of (N, S, S, 3) uint8 aligned face crops."""
    rows, cols = crop_box(face_crops.shape[1], INNER_FACE)
    return nss_features(grey(face_crops[:, rows, cols]))


@dataclass
class NSSModel:
    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,) standard deviations
    precision: np.ndarray  # (F, F) inverse of the ridge-regularised correlation matrix
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, features: np.ndarray, meta: dict[str, Any], ridge: float = RIDGE) -> "NSSModel":
        x = np.asarray(features, np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) < 2 * x.shape[1]:
            raise ValueError(f"{len(x)} frames are too few to fit {x.shape[1]} NSS features; give more real clips")
        mean, scale = x.mean(0), x.std(0) + 1e-9
        corr = np.cov(((x - mean) / scale).T)
        precision = np.linalg.inv(corr + ridge * np.eye(len(corr)))
        info = {"format": FORMAT, "features": list(nss_feature_names()), "inner_face_iod": list(INNER_FACE),
                "ridge": ridge, "n_frames": int(len(x)), **meta}
        return cls(mean, scale, precision, info)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """(N,) Mahalanobis distance / sqrt(F) of each row from the reference (NaN rows stay NaN)."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        d2 = np.einsum("nf,fg,ng->n", z, self.precision, z)
        return np.sqrt(np.maximum(d2, 0.0) / len(self.mean))

    def save(self, path: str | Path) -> None:
        write_npz(path, {"mean": self.mean, "scale": self.scale, "precision": self.precision}, self.meta)

    @classmethod
    def load(cls, path: str | Path) -> "NSSModel":
        z, meta = read_npz(path, "natural-face statistics model", "fit one with benchmarks/fit_face_nss.py")
        if meta.get("format") != FORMAT or meta.get("features") != list(nss_feature_names()):
            raise ValueError(f"{path} was fitted for other NSS features (format {meta.get('format')}); "
                             "refit it with benchmarks/fit_face_nss.py")
        return cls(z["mean"], z["scale"], z["precision"], meta)


def default_model_path() -> Path:
    return Path(str(resources.files("talkqa.features").joinpath("models", "face_nss.npz")))


@lru_cache(maxsize=4)
def load_model(path: str | None = None) -> NSSModel:
    """The reference at `path` (the shipped one when None), read once per process."""
    return NSSModel.load(path or default_model_path())
