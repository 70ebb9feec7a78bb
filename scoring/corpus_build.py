"""`talkqa build-corpus`: a large labelled corpus from one recipe (configs/corpus/<name>.yaml).

Stages, each resumable (a rerun skips what is finished, so a killed build continues, and a recipe that
asks for more variants or clips only makes the new ones):

    real     the real TRAINING clips of the shared data (configs/shared_data.yaml: held-out speakers are
             never used; by default only clips whose sync is verified serve as clean references)
             -> `talkqa degrade` with many variants per source (combined artifacts)   out/real/
    synth    `talkqa synth` talking heads from a folder of portraits, English and Mandarin speech
             -> `talkqa degrade`                                                     out/synth/, out/synth_degraded/
    labels   one manifest.csv + diagnostics.parquet over both corpora                 out/
    extract  `talkqa extract` of every labelled clip into one store                   out/store/
    embed    `talkqa embed` of every registered expert                                out/store/

The store is keyed on content (video + parameters + weights), so it is reused across builds. Wall
time per stage and per clip goes to out/build.json, which is what the full-size estimate is made from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from pydantic import Field

from talkqa.config import ExtractConfig, StrictModel, config_path, load_config, save_config
from talkqa.corpus.degrade import DegradeRecipe, degrade_corpus
from talkqa.corpus.synth import synth_corpus
from talkqa.errors import UsageError
from talkqa.experts import EXPERTS
from talkqa.experts.embed import run_embed
from talkqa.features.extract import run_extract
from talkqa.manifest import load_manifest
from talkqa.shared_data import find_shared_data, shared_manifest
from talkqa.store import atomic_write_bytes, atomic_write_json, read_parquet, write_parquet


class RealPart(StrictModel):
    split: str = Field("train", description="configs/shared_data.yaml split whose clips are degraded")
    sync: list[str] = Field(default_factory=lambda: ["in_sync"], description="sync verdicts a source may have")
    max_sources: int | None = Field(None, ge=1, description="cap on source clips (a slice); null = all")
    variants: int = Field(48, ge=1, description="variants per source clip, the clean one included")
    seed: int = 0
    degrade_recipe: str = Field("default.yaml", description="file in configs/degrade/ or a path")


class SynthPart(StrictModel):
    n: int = Field(300, ge=0, description="rendered clips (0 = no synthetic part)")
    duration_s: float = Field(5.0, gt=0.5)
    size: int = Field(256, ge=64)
    portraits: str | None = Field("images", description="portrait folder: relative to the shared data, or a path; "
                                                        "null = the images installed packages ship")
    variants: int = Field(5, ge=1, description="degraded variants per rendered clip, the clean one included")
    seed: int = 1
    degrade_recipe: str = "default.yaml"


class CorpusRecipe(StrictModel):
    shared_data: str | None = Field(None, description="the shared data folder; null = $TALKQA_SHARED_DATA or "
                                                      "../shared/data")
    real: RealPart = Field(default_factory=RealPart)
    synth: SynthPart = Field(default_factory=SynthPart)
    extract_overrides: list[str] = Field(default_factory=list, description="`talkqa extract --set` values")
    experts: list[str] | None = Field(None, description="experts to embed; null = every registered one")
    workers: int = Field(2, ge=1)

    def planned_clips(self, n_sources: int) -> int:
        return n_sources * self.real.variants + self.synth.n * self.synth.variants


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> CorpusRecipe:
    path = Path(name_or_path)
    if not path.is_file():
        path = config_path("corpus", f"{name_or_path}.yaml" if not str(name_or_path).endswith(".yaml") else str(name_or_path))
    return load_config(CorpusRecipe, path, overrides)


def _degrade_recipe(name: str) -> DegradeRecipe:
    path = Path(name)
    return DegradeRecipe.load(path if path.is_file() else config_path("degrade", name))


def real_sources(recipe: CorpusRecipe, shared: Path) -> pd.DataFrame:
    df = shared_manifest("real", shared)
    keep = (df["split"] == recipe.real.split) & (df["meta__has_audio"] == "yes") & df["meta__sync"].isin(recipe.real.sync)
    df = df[keep].reset_index(drop=True)
    if recipe.real.max_sources:
        # a slice keeps as many speakers as it can: sources dealt round-robin over speakers
        df = df.assign(_k=df.groupby("speaker").cumcount()).sort_values(["_k", "clip_id"]).drop(columns="_k")
        df = df.head(recipe.real.max_sources).sort_values("clip_id").reset_index(drop=True)
    if df.empty:
        raise UsageError(f"no real clip of split {recipe.real.split!r} with sync in {recipe.real.sync} under {shared}")
    return df


def _relative(manifest: pd.DataFrame, corpus_dir: Path, out: Path) -> pd.DataFrame:
    m = manifest.copy()
    m["video"] = [str((corpus_dir / v).resolve().relative_to(out.resolve())) for v in m["video"]]
    return m


def build_corpus(recipe: CorpusRecipe, out: str | Path, log: Callable[[str], None] | None = None,
                 stages: tuple[str, ...] = ("real", "synth", "labels", "extract", "embed")) -> dict:
    """Run the recipe's stages into `out`; returns (and writes to out/build.json) counts and wall times."""
    log = log or (lambda msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(recipe, out / "recipe.yaml")
    shared = find_shared_data(recipe.shared_data)
    if shared is None and recipe.real.variants and "real" in stages:
        raise UsageError("the shared data folder was not found; set shared_data in the recipe or $TALKQA_SHARED_DATA")
    report: dict = {"stages": {}, "recipe": recipe.model_dump(mode="json")}
    previous = out / "build.json"
    if previous.is_file():  # keep the timings of stages this run does not repeat
        report["stages"] = json.loads(previous.read_text()).get("stages", {})

    def timed(stage: str, fn):
        """Runs are appended, not replaced: a resumed run (fast, everything cached) must not hide the
        timing of the run that did the work."""
        t0 = time.time()
        n = fn()
        wall = time.time() - t0
        runs = report["stages"].get(stage, {}).get("runs", [])
        runs.append({"clips": n, "wall_s": round(wall, 1), "s_per_clip": round(wall / n, 2) if n else None,
                     "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        report["stages"][stage] = {"runs": runs}
        log(f"{stage}: {n} clips in {wall:.0f} s")
        atomic_write_json(out / "build.json", report)

    parts: list[tuple[Path, str]] = []
    if "real" in stages:
        sources = real_sources(recipe, shared)
        atomic_write_bytes(out / "real_sources.csv", sources.to_csv(index=False).encode())
        report["real_sources"] = len(sources)
        report["real_speakers"] = int(sources["speaker"].nunique())
        report["planned_clips"] = recipe.planned_clips(len(sources))
        timed("real", lambda: len(degrade_corpus(sources, out / "real", _degrade_recipe(recipe.real.degrade_recipe),
                                                 seed=recipe.real.seed, variants=recipe.real.variants,
                                                 workers=recipe.workers)))
    if "synth" in stages and recipe.synth.n:
        s = recipe.synth
        portraits = None
        if s.portraits:
            portraits = Path(s.portraits) if Path(s.portraits).is_absolute() or shared is None else shared / s.portraits
        timed("synth_render", lambda: len(synth_corpus(out / "synth", n=s.n, duration_s=s.duration_s, size=s.size,
                                                       portraits_dir=portraits, seed=s.seed, workers=recipe.workers)))
        rendered, _ = load_manifest(out / "synth" / "manifest.csv")
        # one photo = one person: its mirrored/tinted variants must not sit on both sides of a split
        rendered["speaker"] = rendered["meta__person"].astype(str)
        timed("synth_degrade", lambda: len(degrade_corpus(rendered, out / "synth_degraded",
                                                          _degrade_recipe(s.degrade_recipe), seed=s.seed,
                                                          variants=s.variants, workers=recipe.workers)))
    for folder in ("real", "synth_degraded"):
        if (out / folder / "manifest.csv").is_file():
            parts.append((out / folder, folder))
    if "labels" in stages:
        if not parts:
            raise UsageError(f"{out}: no degraded corpus yet; run the real and/or synth stages first")
        manifests, diags = [], []
        for folder, name in parts:
            m = pd.read_csv(folder / "manifest.csv")
            m["meta__corpus"] = name
            manifests.append(_relative(m, folder, out))
            if (folder / "diagnostics.parquet").is_file():
                diags.append(read_parquet(folder / "diagnostics.parquet"))
        manifest = pd.concat(manifests, ignore_index=True)
        atomic_write_bytes(out / "manifest.csv", manifest.to_csv(index=False).encode())
        if diags:
            write_parquet(pd.concat(diags, ignore_index=True), out / "diagnostics.parquet", producer="build-corpus")
        report["labelled_clips"] = len(manifest)
        report["speakers"] = int(manifest["speaker"].nunique())
        report["by_corpus"] = manifest["meta__corpus"].value_counts().to_dict()
        log(f"labels: {len(manifest)} clips, {manifest['speaker'].nunique()} speakers")
        atomic_write_json(out / "build.json", report)
    if "extract" in stages:
        manifest, _ = load_manifest(out / "manifest.csv")
        cfg = load_config(ExtractConfig, None, recipe.extract_overrides)
        timed("extract", lambda: int((run_extract(manifest, out / "store", cfg, workers=recipe.workers)["status"]
                                      == "ok").sum()))
    if "embed" in stages:
        names = recipe.experts or EXPERTS.names()
        for name in names:
            timed(f"embed_{name}", lambda name=name: int((run_embed(out / "store", name, workers=recipe.workers)
                                                          ["status"] == "ok").sum()))
    return report
