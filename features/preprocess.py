"""preprocess(path) -> PreprocessedClip: decode, track faces, mesh, align, prepare audio.

One streaming pass over the video: every analysis frame is checked (black frames are counted and
skipped), faces are detected and tracked, each live track is meshed and aligned, and only the small
per-frame results are kept. The main speaker's track becomes the clip's face.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from talkqa.config import PreprocessConfig
from talkqa.errors import ClipError

from .align import align_frame, head_pose
from .audio_prep import loudness_normalise, rms_dbfs, vad_per_frame
from .clip import PreprocessedClip, empty_visual
from .decode import DecodeStats, check_file, decode_audio, iter_video, probe
from .face import FaceTracker


def preprocess(path, config: PreprocessConfig | None = None, clip_id: str | None = None,
               audio_path=None) -> PreprocessedClip:
    config = config or PreprocessConfig()
    path = Path(path)
    clip_id = clip_id or path.stem
    check_file(path, "video")
    if audio_path:
        check_file(audio_path, "audio")
    media = probe(path)
    if not media.has_video:
        raise ClipError("no_video", "has no video stream (audio only?); talkqa scores videos of faces", str(path))
    min_frames = max(2, int(np.ceil(config.min_duration_s * config.fps - 1e-6)))
    if np.isfinite(media.duration_s) and media.duration_s < config.min_duration_s - 0.5 / config.fps:
        raise _too_short(path, media.duration_s, config)

    stats = DecodeStats()
    tracker = FaceTracker(config)
    per_track: dict[int, dict[int, tuple]] = {}
    frame_size = (0, 0)
    n = 0
    diffs: list[float] = []
    prev_thumb = None

    def on_mesh(track, t, lm):
        aligned, face, mouth = align_frame(frame, lm, config.face_size, tuple(config.mouth_size))
        per_track.setdefault(track.track_id, {})[t] = (lm, aligned, face, mouth, head_pose(lm))

    try:
        for n, frame in enumerate(iter_video(path, config.fps, config.analysis_max_side, stats)):
            frame_size = (frame.shape[1], frame.shape[0])
            thumb = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
            diffs.append(np.nan if prev_thumb is None else float(np.abs(thumb.astype(np.int16) - prev_thumb).mean()))
            prev_thumb = thumb
            if frame.mean() < config.black_threshold:
                stats.n_black += 1
                continue
            tracker.step(n, frame, on_mesh)
        else:
            n = n + 1 if frame_size != (0, 0) else 0
        main = tracker.main_track()
        n_tracks = tracker.max_simultaneous
    finally:
        tracker.close()

    if n == 0:
        raise ClipError("decode_error", "contains no decodable video frames; it may be truncated or corrupt — "
                                        "re-export it", str(path))
    if n < min_frames:
        raise _too_short(path, n / config.fps, config)
    if main is None:
        raise ClipError("no_face", f"no face found in any of its {n} frames; talkqa needs a visible face "
                                   "(check the video shows a person facing the camera)", str(path))

    vis = empty_visual(n, config.face_size, tuple(config.mouth_size))
    for t, (lm, aligned, face, mouth, pose) in per_track[main.track_id].items():
        if t >= n:
            continue
        vis["face_valid"][t] = True
        vis["landmarks"][t] = lm
        vis["aligned"][t] = aligned
        vis["face_crops"][t] = face
        vis["mouth_crops"][t] = mouth
        vis["head_pose"][t] = pose
        vis["bbox"][t] = main.boxes[t]
    coverage = float(vis["face_valid"].mean())

    warnings: list[str] = []
    if coverage < 0.9:
        warnings.append(f"face found in {coverage:.0%} of frames only; features use those frames")
    if n_tracks > 1:
        warnings.append(f"{n_tracks} faces seen at once; scored the main speaker (track {main.track_id})")
    if stats.n_corrupt:
        warnings.append(f"{stats.n_corrupt} corrupt packet(s) skipped")
    if stats.n_black:
        warnings.append(f"{stats.n_black} black frame(s) skipped")

    audio_src = Path(audio_path) if audio_path else path
    audio = decode_audio(audio_src, config.sample_rate)
    hop = int(round(config.sample_rate / config.fps))
    info = {
        "src_fps": media.src_fps, "src_width": media.src_width, "src_height": media.src_height,
        "duration_s": n / config.fps, "n_src_frames": stats.n_src_frames, "n_corrupt": stats.n_corrupt,
        "n_black": stats.n_black, "face_coverage": coverage, "n_tracks": n_tracks,
        "audio_sr_src": media.audio_sr_src, "audio_channels_src": media.audio_channels_src, "silent_audio": False,
    }
    vad = audio_norm = None
    lufs = float("nan")
    if audio is None or len(audio) == 0:
        audio = None
        warnings.append("no audio track: lip_sync, audio_quality and consistency cannot be judged")
    else:
        # Pad or trim to the video's length so audio frame t lines up with video frame t.
        need = n * hop
        audio = np.pad(audio, (0, max(0, need - len(audio))))[:need]
        if rms_dbfs(audio) < config.silence_dbfs:
            info["silent_audio"] = True
            warnings.append(f"audio is silent (below {config.silence_dbfs:g} dBFS)")
        vad = vad_per_frame(audio, config.sample_rate, n, hop, config.vad_aggressiveness)
        audio_norm, lufs = loudness_normalise(audio, config.sample_rate, config.target_lufs)

    return PreprocessedClip(
        clip_id=clip_id, fps=config.fps, n_frames=n, frame_size=frame_size, sr=config.sample_rate,
        frame_diff=np.array(diffs[:n], np.float32),
        audio=audio, audio_norm=audio_norm, vad=vad, loudness_lufs=lufs, info=info, warnings=warnings, **vis,
    )


def _too_short(path: Path, seconds: float, config: PreprocessConfig) -> ClipError:
    return ClipError("too_short", f"is {seconds:.2f} s long; talkqa needs at least {config.min_duration_s:g} s "
                                  "(set preprocess.min_duration_s to change)", str(path))
