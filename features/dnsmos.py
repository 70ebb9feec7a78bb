"""DNSMOS (speechmos's ONNX models: SIG, BAK, OVRL, P.808) of a waveform, shared by the `audio`
feature family and the `voice` expert, memoised on the samples' content."""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict

import numpy as np

DNSMOS_SECONDS = 9.01  # the P.835 model's fixed input length


def dnsmos_scores(x: np.ndarray, sr: int, max_segments: int) -> dict[str, float]:
    """DNSMOS averaged over up to `max_segments` evenly spread 9.01 s segments (0: speechmos's own
    1 s sliding average over the whole clip).

    The sliding average costs one model run (~0.25 s here) per second of audio past 9 s, i.e. 12 runs
    for a 20 s clip. Two segments cost two runs; on seven 16-60 s real clips of ../shared/data their
    OVRL differed from the sliding average by 0.01-0.31 (median 0.08) on the 1-5 scale. A segment of
    exactly 9.01 s is one window to speechmos, which keeps its ONNX sessions in a module global."""
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    # The audio family and the voice expert measure the same samples when a clip is scored in one
    # process (`talkqa score`); DNSMOS is the slowest step of both, so the second call is a lookup.
    key = (hashlib.blake2b(x.tobytes(), digest_size=16).digest(), int(sr), int(max_segments))
    with _DNSMOS_LOCK:
        if key in _DNSMOS_MEMO:
            return dict(_DNSMOS_MEMO[key])
    result = _dnsmos_uncached(x, sr, max_segments)
    with _DNSMOS_LOCK:
        _DNSMOS_MEMO[key] = result
        while len(_DNSMOS_MEMO) > 8:
            _DNSMOS_MEMO.popitem(last=False)
    return dict(result)


_DNSMOS_MEMO: "OrderedDict[tuple, dict[str, float]]" = OrderedDict()
_DNSMOS_LOCK = threading.Lock()


def _dnsmos_uncached(x: np.ndarray, sr: int, max_segments: int) -> dict[str, float]:
    from speechmos import dnsmos  # lazy: slow import, only on this path

    seg = int(DNSMOS_SECONDS * sr)
    if max_segments <= 0 or len(x) <= seg:
        parts = [x]  # shorter clips are looped to 9 s by speechmos, as DNSMOS expects
    else:
        n = min(max_segments, int(np.ceil(len(x) / seg)))
        parts = [x[s : s + seg] for s in np.linspace(0, len(x) - seg, n).astype(int)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [dnsmos.run(part, sr) for part in parts]
    return {f"dnsmos_{k}": float(np.mean([r[f"{k}_mos"] for r in runs])) for k in ("sig", "bak", "ovrl", "p808")}
