"""Training, prediction and the saved model folder of the fusion networks.

`FusionRegressor` follows scikit-learn's shape: the constructor only stores the config and device,
`fit` learns (state ends in `_`), `predict` returns a DataFrame indexed by clip_id.

A saved model folder holds:
    weights.pt      model + task-weighting state
    fusion.onnx     the network as one ONNX graph (fusion/export.py), with onnx.json tying it to weights.pt,
                    config.yaml and schema.json; written when the `onnx` package is installed
    config.yaml     the FusionConfig
    schema.json     hand-crafted feature and expert-scalar columns (+ their training mean/std), experts
                    (name, dim, modality, version, weights hash), tasks, architecture
    versions.json   talkqa / torch / python versions
    training.json   the epoch history, the pre-training history (when pre-trained) and the Optuna
                    trials (when tuned; config.yaml then holds the chosen settings)
`FusionRegressor.load(folder)` + `predict(store_data)` refuses a store whose schema differs. A loaded model
predicts through ONNX Runtime when the folder has a fresh export (and the device is the CPU), else through
torch; training, and everything here that needs torch, imports it when it runs.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from pathlib import Path

import numpy as np
import yaml
import pandas as pd

from talkqa import __version__
from talkqa.config import load_config, save_config
from talkqa.errors import TalkqaError
from talkqa.onnx_model import export_graph, is_exportable, load_exports, write_exports_manifest
from talkqa.store import atomic_write, atomic_write_json
from talkqa.tasks import DIMENSIONS, DIMENSION_NAMES

from .batch import Featurizer, graph_inputs
from .config import FusionConfig
from talkqa.labels import Labels, window_targets
from talkqa.splits import hold_out_groups
from talkqa.store_data import StoreData

_DIM = {d.name: d for d in DIMENSIONS}
# Models saved before schema.json recorded the window head's dimensions (talkqa <= 0.2) predict these.
LEGACY_WINDOW_DIMENSIONS = ("lip_sync", "expression", "audio_quality", "consistency", "overall")
# The files an ONNX export of a saved model is tied to: it counts only while they are as it was made from.
EXPORT_SOURCES = ("weights.pt", "config.yaml", "schema.json")


def scale_targets(y: np.ndarray, tasks: list[str]) -> np.ndarray:
    """MOS -> [-1, 1] per dimension scale (NaN stays NaN)."""
    out = np.empty_like(y, dtype=np.float64)
    for k, t in enumerate(tasks):
        lo, hi = _DIM[t].scale
        out[:, k] = (y[:, k] - (lo + hi) / 2) / ((hi - lo) / 2)
    return out


def unscale(pred: np.ndarray, tasks: list[str]) -> np.ndarray:
    out = np.empty_like(pred, dtype=np.float64)
    for k, t in enumerate(tasks):
        lo, hi = _DIM[t].scale
        out[:, k] = np.clip(pred[:, k] * (hi - lo) / 2 + (lo + hi) / 2, lo, hi)
    return out


def speaker_split(clip_ids: list[str], groups, share: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out whole speakers (about `share` of them, when there are at least 3) for early stopping."""
    train, held = hold_out_groups(groups, share, seed, min_groups=3)
    return [clip_ids[i] for i in train], [clip_ids[i] for i in held]


def check_schema(expected: dict, data: StoreData, where: str = "model") -> None:
    """One clear error when the store does not carry what the model was trained on."""
    problems = []
    for kind, wanted, table in (("hand-crafted", expected["feature_columns"], data.handcrafted),
                                ("expert scalar", expected.get("scalar_columns", []), data.scalars)):
        missing_cols = [c for c in wanted if c not in table.columns]
        if missing_cols:
            problems.append(f"{kind} column(s) missing: {', '.join(missing_cols[:5])}"
                            + (f" (+{len(missing_cols) - 5})" if len(missing_cols) > 5 else ""))
    for name, info in expected["experts"].items():
        got = data.experts.get(name)
        if got is None:
            problems.append(f"expert {name!r} missing")
            continue
        for key in ("dim", "modality", "weights_hash", "version"):
            if info[key] != getattr(got.info, key):
                problems.append(f"expert {name!r} {key} {getattr(got.info, key)!r} != trained {info[key]!r}")
    if problems:
        raise TalkqaError(f"{where} does not match store {data.root}: " + "; ".join(problems)
                          + "; re-run extract/embed with the settings the model was trained on, or retrain it")


class FusionRegressor:
    def __init__(self, config: FusionConfig | None = None, device: str = "cpu"):
        self.config = config or FusionConfig()
        self.device = device
        self.session_ = None  # an ONNX Runtime session, set by load() from a fresh export

    # ------------------------------------------------------------------------------------- fit
    def _data(self, data: StoreData) -> StoreData:
        return data.view(self.config.drop_experts, self.config.use_handcrafted)

    def fit(self, data: StoreData, labels: Labels, clip_ids: list[str], val_ids: list[str] | None = None,
            log=None, unlabelled_ids: list[str] | None = None) -> "FusionRegressor":
        """`unlabelled_ids`: more clips of the store for self-supervised pre-training (when enabled); the
        caller keeps evaluation clips out of them."""
        import torch  # lazy: training only; a saved model predicts through its ONNX export

        from .model import build_model  # lazy: torch
        from .pretrain import pretrain  # lazy: torch
        from .tune import tune_fusion  # lazy: torch (the weighting schemes)
        from .weighting import create_weighting  # lazy: torch

        if self.config.tune.n_trials:
            trial_fit = lambda cfg, ids: FusionRegressor(cfg, self.device).fit(data, labels, ids)
            self.config, self.tuning_ = tune_fusion(self.config, data, labels, list(clip_ids), trial_fit, log)
        cfg, tcfg = self.config, self.config.train
        if tcfg.threads:
            torch.set_num_threads(tcfg.threads)
        torch.manual_seed(tcfg.seed)
        np_rng = np.random.default_rng(tcfg.seed)
        device = torch.device(self.device)
        cuda = device.type == "cuda"
        data = self._data(data)
        tasks = cfg.tasks
        task_idx = [DIMENSION_NAMES.index(t) for t in tasks]
        if val_ids is None:
            clip_ids, val_ids = speaker_split(list(clip_ids), labels.groups(list(clip_ids)), tcfg.val_share, tcfg.seed)
        self.tasks_ = tasks
        self.experts_ = {k: v.info.as_dict() for k, v in data.experts.items()}
        scalar_columns = list(data.scalars.columns) if cfg.use_scalars else []
        self.featurizer_ = Featurizer(data.feature_columns, list(data.experts), cfg.model.max_tokens,
                                      scalar_columns=scalar_columns).fit(data, clip_ids)
        self.window_dims_ = list(DIMENSION_NAMES)
        self.model_ = build_model(cfg.model, self.experts_, 2 * len(data.feature_columns), tasks,
                                  self.window_dims_, len(scalar_columns)).to(device)
        self.pretrain_history_ = []
        if cfg.pretrain.enabled:
            extra = [c for c in (unlabelled_ids or []) if c not in set(val_ids)] if cfg.pretrain.unlabelled else []
            self.pretrain_history_ = pretrain(self.model_, self.featurizer_, data, list(dict.fromkeys(clip_ids + extra)),
                                              cfg.pretrain, device, log, eval_ids=val_ids)
        self.weighting_ = create_weighting(tcfg.weighting, tasks, tcfg.dwa_temperature).to(device)
        params = list(self.model_.parameters()) + list(self.weighting_.parameters())
        opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        use_amp = cuda and tcfg.amp
        accum = tcfg.grad_accum if cuda else 1
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        targets = {c: row for c, row in zip(clip_ids + val_ids,
                                            scale_targets(labels.y(clip_ids + val_ids)[:, task_idx], tasks))}
        wt = window_targets(labels, data, clip_ids + val_ids) if cfg.loss.diagnostic_weight > 0 else {}
        train = [c for c in clip_ids if np.isfinite(targets[c]).any()]
        if len(train) < 2:
            raise TalkqaError(f"only {len(train)} labelled training clip(s) for tasks {tasks}; need at least 2")
        best, best_state, bad_epochs, self.history_ = np.inf, None, 0, []
        bs = tcfg.batch_size
        for epoch in range(tcfg.epochs):
            self.model_.train()
            order = np_rng.permutation(len(train))
            sums: dict[str, float] = {}
            n_steps = 0
            batches = [order[i:i + bs] for i in range(0, len(order), bs)]
            if len(batches) > 1 and len(batches[-1]) < 2:  # a 1-clip batch has no pairs and no contrast
                batches[-2] = np.concatenate([batches[-2], batches.pop()])
            for step, idx in enumerate(batches):
                ids = [train[i] for i in idx]
                batch = self.featurizer_.batch(data, ids, np.stack([targets[c] for c in ids]), wt,
                                              len(self.window_dims_)).to(device)
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    out = self.model_(batch)
                    parts = self._losses(out, batch)
                    loss = self.weighting_({t: parts[t] for t in tasks}) + sum(
                        w * parts[k] for k, w in self._aux_weights().items())
                scaler.scale(loss / accum).backward()
                if (step + 1) % accum == 0 or step == len(batches) - 1:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, 5.0)
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad(set_to_none=True)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_steps += 1
            means = {k: v / n_steps for k, v in sums.items()}
            self.weighting_.end_epoch({t: means[t] for t in tasks})
            val_loss = self._val_loss(data, val_ids or train, targets, tasks)
            self.history_.append({"epoch": epoch, "train": {k: round(v, 5) for k, v in means.items()},
                                  "val_loss": val_loss, "weights": self.weighting_.weights()})
            if log:
                log(self.history_[-1])
            if val_loss < best - 1e-5:
                best, best_state, bad_epochs = val_loss, copy.deepcopy(self.model_.state_dict()), 0
            else:
                bad_epochs += 1
                if bad_epochs >= tcfg.patience:
                    break
        if best_state is not None:
            self.model_.load_state_dict(best_state)
        self.best_val_loss_ = float(best)
        self.model_.eval()
        self.session_ = None
        return self

    def _aux_weights(self) -> dict[str, float]:
        l = self.config.loss
        return {"ranking": l.ranking_weight, "contrastive": l.contrastive_weight, "diagnostic": l.diagnostic_weight}

    def _losses(self, out: dict, batch) -> dict:
        from .losses import contrastive_alignment_loss, diagnostic_loss  # lazy: torch, training only
        from .losses import pairwise_ranking_loss, regression_losses  # lazy: torch, training only

        l = self.config.loss
        pred = out["pred"].float()
        parts = regression_losses(pred, batch.target, self.tasks_, l.smooth_l1_beta)
        zero = pred.sum() * 0.0
        gap = l.ranking_min_gap / 2.0  # MOS gap in the [-1, 1] target units of a 1-5 scale
        parts["ranking"] = pairwise_ranking_loss(pred, batch.target, gap, l.ranking_scale) if l.ranking_weight else zero
        parts["contrastive"] = (contrastive_alignment_loss(out["audio"].float(), out["visual"].float(), out["av_valid"],
                                                           l.contrastive_temperature)
                                if l.contrastive_weight and out["audio"] is not None else zero)
        parts["diagnostic"] = (diagnostic_loss(out["diag"].float(), batch.window_target, batch.window_supervised)
                               if l.diagnostic_weight and out["diag"] is not None else zero)
        return parts

    def _val_loss(self, data, ids, targets, tasks) -> float:
        import torch  # lazy: training only

        from .losses import regression_losses  # lazy: torch, training only

        self.model_.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(ids), 64):
                chunk = ids[i:i + 64]
                batch = self.featurizer_.batch(data, chunk, np.stack([targets[c] for c in chunk]),
                                               n_window_dims=len(self.window_dims_)).to(self.device)
                parts = regression_losses(self.model_(batch)["pred"].float(), batch.target, tasks,
                                          self.config.loss.smooth_l1_beta)
                total += float(sum(parts.values())) * len(chunk)
                n += len(chunk)
        return total / max(n, 1)

    # ------------------------------------------------------------------------------------- predict
    def _forward(self, data: StoreData, clip_ids: list[str], batch_size: int = 64):
        """(clip ids, {"pred": (B, n_tasks), "diag": (B, W, n_window_dims) or None}) per batch, as NumPy."""
        check_schema(self.schema(), data)
        data = data.view([e for e in data.experts if e not in self.experts_], True)
        for i in range(0, len(clip_ids), batch_size):
            chunk = list(clip_ids[i:i + batch_size])
            batch = self.featurizer_.arrays(data, chunk, n_window_dims=len(self.window_dims_))
            yield chunk, (self._run_onnx(batch) if self.session_ is not None else self._run_torch(batch))

    def _run_onnx(self, batch) -> dict:
        out = self.session_.run(**graph_inputs(batch, list(self.experts_)))
        return {"pred": out[0], "diag": out[1] if len(out) > 1 else None}

    def _run_torch(self, batch) -> dict:
        import torch  # lazy: a model trained here, or saved without an ONNX export

        self.model_.eval()
        with torch.no_grad():
            out = self.model_(batch.tensors().to(self.device))
        return {k: None if out[k] is None else out[k].float().cpu().numpy() for k in ("pred", "diag")}

    def predict(self, data: StoreData, clip_ids: list[str] | None = None) -> pd.DataFrame:
        clip_ids = list(data.clip_ids if clip_ids is None else clip_ids)
        rows = [unscale(out["pred"], self.tasks_) for _, out in self._forward(data, clip_ids)]
        pred = np.concatenate(rows) if rows else np.zeros((0, len(self.tasks_)))
        return pd.DataFrame(pred, index=pd.Index(clip_ids, name="clip_id"), columns=self.tasks_)

    def predict_windows(self, data: StoreData, clip_ids: list[str] | None = None) -> dict[str, pd.DataFrame]:
        """clip_id -> per-window problem probabilities (columns: dimensions) with t_start/t_end."""
        clip_ids = list(data.clip_ids if clip_ids is None else clip_ids)
        result = {}
        for chunk, out in self._forward(data, clip_ids):
            if out["diag"] is None:
                continue
            prob = 1.0 / (1.0 + np.exp(-out["diag"].astype(np.float64)))
            for i, c in enumerate(chunk):
                w = data.windows.get(c, np.zeros((0, 2)))
                df = pd.DataFrame(prob[i, : len(w)], columns=self.window_dims_)
                df.insert(0, "t_start", w[:, 0])
                df.insert(1, "t_end", w[:, 1])
                result[c] = df
        return result

    # ------------------------------------------------------------------------------------- save / load
    def schema(self) -> dict:
        return {"feature_columns": self.featurizer_.feature_columns, "experts": self.experts_,
                "window_dimensions": self.window_dims_, "scalar_columns": self.featurizer_.scalar_columns}

    def save(self, folder: str | Path) -> Path:
        import torch  # lazy: saving is part of training

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model_.state_dict(), "weighting": self.weighting_.state_dict()}
        atomic_write(folder / "weights.pt", lambda fh: torch.save(state, fh))
        save_config(self.config, folder / "config.yaml")
        atomic_write_json(folder / "schema.json", {**self.schema(), "featurizer": self.featurizer_.state(),
                                                   "tasks": self.tasks_, "architecture": self.config.model.architecture})
        # what shaped the weights beyond config.yaml: the pre-training curve and the tuning trials
        atomic_write_json(folder / "training.json", {"pretrain": getattr(self, "pretrain_history_", []),
                                                     "tuning": getattr(self, "tuning_", None),
                                                     "history": getattr(self, "history_", [])})
        atomic_write_json(folder / "versions.json", {"talkqa": __version__, "torch": torch.__version__,
                                                     "python": platform.python_version(),
                                                     "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.export_onnx(folder)
        return folder

    def export_onnx(self, folder: str | Path) -> bool:
        """fusion.onnx and onnx.json beside the saved model in `folder` (False when the `onnx` package is not
        installed). The network exported is the saved one, read back from weights.pt."""
        folder = Path(folder)
        if not is_exportable():
            return False
        from .export import fusion_graph  # lazy: torch, exporting only

        saved = FusionRegressor.load(folder, "cpu", onnx=False)
        graph = fusion_graph(saved.model_, saved.experts_, 2 * len(saved.featurizer_.feature_columns),
                             len(saved.featurizer_.scalar_columns))
        export_graph(graph, folder / "fusion.onnx")
        write_exports_manifest(folder, list(EXPORT_SOURCES), {"fusion": "fusion.onnx"},
                               {"architecture": saved.config.model.architecture})
        return True

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", onnx: bool = True) -> "FusionRegressor":
        """The model saved in `folder`: its ONNX export when fresh, `onnx` is on and the device is the CPU
        (no torch, and no task-weighting state: that is for training), else the torch network."""
        folder = Path(folder)
        for name in ("weights.pt", "config.yaml", "schema.json"):
            if not (folder / name).is_file():
                raise TalkqaError(f"{folder} is not a fusion model folder ({name} missing); train one first")
        config = load_config(FusionConfig, folder / "config.yaml")
        if "stats_tokens" not in (yaml.safe_load((folder / "config.yaml").read_text()).get("model") or {}):
            config.model.stats_tokens = False  # saved before statistics tokens existed (talkqa <= 0.2)
        self = cls(config, device)
        schema = json.loads((folder / "schema.json").read_text())
        self.tasks_ = schema["tasks"]
        self.experts_ = schema["experts"]
        self.featurizer_ = Featurizer.from_state(schema["featurizer"])
        self.window_dims_ = schema.get("window_dimensions", list(LEGACY_WINDOW_DIMENSIONS))
        sessions = load_exports(folder, EXPORT_SOURCES) if onnx and device == "cpu" else None
        if sessions is not None:
            self.session_, self.model_ = sessions["fusion"], None
            return self
        import torch  # lazy: a model folder without a fresh ONNX export

        from .model import build_model  # lazy: torch
        from .weighting import create_weighting  # lazy: torch

        self.model_ = build_model(self.config.model, self.experts_, 2 * len(self.featurizer_.feature_columns),
                                  self.tasks_, self.window_dims_, len(self.featurizer_.scalar_columns)).to(device)
        self.weighting_ = create_weighting(self.config.train.weighting, self.tasks_, self.config.train.dwa_temperature)
        state = torch.load(folder / "weights.pt", map_location=device, weights_only=True)
        self.model_.load_state_dict(state["model"])
        self.weighting_.load_state_dict(state["weighting"])
        self.model_.eval()
        return self
