"""features/filters.py gives what scipy.ndimage and scikit-image give (the scoring path no longer
imports them, for start-up time), on the shapes and types the features use."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import blur_effect as skimage_blur_effect

from talkqa.features import filters

rng = np.random.default_rng(11)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 6.0])
def test_gaussian_filter1d(sigma):
    for x in (rng.normal(size=200), np.cumsum(rng.normal(size=9))):
        np.testing.assert_allclose(filters.gaussian_filter1d(x, sigma),
                                   ndimage.gaussian_filter1d(x, sigma, mode="nearest"), rtol=0, atol=1e-12)
    a = rng.normal(size=(60, 5))
    np.testing.assert_allclose(filters.gaussian_filter1d(a, sigma, axis=0),
                               ndimage.gaussian_filter1d(a, sigma, axis=0, mode="nearest"), rtol=0, atol=1e-12)
    # the border rule matters near the ends (a syllable nucleus in the last 50 ms): "reflect" as SciPy's default
    np.testing.assert_allclose(filters.gaussian_filter1d(x, sigma, mode="reflect"),
                               ndimage.gaussian_filter1d(x, sigma, mode="reflect"), rtol=0, atol=1e-12)


def test_gaussian_filter_keeps_the_float_type_between_passes():
    g = (rng.random((3, 40, 36)) * 255).astype(np.float32)  # grey crops, as texture.mscn gets them
    s = 7 / 6
    got = filters.gaussian_filter(g, (0, s, s), truncate=3 / s)
    want = ndimage.gaussian_filter(g, (0, s, s), truncate=3 / s, mode="nearest")
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-4)


@pytest.mark.parametrize("size", [3, 4, 11, 25])
def test_running_median_maximum_minimum(size):
    x = np.round(rng.normal(size=120), 1)
    np.testing.assert_array_equal(filters.median_filter1d(x, size), ndimage.median_filter(x, size=size, mode="nearest"))
    np.testing.assert_array_equal(filters.maximum_filter1d(x, size), ndimage.maximum_filter1d(x, size, mode="nearest"))
    np.testing.assert_array_equal(filters.minimum_filter1d(x, size), ndimage.minimum_filter1d(x, size, mode="nearest"))


def test_dilate1d():
    m = rng.random(80) < 0.2
    m[0] = m[-1] = True
    np.testing.assert_array_equal(filters.dilate1d(m), ndimage.binary_dilation(m, iterations=1))


def test_blur_effect():
    sharp = (rng.random((48, 52)) * 255).astype(np.float32)
    for img in (sharp, ndimage.gaussian_filter(sharp, 1.5), ndimage.uniform_filter(sharp, 5)):
        assert filters.blur_effect(img) == pytest.approx(skimage_blur_effect(img), abs=1e-6)


def test_otsu_threshold():
    for v in (np.concatenate([rng.normal(0, 1, 300), rng.normal(5, 0.5, 100)]), rng.random(7), np.array([2.0, 2.0])):
        assert filters.otsu_threshold(v, 128) == pytest.approx(float(threshold_otsu(v, nbins=128)), abs=1e-12)
