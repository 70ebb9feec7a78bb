"""`talkqa synth`: a small offline corpus of synthetic talking heads, with ground truth.

Portraits come from a folder or, by default, from images that installed packages ship
(scikit-image's astronaut, matplotlib's Grace Hopper, insightface's samples when installed).
Mirrored, tinted and tightly cropped variants count as extra speakers; the `speaker` column says
which variant a clip shows and `meta__person` names the photo behind it, so a strict split can
group by person. Speech is eSpeak NG (English and Mandarin, alternating) or segments cut from
audio files. Each clip is rendered by `TalkingHeadRenderer` from controls derived from its own
audio, muxed at 25 fps, and gets a sidecar `truth/<clip_id>.npz` with the per-frame controls and
the ground-truth mesh. Writing is resumable: a clip whose video and sidecars exist with the same
parameters is skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from talkqa.engine import run_tasks
from talkqa.errors import UsageError
from talkqa.store import atomic_path, atomic_write_bytes, atomic_write_text

from .media import write_clip
from .render import TalkingHeadRenderer, detect_mesh
from .speech import (
    SENTENCES,
    controls_from_audio,
    resample,
    speech_backend,
    speech_envelope,
    synthesize,
)

FPS = 25.0
SR = 16000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg")
SYNTH_LANGUAGES = ("en", "zh")
# Portrait variants: how each extra "speaker" differs from the photo (see _apply_variant).
VARIANTS = {
    "orig": "the photo as is",
    "mirror": "mirrored left-right",
    "warm": "warm colour cast, slightly brighter",
    "tight-cool": "tighter crop, cool colour cast, slightly darker",
}
# eSpeak voice variants handed out to speakers in turn (with a per-speaker pitch)
VOICE_VARIANTS = ("f3", "m3", "f2", "m2", "f4", "m7", "f5", "m1")
MANIFEST_COLUMNS = ("clip_id", "video", "speaker", "generator", "language", "source", "duration_s")


@dataclass(frozen=True)
class PortraitSpec:
    """Where a portrait comes from and which variant of it a speaker is."""

    person: str  # the photo, e.g. 'skimage:astronaut' or a path relative to portraits_dir
    origin: str  # 'skimage:astronaut', 'matplotlib:grace_hopper.jpg' (package data) or an absolute file path
    variant: str = "orig"

    @property
    def speaker(self) -> str:
        return self.person if self.variant == "orig" else f"{self.person}#{self.variant}"


@dataclass(frozen=True)
class ClipSpec:
    index: int
    clip_id: str
    portrait: PortraitSpec
    language: str
    voice: str  # eSpeak variant for synthesized speech
    pitch: int
    audio_file: str | None  # set when cutting speech from audio files
    duration_s: float
    size: int
    seed: int

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- portraits

def bundled_portraits() -> list[tuple[str, str]]:
    """(person, origin) for face photos shipped by installed packages."""

    found = [("astronaut", "skimage:astronaut")]
    try:
        import matplotlib.cbook as cbook  # lazy: slow import, only on this path

        if Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).is_file():
            found.append(("grace_hopper", "matplotlib:grace_hopper.jpg"))
    except Exception:  # matplotlib without its sample data: one portrait fewer  # noqa: BLE001
        pass
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.origin:
        images = Path(spec.origin).parent / "data" / "images"
        for p in sorted(images.glob("*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                found.append((f"insightface_{p.stem}", str(p)))
    return found


def folder_portraits(folder: Path) -> list[tuple[str, str]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"portraits folder {folder} does not exist; pass a folder of .jpg/.png face photos")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith("."))
    return [(p.relative_to(folder).with_suffix("").as_posix(), str(p.resolve())) for p in files]


def load_image(origin: str) -> np.ndarray:
    """RGB uint8; large photos are shrunk to 1024 px on the long side (the renderer crops to the face)."""

    if origin == "skimage:astronaut":
        from skimage import data  # lazy: slow import, only on this path

        img = data.astronaut()
    else:
        if origin.startswith("matplotlib:"):
            import matplotlib.cbook as cbook  # lazy: slow import, only on this path

            origin = str(cbook.get_sample_data(origin.split(":", 1)[1], asfileobj=False))
        raw = cv2.imread(origin, cv2.IMREAD_COLOR)
        if raw is None:
            raise UsageError(f"cannot read image {origin}")
        img = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    scale = 1024 / max(img.shape[:2])
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def _apply_variant(img: np.ndarray, variant: str) -> tuple[np.ndarray, float]:
    """(image, renderer face_scale) for a variant."""
    f = img.astype(np.float32)
    if variant == "orig":
        return img, 2.0
    if variant == "mirror":
        return np.ascontiguousarray(img[:, ::-1]), 2.0
    if variant == "warm":
        f = 255 * (f / 255) ** 0.9 * np.array([1.08, 1.0, 0.88])
        return np.clip(f, 0, 255).astype(np.uint8), 2.0
    if variant == "tight-cool":
        f = f * np.array([0.9, 0.97, 1.08]) * 0.93
        return np.clip(f, 0, 255).astype(np.uint8), 1.6
    raise UsageError(f"unknown portrait variant {variant!r}; use one of {', '.join(VARIANTS)}")


def _probe_face(origin: str) -> bool:
    try:
        return detect_mesh(load_image(origin)) is not None
    except UsageError:
        return False


# ---------------------------------------------------------------- audio

def _fade(audio: np.ndarray, n_samples: int, sr: int) -> np.ndarray:
    out = np.zeros(n_samples, np.float32)
    k = min(n_samples, len(audio))
    out[:k] = audio[:k]
    if len(audio) > n_samples:  # cut mid-speech: fade the last 30 ms
        fade = min(k, int(0.03 * sr))
        out[k - fade : k] *= np.linspace(1, 0, fade, dtype=np.float32)
    return out


def synth_speech(spec: ClipSpec, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Sentences in `spec.language` with short pauses, filling `spec.duration_s`; (audio, text)."""

    n = int(round(spec.duration_s * SR))
    pieces = [np.zeros(int(rng.uniform(0.1, 0.4) * SR), np.float32)]
    texts: list[str] = []
    speed = rng.uniform(0.9, 1.15)
    order = rng.permutation(len(SENTENCES[spec.language]))
    total = len(pieces[0])
    for j in order:
        if total >= n:
            break
        text = SENTENCES[spec.language][j]
        speech = synthesize(text, spec.language, sr=SR, speed=speed, pitch=spec.pitch, variant=spec.voice)
        pieces += [speech, np.zeros(int(rng.uniform(0.2, 0.5) * SR), np.float32)]
        texts.append(text)
        total += len(speech) + len(pieces[-1])
    audio = np.concatenate(pieces) * rng.uniform(0.6, 1.0)
    return _fade(audio, n, SR), " ".join(texts)


def cut_speech(spec: ClipSpec, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The most speech-filled of a few random `duration_s` windows of `spec.audio_file`; (audio, 'file@offset')."""
    import soundfile as sf  # lazy: slow import, only on this path

    audio, sr = sf.read(spec.audio_file, dtype="float32", always_2d=True)
    audio = resample(audio.mean(axis=1), sr, SR)
    n = int(round(spec.duration_s * SR))
    best, best_score = 0, -1.0
    for _ in range(6):
        start = int(rng.integers(0, max(1, len(audio) - n + 1)))
        env = speech_envelope(audio[start : start + n], SR, FPS)
        score = float(np.mean(env > np.percentile(env, 95) - 25)) if len(env) else 0.0
        if score > best_score:
            best, best_score = start, score
    seg = audio[best : best + n]
    peak = float(np.max(np.abs(seg))) if len(seg) else 0.0
    if peak > 0.99:
        seg = seg * (0.99 / peak)
    return _fade(seg, n, SR), f"{spec.audio_file}@{best / SR:.2f}s"


def _audio_languages(audio_dir: Path) -> dict[str, str]:
    """Language per file from a MANIFEST.tsv (columns local_path, language) in audio_dir or up to two parents."""
    for folder in (audio_dir, *list(audio_dir.parents)[:2]):
        table = folder / "MANIFEST.tsv"
        if table.is_file():
            try:
                df = pd.read_csv(table, sep="\t", usecols=["local_path", "language"], dtype=str)
            except (ValueError, OSError):
                continue
            # keep the leading language code: 'ja?(singing)' -> 'ja', 'unk(zh/yue?)' -> 'unk'
            codes = (re.match(r"[a-z]{2,3}", str(lang)) for lang in df.language)
            return {str((folder / p).resolve()): (m.group(0) if m else "unk") for p, m in zip(df.local_path, codes)}
    return {}


# ---------------------------------------------------------------- rendering one clip

def build_renderer(portrait: PortraitSpec, size: int):
    """A prepared TalkingHeadRenderer for one portrait variant."""

    image, face_scale = _apply_variant(load_image(portrait.origin), portrait.variant)
    return TalkingHeadRenderer(image, size=size, face_scale=face_scale).prepare()


def _paths(out_dir: Path, clip_id: str) -> tuple[Path, Path, Path]:
    truth = out_dir / "truth"
    return out_dir / "clips" / f"{clip_id}.mp4", truth / f"{clip_id}.npz", truth / f"{clip_id}.json"


def _finished_row(out_dir: Path, spec: ClipSpec) -> dict | None:
    video, truth, meta = _paths(out_dir, spec.clip_id)
    if not (video.is_file() and truth.is_file() and meta.is_file()):
        return None
    try:
        row = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return row if row.pop("_key", None) == spec.key() else None


def render_clips(specs: list[ClipSpec], out_dir: str) -> list[dict]:
    """Render, mux and describe a batch of clips (the process-pool task; batches hold one portrait).

    A clip that fails gives {'clip_id', 'error'} instead of a manifest row; the batch goes on.
    """

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # parallelism comes from the pool
    out = Path(out_dir)
    rows, renderers = [], {}
    try:
        for spec in specs:
            row = _finished_row(out, spec)
            if row is None:
                key = (spec.portrait, spec.size)
                try:
                    if key not in renderers:
                        renderers[key] = build_renderer(spec.portrait, spec.size)
                    row = _render_clip(spec, out, renderers[key], controls_from_audio)
                except Exception as exc:  # noqa: BLE001 - reported per clip, never stops the batch
                    row = {"clip_id": spec.clip_id, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
    finally:
        cv2.setNumThreads(threads)
    return rows


def _render_clip(spec: ClipSpec, out: Path, renderer, controls_from_audio) -> dict:
    rng = np.random.default_rng([spec.seed, spec.index])
    if spec.audio_file:
        audio, said = cut_speech(spec, rng)
    else:
        audio, said = synth_speech(spec, rng)
    n_frames = int(round(spec.duration_s * FPS))
    controls = controls_from_audio(audio, SR, FPS, rng=rng, n_frames=n_frames)
    frames, landmarks = renderer.render_with_landmarks(controls)
    video, truth, meta = _paths(out, spec.clip_id)
    truth.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "clip_id": spec.clip_id,
        "video": video.relative_to(out).as_posix(),
        "speaker": spec.portrait.speaker,
        "generator": "synth",
        "language": spec.language,
        "source": "synth",
        "duration_s": round(n_frames / FPS, 3),
        "meta__person": spec.portrait.person,
        "meta__variant": f"{spec.portrait.variant}: {VARIANTS[spec.portrait.variant]}",
        "meta__portrait": spec.portrait.origin,
        "meta__speech": (f"audio file {said}" if spec.audio_file
                         else f"espeak-ng {spec.voice} pitch {spec.pitch}: {said}"),
        "meta__truth": truth.relative_to(out).as_posix(),
    }
    with atomic_path(truth) as tmp:  # tmp ends in .npz, so numpy keeps the name
        np.savez_compressed(tmp, landmarks=landmarks.astype(np.float16), fps=FPS,
                            **{f"control_{k}": v.astype(np.float32) for k, v in controls.items()})
    atomic_write_text(meta, json.dumps({**row, "_key": spec.key()}, ensure_ascii=False))
    write_clip(video, frames, FPS, audio, SR)
    return row


# ---------------------------------------------------------------- the corpus

def plan_corpus(n: int, duration_s: float, size: int, portraits: list[PortraitSpec], audio_files: list[str],
                audio_languages: dict[str, str], seed: int) -> list[ClipSpec]:
    """Clip i: speaker i mod S; synthesized language alternates so every speaker gets both."""
    specs = []
    n_spk = len(portraits)
    rng = np.random.default_rng(seed)
    pitches = {p.speaker: int(rng.integers(35, 66)) for p in portraits}
    audio_order = rng.permutation(len(audio_files)) if audio_files else []
    for i in range(n):
        k = i % n_spk
        p = portraits[k]
        if audio_files:
            f = audio_files[audio_order[i % len(audio_files)]]
            lang, audio_file = audio_languages.get(str(Path(f).resolve()), "unk"), f
        else:
            lang, audio_file = SYNTH_LANGUAGES[(i + i // n_spk) % len(SYNTH_LANGUAGES)], None
        specs.append(ClipSpec(index=i, clip_id=f"synth_{i:04d}", portrait=p, language=lang,
                              voice=VOICE_VARIANTS[k % len(VOICE_VARIANTS)], pitch=pitches[p.speaker],
                              audio_file=audio_file, duration_s=float(duration_s), size=int(size), seed=int(seed)))
    return specs


def synth_corpus(out_dir: str | Path, n: int = 120, duration_s: float = 4.0, size: int = 256,
                 portraits_dir: str | Path | None = None, audio_dir: str | Path | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None, workers: int | None = None,
                 variants: tuple[str, ...] = tuple(VARIANTS)) -> pd.DataFrame:
    """Write `n` clips under out_dir/clips, ground truth under out_dir/truth, and out_dir/manifest.csv.

    `progress(done, total)` is called as clips finish. `workers` defaults to the CPU count (max 8).
    Returns the manifest (paths relative to out_dir, as in the CSV). A clip that fails is left out of
    it and listed in `manifest.attrs["failures"]` ("clip_id: reason"); if every clip fails, that is an error.
    """

    if n < 1:
        raise UsageError("n must be at least 1")
    if duration_s < 0.5:
        raise UsageError("duration_s must be at least 0.5 s")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or min(os.cpu_count() or 1, 8)
    for v in variants:
        if v not in VARIANTS:
            raise UsageError(f"unknown portrait variant {v!r}; use one of {', '.join(VARIANTS)}")

    if portraits_dir is not None:
        candidates = folder_portraits(Path(portraits_dir))
        probes = dict(run_tasks(_probe_face, [o for _, o in candidates], workers=min(workers, len(candidates))))
        photos = [(person, origin) for person, origin in candidates if probes[origin]]
        if not photos:
            raise UsageError(f"no .jpg/.png with a detectable face under {portraits_dir}")
    else:
        photos = bundled_portraits()
    # variant-major order: with few clips every photo appears before any variant does
    portraits = [PortraitSpec(person, origin, v) for v in variants for person, origin in photos]

    audio_files: list[str] = []
    languages: dict[str, str] = {}
    if audio_dir is not None:
        audio_dir = Path(audio_dir)
        if not audio_dir.is_dir():
            raise UsageError(f"audio folder {audio_dir} does not exist")
        audio_files = sorted(str(p) for p in audio_dir.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not audio_files:
            raise UsageError(f"no {'/'.join(AUDIO_EXTENSIONS)} files under {audio_dir}")
        languages = _audio_languages(audio_dir)
    else:

        if speech_backend() is None:

            synthesize("test")  # raises the error that says what to install

    specs = plan_corpus(n, duration_s, size, portraits, audio_files, languages, seed)
    rows: list[dict] = []
    todo: list[list[ClipSpec]] = []
    # tasks hold clips of one portrait, so a task prepares its renderer once; a portrait is split
    # further only when there are fewer portraits than twice the workers
    splits = max(1, -(-2 * workers // len(portraits)))
    for p in portraits:
        pending = []
        for s in (s for s in specs if s.portrait == p):
            row = _finished_row(out, s)
            if row is not None:
                rows.append(row)
            else:
                pending.append(s)
        per_task = max(1, -(-len(pending) // splits))
        todo += [pending[i : i + per_task] for i in range(0, len(pending), per_task)]
    if progress:
        progress(len(rows), n)
    failures: list[str] = []
    for _, batch_rows in run_tasks(render_clips, todo, args=(str(out),), workers=min(workers, max(1, len(todo)))):
        rows += [r for r in batch_rows if "error" not in r]
        failures += [f"{r['clip_id']}: {r['error']}" for r in batch_rows if "error" in r]
        if progress:
            progress(len(rows) + len(failures), n)
    if not rows:
        raise UsageError(f"no clip could be rendered; first failure: {failures[0]}")

    manifest = pd.DataFrame(rows).sort_values("clip_id").reset_index(drop=True)
    manifest = manifest[list(MANIFEST_COLUMNS) + [c for c in manifest.columns if c not in MANIFEST_COLUMNS]]
    atomic_write_bytes(out / "manifest.csv", manifest.to_csv(index=False).encode())
    manifest.attrs["failures"] = failures
    return manifest
