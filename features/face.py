"""Face detection, IoU tracking and per-track 478-point meshes (MediaPipe, `mp.solutions`).

Detection (`FaceDetector`) runs every `detect_every` analysis frames. Detections are matched to live tracks greedily
by IoU (highest pairs first, IoU >= track_iou); an unmatched detection revives a lost track at the
same place (the same person back after an occlusion or a cut) or starts a new one. Each live track is
meshed on every frame by its own FaceMesh in video mode (the tracking state belongs to one face), run
on a square crop around the track's box; between detections the mesh re-centres the box, so a track
follows its face on its own. A track neither detected nor meshed for `hold` frames is lost.

Main speaker (`FaceTracker.main_track`): the track with the largest
    meshed frames x mean box area x (1 + 5 * std of the mouth opening / inter-ocular distance),
i.e. the face that is on screen longest and biggest, with mouth motion lifting a speaker above a
silent listener of similar size (a speaking mouth's opening varies by ~0.05-0.1 IOD, a still one's
by < 0.01).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
import types
from dataclasses import dataclass, field

import cv2
import numpy as np

from talkqa.config import PreprocessConfig

from .landmarks import ALIGN_ANCHORS, LEFT_EYE_OUTER, LOWER_LIP_INNER, RIGHT_EYE_OUTER, UPPER_LIP_INNER

MESH_INPUT = 256  # side of the square crop given to FaceMesh (its model runs at 192 px)
CROP_MARGIN = 1.9  # crop side / box side: the detector's box is tight around brows-to-chin
BOX_SMOOTHING = 0.5  # weight of a new detection in a track's box: damps detector jitter
DUPLICATE_IOU = 0.6  # two tracks overlapping this much follow the same face


_import_lock = threading.Lock()


class _PyplotOnFirstUse(types.ModuleType):
    """Stands in for `matplotlib.pyplot` until an attribute of it is used; then the real module is
    imported (and replaces this one in sys.modules) and the attribute comes from it."""

    def __getattr__(self, name: str):
        with _import_lock:
            if sys.modules.get("matplotlib.pyplot") is self:
                del sys.modules["matplotlib.pyplot"]
        return getattr(importlib.import_module("matplotlib.pyplot"), name)


def import_mediapipe():
    """`mediapipe`, imported without loading `matplotlib.pyplot`. MediaPipe's drawing utilities import
    pyplot when mediapipe is imported (0.2-0.5 s, a tenth of a cold `talkqa score`), and talkqa never
    draws with them; a stand-in takes pyplot's place, so the first real use of pyplot still loads it.
    (importlib's LazyLoader cannot do this: the import statement itself touches the module and loads it.)"""
    with _import_lock:  # the decoding thread (detector) and the main thread (meshes) both get here
        if "mediapipe" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
            spec = importlib.util.find_spec("matplotlib.pyplot")
            if spec is not None:
                stand_in = _PyplotOnFirstUse("matplotlib.pyplot")
                stand_in.__spec__ = spec
                sys.modules["matplotlib.pyplot"] = stand_in
        import mediapipe  # lazy: slow import, only on this path

    return mediapipe


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_stderr: int | None = None


@contextlib.contextmanager
def quiet_native_stderr():
    """MediaPipe's C++ layer logs a few warning lines per graph straight to file descriptor 2.
    Silence them while graphs start (creation and first frame); Python exceptions still surface.

    Shared by threads (the detector starts on the decoding thread while a mesh may start on the main
    one): the first to enter redirects fd 2, the last to leave restores it, so an overlap cannot
    leave stderr pointing at /dev/null."""
    global _quiet_depth, _saved_stderr
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                saved = os.dup(2)
            except OSError:
                saved = None
            if saved is not None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            _saved_stderr = saved
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_stderr is not None:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # current (smoothed) x0, y0, x1, y1 in analysis-frame pixels
    last_seen: int
    alive: bool = True
    mesh: object = None  # its own FaceMesh, created on first use
    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # meshed frame -> box centred on its mesh
    mouth_opening: list[float] = field(default_factory=list)  # per meshed frame, in IOD units

    @property
    def n_frames(self) -> int:
        return len(self.boxes)

    def score(self) -> float:
        """Main-speaker score (see the module docstring)."""
        if not self.boxes:
            return 0.0
        area = np.mean([(b[2] - b[0]) * (b[3] - b[1]) for b in self.boxes.values()])
        return self.n_frames * float(area) * (1.0 + 5.0 * float(np.std(self.mouth_opening)))

    def close_mesh(self) -> None:
        if self.mesh is not None:
            self.mesh.close()
            self.mesh = None


class FaceDetector:
    """MediaPipe face detection on one analysis frame -> boxes, largest first (at most max_faces).

    Separate from the tracker because a detection depends on its frame only: preprocessing runs it
    on the decoding thread, ahead of the tracker, while the tracker meshes earlier frames."""

    def __init__(self, config: PreprocessConfig):
        self.config = config
        self._detector = None

    def due(self, t: int) -> bool:
        return t % self.config.detect_every == 0

    def detect(self, frame: np.ndarray) -> list[np.ndarray]:
        if self._detector is None:
            mp = import_mediapipe()

            with quiet_native_stderr():
                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=self.config.detector_model,
                    min_detection_confidence=self.config.min_detection_confidence,
                )
                res = self._detector.process(frame)
        else:
            res = self._detector.process(frame)
        h, w = frame.shape[:2]
        boxes = []
        for det in res.detections or []:
            bb = det.location_data.relative_bounding_box
            box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
            if min(box[2] - box[0], box[3] - box[1]) > 8:  # smaller faces cannot be meshed usefully
                boxes.append(box)
        boxes.sort(key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        return boxes[: self.config.max_faces]

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None


class FaceTracker:
    """Streaming tracker: call `step` once per analysis frame, then `main_track`, then `close`."""

    def __init__(self, config: PreprocessConfig, hold: int = 12):
        self.config = config
        self.hold = hold
        self.tracks: list[Track] = []
        self.max_simultaneous = 0  # most faces meshed in one frame

    # ------------------------------------------------------------------ per frame
    def step(self, t: int, frame: np.ndarray, boxes: list[np.ndarray] | None) -> list[tuple[Track, np.ndarray]]:
        """Process analysis frame t with its detections (None: not a detection frame); returns
        (track, landmarks (478, 3)) for each track meshed in it."""
        if boxes is not None:
            self._associate(t, boxes)
        found = []
        for tr in self._live(t):
            lm = self._mesh(tr, frame)
            if lm is not None:
                # The anchors' mean sits where the detector's box centre does: the box follows the mesh.
                centre = lm[list(ALIGN_ANCHORS), :2].mean(0)
                half = (tr.box[2:] - tr.box[:2]) / 2
                found.append((tr, lm, np.concatenate([centre - half, centre + half])))
        meshed = []
        # Two tracks can lock onto one face (a detector double hit, a box drifting onto a neighbour):
        # the younger one gives way.
        for tr, lm, box in sorted(found, key=lambda f: -f[0].n_frames):
            if any(iou(box, kept.box) > DUPLICATE_IOU for kept, _ in meshed):
                tr.alive = False
                tr.close_mesh()
                continue
            tr.box, tr.last_seen, tr.boxes[t] = box, t, box.copy()
            iod = np.linalg.norm(lm[LEFT_EYE_OUTER, :2] - lm[RIGHT_EYE_OUTER, :2]) + 1e-6
            tr.mouth_opening.append(float(np.linalg.norm(lm[UPPER_LIP_INNER, :2] - lm[LOWER_LIP_INNER, :2]) / iod))
            meshed.append((tr, lm))
        self.max_simultaneous = max(self.max_simultaneous, len(meshed))
        return meshed

    def _live(self, t: int) -> list[Track]:
        for tr in self.tracks:
            if tr.alive and t - tr.last_seen > self.hold:
                tr.alive = False
                tr.close_mesh()  # a graph holds tens of MB; a revived track makes a new one
        return [tr for tr in self.tracks if tr.alive]

    def _associate(self, t: int, boxes: list[np.ndarray]) -> None:
        live = self._live(t)
        pairs = sorted(((iou(tr.box, box), i, j) for i, tr in enumerate(live) for j, box in enumerate(boxes)),
                       reverse=True)
        used_tracks, used_boxes = set(), set()
        for overlap, i, j in pairs:
            if overlap < self.config.track_iou:
                break
            if i in used_tracks or j in used_boxes:
                continue
            used_tracks.add(i)
            used_boxes.add(j)
            tr = live[i]
            tr.box = (1 - BOX_SMOOTHING) * tr.box + BOX_SMOOTHING * boxes[j]
            tr.last_seen = t
        n_live = len(live)
        for j, box in enumerate(boxes):
            if j in used_boxes or n_live >= self.config.max_faces:
                continue
            tr = self._lost_track_at(box)
            if tr is None:
                self.tracks.append(Track(len(self.tracks), box.copy(), t))
            else:
                tr.box, tr.last_seen, tr.alive = box.copy(), t, True
            n_live += 1

    def _lost_track_at(self, box: np.ndarray) -> Track | None:
        lost = [(iou(tr.box, box), tr) for tr in self.tracks if not tr.alive]
        best = max(lost, key=lambda ot: ot[0], default=(0.0, None))
        return best[1] if best[0] >= self.config.track_iou else None

    def _mesh(self, tr: Track, frame: np.ndarray) -> np.ndarray | None:
        cx, cy = (tr.box[0] + tr.box[2]) / 2, (tr.box[1] + tr.box[3]) / 2
        side = CROP_MARGIN * max(tr.box[2] - tr.box[0], tr.box[3] - tr.box[1])
        s = MESH_INPUT / side
        m = np.array([[s, 0, MESH_INPUT / 2 - s * cx], [0, s, MESH_INPUT / 2 - s * cy]])
        crop = cv2.warpAffine(frame, m, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        if tr.mesh is None:
            mp = import_mediapipe()

            with quiet_native_stderr():
                tr.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                                          refine_landmarks=True, min_detection_confidence=0.5,
                                                          min_tracking_confidence=0.5)
                res = tr.mesh.process(crop)
        else:
            res = tr.mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in res.multi_face_landmarks[0].landmark], np.float32) * MESH_INPUT
        # Back to analysis-frame pixels; z shares x's scale (MediaPipe normalises z by the crop width).
        pts[:, 0] = (pts[:, 0] - m[0, 2]) / s
        pts[:, 1] = (pts[:, 1] - m[1, 2]) / s
        pts[:, 2] /= s
        return pts

    # ------------------------------------------------------------------ after the last frame
    def main_track(self) -> Track | None:
        scored = [(tr.score(), tr) for tr in self.tracks if tr.boxes]
        return max(scored, key=lambda st: st[0])[1] if scored else None

    def close(self) -> None:
        for tr in self.tracks:
            tr.close_mesh()
