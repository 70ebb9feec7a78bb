"""preprocess(path) -> PreprocessedClip: decode, track faces, mesh, align, prepare audio.

One streaming pass over the video: each analysis frame (already small, see decode.py) is checked
(black frames are counted and skipped), faces are detected and tracked, every live track is meshed,
aligned and cropped, and only those small per-frame results are kept. After the pass the main
speaker's track (face.py) becomes the clip's face. Audio is decoded separately (it is small) and put
on the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from talkqa.config import PreprocessConfig
from talkqa.errors import ClipError

from .align import align_frame, head_pose
from .audio_prep import loudness_normalise, rms_dbfs, vad_per_frame
from .clip import PreprocessedClip, empty_visual
from .decode import DecodeStats, MediaInfo, check_file, decode_audio, iter_video, on_video_clock, probe
from .background import in_background
from .face import FaceDetector, FaceTracker
from .frame_stats import EVERY, FRAME_STATS, block_period, frame_stats

THUMB = 64  # side of the grey thumbnail behind frame_diff
# A file counts as cut short when it decodes this much less than its header declares.
TRUNCATED_FRACTION, TRUNCATED_MIN_S = 0.9, 0.5
LOW_COVERAGE = 0.9  # warn when the face is found in fewer frames than this


def preprocess(path, config: PreprocessConfig | None = None, clip_id: str | None = None,
               audio_path=None) -> PreprocessedClip:
    """Decode one clip onto the analysis clock and extract the main speaker's face and the audio.

    Raises ClipError (missing_file, not_a_file, empty_file, decode_error, no_video, too_short,
    no_face) for clips that cannot be scored; problems that still leave a usable clip (no audio,
    silent audio, partial face, several faces, corrupt packets, black frames, a cut-off end)
    become `warnings` and `info` entries.
    """
    config = config or PreprocessConfig()
    check_file(path, "video")
    path = Path(path)
    if audio_path is not None:
        check_file(audio_path, "audio")
    media = probe(path)
    if not media.has_video:
        raise ClipError("no_video", "has no video stream (audio only?); talkqa scores videos of faces", str(path))
    declared = media.video_duration_s if np.isfinite(media.video_duration_s) else media.container_duration_s
    if np.isfinite(declared) and declared < config.min_duration_s - 0.5 / config.fps:
        raise _too_short(path, declared, config)

    vis = _visual_pass(path, config)
    n = vis.n_frames
    if n == 0:
        raise ClipError("decode_error", "contains no decodable video frames; it may be truncated or corrupt; "
                                        "re-export it", str(path))
    if n < max(2, int(np.ceil(config.min_duration_s * config.fps - 1e-6))):
        raise _too_short(path, n / config.fps, config)
    if vis.main_track is None:
        raise ClipError("no_face", f"no face found in any of its {n} frames; talkqa needs a visible face "
                                   "(check that the video shows a person facing the camera)", str(path))

    sound = _audio_pass(path, audio_path, media, vis.stats, n, config)
    stats = vis.stats
    # The end of whatever decoded (the audio may outlast the video) against what the header declares.
    decoded_end = max(stats.span_s, sound.end_s if audio_path is None else 0.0)
    truncated = (stats.stopped_early or _cut_short(stats.span_s, media.video_duration_s)
                 or _cut_short(decoded_end, media.container_duration_s))
    info = {
        "src_fps": media.src_fps, "src_width": stats.display_size[0], "src_height": stats.display_size[1],
        "rotation": stats.rotation, "duration_s": n / config.fps, "n_src_frames": stats.n_src_frames,
        "n_corrupt": stats.n_corrupt, "n_black": vis.n_black, "truncated": bool(truncated),
        "face_coverage": float(vis.arrays["face_valid"].mean()), "n_tracks": vis.n_tracks,
        "main_track": vis.main_track, **sound.info,
    }
    warnings = _visual_warnings(info, stats.span_s, declared) + sound.warnings
    return PreprocessedClip(
        clip_id=clip_id or path.stem, fps=config.fps, n_frames=n, frame_size=vis.frame_size, sr=config.sample_rate,
        frame_diff=vis.frame_diff, frame_stats=vis.frame_stats, info=info, warnings=warnings, **sound.fields,
        **vis.arrays,
    )


@dataclass
class _VisualPass:
    n_frames: int = 0
    frame_size: tuple[int, int] = (0, 0)
    n_black: int = 0
    n_tracks: int = 0
    main_track: int | None = None
    stats: DecodeStats = field(default_factory=DecodeStats)
    frame_diff: np.ndarray | None = None
    frame_stats: dict[str, np.ndarray] | None = None  # FRAME_STATS of the main track, (T,) each
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # empty_visual() filled for the main track


@dataclass
class _Frame:
    """One analysis frame with what the decoding thread already knows about it."""

    t: int
    rgb: np.ndarray
    diff: float  # mean absolute change of the grey thumbnail from the previous frame (NaN for the first)
    black: bool
    boxes: list[np.ndarray] | None  # face detections; None when frame t is not a detection frame


def is_black(frame: np.ndarray, threshold: float) -> bool:
    """A frame preprocessing skips: its mean RGB level is under `threshold` (0-255)."""
    return bool(np.mean(cv2.mean(frame)[:3]) < threshold)


def _analysed_frames(path: Path, config: PreprocessConfig, stats: DecodeStats, detector: FaceDetector):
    """Decode + per-frame checks + detection; runs on the producer thread (see features/background.py)."""
    prev_thumb = None
    for t, frame in enumerate(iter_video(path, config.fps, config.analysis_max_side, stats)):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.int16)
        diff = np.nan if prev_thumb is None else float(np.abs(thumb - prev_thumb).mean())
        prev_thumb = thumb
        # Nothing to find in a black frame (and no detection on it); the track holds across a short fade.
        black = is_black(frame, config.black_threshold)
        boxes = detector.detect(frame) if not black and detector.due(t) else None
        yield _Frame(t, frame, diff, black, boxes)


def _visual_pass(path: Path, config: PreprocessConfig) -> _VisualPass:
    out = _VisualPass()
    detector = FaceDetector(config)
    tracker = FaceTracker(config)
    # track id -> frame -> (landmarks, aligned, face crop, mouth crop, head pose, frame stats or None):
    # small arrays only
    per_track: dict[int, dict[int, tuple]] = {}
    diffs: list[float] = []
    mouth_size = tuple(config.mouth_size)
    period = None
    before: tuple[int, np.ndarray] | None = None  # the last measured frame (upper_change looks EVERY frames back)
    last: tuple[int, np.ndarray] | None = None  # the frame just before (static_blocks)
    frames = in_background(_analysed_frames(path, config, out.stats, detector))
    try:
        for f in frames:
            out.n_frames = f.t + 1
            out.frame_size = (f.rgb.shape[1], f.rgb.shape[0])
            diffs.append(f.diff)
            if f.black:
                out.n_black += 1
                continue
            if period is None:  # the source size is known once the first frame has decoded
                period = block_period(f.rgb.shape[1], out.stats.display_size[0])
            measure = f.t % EVERY == 0
            earlier = before[1] if measure and before is not None and before[0] == f.t - EVERY else None
            previous = last[1] if measure and last is not None and last[0] == f.t - 1 else None
            for track, lm in tracker.step(f.t, f.rgb, f.boxes):
                aligned, face, mouth = align_frame(f.rgb, lm, config.face_size, mouth_size)
                picture = frame_stats(f.rgb, lm, period, earlier, previous) if measure else None
                per_track.setdefault(track.track_id, {})[f.t] = (lm, aligned, face, mouth, head_pose(lm), picture)
            if measure:
                before = (f.t, f.rgb)
            last = (f.t, f.rgb)
        main = tracker.main_track()
        out.n_tracks = tracker.max_simultaneous
    finally:
        frames.close()  # stops and joins the producer thread (at once, if the loop above raised)
        tracker.close()
        detector.close()

    out.frame_diff = np.array(diffs, np.float32)
    out.arrays = empty_visual(out.n_frames, config.face_size, mouth_size)
    if main is not None:
        out.main_track = main.track_id
        results = per_track.pop(main.track_id)
        per_track.clear()
        picture = np.full((out.n_frames, len(FRAME_STATS)), np.nan, np.float32)
        while results:  # popping frees each frame's crops as soon as they are copied
            t, (lm, aligned, face, mouth, pose, stats) = results.popitem()
            if stats is not None:
                picture[t] = stats
            out.arrays["face_valid"][t] = True
            out.arrays["landmarks"][t] = lm
            out.arrays["aligned"][t] = aligned
            out.arrays["face_crops"][t] = face
            out.arrays["mouth_crops"][t] = mouth
            out.arrays["head_pose"][t] = pose
            out.arrays["bbox"][t] = main.boxes[t]
        out.frame_stats = {name: picture[:, i].copy() for i, name in enumerate(FRAME_STATS)}
    return out


def _cut_short(decoded_s: float, declared_s: float) -> bool:
    if not np.isfinite(declared_s) or declared_s <= 0:
        return False
    return decoded_s < TRUNCATED_FRACTION * declared_s and declared_s - decoded_s > TRUNCATED_MIN_S


def _visual_warnings(info: dict, decoded_s: float, declared_s: float) -> list[str]:
    warnings = []
    if info["truncated"]:
        warnings.append(f"the file looks cut short: {decoded_s:.2f} s of video decoded, its header declares "
                        f"{declared_s:.2f} s; features use the decoded part")
    if info["face_coverage"] < LOW_COVERAGE:
        warnings.append(f"face found in {info['face_coverage']:.0%} of frames only; features use those frames")
    if info["n_tracks"] > 1:
        warnings.append(f"{info['n_tracks']} faces seen at once; scored the main speaker (track {info['main_track']})")
    if info["n_corrupt"]:
        warnings.append(f"{info['n_corrupt']} corrupt video packet(s) or frame(s) skipped")
    if info["n_black"]:
        warnings.append(f"{info['n_black']} black frame(s) skipped")
    return warnings


@dataclass
class _AudioPass:
    fields: dict  # the audio fields of PreprocessedClip
    info: dict
    warnings: list[str]
    end_s: float = 0.0  # where the clip's own decoded audio ends, in seconds after the first video frame


def _audio_pass(path: Path, audio_path, media: MediaInfo, stats: DecodeStats, n_frames: int,
                config: PreprocessConfig) -> _AudioPass:
    source = Path(audio_path) if audio_path is not None else path
    src = probe(source) if audio_path is not None else media
    if audio_path is not None and not src.has_audio:
        raise ClipError("decode_error", "has no audio stream; pass a file with sound as the audio", str(source))
    out = _AudioPass(fields={"audio": None, "audio_norm": None, "vad": None, "loudness_lufs": float("nan")},
                     info={"audio_sr_src": src.audio_sr_src, "audio_channels_src": src.audio_channels_src,
                           "n_corrupt_audio": 0, "silent_audio": False},
                     warnings=[])
    no_audio = "lip_sync, audio_quality and consistency cannot be judged"
    if not src.has_audio:
        out.warnings.append(f"no audio track: {no_audio}")
        return out
    decoded = decode_audio(source, config.sample_rate)
    out.info["n_corrupt_audio"] = decoded.n_corrupt
    if decoded.n_corrupt:
        out.warnings.append(f"{decoded.n_corrupt} corrupt audio packet(s) skipped")
    if len(decoded.samples) == 0:
        out.warnings.append(f"the audio track holds no decodable sound: {no_audio}")
        return out
    # The clip's own track shares the container clock with the video; a separate file starts at frame 0.
    video_origin = stats.t_first if audio_path is None else None
    out.end_s = decoded.t_end - stats.t_first
    hop = int(round(config.sample_rate / config.fps))  # PreprocessedClip.hop
    audio = on_video_clock(decoded, n_frames * hop, video_origin)
    if rms_dbfs(audio) < config.silence_dbfs:
        out.info["silent_audio"] = True
        out.warnings.append(f"audio is silent (RMS below {config.silence_dbfs:g} dBFS)")
    audio_norm, lufs = loudness_normalise(audio, config.sample_rate, config.target_lufs)
    out.fields = {"audio": audio, "audio_norm": audio_norm, "loudness_lufs": lufs,
                  "vad": vad_per_frame(audio, config.sample_rate, n_frames, hop, config.vad_aggressiveness)}
    return out


def _too_short(path: Path, seconds: float, config: PreprocessConfig) -> ClipError:
    return ClipError("too_short", f"is {seconds:.2f} s long; talkqa needs at least {config.min_duration_s:g} s "
                                  "(set preprocess.min_duration_s to change)", str(path))
