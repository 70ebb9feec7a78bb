"""The few image and signal filters the features use, in NumPy: Gaussian smoothing, running median /
maximum / minimum, a one-step dilation, scikit-image's blur metric and Otsu's threshold.

Why not scipy.ndimage / scikit-image: importing them costs ~0.2 s of a cold `talkqa score`, for a
handful of small filters. Each function follows the library's definition (kernel, border rule,
bins), so the features keep their values; tests/test_filters.py compares every one with the library.
Borders: "nearest" repeats the edge sample (SciPy's mode="nearest"), "reflect" mirrors the edge
including it (SciPy's mode="reflect": d c b a | a b c d | d c b a).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pad(x: np.ndarray, before: int, after: int, axis: int, mode: str) -> np.ndarray:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (before, after)
    return np.pad(x, widths, mode="edge" if mode == "nearest" else "symmetric")


def correlate1d(x: np.ndarray, weights: np.ndarray, axis: int = -1, mode: str = "nearest") -> np.ndarray:
    """Correlate along `axis` with an odd-length kernel centred on each sample; float64 result."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    r = len(weights) // 2
    padded = _pad(x, r, len(weights) - 1 - r, axis, mode)
    out = np.zeros_like(x)
    for k, w in enumerate(weights):
        out += w * np.take(padded, np.arange(k, k + x.shape[axis]), axis=axis)
    return out


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """SciPy's sampled Gaussian: radius round(truncate * sigma), normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 / (float(sigma) ** 2) * t * t)
    return k / k.sum()


def gaussian_filter1d(x: np.ndarray, sigma: float, axis: int = -1, truncate: float = 4.0,
                      mode: str = "nearest") -> np.ndarray:
    """Gaussian smoothing along one axis, borders "nearest" or "reflect" (as in scipy.ndimage); float64."""
    return correlate1d(x, gaussian_kernel(sigma, truncate), axis, mode)


def gaussian_filter(x: np.ndarray, sigma, truncate: float = 4.0) -> np.ndarray:
    """Separable Gaussian smoothing over every axis whose sigma is > 0 (one sigma, or one per axis),
    edges repeated, in the input's float type between passes as SciPy does."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    sigmas = np.broadcast_to(np.asarray(sigma, np.float64), (x.ndim,))
    out = x.astype(dtype)
    for axis, s in enumerate(sigmas):
        if s > 1e-15:
            out = gaussian_filter1d(out, s, axis, truncate).astype(dtype)
    return out


def _windows(x: np.ndarray, size: int) -> np.ndarray:
    """(T, size) windows centred as SciPy centres them (index i covers i - size//2 ...), edges repeated."""
    x = np.asarray(x, np.float64)
    return sliding_window_view(_pad(x, size // 2, (size - 1) // 2, 0, "nearest"), size)


def median_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    """Running median; for an even size the upper of the two middle values, as SciPy's rank filter."""
    return np.partition(_windows(x, size), size // 2, axis=1)[:, size // 2]


def maximum_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    return _windows(x, size).max(axis=1)


def minimum_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    return _windows(x, size).min(axis=1)


def dilate1d(mask: np.ndarray) -> np.ndarray:
    """One-step binary dilation of a 1-D mask (a sample is set when it or a neighbour is)."""
    m = np.asarray(mask, bool)
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    return out


_EPS = np.spacing(np.float64(1))
_SOBEL_EDGE = np.array([1.0, 0.0, -1.0])
_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0]) / 4


def _sobel(image: np.ndarray, axis: int) -> np.ndarray:
    """Sobel derivative along `axis`, smoothed along the other one, mirrored edges (skimage.filters.sobel
    with `axis`). scikit-image convolves, so the edge kernel is applied reversed."""
    out = correlate1d(image, _SOBEL_EDGE[::-1], axis, "reflect")
    return correlate1d(out, _SOBEL_SMOOTH, 1 - axis, "reflect")


def blur_effect(image: np.ndarray, h_size: int = 11) -> float:
    """Crete-Roffet et al. (2007) perceptual blur of a 2-D grey image, 0 sharp .. 1 blurred, as
    `skimage.measure.blur_effect` (maximum over the two axes): how much of the image's edge strength a
    further `h_size` box blur removes."""
    image = np.asarray(image)
    dtype = image.dtype if image.dtype.kind == "f" else np.float64
    image = image.astype(dtype)
    inner = tuple(slice(2, s - 1) for s in image.shape)
    out = []
    for axis in range(2):
        box = np.full(h_size, 1.0 / h_size)
        blurred = correlate1d(image, box, axis, "reflect").astype(dtype)
        sharp_edges = np.maximum(_EPS, np.abs(_sobel(image, axis).astype(dtype)))
        blurred_edges = np.maximum(_EPS, np.abs(_sobel(blurred, axis).astype(dtype)))
        lost = np.maximum(0, sharp_edges - blurred_edges)
        m1, m2 = np.sum(sharp_edges[inner]), np.sum(lost[inner])
        out.append(np.abs(m1 - m2) / m1)
    return float(max(out))


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a sample (the bin centre that best splits its histogram into two classes),
    as `skimage.filters.threshold_otsu(values, nbins=bins)` for float data."""
    v = np.asarray(values).ravel()
    if np.all(v == v[0]):
        return float(v[0])
    counts, edges = np.histogram(v, bins=bins, range=(float(v.min()), float(v.max())))
    centres = (edges[:-1] + edges[1:]) / 2.0
    counts = counts.astype(np.float64)
    w1 = np.cumsum(counts)
    w2 = np.cumsum(counts[::-1])[::-1]
    m1 = np.cumsum(counts * centres) / w1
    m2 = (np.cumsum((counts * centres)[::-1]) / w2[::-1])[::-1]
    between = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(centres[np.argmax(between)])
