"""Offline talking heads: one portrait, a few precomputed warp fields, one `cv2.remap` per frame.

Motion is a handful of blendshapes (jaw, left/right blink, brow raise, smile, yaw). For each, the
MediaPipe mesh points it moves get a displacement (geometry rules in face units below); a thin-plate
RBF through those points, with the image border fixed, turns them into a dense field on a coarse
grid. Fields are solved in *output* space (control points at their moved positions), so one
`remap` looks up where each output pixel comes from, and a mouth that opens tears along the lip
line instead of stretching the lips. Because that inverse is not linear in the weight, jaw and
blinks are solved at a few weight levels and interpolated between them.

A frame is the sum of the blendshape fields, a small global similarity (roll, shift, zoom for
sway), one remap, then paint: the open mouth's inner-lip polygon gets a dark cavity with a band of
upper teeth, and a closing eye's remaining slit gets eyelid skin, so that a face tracker sees them.
The moved mesh of every frame is returned as ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkqa.errors import UsageError
from talkqa.features.face import quiet_native_stderr
from talkqa.features.landmarks import (
    CHIN,
    INNER_LIPS,
    JAW,
    LEFT_BROW,
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    LOWER_LIP_INNER,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    RIGHT_BROW,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
    UPPER_LIP_INNER,
)

N_MESH = 478
IRIS = tuple(range(468, 478))
# Eyelids, paired column by column (upper point above lower point); 'right' is the subject's right
# eye (image left), as in features.landmarks.
RIGHT_UPPER_LID = (246, 161, 160, 159, 158, 157, 173)
RIGHT_LOWER_LID = (7, 163, 144, 145, 153, 154, 155)
LEFT_UPPER_LID = (466, 388, 387, 386, 385, 384, 398)
LEFT_LOWER_LID = (249, 390, 373, 374, 380, 381, 382)
UPPER_INNER_LIP = INNER_LIPS[1:10]  # 191 ... 415, between the inner corners 78 and 308
LOWER_INNER_LIP = INNER_LIPS[11:]  # 324 ... 95
INNER_CORNERS = (INNER_LIPS[0], INNER_LIPS[10])  # 78, 308
# (blendshape, upper lid, lower lid, corners) per eye
EYES = (("blink_r", RIGHT_UPPER_LID, RIGHT_LOWER_LID, (RIGHT_EYE_OUTER, RIGHT_EYE_INNER)),
        ("blink_l", LEFT_UPPER_LID, LEFT_LOWER_LID, (LEFT_EYE_INNER, LEFT_EYE_OUTER)))

CONTROL_NAMES = ("jaw", "blink_l", "blink_r", "brow", "smile", "yaw", "roll", "dx", "dy", "zoom")
CONTROL_UNITS = {
    "jaw": "0-1, mouth opening (1: lower lip about 0.22 inter-ocular distances below its rest place)",
    "blink_l": "0-1, subject's left eye (image right) closed",
    "blink_r": "0-1, subject's right eye (image left) closed",
    "brow": "0-1, both brows raised",
    "smile": "0-1, mouth corners out and up",
    "yaw": "-1..1, head turn (about +-11 degrees; positive moves the nose to image right)",
    "roll": "degrees, head tilt about the neck (positive is clockwise on screen)",
    "dx": "pixels, head shift right",
    "dy": "pixels, head shift down",
    "zoom": "relative size change (0.02: 2 % larger)",
}


@dataclass(frozen=True)
class Blendshape:
    name: str
    levels: tuple[float, ...]  # weights whose inverse field is solved exactly; 0 is implied; the
    # field holds at the outermost level beyond it (blinks: the closed-lid texture takes over there)
    low: float = 0.0  # valid control range
    high: float = 1.0


BLENDSHAPES = (
    Blendshape("jaw", (0.25, 0.5, 0.75, 1.0)),
    Blendshape("blink_l", (0.35, 0.7)),
    Blendshape("blink_r", (0.35, 0.7)),
    Blendshape("brow", (1.0,)),
    Blendshape("smile", (1.0,)),
    Blendshape("yaw", (-1.0, 1.0), low=-1.0, high=1.0),
)

# Blendshape amplitudes, in inter-ocular distances (outer eye corners) unless noted.
JAW_DROP = 0.22  # lower inner lip drop at jaw=1
BLINK_UPPER, BLINK_LOWER = 0.82, 0.1  # fraction of the lid gap the upper lid falls / lower lid rises
BROW_LIFT = 0.09
SMILE_OUT, SMILE_UP, SMILE_SIGMA = 0.07, 0.05, 0.22
YAW_RADIANS = 0.2
COARSE = 64  # coarse grid cells per side; fields live on (COARSE+1)^2 nodes


class NoFaceError(UsageError):
    """The portrait has no face MediaPipe can mesh."""


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise UsageError(f"portrait must be an RGB image (H, W, 3); got shape {img.shape}")
    img = img[..., :3]
    if img.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(img.dtype, np.floating) and img.max() <= 1.0 else 1.0
        img = np.clip(img.astype(np.float64) * scale, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def detect_mesh(image: np.ndarray) -> np.ndarray | None:
    """MediaPipe FaceMesh (static, refined) on one RGB image: (478, 3) pixels (z in x units), or None."""
    import mediapipe as mp  # lazy: slow import, only on this path

    h, w = image.shape[:2]
    with quiet_native_stderr(), mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                                                max_num_faces=1, min_detection_confidence=0.5) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        return None
    lm = result.multi_face_landmarks[0].landmark
    return np.array([[p.x * w, p.y * h, p.z * w] for p in lm], dtype=np.float64)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _FaceFrame:
    """Face-aligned coordinates: u to the image right along the eye line, v down; unit = inter-ocular distance."""

    def __init__(self, pts: np.ndarray):
        xy = pts[:, :2]
        self.center = xy[[RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER]].mean(axis=0)
        axis = xy[LEFT_EYE_OUTER] - xy[RIGHT_EYE_OUTER]
        self.iod = float(np.linalg.norm(axis))
        self.ex = axis / self.iod
        self.ey = np.array([-self.ex[1], self.ex[0]])
        rel = xy - self.center
        self.u = rel @ self.ex / self.iod
        self.v = rel @ self.ey / self.iod

    def to_image(self, du: np.ndarray, dv: np.ndarray) -> np.ndarray:
        """Face-unit displacements -> (N, 2) pixel displacements."""
        return self.iod * (np.outer(du, self.ex) + np.outer(dv, self.ey))


def _profile(u_query: np.ndarray, idx: tuple[int, ...], u: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.argsort(u[list(idx)])
    return np.interp(u_query, u[list(idx)][order], np.asarray(values)[order])


def mesh_displacements(pts: np.ndarray) -> dict[str, np.ndarray]:
    """Pixel displacement of every mesh point at blendshape weight 1 (or +1 for yaw): name -> (478, 2)."""
    f = _FaceFrame(pts)
    u, v = f.u, f.v
    n = len(pts)
    out: dict[str, np.ndarray] = {}

    # --- jaw: the mandible (everything below the lip line) rotates about an axis near eye level, so
    # the chin drops more than the lower lip; the opening tapers toward the mouth corners.
    lip_u = u[[MOUTH_LEFT, MOUTH_RIGHT]]
    mouth_mid, half_width = lip_u.mean(), abs(lip_u[1] - lip_u[0]) / 2
    slit_idx = INNER_CORNERS + UPPER_INNER_LIP
    slit_up = _profile(u, slit_idx, u, v[list(slit_idx)])
    slit_lo = _profile(u, INNER_CORNERS + LOWER_INNER_LIP, u, v[list(INNER_CORNERS + LOWER_INNER_LIP)])
    slit = 0.5 * (slit_up + slit_lo)
    s = np.abs(u - mouth_mid) / half_width
    softness = 0.02 + 0.3 * _smoothstep((s - 1.0) / 0.6)
    below = _smoothstep((v - slit) / (2 * softness) + 0.5)
    below[list(UPPER_INNER_LIP)] = 0.0
    below[list(LOWER_INNER_LIP)] = 1.0
    below[list(INNER_CORNERS + (MOUTH_LEFT, MOUTH_RIGHT))] = 0.5
    taper = 0.3 + 0.7 * np.cos(0.5 * np.pi * np.clip(s, 0, 1)) ** 0.7  # rounded opening
    near_lips = np.exp(-(((v - slit) / 0.25) ** 2))
    taper = 1.0 - (1.0 - taper) * near_lips
    rotation = np.clip(v / max(v[LOWER_LIP_INNER], 1e-3), 0.0, 1.35)
    drop = JAW_DROP * below * rotation * taper
    lift = -0.08 * JAW_DROP * (1 - below) * taper * np.exp(-(((slit - v) / 0.12) ** 2)) * (s < 1.2)
    out["jaw"] = f.to_image(np.zeros(n), drop + lift)

    # --- blinks: the upper lid falls onto the lower lid, dragging the lid skin below the brow with it.
    brow_v = _profile(u, RIGHT_BROW[5:] + LEFT_BROW[5:], u, v[list(RIGHT_BROW[5:] + LEFT_BROW[5:])])
    for name, upper, lower, corners in EYES:
        gap = pts[list(lower), :2] - pts[list(upper), :2]  # (7, 2) pixels
        cu = np.sort(u[list(corners)])
        col_u = np.r_[cu[0], u[list(upper)], cu[1]]
        order = np.argsort(col_u)
        gx = np.interp(u, col_u[order], np.r_[0, gap[:, 0], 0][order])
        gy = np.interp(u, col_u[order], np.r_[0, gap[:, 1], 0][order])
        lid_v = np.interp(u, col_u[order], np.r_[v[corners[0]], v[list(upper)], v[corners[1]]][order])
        low_v = np.interp(u, col_u[order], np.r_[v[corners[0]], v[list(lower)], v[corners[1]]][order])
        span = (u > cu[0] - 0.05) & (u < cu[1] + 0.05)
        above = span & (v < lid_v) & (v > brow_v)
        w_up = np.where(above, _smoothstep((v - brow_v) / np.maximum(lid_v - brow_v, 1e-3)) ** 1.5, 0.0)
        below_eye = span & (v > low_v)
        w_lo = np.where(below_eye, np.exp(-(((v - low_v) / 0.06) ** 2)), 0.0)
        w = BLINK_UPPER * w_up - BLINK_LOWER * w_lo
        w[list(upper)] = BLINK_UPPER
        w[list(lower)] = -BLINK_LOWER
        w[list(corners)] = 0.0
        out[name] = np.stack([gx * w, gy * w], axis=1)

    # --- brow raise: brows and forehead up, lid skin between brow and upper lid stretches.
    lid_line = _profile(u, RIGHT_UPPER_LID + LEFT_UPPER_LID, u, v[list(RIGHT_UPPER_LID + LEFT_UPPER_LID)])
    top = v[10]
    brow_u = u[list(RIGHT_BROW + LEFT_BROW)]
    lateral = _smoothstep(1.0 - (np.abs(u) - np.abs(brow_u).max()) / 0.3)
    w_fore = np.where(v <= brow_v, 1.0 - 0.5 * _smoothstep((brow_v - v) / max(brow_v.mean() - top, 1e-3)), 0.0)
    between = (v > brow_v) & (v < lid_line)
    w_lid = np.where(between, _smoothstep((lid_line - v) / np.maximum(lid_line - brow_v, 1e-3)), 0.0)
    w_brow = np.maximum(w_fore, w_lid) * lateral * (v < 0.1)
    w_brow[list(RIGHT_BROW + LEFT_BROW)] = 1.0
    w_brow[list(RIGHT_UPPER_LID + LEFT_UPPER_LID + RIGHT_LOWER_LID + LEFT_LOWER_LID)] = 0.0
    out["brow"] = f.to_image(np.zeros(n), -BROW_LIFT * w_brow)

    # --- smile: mouth corners out and up, with a soft falloff into the cheeks and lips.
    du = np.zeros(n)
    dv = np.zeros(n)
    for corner, side in ((MOUTH_LEFT, -1.0), (MOUTH_RIGHT, 1.0)):
        d2 = (u - u[corner]) ** 2 + (v - v[corner]) ** 2
        g = np.exp(-d2 / (2 * SMILE_SIGMA**2))
        du += side * SMILE_OUT * g
        dv -= SMILE_UP * g
    out["smile"] = f.to_image(du, dv)

    # --- yaw: parallax from the mesh depth; near points (nose) move most, the far face outline not at all.
    z = pts[:, 2]
    z_ref = z[list(JAW)].max()
    out["yaw"] = f.to_image(-YAW_RADIANS * (z - z_ref) / f.iod, np.zeros(n))

    for name in ("jaw", "blink_l", "blink_r", "brow", "smile"):
        out[name][list(IRIS)] = 0.0  # the eyeballs stay put; lids and skin move over them
    return out


def _inverse_field(points: np.ndarray, disp: np.ndarray, size: int, nodes: np.ndarray) -> np.ndarray:
    """Thin-plate field B on the coarse nodes with B(p + d) = d at the mesh points and 0 on the border."""
    from scipy.interpolate import RBFInterpolator  # lazy: slow import, only on this path

    moved = points + disp
    edge = np.linspace(-0.5, size - 0.5, 17)
    lo, hi = np.full_like(edge, -0.5), np.full_like(edge, size - 0.5)
    border = np.unique(np.concatenate([np.stack([edge, lo], 1), np.stack([edge, hi], 1),
                                       np.stack([lo, edge], 1), np.stack([hi, edge], 1)]), axis=0)
    ctrl = np.concatenate([moved, border])
    vals = np.concatenate([disp, np.zeros_like(border)])
    # near-duplicate control points make the system singular; keep the first of each 0.5 px cluster
    keys = np.round(ctrl * 2).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    first = np.sort(first)
    rbf = RBFInterpolator(ctrl[first], vals[first], kernel="thin_plate_spline", smoothing=1e-3, degree=1)
    return rbf(nodes).astype(np.float32)


MOUTH_DARK = np.array([38, 12, 14], np.float32)
TONGUE = np.array([150, 66, 68], np.float32)
TEETH = np.array([226, 218, 204], np.float32)
LID_TEXTURE_FROM = 0.3  # blink weight where the closed-lid texture starts to blend in


def _closed_lid_patch(base: np.ndarray, rest: np.ndarray, closing: np.ndarray, upper, lower, corners):
    """(y0, x0, closed - base) for one eye: the eye opening inpainted with lid skin, and a lash line
    where the lids meet when fully closed. Added to the source image as the blink weight rises."""
    iod = _FaceFrame(rest).iod
    xy = rest[:, :2]
    opening = np.concatenate([xy[[corners[0]]], xy[list(upper)], xy[[corners[1]]], xy[list(lower)][::-1]])
    pad = int(np.ceil(0.12 * iod)) + 3
    x0, y0 = np.maximum(np.floor(opening.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(opening.max(axis=0)).astype(int) + pad, base.shape[1::-1])
    roi = np.ascontiguousarray(base[y0:y1, x0:x1])
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round((opening - (x0, y0)) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    grow = max(1, int(round(0.03 * iod)))  # also cover the lash line of the open eye
    mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    closed = cv2.inpaint(roi, mask, 3, cv2.INPAINT_TELEA).astype(np.float32)
    # lashes where the lids meet, a little darker just above them (the fold of the closed lid)
    seam = np.concatenate([xy[[corners[0]]], (xy + closing)[list(lower)], xy[[corners[1]]]]) - (x0, y0)
    lash = np.zeros(roi.shape[:2], np.uint8)
    cv2.polylines(lash, [np.round(seam * 16).astype(np.int32)], False, 255, max(1, int(round(iod / 60))),
                  lineType=cv2.LINE_AA, shift=4)
    shade = cv2.GaussianBlur(lash, (0, 0), max(1.0, 0.04 * iod)).astype(np.float32) / 255.0
    lash = cv2.GaussianBlur(lash, (3, 3), 0).astype(np.float32) / 255.0
    closed *= (1 - 0.25 * np.clip(shade * 2, 0, 1))[..., None]
    closed = closed * (1 - 0.6 * lash[..., None])
    soft = cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), max(1.0, grow))
    soft = np.maximum(soft.astype(np.float32) / 255.0, lash)[..., None]
    return int(y0), int(x0), (soft * (closed - roi.astype(np.float32))).astype(np.float32)


class TalkingHeadRenderer:
    """Animate one portrait with per-frame controls (see CONTROL_UNITS).

    >>> r = TalkingHeadRenderer(portrait, size=256)
    >>> frames, landmarks = r.render_with_landmarks({"jaw": jaw, "blink_l": b, "blink_r": b})

    The constructor only stores its arguments; `prepare()` (called by the first render) crops the
    portrait around its face to size x size, meshes it and solves the blendshape fields.
    """

    def __init__(self, portrait: np.ndarray, size: int = 256, face_scale: float = 2.0):
        self.portrait = portrait
        self.size = size
        self.face_scale = face_scale  # crop side as a multiple of the mesh's bounding box

    # ------------------------------------------------------------------ fitting
    def prepare(self) -> "TalkingHeadRenderer":
        if getattr(self, "fields_", None) is not None:
            return self
        image = _as_rgb_uint8(self.portrait)
        pts = detect_mesh(image)
        if pts is None:
            raise NoFaceError(f"no face found in the portrait ({image.shape[1]}x{image.shape[0]}); "
                              "use a frontal photo with one clearly visible face")
        size = self.size
        lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
        # the crop stays inside the photo (shrunk or shifted if needed): padding would smear its edge
        height, width = image.shape[:2]
        side = min(self.face_scale * float((hi - lo).max()), width, height)
        center = np.clip((lo + hi) / 2, side / 2, [width - side / 2, height - side / 2])
        k = size / side
        crop = np.array([[k, 0, size / 2 - k * center[0]], [0, k, size / 2 - k * center[1]]])
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
        base = cv2.warpAffine(image, crop, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
        rest = detect_mesh(base)
        if rest is None:  # the crop lost the detector: carry the portrait's mesh over instead
            rest = np.c_[pts[:, :2] @ crop[:, :2].T + crop[:, 2], pts[:, 2] * k]
        self.base_ = base
        self.crop_ = crop
        self.landmarks_ = rest.astype(np.float32)  # (478, 3) rest mesh in output pixels
        frame = _FaceFrame(rest)
        self.iod_ = frame.iod
        self.displacements_ = {k_: d.astype(np.float32) for k_, d in mesh_displacements(rest).items()}

        grid = np.linspace(0.0, size - 1.0, COARSE + 1)
        gx, gy = np.meshgrid(grid, grid)
        nodes = np.stack([gx.ravel(), gy.ravel()], axis=1)
        controls = np.delete(rest[:, :2], IRIS, axis=0)
        fields, self.field_index_ = [], {}
        for shape in BLENDSHAPES:
            disp = np.delete(self.displacements_[shape.name], IRIS, axis=0).astype(np.float64)
            levels = np.array(sorted(set(shape.levels) | {0.0}))
            start = len(fields)
            for w in levels:
                zero = np.zeros((len(nodes), 2), np.float32)
                fields.append(zero if w == 0 else _inverse_field(controls, w * disp, size, nodes))
            self.field_index_[shape.name] = (start, levels)
        self.fields_ = np.stack(fields).reshape(len(fields), -1)  # (K, nodes*2)
        self._grid_nodes = np.stack([gx, gy], axis=-1).astype(np.float32)  # (65, 65, 2) pixel coords
        full = np.arange(size, dtype=np.float32) * (COARSE / (size - 1.0))
        self._up_x, self._up_y = np.meshgrid(full, full)
        self.pivot_ = (rest[CHIN, :2] + 0.5 * self.iod_ * frame.ey).astype(np.float64)  # neck: roll and zoom pivot
        self.lid_patches_ = {name: _closed_lid_patch(base, rest, self.displacements_[name], upper, lower, corners)
                             for name, upper, lower, corners in EYES}
        return self

    # ------------------------------------------------------------------ controls
    @staticmethod
    def normalise_controls(controls: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate and complete a control dict: every name in CONTROL_NAMES, equal lengths, ranges clipped."""
        unknown = set(controls) - set(CONTROL_NAMES)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; known: {', '.join(CONTROL_NAMES)}")
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in controls.items()}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) > 1:
            raise ValueError(f"controls have different lengths: { {k: len(a) for k, a in arrays.items()} }")
        n = lengths.pop() if lengths else 0
        out = {name: arrays.get(name, np.zeros(n)) for name in CONTROL_NAMES}
        for shape in BLENDSHAPES:
            out[shape.name] = np.clip(np.nan_to_num(out[shape.name]), shape.low, shape.high)
        return out

    def _similarities(self, c: dict[str, np.ndarray]) -> np.ndarray:
        """(T, 2, 3) forward similarity per frame: about the neck pivot, then shifted."""
        a = np.deg2rad(c["roll"])
        s = 1.0 + c["zoom"]
        cos, sin = s * np.cos(a), s * np.sin(a)
        px, py = self.pivot_
        m = np.empty((len(a), 2, 3))
        m[:, 0, 0], m[:, 0, 1] = cos, -sin
        m[:, 1, 0], m[:, 1, 1] = sin, cos
        m[:, 0, 2] = px - cos * px + sin * py + c["dx"]
        m[:, 1, 2] = py - sin * px - cos * py + c["dy"]
        return m

    def _weights(self, c: dict[str, np.ndarray]) -> np.ndarray:
        """(T, K) coefficients on the stacked level fields (piecewise-linear between levels)."""
        n = len(c["jaw"])
        coef = np.zeros((n, self.fields_.shape[0]), np.float32)
        rows = np.arange(n)
        for shape in BLENDSHAPES:
            start, levels = self.field_index_[shape.name]
            w = np.clip(c[shape.name], levels[0], levels[-1])
            i = np.clip(np.searchsorted(levels, w, side="right") - 1, 0, len(levels) - 2)
            frac = (w - levels[i]) / (levels[i + 1] - levels[i])
            coef[rows, start + i] += 1.0 - frac
            coef[rows, start + i + 1] += frac
        return coef

    def landmarks(self, controls: dict[str, np.ndarray]) -> np.ndarray:
        """Ground-truth moved mesh for each frame: (T, 478, 2) float32 output pixels."""
        self.prepare()
        c = self.normalise_controls(controls)
        pts = np.repeat(self.landmarks_[None, :, :2].astype(np.float64), len(c["jaw"]), axis=0)
        for shape in BLENDSHAPES:
            pts += c[shape.name][:, None, None] * self.displacements_[shape.name][None]
        sim = self._similarities(c)
        moved = np.einsum("tij,tnj->tni", sim[:, :, :2], pts) + sim[:, None, :, 2]
        return moved.astype(np.float32)

    # ------------------------------------------------------------------ rendering
    def render(self, controls: dict[str, np.ndarray]) -> np.ndarray:
        """(T, size, size, 3) uint8 RGB frames."""
        return self.render_with_landmarks(controls)[0]

    def render_with_landmarks(self, controls: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Frames (T, size, size, 3) uint8 and their ground-truth mesh (T, 478, 2) float32 pixels."""
        self.prepare()
        c = self.normalise_controls(controls)
        n, size = len(c["jaw"]), self.size
        landmarks = self.landmarks(c)
        fields = (self._weights(c) @ self.fields_).reshape(n, COARSE + 1, COARSE + 1, 2)
        sims = self._similarities(c)
        frames = np.empty((n, size, size, 3), np.uint8)
        rest_gap = float(np.linalg.norm(self.landmarks_[LOWER_LIP_INNER, :2] - self.landmarks_[UPPER_LIP_INNER, :2]))
        node_scale = COARSE / (size - 1.0)
        for t in range(n):
            inv = cv2.invertAffineTransform(sims[t])
            # r: where each coarse output node sits before the similarity; source = r - B(r)
            r = self._grid_nodes @ inv[:, :2].T.astype(np.float32) + inv[:, 2].astype(np.float32)
            b = cv2.remap(fields[t], r[..., 0] * node_scale, r[..., 1] * node_scale, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            src = r - b
            full = cv2.remap(src, self._up_x, self._up_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            source = self._close_lids(c, t)
            frame = cv2.remap(source, full[..., 0], full[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            self._paint_mouth(frame, landmarks[t], rest_gap)
            frames[t] = frame
        return frames, landmarks

    def _paint_mouth(self, frame: np.ndarray, pts: np.ndarray, rest_gap: float) -> None:
        """Dark cavity inside the moved inner-lip polygon: upper teeth under the lip, tongue at the bottom."""
        gap = float(np.linalg.norm(pts[LOWER_LIP_INNER] - pts[UPPER_LIP_INNER]))
        alpha = float(np.clip((gap - rest_gap - 0.5) / 3.0, 0.0, 1.0))
        if alpha <= 0:
            return
        poly = pts[list(INNER_LIPS)]
        roi, (x0, y0) = self._roi(frame, poly, pad=3)
        if roi is None:
            return
        ex = pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER]
        ex = ex / np.linalg.norm(ex)
        ey = np.array([-ex[1], ex[0]])
        corners = pts[list(INNER_CORNERS)]
        middle = corners.mean(axis=0)
        half_width = max(float(np.linalg.norm(corners[1] - corners[0])) / 2, 1.0)
        yy, xx = np.mgrid[y0 : y0 + roi.shape[0], x0 : x0 + roi.shape[1]].astype(np.float32)
        across = ((xx - middle[0]) * ex[0] + (yy - middle[1]) * ex[1])  # pixels from the mouth middle
        depth = (xx - pts[UPPER_LIP_INNER, 0]) * ey[0] + (yy - pts[UPPER_LIP_INNER, 1]) * ey[1]  # below the upper lip
        shadow = np.clip(1.0 - 0.5 * (across / half_width) ** 2, 0.35, 1.0)[..., None]  # corners are darker

        tongue = _smoothstep((depth - 0.55 * gap) / (0.45 * gap + 1e-6))[..., None]
        colour = MOUTH_DARK + tongue * (TONGUE - MOUTH_DARK)
        upper = pts[[INNER_CORNERS[0], *UPPER_INNER_LIP, INNER_CORNERS[1]]]
        teeth_h = min(0.3 * gap, 0.06 * self.iod_)
        teeth = self._mask(roi.shape, np.concatenate([upper, upper[::-1] + teeth_h * ey]) - (x0, y0))
        tooth_width = 0.09 * self.iod_
        gaps = 1.0 - 0.22 * np.maximum(np.cos(2 * np.pi * across / tooth_width), 0.0) ** 12  # seams between teeth
        teeth_colour = TEETH[None, None, :] * gaps[..., None]
        colour = colour + teeth[..., None] * (teeth_colour - colour)
        cavity = self._mask(roi.shape, poly - (x0, y0))
        m = (alpha * cavity)[..., None]
        roi[:] = np.clip(roi * (1 - m) + colour * shadow * m, 0, 255).astype(np.uint8)

    def _close_lids(self, c: dict[str, np.ndarray], t: int) -> np.ndarray:
        """The source image with closed-lid texture blended into each closing eye (in source coordinates)."""
        source = self.base_
        for name, (y0, x0, diff) in self.lid_patches_.items():
            alpha = float(_smoothstep((c[name][t] - LID_TEXTURE_FROM) / (1.0 - LID_TEXTURE_FROM)))
            if alpha > 0:
                if source is self.base_:
                    source = self.base_.copy()
                roi = source[y0 : y0 + diff.shape[0], x0 : x0 + diff.shape[1]]
                roi[:] = np.clip(roi + alpha * diff, 0, 255).astype(np.uint8)
        return source

    @staticmethod
    def _roi(frame: np.ndarray, poly: np.ndarray, pad: int):
        h, w = frame.shape[:2]
        x0, y0 = np.floor(poly.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + pad
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None, (0, 0)
        return frame[y0:y1, x0:x1], (x0, y0)

    @staticmethod
    def _mask(shape, poly: np.ndarray, grow: int = 0) -> np.ndarray:
        """Anti-aliased polygon mask (sub-pixel vertices), slightly softened; float32 in [0, 1]."""
        mask = np.zeros(shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
        if grow:
            mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        return cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0


def neutral_controls(n_frames: int) -> dict[str, np.ndarray]:
    """All controls at rest for `n_frames` frames."""
    return {name: np.zeros(n_frames, np.float32) for name in CONTROL_NAMES}
