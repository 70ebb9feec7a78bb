"""Synthetic PreprocessedClips with known truth, for the feature-family tests.

A `FaceRig` holds one real MediaPipe mesh (the astronaut portrait, meshed once per test session),
aligned to the 96-px canonical frame with the lips closed, and knows which points to move to open
the mouth, close the eyes or raise the brows. `make_clip` animates it frame by frame and pairs it
with audio; every control is in the units the features report (IOD, closure share, degrees, px).
Given the portrait too (`FaceRig.from_mesh(mesh, image)`), clips carry its real aligned crops and
analysis-frame statistics (still: the picture does not follow the animated mesh), so the picture
features have something to measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkqa.features import landmarks as L
from talkqa.features.clip import PreprocessedClip

FPS, SR = 25.0, 16000
HOP = int(SR / FPS)
FACE_SIZE = 96

# Eyelid contours (MediaPipe), upper and lower, per eye.
_UPPER_LIDS = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
_LOWER_LIDS = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))
_UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_LOWER_INNER_LIP = (95, 88, 178, 87, 14, 317, 402, 318, 324)
_LOWER_OUTER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375)


def neutral_mesh(image: np.ndarray) -> np.ndarray:
    """(478, 3) MediaPipe face mesh of a portrait, in image pixels (x, y, z)."""
    import mediapipe as mp

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        raise RuntimeError("no face found in the portrait")
    h, w = image.shape[:2]
    return np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2-D similarity src -> dst (Umeyama), as a 2x3 matrix."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rot = u @ fix @ vt
    scale = np.trace(np.diag(sig) @ fix) / s.var(0).sum()
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


@dataclass
class FaceRig:
    neutral: np.ndarray  # (478, 2) aligned, lips closed
    depth: np.ndarray  # (478,) z of the mesh, same scale
    iod: float
    jaw_weight: np.ndarray  # (478,) share of a mouth opening each point follows
    lid_drop: np.ndarray  # (478,) px an upper-lid point travels when the eye closes fully
    brow_points: np.ndarray
    picture: dict | None = None  # face_crops, mouth_crops (one frame each) and frame_stats of the portrait

    @classmethod
    def from_mesh(cls, mesh: np.ndarray, image: np.ndarray | None = None) -> "FaceRig":
        # The canonical frame of the preprocessing: eyes 38 % down, outer corners 42 % of the side apart.
        iod_px = 0.42 * FACE_SIZE
        centre = np.array([FACE_SIZE / 2, 0.38 * FACE_SIZE])
        src = mesh[[L.RIGHT_EYE_OUTER, L.LEFT_EYE_OUTER], :2]
        dst = centre + np.array([[-iod_px / 2, 0.0], [iod_px / 2, 0.0]])
        m = _similarity(src, dst)
        pts = mesh[:, :2] @ m[:, :2].T + m[:, 2]
        depth = mesh[:, 2] * np.linalg.norm(m[:, 0])
        iod = float(np.linalg.norm(pts[L.LEFT_EYE_OUTER] - pts[L.RIGHT_EYE_OUTER]))

        # Close the lips: the lower inner lip takes the height of the upper inner lip above it.
        upper = pts[list(_UPPER_INNER_LIP)]
        for i in _LOWER_INNER_LIP:
            j = np.argmin(np.abs(upper[:, 0] - pts[i, 0]))
            pts[i, 1] = upper[j, 1]
        # The chin and lower lip follow a jaw opening fully; cheeks below the mouth corners partly.
        corner_y = (pts[L.MOUTH_LEFT, 1] + pts[L.MOUTH_RIGHT, 1]) / 2
        mouth_x = (pts[L.MOUTH_LEFT, 0] + pts[L.MOUTH_RIGHT, 0]) / 2
        below = np.clip((pts[:, 1] - corner_y) / (0.15 * iod), 0, 1)
        lateral = np.exp(-(((pts[:, 0] - mouth_x) / (0.6 * iod)) ** 2))
        jaw = below * lateral
        jaw[list(_LOWER_INNER_LIP + _LOWER_OUTER_LIP)] = 1.0
        jaw[list(_UPPER_INNER_LIP)] = 0.0
        jaw[468:] = 0.0

        lid = np.zeros(len(pts))
        for up_ids, low_ids in zip(_UPPER_LIDS, _LOWER_LIDS):
            low = pts[list(low_ids)]
            for i in up_ids:
                j = np.argmin(np.abs(low[:, 0] - pts[i, 0]))
                lid[i] = max(low[j, 1] - pts[i, 1], 0.0)
        brows = np.array(L.RIGHT_BROW + L.LEFT_BROW)
        picture = None
        if image is not None:
            from talkqa.features.align import align_frame
            from talkqa.features.frame_stats import FRAME_STATS, frame_stats

            _, face, mouth = align_frame(image, mesh.astype(np.float32), FACE_SIZE, (FACE_SIZE // 2, FACE_SIZE))
            # the frame 0.2 s earlier: the head a pixel to the side, as a live face never keeps still; the
            # frame just before: a pixel higher
            stats = frame_stats(image, mesh, 8, before=np.roll(image, 1, axis=1), previous=np.roll(image, -1, axis=0))
            picture = {"face_crops": face, "mouth_crops": mouth, "frame_stats": dict(zip(FRAME_STATS, stats))}
        return cls(pts.astype(np.float64), depth, iod, jaw, lid, brows, picture)

    def pose(self, aperture: float = 0.0, closure: float = 0.0, brow: float = 0.0) -> np.ndarray:
        """(478, 2) mesh with the mouth open by `aperture` IOD, eyes closed by `closure` (0..1) and
        brows raised by `brow` IOD."""
        pts = self.neutral.copy()
        pts[:, 1] += aperture * self.iod * self.jaw_weight
        pts[:, 1] += closure * self.lid_drop
        pts[self.brow_points, 1] -= brow * self.iod
        return pts


def blink_closure(n_frames: int, starts, duration_frames: int = 6) -> np.ndarray:
    """(T,) eye closure 0..1 with a blink (raised-cosine close-and-open) starting at each frame in `starts`."""
    c = np.zeros(n_frames)
    shape = np.sin(np.pi * (np.arange(duration_frames) + 0.5) / duration_frames) ** 2
    for s in starts:
        seg = c[s : s + duration_frames]
        c[s : s + duration_frames] = np.maximum(seg, shape[: len(seg)])
    return c


def make_clip(
    rig: FaceRig,
    n_frames: int,
    aperture: np.ndarray | None = None,
    eye_closure: np.ndarray | None = None,
    brow: np.ndarray | None = None,
    head_pose: np.ndarray | None = None,
    jitter_px: float = 0.15,
    drift_px: float = 0.3,
    audio: np.ndarray | None = None,
    vad: np.ndarray | str | None = "webrtc",
    frame_diff: np.ndarray | None = None,
    seed: int = 0,
    clip_id: str = "synthetic",
) -> PreprocessedClip:
    """A clip whose face follows the given controls. `jitter_px` is per-frame landmark noise (the
    mesh noise of a real tracker is ~0.1-0.3 px at this scale); `drift_px` a slow smooth wander of
    the whole face in the aligned frame (alignment residue). `vad='webrtc'` runs the real VAD;
    `frame_diff` is the per-frame picture change preprocessing measures (None: not measured)."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    zeros = np.zeros(n_frames)
    aperture = zeros if aperture is None else np.asarray(aperture, np.float64)
    eye_closure = zeros if eye_closure is None else np.asarray(eye_closure, np.float64)
    brow = zeros if brow is None else np.asarray(brow, np.float64)
    aligned = np.stack([rig.pose(a, c, b) for a, c, b in zip(aperture, eye_closure, brow)])
    if drift_px > 0:
        wander = gaussian_filter1d(rng.normal(0, 1, (n_frames, 1, 2)), 8.0, axis=0)
        aligned += drift_px * wander / (wander.std() + 1e-9)
    if jitter_px > 0:
        aligned += rng.normal(0, jitter_px, aligned.shape)
    if head_pose is None:
        t = np.arange(n_frames) / FPS
        sway = [3 * np.sin(2 * np.pi * 0.2 * t), 2 * np.sin(2 * np.pi * 0.13 * t + 1), np.sin(2 * np.pi * 0.1 * t)]
        head_pose = np.stack(sway, 1)
        head_pose = head_pose + rng.normal(0, 0.2, head_pose.shape)
    # Frame-pixel landmarks: the aligned mesh scaled into a 256-px frame and rolled with the head.
    roll = np.radians(head_pose[:, 2])
    rot = np.stack([np.stack([np.cos(roll), -np.sin(roll)], -1), np.stack([np.sin(roll), np.cos(roll)], -1)], -2)
    frame_xy = np.einsum("tij,tpj->tpi", rot, (aligned - FACE_SIZE / 2) * 2.0) + 128.0
    landmarks = np.concatenate([frame_xy, np.broadcast_to(rig.depth[None, :, None] * 2.0, (n_frames, 478, 1))], -1)

    audio_norm, vad_mask = None, None
    if audio is not None:
        audio = np.asarray(audio, np.float32)
        peak = float(np.max(np.abs(audio))) or 1.0
        audio_norm = (audio * (0.5 / peak)).astype(np.float32)  # a stand-in for loudness normalisation
        if isinstance(vad, str):
            from talkqa.features.audio_prep import vad_per_frame

            vad_mask = vad_per_frame(audio, SR, n_frames, HOP)
        elif vad is not None:
            vad_mask = np.asarray(vad, bool)
    if rig.picture is None:
        face_crops, mouth_crops, stats = np.zeros((n_frames, 8, 8, 3), np.uint8), np.zeros((n_frames, 4, 8, 3), np.uint8), None
    else:  # the portrait's picture with a little sensor noise, so consecutive frames are not identical
        noise = lambda img: np.clip(img + rng.integers(-1, 2, (n_frames, *img.shape), np.int16), 0, 255).astype(np.uint8)  # noqa: E731
        face_crops, mouth_crops = noise(rig.picture["face_crops"]), noise(rig.picture["mouth_crops"])
        stats = {k: np.full(n_frames, v, np.float32) for k, v in rig.picture["frame_stats"].items()}
    return PreprocessedClip(
        clip_id=clip_id,
        fps=FPS,
        n_frames=n_frames,
        face_valid=np.ones(n_frames, bool),
        landmarks=landmarks.astype(np.float32),
        aligned=aligned.astype(np.float32),
        head_pose=np.asarray(head_pose, np.float32),
        face_crops=face_crops,
        mouth_crops=mouth_crops,
        frame_stats=stats,
        bbox=np.tile(np.array([64, 64, 192, 192], np.float32), (n_frames, 1)),
        frame_size=(256, 256),
        frame_diff=None if frame_diff is None else np.asarray(frame_diff, np.float32),
        sr=SR,
        audio=audio,
        audio_norm=audio_norm,
        vad=vad_mask,
    )


# ------------------------------------------------------------------------------------------- audio
def syllable_envelope(duration_s: float, rate_hz: float = 4.0, seed: int = 0) -> np.ndarray:
    """(N,) 0..1 amplitude envelope at SR: raised-sine syllables about `rate_hz` per second, with
    random lengths and gaps, plus a pause every few seconds like phrase breaks."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * SR)
    env = np.zeros(n)
    pos = rng.uniform(0.05, 0.2)
    period = 1.0 / rate_hz
    while pos < duration_s:
        length = period * rng.uniform(0.55, 0.8)
        a, b = int(pos * SR), min(n, int((pos + length) * SR))
        env[a:b] = rng.uniform(0.5, 1.0) * np.sin(np.pi * np.arange(b - a) / max(1, int(length * SR)))
        pos += period * rng.uniform(0.85, 1.15)
        if rng.uniform() < 0.08:
            pos += rng.uniform(0.3, 0.6)  # phrase break
    return env


def voice(duration_s: float, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """(N,) a harmonic voice source with slow intonation, unit peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SR)) / SR
    f = f0 * (1 + 0.12 * np.sin(2 * np.pi * 0.4 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 16))
    return x / np.max(np.abs(x))


def frame_mean(signal: np.ndarray, n_frames: int) -> np.ndarray:
    """(T,) mean of an audio-rate signal inside each video frame."""
    x = np.pad(signal, (0, max(0, n_frames * HOP - len(signal))))[: n_frames * HOP]
    return x.reshape(n_frames, HOP).mean(1)


def shift(signal: np.ndarray, samples: int) -> np.ndarray:
    """Delay (positive) or advance (negative) a signal, keeping its length."""
    out = np.zeros_like(signal)
    if samples >= 0:
        out[samples:] = signal[: len(signal) - samples]
    else:
        out[:samples] = signal[-samples:]
    return out


def tone_bursts(
    duration_s: float, freq: float = 440.0, on_s: float = 0.5, off_s: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(signal, on-mask) unit-amplitude tone bursts, `on_s` on and `off_s` off."""
    t = np.arange(int(duration_s * SR)) / SR
    on = (t % (on_s + off_s)) < on_s
    return np.sin(2 * np.pi * freq * t) * on, on


def white_noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, n)


def aac_roundtrip(audio: np.ndarray, bitrate: int = 64000) -> np.ndarray:
    """Encode to AAC (what generated clips carry) and decode back at SR, mono float32, same length."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=SR, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(np.asarray(audio, np.float32)[None], format="flt", layout="mono")
        frame.sample_rate = SR
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        chunks = [r.to_ndarray().ravel() for f in inp.decode(audio=0) for r in resampler.resample(f)]
    decoded = np.concatenate(chunks)
    # AAC adds a priming delay of 1024 samples at the start; drop it so the clip stays aligned.
    decoded = decoded[1024 : 1024 + len(audio)]
    return np.pad(decoded, (0, len(audio) - len(decoded))).astype(np.float32)
