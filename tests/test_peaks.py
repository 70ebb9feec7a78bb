"""features/peaks.py picks the same peaks as scipy.signal.find_peaks (which the scoring path no longer
imports, for start-up time) on the kinds of signals the features feed it."""

import numpy as np
import pytest
from scipy.signal import find_peaks as scipy_find_peaks
from scipy.signal import peak_prominences

from talkqa.features.peaks import find_peaks, local_maxima, prominences


def _signals():
    rng = np.random.default_rng(7)
    for n in (3, 5, 50, 400, 3000):
        yield rng.normal(size=n)
        yield np.round(rng.normal(size=n) * 2) / 2  # many ties and plateaus
        yield np.cumsum(rng.normal(size=n))  # slow drifts, long slopes
    yield np.array([0.0, 1, 1, 1, 0, 2, 2, 3, 3, 3, 1, 1, 4, 4])  # plateaus, one running to the end
    yield np.array([5.0, 5, 5, 5])
    yield np.sin(np.linspace(0, 20 * np.pi, 1000)) + 0.1 * np.sin(np.linspace(0, 377, 1000))


@pytest.mark.parametrize("kwargs", [{}, {"prominence": 0.5}, {"distance": 7}, {"height": 0.3},
                                    {"prominence": 1.0, "distance": 4, "height": -0.5}])
def test_same_peaks_as_scipy(kwargs):
    for x in _signals():
        expected, _ = scipy_find_peaks(x, **kwargs)
        got = find_peaks(x, **kwargs)
        assert got.tolist() == expected.tolist(), (len(x), kwargs)


def test_plateau_peak_is_its_middle_rounded_down():
    x = np.array([0.0, 2, 2, 2, 2, 0, 1, 1, 1, 0])
    assert local_maxima(x).tolist() == [2, 7]


def test_prominence_is_height_above_the_higher_base():
    x = np.array([0.0, 3, 1, 2, 0.5, 4, 0])
    # peak 3 (value 2): nearest higher samples at 1 and 5, bases min(1)=1 and min(0.5)=0.5 -> 2 - 1;
    # peak 1 (value 3): no higher sample on the left (base 0), 4 on the right (base 0.5) -> 3 - 0.5
    assert prominences(x, np.array([1, 3, 5])).tolist() == [2.5, 1.0, 4.0]
    assert prominences(x, np.array([1, 3, 5])).tolist() == peak_prominences(x, [1, 3, 5])[0].tolist()
