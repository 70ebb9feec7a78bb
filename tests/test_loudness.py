"""features/loudness.py measures what pyloudnorm measures (the scoring path no longer imports it, nor
the scipy.signal it filters with)."""

import numpy as np
import pytest

from talkqa.features.loudness import integrated_loudness, k_weighted

pyloudnorm = pytest.importorskip("pyloudnorm")


def _signals(sr):
    rng = np.random.default_rng(5)
    t = np.arange(int(3.3 * sr)) / sr
    yield 0.3 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.6)  # tone bursts: the gates matter
    yield rng.normal(0, 0.05, len(t)) * np.exp(-t)  # decaying noise: blocks fall under the relative gate
    yield rng.normal(0, 0.2, int(0.45 * sr))  # just over one block
    yield np.concatenate([np.zeros(sr), rng.normal(0, 1e-5, sr)])  # under the absolute gate: -inf


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_integrated_loudness_equals_pyloudnorm(sr):
    for x in _signals(sr):
        expected = pyloudnorm.Meter(sr).integrated_loudness(x)
        got = integrated_loudness(x, sr)
        if np.isinf(expected):
            assert got == expected
        else:
            assert got == pytest.approx(expected, abs=1e-9)


def test_k_weighting_equals_the_recursive_filter():
    from scipy.signal import lfilter

    sr = 16000
    x = np.random.default_rng(1).normal(size=5 * sr)
    meter = pyloudnorm.Meter(sr)
    expected = x
    for stage in meter._filters.values():  # the same biquads, run sample by sample
        expected = lfilter(stage.b, stage.a, expected)
    np.testing.assert_allclose(k_weighted(x, sr), expected, rtol=0, atol=1e-10)


def test_too_short_or_not_mono_is_refused():
    with pytest.raises(ValueError, match="block"):
        integrated_loudness(np.zeros(100), 16000)
    with pytest.raises(ValueError, match="mono"):
        integrated_loudness(np.zeros((16000, 2)), 16000)
