"""Face detection, IoU tracking and per-track 478-point meshes (MediaPipe, `mp.solutions`).

Detection runs every `detect_every` frames; detections continue the track whose smoothed box
overlaps most (IoU >= track_iou), otherwise start a new one; in between, each track's box follows
its own mesh. A track neither detected nor meshed for `hold` frames ends. Each track has its own FaceMesh in video mode (tracking state is per face), run on a square
crop around the track's box, so the mesh always describes that person. The main speaker is chosen
afterwards (see `main_track`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from talkqa.config import PreprocessConfig

from .landmarks import LOWER_LIP_INNER, UPPER_LIP_INNER

MESH_INPUT = 256  # crop side given to FaceMesh
CROP_MARGIN = 1.9
# Eye corners, nose tip, mouth corners: their mean sits where the detector's box centre does.
_CENTRE_POINTS = (33, 133, 362, 263, 1, 61, 291)  # crop side / detection box side: the detector box is tight around eyes-mouth


@contextlib.contextmanager
def quiet_native_stderr():
    """MediaPipe's C++ layer logs a few warning lines per graph straight to file descriptor 2.
    Silence them while graphs start (creation and first frame); Python exceptions still surface."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # smoothed x0, y0, x1, y1
    last_seen: int
    mesh: object = None
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> (478, 3) landmarks
    boxes: dict[int, np.ndarray] = field(default_factory=dict)
    crops: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def score(self) -> float:
        """Main-speaker score: frames with a mesh x mean box area x (1 + mouth-motion variability).
        Presence and size find the person on screen; mouth motion breaks ties between a speaker
        and a silent listener of similar size."""
        if not self.frames:
            return 0.0
        area = np.mean([(b[2] - b[0]) * (b[3] - b[1]) for b in self.boxes.values()])
        lm = np.stack([self.frames[t] for t in sorted(self.frames)])
        scale = np.linalg.norm(lm[:, 33, :2] - lm[:, 263, :2], axis=1) + 1e-6
        aperture = np.linalg.norm(lm[:, UPPER_LIP_INNER, :2] - lm[:, LOWER_LIP_INNER, :2], axis=1) / scale
        return len(self.frames) * area * (1.0 + 5.0 * float(np.std(aperture)))


class FaceTracker:
    def __init__(self, config: PreprocessConfig, hold: int = 12):
        self.config = config
        self.hold = hold
        self.tracks: list[Track] = []
        self.max_simultaneous = 0
        self._detector = None
        self._next_id = 0

    def _detect(self, frame: np.ndarray) -> list[np.ndarray]:
        import mediapipe as mp

        h, w = frame.shape[:2]
        if self._detector is None:
            with quiet_native_stderr():
                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=self.config.detector_model,
                    min_detection_confidence=self.config.min_detection_confidence,
                )
                res = self._detector.process(frame)
        else:
            res = self._detector.process(frame)
        boxes = []
        for det in res.detections or []:
            bb = det.location_data.relative_bounding_box
            box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
            if box[2] - box[0] > 8 and box[3] - box[1] > 8:
                boxes.append(box)
        boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        return boxes[: self.config.max_faces]

    def _associate(self, t: int, boxes: list[np.ndarray]) -> None:
        live = [tr for tr in self.tracks if t - tr.last_seen <= self.hold]
        used = set()
        for box in boxes:
            best, best_iou = None, self.config.track_iou
            for tr in live:
                if tr.track_id in used:
                    continue
                o = iou(tr.box, box)
                if o >= best_iou:
                    best, best_iou = tr, o
            if best is None:
                best = Track(self._next_id, box.copy(), t)
                self._next_id += 1
                self.tracks.append(best)
            else:
                best.box = 0.5 * best.box + 0.5 * box  # damp detector jitter so the mesh crop is steady
                best.last_seen = t
            used.add(best.track_id)
        self.max_simultaneous = max(self.max_simultaneous, len(used))

    def step(self, t: int, frame: np.ndarray, on_mesh) -> None:
        """Process frame t: detect (every detect_every), track, mesh every live track.
        `on_mesh(track, t, landmarks)` is called for each track meshed in this frame."""
        if t % self.config.detect_every == 0:
            self._associate(t, self._detect(frame))
        for tr in self.tracks:
            if t - tr.last_seen > self.hold:
                continue
            lm = self._mesh(tr, frame)
            if lm is not None:
                tr.frames[t] = lm
                tr.boxes[t] = tr.box.copy()
                tr.last_seen = t
                # Between detections the mesh carries the track: re-centre the box on the face.
                centre = lm[list(_CENTRE_POINTS), :2].mean(0)
                half = (tr.box[2:] - tr.box[:2]) / 2
                tr.box = np.concatenate([centre - half, centre + half])
                on_mesh(tr, t, lm)

    def _mesh(self, tr: Track, frame: np.ndarray) -> np.ndarray | None:
        import mediapipe as mp

        first = tr.mesh is None
        if first:
            with quiet_native_stderr():
                tr.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                                          refine_landmarks=True, min_detection_confidence=0.5,
                                                          min_tracking_confidence=0.5)
        cx, cy = (tr.box[0] + tr.box[2]) / 2, (tr.box[1] + tr.box[3]) / 2
        side = CROP_MARGIN * max(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1])
        s = MESH_INPUT / side
        m = np.array([[s, 0, MESH_INPUT / 2 - s * cx], [0, s, MESH_INPUT / 2 - s * cy]])
        crop = cv2.warpAffine(frame, m, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if first:
            with quiet_native_stderr():
                res = tr.mesh.process(crop)
        else:
            res = tr.mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in res.multi_face_landmarks[0].landmark], np.float32) * MESH_INPUT
        pts[:, 0] = (pts[:, 0] - m[0, 2]) / s
        pts[:, 1] = (pts[:, 1] - m[1, 2]) / s
        pts[:, 2] = pts[:, 2] / s
        return pts

    def main_track(self) -> Track | None:
        scored = [(tr.score(), tr) for tr in self.tracks if tr.frames]
        return max(scored, key=lambda st: st[0])[1] if scored else None

    def close(self) -> None:
        for tr in self.tracks:
            if tr.mesh is not None:
                tr.mesh.close()
                tr.mesh = None
        if self._detector is not None:
            self._detector.close()
            self._detector = None
