"""DNSMOS (the ONNX models speechmos ships: SIG, BAK, OVRL, P.808) of a waveform, shared by the `audio`
feature family and the `voice` expert, memoised on the samples' content. Computed as `speechmos.dnsmos.run`
does (tests/test_mel.py compares them), with its sessions made once per process."""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .mel import melspectrogram, power_to_db

DNSMOS_SECONDS = 9.01  # the P.835 model's fixed input length
DNSMOS_SR = 16000


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
    seg = int(DNSMOS_SECONDS * sr)
    if max_segments <= 0 or len(x) <= seg:
        parts = [x]  # shorter clips are looped to 9 s, as DNSMOS expects
    else:
        n = min(max_segments, int(np.ceil(len(x) / seg)))
        parts = [x[s : s + seg] for s in np.linspace(0, len(x) - seg, n).astype(int)]
    runs = [_sliding_dnsmos(part, sr) for part in parts]
    return {f"dnsmos_{k}": float(np.mean([r[k] for r in runs])) for k in ("sig", "bak", "ovrl", "p808")}


# speechmos's calibration of the raw P.835 outputs (its non-personalised polynomials)
_POLY = {"sig": np.poly1d([-0.08397278, 1.22083953, 0.0052439]),
         "bak": np.poly1d([-0.13166888, 1.60915514, -0.39604546]),
         "ovrl": np.poly1d([-0.06766283, 1.11546468, 0.04602535])}


def _sliding_dnsmos(audio: np.ndarray, sr: int) -> dict[str, float]:
    """`speechmos.dnsmos.run(audio, sr)`, computed the same way (loop the clip to 9.01 s, then a 9.01 s
    window every second) with the same ONNX files, without importing speechmos: it imports librosa for
    one mel spectrogram, ~2.5 s of a cold `talkqa score` (features/mel.py computes it in NumPy)."""
    if sr != DNSMOS_SR:
        raise ValueError(f"DNSMOS needs {DNSMOS_SR} Hz audio, got {sr}")
    primary, p808 = _sessions()
    audio = np.asarray(audio, np.float32)
    need = int(DNSMOS_SECONDS * sr)
    while len(audio) < need:
        audio = np.append(audio, audio)
    out: dict[str, list[float]] = {"sig": [], "bak": [], "ovrl": [], "p808": []}
    for idx in range(int(np.floor(len(audio) / sr) - DNSMOS_SECONDS) + 1):
        part = audio[int(idx * sr) : int((idx + DNSMOS_SECONDS) * sr)]
        if len(part) < need:
            continue
        mel = (power_to_db(melspectrogram(part[:-160], sr, n_fft=321, hop_length=160, n_mels=120)) + 40) / 40
        out["p808"].append(float(p808.run(None, {"input_1": mel.T[None].astype(np.float32)})[0][0][0]))
        raw = primary.run(None, {"input_1": part[None]})[0][0]
        for k, v in zip(("sig", "bak", "ovrl"), raw):
            out[k].append(float(_POLY[k](v)))
    return {k: float(np.mean(v)) for k, v in out.items()}


_SESSIONS: list = []


def _sessions():
    """The two ONNX Runtime sessions (P.835 SIG/BAK/OVRL, P.808), made once per process from the model
    files speechmos ships (found without importing it)."""
    with _DNSMOS_LOCK:
        if not _SESSIONS:
            import onnxruntime as ort  # lazy: only clips with audio need it

            spec = importlib.util.find_spec("speechmos")
            if spec is None or not spec.submodule_search_locations:
                raise RuntimeError("the speechmos package (DNSMOS model files) is not installed: pip install speechmos")
            folder = Path(spec.submodule_search_locations[0]) / "dnsmos_models"
            _SESSIONS.extend(ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])
                             for name in ("sig_bak_ovr.onnx", "model_v8.onnx"))
        return _SESSIONS
