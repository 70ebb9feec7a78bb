"""Picture measures on grey images: detail, blockiness, flicker residue and natural-scene statistics.

Every function takes float32 grey values on the 0-255 scale, either one image (H, W) or a stack
(N, H, W), and returns one number per image, so the visual family can run them over all frames of a
clip at once. OpenCV and features/filters.py have the filters; what they lack (a band-energy share,
phase-folded blockiness, GGD / AGGD moment fits of MSCN coefficients as in BRISQUE / NIQE) is here.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .filters import gaussian_filter

# log-Gamma elementwise (scipy.special.gammaln without importing SciPy: start-up time)
gammaln = np.vectorize(math.lgamma, otypes=[np.float64])

EPS = 1e-6
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY
# Variance (grey levels^2) that rounding to 8 bits puts in the finest band: 1/12 for uniform rounding
# noise, ~0.9 of it above the sigma-1 blur, and a margin for the rounding of three channels into luma.
QUANTISATION_NOISE = 0.1


def grey(rgb: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., H, W) float32 luma on 0-255."""
    return rgb.astype(np.float32) @ LUMA


def laplacian(g: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of (..., H, W), valid part only: (..., H-2, W-2)."""
    return g[..., :-2, 1:-1] + g[..., 2:, 1:-1] + g[..., 1:-1, :-2] + g[..., 1:-1, 2:] - 4 * g[..., 1:-1, 1:-1]


def laplacian_var(g: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian (Pech-Pacheco et al.): the classic focus measure; falls with blur."""
    lap = laplacian(g)
    return lap.reshape(*lap.shape[:-2], -1).var(axis=-1)


def gradient_energy(g: np.ndarray) -> np.ndarray:
    """Mean squared forward-difference gradient (Tenengrad without the Sobel smoothing)."""
    gx = np.diff(g, axis=-1)[..., :-1, :]
    gy = np.diff(g, axis=-2)[..., :, :-1]
    e = gx**2 + gy**2
    return e.reshape(*e.shape[:-2], -1).mean(axis=-1)


def band_energies(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fine, mid) band images of a grey image: g - G1 g and G1 g - G2 g (Gaussian sigma 1 and 2 px)."""
    g = np.asarray(g, np.float32)
    b1 = cv2.GaussianBlur(g, (7, 7), 1.0)  # kernels cut at 3 sigma (OpenCV's default is 4)
    b2 = cv2.GaussianBlur(b1, (11, 11), np.sqrt(3.0))  # G1 then sqrt(3) is G2
    return g - b1, b1 - b2


def fine_share(fine: np.ndarray, mid: np.ndarray) -> float:
    """Share of the finest octave in the two finest ones, var(fine) / (var(fine) + var(mid)), on
    the band images of `band_energies` (cut to the region of interest).

    Natural images have about equal energy per octave, so the share does not depend much on how big
    the face is; blur, upscaling from a lower resolution and strong compression empty the finest
    octave first and lower it (a 2x-upscaled picture has almost nothing left there). The fine band's
    share of 8-bit rounding noise is taken off first: on a heavily blurred face it is all that is left."""
    if fine.size < 16:
        return float("nan")
    f, m = (float(cv2.meanStdDev(band)[1][0, 0]) ** 2 for band in (fine, mid))  # np.var is slower on slices
    f = max(f - QUANTISATION_NOISE, 0.0)
    return f / (f + m) if f + m > EPS else float("nan")


def blockiness(g: np.ndarray, period: int, origin: tuple[int, int] = (0, 0)) -> float:
    """Block-edge excess of a coding grid of `period` px: the absolute neighbour differences are
    averaged per phase modulo `period` (columns and rows separately, absolute frame coordinates
    from `origin` = (x0, y0) of `g`), and the strongest phase is compared with the median phase.
    1.0 = no grid; block coding at every phase offset (the grid need not start at 0) raises it."""
    g = np.asarray(g, np.float32)
    if period < 2 or min(g.shape) < 2 * period:
        return float("nan")
    excess = []
    for axis, start in ((1, origin[0]), (0, origin[1])):
        # one value per boundary position, averaged along every other line (a grid edge runs along all)
        lines = g[::2] if axis == 1 else g[:, ::2]
        diff = np.abs(np.diff(lines, axis=axis)).mean(axis=1 - axis)
        phase = (start + np.arange(len(diff))) % period
        means = np.bincount(phase, diff, period) / np.maximum(np.bincount(phase, minlength=period), 1)
        excess.append(means.max() / max(float(np.median(means)), EPS))
    return float(np.mean(excess))


def second_difference_rms(x: np.ndarray) -> np.ndarray:
    """(T,) |x_t - (x_{t-1} + x_{t+1}) / 2| / sqrt(1.5) (NaN at both ends): what does not follow a
    smooth course from frame to frame. Independent noise of std s per frame reads about s."""
    x = np.asarray(x, np.float64)
    out = np.full(len(x), np.nan)
    if len(x) > 2:
        out[1:-1] = np.abs(x[1:-1] - (x[:-2] + x[2:]) / 2) / np.sqrt(1.5)
    return out


# ------------------------------------------------------------------ natural-scene statistics (MSCN)
MSCN_SIGMA = 7 / 6  # the 7x7 Gaussian window of BRISQUE / NIQE
_PAIRS = ("h", "v", "d1", "d2")
NSS_FEATURES_PER_SCALE = ("ggd_shape", "ggd_var") + tuple(
    f"{p}_{k}" for p in _PAIRS for k in ("aggd_shape", "aggd_mean", "aggd_left_var", "aggd_right_var"))

_ALPHA = np.arange(0.2, 10.0, 0.001)
# GGD: E[x^2] / E[|x|]^2 = G(1/a) G(3/a) / G(2/a)^2, falling in a; the AGGD uses its reciprocal.
_GGD_RATIO = np.exp(gammaln(1 / _ALPHA) + gammaln(3 / _ALPHA) - 2 * gammaln(2 / _ALPHA))


def _shape_from_ratio(rho: np.ndarray) -> np.ndarray:
    """GGD shape from the moment ratio E[x^2] / E[|x|]^2 (table lookup; the ratio falls with the shape)."""
    return np.interp(rho, _GGD_RATIO[::-1], _ALPHA[::-1])


def mscn(g: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of (N, H, W) grey images."""
    sig = (0, MSCN_SIGMA, MSCN_SIGMA) if g.ndim == 3 else MSCN_SIGMA
    mu = gaussian_filter(g, sig, truncate=3 / MSCN_SIGMA)
    var = gaussian_filter(g * g, sig, truncate=3 / MSCN_SIGMA) - mu * mu
    return (g - mu) / (np.sqrt(np.abs(var)) + 1.0)


def _ggd(x: np.ndarray) -> list[np.ndarray]:
    x = x.reshape(len(x), -1)
    m2 = (x * x).mean(1)
    m1 = np.abs(x).mean(1)
    return [_shape_from_ratio(m2 / np.maximum(m1 * m1, EPS)), m2]


def _aggd(x: np.ndarray) -> list[np.ndarray]:
    """Asymmetric GGD moment fit (Lasmar et al., as in BRISQUE): shape, mean, left and right variance."""
    x = x.reshape(len(x), -1).astype(np.float64)
    neg, pos = x < 0, x > 0
    left = np.sqrt((x * x * neg).sum(1) / np.maximum(neg.sum(1), 1))
    right = np.sqrt((x * x * pos).sum(1) / np.maximum(pos.sum(1), 1))
    gamma = left / np.maximum(right, EPS)
    r = np.abs(x).mean(1) ** 2 / np.maximum((x * x).mean(1), EPS)
    big_r = r * (gamma**3 + 1) * (gamma + 1) / np.maximum((gamma**2 + 1) ** 2, EPS)
    shape = _shape_from_ratio(1.0 / np.maximum(big_r, EPS))
    scale = np.exp(gammaln(2 / shape) - 0.5 * (gammaln(1 / shape) + gammaln(3 / shape)))
    mean = (right - left) * scale
    return [shape, mean, left**2, right**2]


def nss_features(g: np.ndarray, scales: int = 2) -> np.ndarray:
    """(N, 18 * scales) NIQE/BRISQUE-style features of (N, H, W) grey images: the GGD fit of the MSCN
    coefficients and the AGGD fits of their products with the horizontal, vertical and both diagonal
    neighbours, at `scales` dyadic scales."""
    g = np.asarray(g, np.float32)
    if g.ndim == 2:
        g = g[None]
    cols = []
    for s in range(scales):
        if s:
            g = np.stack([cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA)
                          for im in g])
        c = mscn(g)
        cols += _ggd(c)
        for prod in (c[:, :, :-1] * c[:, :, 1:], c[:, :-1, :] * c[:, 1:, :],
                     c[:, :-1, :-1] * c[:, 1:, 1:], c[:, :-1, 1:] * c[:, 1:, :-1]):
            cols += _aggd(prod)
    return np.stack(cols, axis=1).astype(np.float64)


def nss_feature_names(scales: int = 2) -> tuple[str, ...]:
    return tuple(f"s{s}_{n}" for s in range(scales) for n in NSS_FEATURES_PER_SCALE)
