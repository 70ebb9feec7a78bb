"""features/mel.py and features/dnsmos.py give what librosa and speechmos give (they replace them on
the scoring path, where importing those cost ~2.5 s of a cold `talkqa score`)."""

from __future__ import annotations

import numpy as np
import pytest

from talkqa.features.mel import mel_filterbank, melspectrogram, power_to_db


@pytest.mark.parametrize("kwargs", [dict(sr=16000, n_fft=512, n_mels=40), dict(sr=16000, n_fft=512, n_mels=80, fmin=50, fmax=7600),
                                    dict(sr=16000, n_fft=321, n_mels=120), dict(sr=22050, n_fft=1024, n_mels=64)])
def test_mel_filterbank_equals_librosa(kwargs):
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(**kwargs)
    theirs = librosa.filters.mel(**kwargs)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)
    assert not ours.flags.writeable  # cached: a caller must copy before changing it


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / 16000
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
            + 0.02 * rng.standard_normal(n)).astype(np.float32)


def test_log_mel_spectrogram_equals_librosa():
    librosa = pytest.importorskip("librosa")
    y = _speechlike(16000 * 3 + 77)
    ours = melspectrogram(y, 16000, n_fft=321, hop_length=160, n_mels=120)
    theirs = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=321, hop_length=160, n_mels=120)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * theirs.max())
    np.testing.assert_allclose(power_to_db(ours), librosa.power_to_db(theirs, ref=np.max), atol=1e-3)


@pytest.mark.parametrize("seconds", [2.0, 4.3, 9.01, 12.0])  # looped to 9.01 s, exactly one window, sliding
def test_dnsmos_equals_speechmos(seconds):
    dnsmos = pytest.importorskip("speechmos.dnsmos")
    from talkqa.features.dnsmos import _sliding_dnsmos

    y = _speechlike(int(seconds * 16000), seed=int(seconds))
    theirs = dnsmos.run(y, 16000)
    ours = _sliding_dnsmos(y, 16000)
    for k in ("sig", "bak", "ovrl", "p808"):
        assert ours[k] == pytest.approx(float(theirs[f"{k}_mos"]), abs=1e-4), k
