"""Turning StoreData rows into padded arrays: per-expert token sequences with masks, the
standardised hand-crafted vector with its missing mask, the 1 s window grid and diagnostic targets.
NumPy arrays (`Featurizer.arrays`, what the ONNX graph reads) or torch tensors (`Featurizer.batch`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talkqa.tasks import DIMENSION_NAMES

from talkqa.store_data import StoreData


@dataclass
class Batch:
    """Every field a NumPy array (Featurizer.arrays) or a torch tensor (Featurizer.batch, `tensors()`)."""

    tokens: dict  # expert -> (B, T, dim)
    token_mask: dict  # expert -> (B, T) bool, True = real token
    token_time: dict  # expert -> (B, T) token centre (s)
    handcrafted: Any  # (B, 2F): standardised values (NaN -> 0) and missing mask
    scalars: Any  # (B, S, 2): the experts' standardised scalar outputs (NaN -> 0) and missing flag
    windows: Any  # (B, W, 2) [t_start, t_end]
    window_mask: Any  # (B, W) bool, True = real window
    window_target: Any  # (B, W, n_dims)
    window_supervised: Any  # (B, W) bool, real window of a clip with diagnostics
    target: Any  # (B, n_tasks) scaled to [-1, 1], NaN = unlabelled

    def _map(self, fn) -> "Batch":
        return Batch(**{k: {n: fn(t) for n, t in v.items()} if isinstance(v, dict) else fn(v)
                        for k, v in self.__dict__.items()})

    def tensors(self) -> "Batch":
        """The same batch as torch tensors (sharing memory with the arrays)."""
        import torch  # lazy: the torch model (training, or a model without an ONNX export)

        return self._map(lambda x: torch.from_numpy(x) if isinstance(x, np.ndarray) else x)

    def to(self, device) -> "Batch":
        return self._map(lambda x: x.to(device))


def input_names(experts: list[str]) -> list[str]:
    """The fusion graph's inputs (fusion/export.py): a Batch's arrays, flat."""
    return ([f"tokens.{e}" for e in experts] + [f"mask.{e}" for e in experts] + [f"time.{e}" for e in experts]
            + ["handcrafted", "scalars", "windows"])


def graph_inputs(batch: Batch, experts: list[str]) -> dict[str, np.ndarray]:
    """A Batch of NumPy arrays (Featurizer.arrays) as the fusion graph's named inputs."""
    flat = [batch.tokens[e] for e in experts] + [batch.token_mask[e] for e in experts] \
        + [batch.token_time[e] for e in experts] + [batch.handcrafted, batch.scalars, batch.windows]
    return dict(zip(input_names(experts), flat))


def _standardiser(x: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per column over the finite values; an all-NaN column (e.g. no audio anywhere) is
    expected and gets mean 0, std 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(x, 0)) if x.size else np.zeros(n_columns)
        std = np.nan_to_num(np.nanstd(x, 0)) if x.size else np.ones(n_columns)
    return mean, np.where(std > 1e-8, std, 1.0)


def _standardised(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    missing = ~np.isfinite(x)
    return np.clip(np.where(missing, 0.0, (x - mean) / std), -6, 6), missing


@dataclass
class Featurizer:
    """Fitted on training clips only (the hand-crafted and scalar mean/std); saved with the model."""

    feature_columns: list[str]
    experts: list[str]
    max_tokens: int = 128
    mean_: np.ndarray | None = None
    std_: np.ndarray | None = None
    scalar_columns: list[str] = field(default_factory=list)  # `<expert>__<scalar>` columns fed as tokens
    scalar_mean_: np.ndarray | None = None
    scalar_std_: np.ndarray | None = None

    def fit(self, data: StoreData, clip_ids: list[str]) -> "Featurizer":
        x = data.handcrafted.reindex(clip_ids)[self.feature_columns].to_numpy(np.float64)
        self.mean_, self.std_ = _standardiser(x, len(self.feature_columns))
        s = data.scalars.reindex(clip_ids)[self.scalar_columns].to_numpy(np.float64)
        self.scalar_mean_, self.scalar_std_ = _standardiser(s, len(self.scalar_columns))
        return self

    def state(self) -> dict:
        return {"feature_columns": self.feature_columns, "experts": self.experts, "max_tokens": self.max_tokens,
                "mean": [float(v) for v in self.mean_], "std": [float(v) for v in self.std_],
                "scalar_columns": self.scalar_columns, "scalar_mean": [float(v) for v in self.scalar_mean_],
                "scalar_std": [float(v) for v in self.scalar_std_]}

    @classmethod
    def from_state(cls, s: dict) -> "Featurizer":
        # models saved before scalar tokens (talkqa <= 0.2) have no scalar columns
        cols = list(s.get("scalar_columns", []))
        return cls(s["feature_columns"], s["experts"], s["max_tokens"], np.asarray(s["mean"]), np.asarray(s["std"]),
                   cols, np.asarray(s.get("scalar_mean", []), float), np.asarray(s.get("scalar_std", []), float))

    def _subsample(self, n: int) -> np.ndarray:
        if n <= self.max_tokens:
            return np.arange(n)
        return np.linspace(0, n - 1, self.max_tokens).round().astype(int)

    def batch(self, data: StoreData, clip_ids: list[str], target: np.ndarray | None = None,
              window_targets: dict[str, np.ndarray] | None = None, n_window_dims: int = len(DIMENSION_NAMES)) -> Batch:
        """`arrays` as torch tensors."""
        return self.arrays(data, clip_ids, target, window_targets, n_window_dims).tensors()

    def arrays(self, data: StoreData, clip_ids: list[str], target: np.ndarray | None = None,
               window_targets: dict[str, np.ndarray] | None = None, n_window_dims: int = len(DIMENSION_NAMES)) -> Batch:
        B = len(clip_ids)
        tokens, masks, times = {}, {}, {}
        for name in self.experts:
            et = data.experts[name]
            seqs = [et.emb.get(c) for c in clip_ids]
            T = max([1] + [len(self._subsample(len(s))) for s in seqs if s is not None])
            emb = np.zeros((B, T, et.info.dim), np.float32)
            mask = np.zeros((B, T), bool)
            tm = np.zeros((B, T), np.float32)
            for i, (c, s) in enumerate(zip(clip_ids, seqs)):
                if s is None or not len(s):
                    continue
                idx = self._subsample(len(s))
                emb[i, : len(idx)] = s[idx]
                mask[i, : len(idx)] = True
                tm[i, : len(idx)] = et.t_mid[c][idx]
            tokens[name], masks[name], times[name] = emb, mask, tm
        x = data.handcrafted.reindex(clip_ids)[self.feature_columns].to_numpy(np.float64) if self.feature_columns \
            else np.zeros((B, 0))
        z, missing = _standardised(x, self.mean_, self.std_)
        hc = np.concatenate([z, missing.astype(float)], 1).astype(np.float32)
        s = data.scalars.reindex(clip_ids)[self.scalar_columns].to_numpy(np.float64) if self.scalar_columns \
            else np.zeros((B, 0))
        sz, s_missing = _standardised(s, self.scalar_mean_, self.scalar_std_)
        scalars = np.stack([sz, s_missing.astype(float)], -1).astype(np.float32)
        wins = [data.windows.get(c, np.zeros((0, 2), np.float32)) for c in clip_ids]
        W = max([1] + [len(w) for w in wins])
        n_dims = n_window_dims
        win = np.zeros((B, W, 2), np.float32)
        wmask = np.zeros((B, W), bool)
        wtarget = np.zeros((B, W, n_dims), np.float32)
        wsup = np.zeros((B, W), bool)
        for i, (c, w) in enumerate(zip(clip_ids, wins)):
            win[i, : len(w)] = w
            wmask[i, : len(w)] = True
            if window_targets and c in window_targets:
                wtarget[i, : len(w)] = window_targets[c]
                wsup[i, : len(w)] = True
        tgt = np.full((B, 1), np.nan, np.float32) if target is None else target.astype(np.float32)
        return Batch(tokens, masks, times, hc, scalars, win, wmask, wtarget, wsup, tgt)
