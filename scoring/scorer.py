"""Scoring API: `Scorer(model_dir).score(path) -> Result`.

A Scorer loads a model folder (scoring/bundle.py) once, with the experts it lists, and scores a
clip in memory: preprocessing + hand-crafted features (with the model's own extraction
config) -> every expert's tokens -> fusion + stacking -> the per-dimension score (`combine`), the AV
offset, and diagnostics (scoring/diagnostics.py); with `explain=True` also why (scoring/explanation.py:
the stacking model's contributions as named factors, milliseconds per clip). A clip that cannot be
scored gives a Result with `error` set (one sentence) and null scores; Scorer never raises for bad input. A model folder this
installation cannot reproduce is refused when the Scorer is built (ModelMismatchError, a UsageError).
Many clips: scoring/batch.py.
"""

from __future__ import annotations

import json
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sys

import numpy as np
import pandas as pd

from talkqa.errors import ClipError, TalkqaError
from talkqa.features.extract import compute_features, families_of
from talkqa.features.preprocess import preprocess
from talkqa.onnx_model import set_threads
from talkqa.store_data import ExpertInfo, ExpertTokens, StoreData
from talkqa.tasks import AUDIO_DIMENSIONS, DIMENSION_NAMES

from .bundle import load_bundle
from .diagnostics import (evidence_diagnostics, frozen_diagnostics, model_diagnostics, offset_diagnostic,
                          quiet_dimensions)
from .explanation import explain_scores
from .overall_direct import readings
from .overall_rule import overall_from_dimensions
from .result import Result, failed_result, rounded


@dataclass
class Analysis:
    """What a clip reads as before any model's heads: the preprocessed clip, its hand-crafted features and
    every expert's tokens (Scorer.analyse). Models whose `reading_key` agrees read a clip identically, so one
    analysis serves them all (`talkqa check --model A --model B`)."""
    clip: Any
    row: dict
    windows: pd.DataFrame
    series: dict
    tokens: dict
    failed: dict


class Scorer:
    """Load a model folder once; score many clips. `model_dir=None` = the shipped default model."""

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu", threads: int | None = None,
                 explain_top: int = 5):
        if threads:
            set_threads(threads)  # the ONNX Runtime sessions the model loads
        self.device = device
        self.bundle = load_bundle(model_dir, device)
        self.experts = self.bundle.create_experts(device)
        if threads and "torch" in sys.modules:  # a part without an ONNX export (or a GPU) runs through torch
            sys.modules["torch"].set_num_threads(threads)
        for expert in self.experts.values():
            expert.weights_hash_ = expert.weights_hash()  # hashed once, not per clip
        self.model = {"name": self.bundle.name, "version": self.bundle.version}
        self.families = {f.name: f for f in families_of(self.bundle.extract_config)}
        self.explain_top = explain_top  # factors per dimension in an explanation
        # A model trained before a dimension existed (e.g. visual_quality, new in talkqa 0.3) still scores
        # the others; that dimension is null with a warning rather than a made-up number.
        known = set(self.bundle.fusion.tasks_) | set(self.bundle.stacking.dimensions_)
        self.untrained_dimensions = [d for d in DIMENSION_NAMES if d not in known]

    def reading_key(self) -> str:
        """Equal for two Scorers that read every clip identically: the same extraction config, the same
        experts with the same configs and weights, on the same device. Only their heads may differ
        (a model retrained on the same readings, or given ceilings afterwards)."""
        experts = {n: [e.version, e.weights_hash_, e.config.model_dump(mode="json")] for n, e in self.experts.items()}
        return json.dumps([self.bundle.extract_config.model_dump(mode="json"), experts, self.device], sort_keys=True,
                          default=str)

    # ------------------------------------------------------------------ in-memory store of one clip
    def _store_data(self, cid: str, path: Path, row: dict, windows: pd.DataFrame, tokens: dict):
        hc = pd.DataFrame([{k: v for k, v in row.items() if "__" in k}], index=pd.Index([cid], name="clip_id"))
        hc = hc.astype(np.float64)
        experts, scalars = {}, {}
        for name, expert in self.experts.items():
            entry = self.bundle.meta["experts"][name]
            info = ExpertInfo(name, int(entry["dim"]), entry["modality"], expert.version, expert.weights_hash_)
            tok = tokens.get(name)
            if tok is not None and len(tok.t_start):
                mid = ((np.asarray(tok.t_start) + np.asarray(tok.t_end)) / 2).astype(np.float32)
                experts[name] = ExpertTokens(info, {cid: tok.emb.astype(np.float32)}, {cid: mid})
            else:
                experts[name] = ExpertTokens(info, {}, {})
            for col in expert.columns():
                scalars[col] = np.nan
            if tok is not None:
                scalars.update({f"{name}__{k}": float(v) for k, v in tok.scalars.items()})
        sc = pd.DataFrame([scalars], index=pd.Index([cid], name="clip_id")).astype(np.float64)
        win = windows[["t_start", "t_end"]].to_numpy(np.float32)
        return StoreData(path, [cid], hc, experts, sc, {cid: win})

    def _sync(self, data, cid: str, has_audio: bool) -> tuple[dict[str, float | None], float | None]:
        """(the clip's AV offset reading from the first sync source that has one, as `Result.sync`; the
        offset a lip-sync diagnostic should name: None without a clip reading, NaN when the expert that
        read it says there is none to name — a flat curve, or a reading within its in-sync range)."""
        if not has_audio:
            return {"offset_frames": None, "confidence": None}, None
        for src in self.bundle.config.sync_sources:
            vals = [float(readings(data, [cid], col)[0]) for col in (src.offset, src.confidence)]
            if np.isfinite(vals[0]):
                expert = self.experts.get(src.offset.split("__", 1)[0])
                named = expert.named_offset(*vals) if hasattr(expert, "named_offset") else vals[0]
                return {"offset_frames": rounded(vals[0], 2), "confidence": rounded(vals[1], 4)}, named
        return {"offset_frames": None, "confidence": None}, None

    def _combine(self, fused: pd.Series, stacked: pd.Series | None) -> dict[str, float | None]:
        per_dim = self.bundle.meta.get("combine_per_dimension", {})  # `combine: auto` chose per dimension
        out = {}
        for dim in DIMENSION_NAMES:
            how = per_dim.get(dim, {}).get("choice", self.bundle.meta["combine"])
            f = float(fused.get(dim, np.nan))
            s = float(stacked.get(dim, np.nan)) if stacked is not None else np.nan
            if how == "fusion":
                v = f
            elif how == "stacking":
                v = s if np.isfinite(s) else f
            else:
                v = np.nanmean([f, s]) if np.isfinite([f, s]).any() else np.nan
            out[dim] = rounded(np.clip(v, 1.0, 5.0) if np.isfinite(v) else np.nan, 4)
        return out

    def _analyse(self, clip):
        """Hand-crafted features and expert tokens of a preprocessed clip, in two lanes: the audio-only
        families and experts on a second thread, the rest on this one. openSMILE, ONNX Runtime (the
        networks, DNSMOS), torch and NumPy release the GIL, so on 2 cores the lanes overlap; each lane runs
        its parts in the usual order, so the values are those of a sequential run (`talkqa extract` +
        `talkqa embed`).
        Returns (row, windows, series, tokens, failed experts {name: exception})."""

        config = self.bundle.extract_config
        families = families_of(config)

        tokens, failed = {}, {}  # each lane writes only its own experts' keys

        def lane(audio_side: bool):
            features = compute_features(clip, config, [f for f in families if (f.modality == "audio") == audio_side])
            for name, expert in self.experts.items():
                if (expert.modality == "audio") == audio_side:
                    try:
                        tokens[name] = expert.embed(clip)
                    except Exception as exc:
                        failed[name] = exc
            return features

        with ThreadPoolExecutor(1, thread_name_prefix="talkqa-audio") as pool:
            audio_lane = pool.submit(lane, True)
            row_v, win_v, series_v = lane(False)
            row_a, win_a, series_a = audio_lane.result()
        # Back in the order a sequential run gives: families of the config, experts of the model.
        row = {**row_v, **row_a}
        row = {c: row[c] for f in families for c in f.columns()}
        win = pd.concat([win_v, win_a.drop(columns=["t_start", "t_end"])], axis=1)
        windows = win[["t_start", "t_end", *[c for f in families for c in f.window_columns()]]]
        order = list(self.experts)
        return (row, windows, {**series_v, **series_a}, {n: tokens[n] for n in order if n in tokens},
                {n: failed[n] for n in order if n in failed})

    def _direct_part(self, data, cid: str) -> float:
        """The label rule's direct overall part this clip's reading carries (scoring/overall_direct.py); 0 for a
        model without one."""
        part = self.bundle.direct_part
        return 0.0 if part is None else float(part(readings(data, [cid], part.column))[0])

    def explain(self, data, cid: str, scores: dict[str, float | None]) -> dict:
        """Why the clip got these scores: the named factors of the stacking model (scoring/explanation.py)."""
        per_dim = {d: c["choice"] for d, c in self.bundle.meta.get("combine_per_dimension", {}).items()}
        rule = self.bundle.config.overall_rule if self.bundle.config.overall_from == "dimensions" else None
        direct = None
        if rule is not None and self.bundle.direct_part is not None:
            direct = (self.bundle.direct_part.column, self._direct_part(data, cid))
        return explain_scores(self.bundle.stacking, data, cid, scores, self.experts, self.families,
                              self.bundle.meta["combine"], self.explain_top, per_dimension=per_dim, overall_rule=rule,
                              overall_direct=direct)

    def analyse(self, path: str | Path, audio: str | Path | None = None) -> Analysis:
        """Preprocess the clip and read it with the hand-crafted families and every expert; raises ClipError
        (and TalkqaError) for a clip that cannot be read. `score` does this itself unless given the result."""
        clip = preprocess(path, self.bundle.extract_config.preprocess, clip_id=Path(path).stem, audio_path=audio)
        return Analysis(clip, *self._analyse(clip))

    def score(self, path: str | Path, audio: str | Path | None = None, keep_details: bool = False,
              explain: bool = False, analysis: Analysis | Exception | None = None) -> Result:
        """Score one clip; never raises for bad input (the Result carries the error). `explain` adds
        `Result.explanation`; `keep_details` (what the HTML report reads) implies it. `analysis`: what
        `analyse` gave (or raised) for this clip from a Scorer with the same `reading_key`, so that several
        models score one reading."""

        t0 = time.perf_counter()
        clip_name = str(path)
        try:
            if isinstance(analysis, Exception):
                raise analysis
            a = analysis if analysis is not None else self.analyse(path, audio)
            clip, row, windows, series, tokens, failed = a.clip, a.row, a.windows, a.series, a.tokens, a.failed
            cid = clip.clip_id
            warnings = list(clip.warnings)
            for name, exc in failed.items():  # the expert cannot read this clip: the model scores without it
                if clip.has_audio or self.experts[name].modality == "visual":
                    warnings.append(f"expert {name} could not run ({exc}); scored without it")
            data = self._store_data(cid, Path(path), row, windows, tokens)
            fused = self.bundle.fusion.predict(data, [cid]).iloc[0]
            stacked = self.bundle.stacking.predict(data, [cid]).iloc[0]
            scores = self._combine(fused, stacked)
            skip: set[str] = set(self.untrained_dimensions)
            for d in self.untrained_dimensions:
                scores[d] = None
                warnings.append(f"model {self.model['name']} {self.model['version']} was trained without {d}, so it "
                                f"is not scored; retrain the model with this talkqa (`talkqa train`) to score it")
            if not clip.has_audio:
                skip |= set(AUDIO_DIMENSIONS)
                for d in AUDIO_DIMENSIONS:
                    scores[d] = None
                warnings.append(f"no audio track: {', '.join(AUDIO_DIMENSIONS)} are not scored")
            if self.bundle.config.overall_from == "dimensions" and scores.get("overall") is not None:
                scores["overall"] = rounded(overall_from_dimensions(scores, self.bundle.config.overall_rule,
                                                                    self._direct_part(data, cid)), 4)
            probs = self.bundle.fusion.predict_windows(data, [cid]).get(cid)
            diags = evidence_diagnostics(windows, skip)
            diags += frozen_diagnostics(series.get("expression__held"), clip.fps, skip)
            sync, named_offset = self._sync(data, cid, clip.has_audio)
            quiet = quiet_dimensions(scores, self.bundle.config.diagnostics.only_below)
            if probs is not None and len(probs):
                diags = model_diagnostics(probs, self.bundle.thresholds(), windows, skip | quiet, named_offset) + diags
            diags += offset_diagnostic(scores, named_offset, windows, diags, skip | quiet)
            diags.sort(key=lambda d: (d["start"], DIMENSION_NAMES.index(d["dimension"])))
            win_rows = [] if probs is None else [
                {k: rounded(v, 4) for k, v in r.items()} for r in probs.to_dict("records")]
            if skip:
                for r in win_rows:
                    for d in skip:
                        r[d] = None
            result = Result(clip_name, scores, sync, diags, warnings, None,
                            dict(self.model), win_rows)
            if explain or keep_details:
                try:
                    result.explanation = self.explain(data, cid, scores)
                except Exception as exc:  # the scores stand without their explanation; the warning says why
                    warnings.append(f"no explanation of the scores ({type(exc).__name__}: {exc})")
            if keep_details:
                result.details = {"data": data, "clip_id": cid, "series": series, "windows": windows, "row": row,
                                  "fps": clip.fps, "duration_s": clip.duration_s, "has_audio": clip.has_audio,
                                  "fusion": fused.to_dict(), "stacking": stacked.to_dict(),
                                  "thresholds": self.bundle.thresholds(), "scorer": self}
        except ClipError as exc:
            result = failed_result(clip_name, str(exc), exc.code, self.model)
        except TalkqaError as exc:
            result = failed_result(clip_name, str(exc), "internal_error", self.model)
        except Exception as exc:  # a bug must not stop a batch; the message says it is ours
            result = failed_result(clip_name, f"{clip_name}: internal error in talkqa ({type(exc).__name__}: {exc}); "
                                              "please report it with this clip", "internal_error", self.model)
            result.details = {"traceback": traceback.format_exc(limit=8)}
        result.elapsed_s = time.perf_counter() - t0
        return result


def score(path: str | Path, audio: str | Path | None = None, model_dir: str | Path | None = None,
          explain: bool = False) -> Result:
    """Score one clip with the shipped default model (or `model_dir`). Loads the model on each call:
    build a `Scorer` once to score many clips."""
    return Scorer(model_dir).score(path, audio, explain=explain)
