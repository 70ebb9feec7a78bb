"""What `talkqa check` expects, as data: configs/check/default.yaml loaded into typed models.

A check names the variants it needs (a kind from talkqa.corpus.variants plus its parameters) and
what a viewer would say about their scores, each expectation per dimension:

    min / max            score >= / <= value             ('all': every dimension)
    min_drop             clean score - score >= value    (the variant is clearly worse than the clean clip)
    max_change           |score - clean score| <= value  (a change a viewer does not notice moves nothing)
    max_diagnostics      at most this many diagnostic segments
    min_diagnostic_cover diagnostic segments cover at least this share of the edited span
    non_increasing       along a ladder (clean, then the variants mildest first) no score goes up
    falls_with_severity  along a ladder, Spearman(severity, score) <= -min_spearman

`graded` adds one ladder per artifact of the degrade registry (clean + its graded levels): the
dimensions it damages must fall with severity (Spearman).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from talkqa.config import StrictModel, config_path, load_config
from talkqa.corpus.variants import VARIANT_KINDS
from talkqa.tasks import DIMENSION_NAMES

DEFAULT_CHECKS = config_path("check", "default.yaml")
ALL = "all"


def _dimensions(mapping: dict[str, Any] | list[str]) -> None:
    bad = [k for k in mapping if k != ALL and k not in DIMENSION_NAMES]
    if bad:
        raise ValueError(f"unknown dimension(s) {bad}; use {', '.join(DIMENSION_NAMES)} or '{ALL}'")


class Expect(StrictModel):
    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    min_drop: dict[str, float] = Field(default_factory=dict)
    max_change: dict[str, float] = Field(default_factory=dict)
    max_diagnostics: int | None = None
    min_diagnostic_cover: float | None = Field(None, ge=0, le=1)
    non_increasing: list[str] = Field(default_factory=list)
    falls_with_severity: list[str] = Field(default_factory=list)
    min_spearman: float = Field(0.9, ge=0, le=1)

    @model_validator(mode="after")
    def _known_dimensions(self):
        for mapping in (self.min, self.max, self.min_drop, self.max_change, self.non_increasing, self.falls_with_severity):
            _dimensions(mapping)
        return self


class VariantSpec(StrictModel):
    """One variant: a kind of talkqa.corpus.variants and its parameters (defaults filled in, so equal
    variants of different checks are made and scored once)."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data):
        # YAML writes {kind: audio_shift, seconds: 0.5}: everything but `kind` is a parameter
        if isinstance(data, dict) and "params" not in data:
            data = {"kind": data.get("kind"), "params": {k: v for k, v in data.items() if k != "kind"}}
        return data

    @model_validator(mode="after")
    def _complete(self):
        # the corpus (cv2, scipy, every artifact) loads only when a check config is read

        if self.kind not in VARIANT_KINDS:
            raise ValueError(f"unknown variant kind {self.kind!r}; known: {', '.join(VARIANT_KINDS)}")
        signature = inspect.signature(VARIANT_KINDS[self.kind].make)
        names = list(signature.parameters)[2:]  # after (sample, rng)
        unknown = set(self.params) - set(names)
        if unknown:
            raise ValueError(f"variant {self.kind}: unknown parameter(s) {sorted(unknown)}; it takes {names}")
        missing = [n for n in names if n not in self.params and signature.parameters[n].default is inspect.Parameter.empty]
        if missing:
            raise ValueError(f"variant {self.kind}: parameter(s) {missing} are required")
        defaults = {n: signature.parameters[n].default for n in names if n not in self.params}
        object.__setattr__(self, "params", {**defaults, **self.params})
        return self

    @property
    def key(self) -> str:
        """A readable file-safe name, e.g. audio_shift(seconds=0.5)."""
        return _key(self.kind, self.params)

    @property
    def draw_key(self) -> str:
        """What seeds the variant's random draws: its key without the severity, so that the levels of one graded
        artifact on one source draw alike (the same codec, noise, donor or placement) and differ in severity
        alone. Seeded by the whole key, the codec ladder was AAC 16 kbps, Opus 10 kbps, AAC 6 kbps on one source:
        a ladder of two codecs, which a listener need not hear getting worse."""
        return _key(self.kind, {k: v for k, v in self.params.items() if k != "severity"})


def _key(kind: str, params: dict[str, Any]) -> str:
    inner = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
    return f"{kind}({inner})" if inner else kind


class CheckSpec(StrictModel):
    name: str
    says: str = Field(description="what any viewer would say, in one sentence")
    variants: list[VariantSpec] = Field(min_length=1)
    ladder: bool = Field(False, description="the variants, mildest first, form one ladder after the clean clip")
    expect: Expect

    @model_validator(mode="after")
    def _ladder_expectations(self):
        along = bool(self.expect.non_increasing or self.expect.falls_with_severity)
        if along != self.ladder:
            raise ValueError(f"check {self.name}: non_increasing / falls_with_severity are for ladders (ladder: true), "
                             "and a ladder needs one of them")
        return self


class GradedSpec(StrictModel):
    says: str = "the worse an artifact, the lower the dimensions it damages"
    min_spearman: float = Field(0.9, ge=0, le=1, description="-Spearman(severity, score) over clean + levels")
    min_impact: float = Field(1.0, gt=0, description="only dimensions the artifact's declared impact costs this much")
    max_sources: int = Field(2, ge=0, description="ladders on the first sources only (~75 variants each)")
    quick_levels: int = Field(1, ge=1, description="--quick: only the strongest levels")
    artifacts: list[str] | None = Field(None, description="default: every registered artifact")


class SourceSpec(StrictModel):
    max_seconds: float = Field(5.0, gt=1, description="the first seconds of each source clip")
    max_side: int = Field(512, ge=64, description="frames scaled so the long side is at most this")
    mbtree: bool = Field(False, description="encode the variants with x264's macroblock-tree rate control, as `talkqa "
                                            "degrade` encodes the training corpora; then a rerun is not byte-identical "
                                            "(off: every run gives the same numbers)")


class CheckConfig(StrictModel):
    source: SourceSpec = Field(default_factory=SourceSpec)
    seed: int = 0
    checks: list[CheckSpec] = Field(default_factory=list)
    graded: GradedSpec = Field(default_factory=GradedSpec)

    @field_validator("checks")
    @classmethod
    def _unique(cls, v):
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"check names must be unique: {dup}")
        return v


def load_check_config(path: str | Path | None = None, overrides: list[str] | None = None) -> CheckConfig:
    return load_config(CheckConfig, path or DEFAULT_CHECKS, overrides)
