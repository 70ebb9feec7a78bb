"""`voice` expert: is the voice clean and natural (evidence for the `audio_quality` score)?

Frame features from a configurable backbone — `logmel_cnn` (default: a small CNN over log-mel,
trained here) or `hubert` (transformers `HubertModel.from_pretrained(hubert_path)`, a chosen layer,
pooled to 25 Hz) — feed a small head trained to tell clean speech from degraded speech
(experts/voice_degradations.py). Tokens are 0.2 s means of the frame features. Clip scalars: the head's
`quality_logit` (high = clean), DNSMOS (speechmos) and a few openSMILE eGeMAPS low-level-descriptor
means. The backbone is recorded in the Parquet metadata; a configured HuBERT that cannot be loaded
is an error, never a silent fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from talkqa.errors import TalkqaError
from talkqa.features.clip import PreprocessedClip
from talkqa.features.dnsmos import dnsmos_scores

from .base import EXPERTS, Expert, ExpertConfig, Tokens, steps_from_epochs
from .checkpoint import load_checkpoint
from .voice_degradations import DEGRADATIONS

SR = 16000
FRAME_HOP = 640  # 25 Hz frame features
N_FFT, STFT_HOP = 512, 160  # the log-mel CNN's 100 Hz spectrum
LLD = ("Loudness_sma3", "HNRdBACF_sma3nz", "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "spectralFlux_sma3")


def frame_signal(wav: np.ndarray) -> np.ndarray:
    """(N,) -> (1 + N // 160, 512): the reflect-padded frames torch.stft(center=True) cuts, what the log-mel
    CNN's graph reads (experts/nets/voice.py)."""
    x = np.pad(np.asarray(wav, np.float32), N_FFT // 2, mode="reflect")
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::STFT_HOP])


class VoiceConfig(ExpertConfig):
    backbone: Literal["logmel_cnn", "hubert"] = "logmel_cnn"
    hubert_path: str | None = None  # local folder (or hub id when reachable) for backbone: hubert
    hubert_layer: int = 9
    n_mels: int = 64
    hidden: int = 64
    dnsmos: bool = True
    opensmile_lld: bool = True
    segment_s: float = 2.0
    steps: int = 450
    schedule: Literal["constant", "cosine", "onecycle"] = "constant"
    batch_size: int = 32
    eval_max_clips: int = 16  # evaluation runs DNSMOS on 19 variants per clip: keep it bounded

    _legacy = model_validator(mode="before")(steps_from_epochs)


@EXPERTS.register
class VoiceExpert(Expert):
    name = "voice"
    version = "1"
    input_kind = "audio"
    modality = "audio"
    config_cls = VoiceConfig
    display_name = "voice expert"
    training_data = "clean speech of the given stores vs on-the-fly degradations (experts/voice_degradations.py)"
    summary = ("Audio-quality expert: a frame-feature backbone (log-mel CNN by default, HuBERT by config) and a "
               "small head trained to tell clean speech from degraded speech (noise, clipping, low-pass, reverb, "
               "Griffin-Lim, bit-crush). Higher `quality_logit` = cleaner.")
    limits = ("Trained on ~40 real clips of ../shared/data/real and eSpeak NG speech with synthetic degradations; "
              "codec artefacts and babble noise were not in training. The default backbone is a small log-mel CNN: "
              "HuBERT weights could not be downloaded here.")

    @property
    def scalar_names(self) -> tuple[str, ...]:  # depends on config: declared before running all the same
        names = ["quality_logit"]
        if self.config.dnsmos:
            names += ["dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"]
        if self.config.opensmile_lld:
            names += [f"lld_{n.split('_')[0].lower()}" for n in LLD]
        return tuple(names)

    def columns(self) -> list[str]:
        return [f"{self.name}__{s}" for s in self.scalar_names]

    def describe(self, scalars: dict[str, float]) -> str:
        # The logit separates clean speech (> 0) from degraded copies (< 0), the two classes it was trained on.
        logit = float(scalars.get("quality_logit", np.nan))
        dnsmos = float(scalars.get("dnsmos_ovrl", np.nan))
        readings = [f"quality logit {logit:+.1f}"] if np.isfinite(logit) else []
        readings += [f"DNSMOS {dnsmos:.1f}"] if np.isfinite(dnsmos) else []
        if np.isfinite(logit):
            verdict = "clean voice" if logit > 0 else "degraded voice"
        else:
            verdict = "no voice-quality reading"
        return f"{verdict} ({', '.join(readings)})" if readings else verdict

    @property
    def dim(self) -> int:
        if self.config.backbone == "hubert":
            return self._hubert_hidden()
        return self.config.hidden

    def _hubert_hidden(self) -> int:
        from transformers import HubertConfig  # lazy: optional dependency

        try:
            return int(HubertConfig.from_pretrained(self.config.hubert_path).hidden_size)
        except Exception:
            raise TalkqaError(f"audio expert: no HuBERT config at {self.config.hubert_path!r}; set hubert_path to a "
                              "local folder with config.json, or backbone: logmel_cnn") from None

    def backbone_name(self) -> str:
        if self.config.backbone == "hubert":
            return f"hubert:{self.config.hubert_path}:layer{self.config.hubert_layer}"
        return "logmel_cnn"

    def _new_model(self):
        from .nets.voice import AudioQualityModel, HubertBackbone, LogMelCNN  # lazy: torch (train, export, fallback)

        if self.config.backbone == "hubert":
            if not self.config.hubert_path:
                raise TalkqaError("audio expert: backbone is hubert but hubert_path is not set")
            return AudioQualityModel(HubertBackbone(self.config.hubert_path, self.config.hubert_layer), self.dim, False)
        return AudioQualityModel(LogMelCNN(self.config.n_mels, self.config.hidden), self.config.hidden, True)

    def card_extras(self) -> dict:
        return {"backbone": self.backbone_name()}

    def store_metadata(self) -> dict:
        return {"backbone": self.backbone_name()}

    def onnx_graphs(self, model) -> dict:
        from .nets.voice import graphs  # lazy: torch, only to export or run without an ONNX export

        return graphs(model)

    def export_onnx(self, folder: str | Path | None = None) -> list[str]:
        # a HuBERT backbone comes from hubert_path, not from these weights: it runs through torch
        return [] if self.config.backbone == "hubert" else super().export_onnx(folder)

    def load(self) -> "VoiceExpert":
        self.head_trained_ = True
        if self.config.backbone != "hubert":
            return super().load()
        # The HuBERT part comes from hubert_path; the quality head must have been trained on top of
        # that backbone (`weights:` pointing at its folder). Without one, tokens are still HuBERT
        # features but quality_logit is NaN rather than the output of an untrained head.
        import torch  # lazy: the HuBERT backbone runs through torch

        model = self._new_model()
        if self.config.weights:
            state = torch.load(Path(self.config.weights) / "model.pt", map_location="cpu", weights_only=True)
            model.head.load_state_dict({k.removeprefix("head."): v.float() for k, v in state.items()
                                        if k.startswith("head.")})
        else:
            self.head_trained_ = False
        self.model_ = model.to(self.device).eval()
        return self

    # ------------------------------------------------------------------------------------ inference
    def _frames_and_logit(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, T25, dim) backbone features and (B,) quality logits of (B, N) waveforms."""
        if self.config.backbone == "hubert":
            return tuple(self.run_graph("voice", np.asarray(x, np.float32)))
        return tuple(self.run_graph("voice", np.stack([frame_signal(w) for w in x])))

    def embed(self, clip: PreprocessedClip) -> Tokens:
        if clip.audio is None:
            raise ValueError("no audio track")
        x = clip.audio_norm if clip.audio_norm is not None else clip.audio
        h, logit = self._frames_and_logit(np.ascontiguousarray(x, dtype=np.float32)[None])
        trained = getattr(self, "head_trained_", True)
        scalars = {"quality_logit": float(logit[0]) if trained else float("nan")}
        h = h[0]
        step = max(1, int(round(self.config.token_s * 25)))
        starts = np.arange(0, len(h), step)
        emb = np.stack([h[s : s + step].mean(0) for s in starts])
        if self.config.dnsmos:
            scalars.update(_dnsmos(clip.audio))
        if self.config.opensmile_lld:
            scalars.update(_lld_means(clip.audio))
        return Tokens(starts / 25.0, np.minimum(starts + step, len(h)) / 25.0, emb, scalars)

    # ------------------------------------------------------------------------------------ training
    training_requirement = "clips with speech as long as one training segment"

    def training_item(self, clip: PreprocessedClip, group: str) -> tuple | None:
        if clip.audio is None or clip.info.get("silent_audio") or len(clip.audio) < int(self.config.segment_s * SR):
            return None
        return group, clip.audio_norm if clip.audio_norm is not None else clip.audio

    def training_batch(self, items, rng, n: int):
        """Half clean segments, half degraded ones (a random degradation at a random severity each)."""
        import torch  # lazy: training only

        seg = int(self.config.segment_s * SR)
        xs, ys = [], []
        for i in range(n):
            _, x = items[rng.integers(len(items))]
            s = int(rng.integers(0, len(x) - seg + 1))
            x = x[s : s + seg]
            if i % 2:
                fn = DEGRADATIONS[list(DEGRADATIONS)[rng.integers(len(DEGRADATIONS))]]
                x = fn(x, float(rng.uniform(0.2, 1.0)), rng)
                ys.append(0.0)
            else:
                ys.append(1.0)
            xs.append(x)
        return torch.from_numpy(np.stack(xs).astype(np.float32)), torch.tensor(ys)

    def training_loss(self, model, batch):
        from torch.nn.functional import binary_cross_entropy_with_logits  # lazy: torch, training only

        x, y = batch
        return binary_cross_entropy_with_logits(model.logit(model.frames(x)), y)

    def trainable_parameters(self, model) -> list:
        """The head, and the backbone too unless it is a pretrained HuBERT kept frozen."""
        head = set(model.head.parameters())
        return [p for p in model.parameters() if p.requires_grad and (model.train_backbone or p in head)]

    def evaluate(self, data, seed: int = 1) -> dict[str, Any]:
        """Spearman of the quality score with degradation severity (per family and pooled) and with
        DNSMOS OVRL, on held-out speech cut into segments."""
        from scipy.stats import spearmanr  # lazy: slow import, only on this path

        rng = np.random.default_rng(seed)
        seg = int(self.config.segment_s * SR)
        rows = []  # (family, severity, score, dnsmos)
        if len(data) > self.config.eval_max_clips:
            data = [data[i] for i in rng.choice(len(data), self.config.eval_max_clips, replace=False)]
        for _, x in data:
            s = int(rng.integers(0, len(x) - seg + 1))
            clean = x[s : s + seg]
            variants = [("clean", 0.0, clean)] + [(f, sev, fn(clean, sev, rng)) for f, fn in DEGRADATIONS.items()
                                                  for sev in (0.3, 0.6, 0.9)]
            for fam, sev, y in variants:
                score = float(self._frames_and_logit(y.astype(np.float32)[None])[1][0])
                rows.append((fam, sev, score, _dnsmos(y).get("dnsmos_ovrl", np.nan)))
        fam = np.array([r[0] for r in rows])
        sev, score, dns = (np.array([r[i] for r in rows], float) for i in (1, 2, 3))
        per_family = {}
        for f in DEGRADATIONS:
            m = (fam == f) | (fam == "clean")
            per_family[f] = float(-spearmanr(sev[m], score[m]).statistic)
        ok = np.isfinite(dns)
        return {
            "spearman_vs_severity": float(-spearmanr(sev, score).statistic),
            "spearman_vs_severity_per_family": per_family,
            "spearman_vs_dnsmos_ovrl": float(spearmanr(score[ok], dns[ok]).statistic) if ok.sum() > 3 else float("nan"),
            "dnsmos_ovrl_spearman_vs_severity": float(-spearmanr(sev[ok], dns[ok]).statistic) if ok.sum() > 3 else float("nan"),
            "n_segments": len(rows),
        }


def _dnsmos(x: np.ndarray) -> dict[str, float]:
    """The same DNSMOS measurement as the hand-crafted audio family (two tiled 9 s segments)."""
    if len(x) < SR or not np.any(x):
        return {k: float("nan") for k in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")}
    return dnsmos_scores(x, SR, max_segments=2)


_SMILE = None


def _lld_means(x: np.ndarray) -> dict[str, float]:
    global _SMILE
    import opensmile  # lazy: slow import, only on this path

    if _SMILE is None:
        _SMILE = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                 feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    lld = _SMILE.process_signal(np.asarray(x, np.float32), SR)
    return {f"lld_{n.split('_')[0].lower()}": float(lld[n].mean()) for n in LLD}
