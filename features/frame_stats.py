"""Per-frame picture statistics on the analysis frame, measured during preprocessing.

The aligned crops (96 px face, 48x96 mouth) are all that the clip keeps of the picture, and they
lose what the visual family needs to see: detail finer than the crop's pixels (an upscaled or
blurred face looks the same at 96 px), the straight edges of a box pasted into the frame, the
coding-block grid, and the neck below the chin. So while the frame is still at hand, `frame_stats`
reduces it to a few numbers around the tracked face (regions from the 478-point mesh, in analysis-
frame pixels), on every EVERY-th frame; the clip keeps them as (T,) float32 series named by
FRAME_STATS, NaN without a face and on the frames between.

  face_iod_px        inter-ocular distance in analysis pixels: how many pixels the face really has
  face_fine_share    finest-octave share of detail (texture.fine_share) on the inner face (brows to
                     below the lower lip, between the outer eye corners)
  upper_fine_share   the same on eyes + brows + nose bridge
  mouth_fine_share   the same on the lips and a margin around them
  seam_strength      strongest straight row/column edge around the lower face relative to its
                     neighbours (about 1 or less: nothing stands out); a pasted mouth or
                     lower-face box leaves one
  blockiness         coding-grid excess on the inner face (texture.blockiness; 1 = no grid)
  neck_chroma_delta  Cb/Cr distance (BT.601, 0-255 scale) between the cheeks and the neck below the chin
  neck_luma_delta    luma of the cheeks minus luma of the neck (0-255)
  upper_change       mean |luma change| (0-255) of eyes + brows + nose bridge since the analysis frame
                     EVERY frames earlier, both seen through this frame's box at UPPER_THUMB: a face
                     that only moves its mouth (a talking photo) changes by ~0 there, real footage by
                     ~1-3 levels (the head, the eyes and the brows never keep still for 0.2 s). One box
                     for both frames, so the mesh's own jitter moves no pixel; 0.2 s apart, so frames a
                     frame-rate conversion repeated do not read as still
  static_blocks      share of the inner face's 4x4 blocks (on the frame's own 4-px grid) whose pixels did not
                     change at all (< 1 grey level) since the frame just before. A coder starved of bits
                     copies whole blocks forward (H.264's skip blocks) while the face moves on: on the default
                     model's corpora clean clips read a median of 1.6 %, H.264 at QP 44 60 % (4-85 %: the
                     smaller and stiller the face, the more). A talking photo reads as high (its upper face
                     never changes; median 60-74 %), so alone it does not tell the two apart (README,
                     version 25). NaN without the frame before, and on a frame that repeats it (>= 97 % of
                     the blocks still: a frame-rate conversion, a frozen picture; frozen_share sees those)
  codec_logit        how hard a video coder squeezed the face (codec_reader.py: a small network on three 48 px
                     patches of nose and cheekbones at the frame's own resolution; > 0 about CRF 38 or harder).
                     NaN when no reader is shipped
  surround_detail    how much of the face's detail lies at the finer of three scales (in IOD units), relative to
                     the same share around the face (hair, ears, background and collar, 0.35-0.8 IOD outside the
                     mesh's hull): 0.45-2.7 (median 1.0) on the default model's training clips without a face
                     blur, however soft or small the source (a soft source is soft around the face too); a
                     face blurred on a sharp frame reads far lower (0.04 IOD: median 0.25). A smooth face in
                     richly textured hair reads low too (a marble bust with curls, generated: 0.32).
                     surround_detail(); NaN where the frame holds too little around the face
"""

from __future__ import annotations

import cv2
import numpy as np

from . import landmarks as L
from .codec_reader import load_reader
from .texture import EPS, LUMA, band_energies, blockiness, fine_share

FRAME_STATS = ("face_iod_px", "face_fine_share", "upper_fine_share", "mouth_fine_share", "seam_strength",
               "blockiness", "neck_chroma_delta", "neck_luma_delta", "upper_change", "static_blocks",
               "codec_logit", "surround_detail")
# Every 5th analysis frame (5 a second at 25 fps): none of these changes faster, and it keeps them at
# ~0.15 s for a 20 s clip, plus ~0.3 s for the codec reader (3 ms a frame). A constant, not a config key: a
# key with a default would change the extraction config's hash and so refuse every model trained before it
# (scoring/bundle.py).
EVERY = 5
CODING_BLOCK = 8  # px of the source: JPEG and the codecs' transform blocks
_OUTER_LIPS = list(L.OUTER_LIPS)
SEAM_PERCENTILE = 30  # a seam crosses the whole segment; a curved face edge only part of it
SEAM_REACH = 8  # lines either side of a candidate line that give its baseline
_WIDE = np.r_[np.ones(SEAM_REACH - 1), np.zeros(3), np.ones(SEAM_REACH - 1)] / (2 * SEAM_REACH - 2)
_NEAR = np.r_[np.zeros(SEAM_REACH - 3), np.ones(2), np.zeros(3), np.ones(2), np.zeros(SEAM_REACH - 3)] / 4
SEAM_BELOW_CHIN = 0.35  # the lowest seam row, in nose-to-chin spans below the chin (Wav2Lip's box ends ~there)
SEAM_FLOOR = 2.0  # grey levels added to the baseline, so flat skin or background does not peak on noise
# upper_change compares area-averaged thumbnails of this size (w, h): the same scale at any resolution, and
# averaging ~4-8 pixels into one keeps sensor and coding noise well under a real face's change
UPPER_THUMB = (32, 24)
STATIC_BLOCK = 4  # px: H.264's smallest transform block; skipped macroblocks are whole 4x4 blocks of them
STATIC_LEVEL = 1.0  # grey levels: a block whose every pixel changed by less is a copy of the one before
REPEATED_FRAME = 0.97  # this share of still blocks or more: the whole frame was repeated, not coded sparsely
# surround_detail: Gaussian scales SURROUND_SCALE x IOD x 1, 2, 4, 8 give three octave bands (finer to coarser).
# 0.0125 IOD is ~1 px at the size where the face has ~80 px between the outer eye corners; a face blurred with a
# sigma of 0.04 IOD (the check's face_blur) has lost the finer band, one of 0.015 IOD (the mildest level of the
# degrade corpora) about a third of it. Above SURROUND_IOD px the crop is first shrunk to that size: the bands are
# in IOD units anyway, and it bounds the cost (3-8 ms a measured frame, up to ~0.8 s for a 20 s clip).
SURROUND_SCALE = 0.0125
SURROUND_IOD = 80.0
SURROUND_RING = (0.35, 0.8)  # IOD outside the mesh's hull: past the feathered edge of a blur of the face
SURROUND_INSET = 0.12  # IOD inside the hull: the face's own outline (an edge against the background) left out
SURROUND_MIN_PIXELS = 200  # of each region, at the working scale


def block_period(frame_width: int, source_width: int) -> int:
    """The coding-block period in analysis pixels; 0 when downscaling left no whole-pixel grid
    (e.g. 1920 -> 640 turns 8 px into 2.7)."""
    if source_width <= 0:
        return CODING_BLOCK
    p = CODING_BLOCK * frame_width / source_width
    return int(round(p)) if abs(p - round(p)) < 0.1 and round(p) >= 4 else 0


def _box(frame_shape, x0, y0, x1, y1) -> tuple[int, int, int, int] | None:
    h, w = frame_shape[:2]
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
    return (x0, y0, x1, y1) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def _line_peaks(diff: np.ndarray) -> np.ndarray:
    """Per line (axis 0): the SEAM_PERCENTILE of |difference| along the line over its baseline (+ a
    floor). The baseline is the larger of the mean of the lines 2 to SEAM_REACH away and the mean of
    the lines 2 and 3 away: a seam is one or two pixels wide, while a blurred natural edge (or a soft
    shadow) spreads over several lines and so does not stand out from its close neighbours."""
    k = max(1, int(round(diff.shape[1] * SEAM_PERCENTILE / 100)))
    level = np.partition(diff, k - 1, axis=1)[:, k - 1].astype(np.float64)
    padded = np.pad(level, SEAM_REACH, mode="edge")
    wide = np.convolve(padded, _WIDE, mode="valid")
    near = np.convolve(padded, _NEAR, mode="valid")
    return level / (np.maximum(wide, near) + SEAM_FLOOR)


def seam_strength(grey: np.ndarray, lm: np.ndarray, iod: float) -> float:
    """Strongest straight horizontal or vertical edge around the lower face, relative to the lines
    beside it. Pasting (Wav2Lip and its kind paste an axis-aligned box) leaves a line across which
    the picture jumps along its whole length; natural edges (chin, lips, folds) are curved or short.

    Rows: from just under the eyes to well below the chin, across the central 0.9 IOD of the face,
    skipping the lips (the line between the lips is straight and crosses the whole mouth).
    Columns: between each eye's outer corner and the mouth corner below it, from nose to chin."""
    h, w = grey.shape
    eye_y = (lm[L.RIGHT_EYE_OUTER, 1] + lm[L.LEFT_EYE_OUTER, 1]) / 2
    cx = (lm[L.RIGHT_EYE_OUTER, 0] + lm[L.LEFT_EYE_OUTER, 0]) / 2
    nose_y, chin_y = lm[L.NOSE_TIP, 1], lm[L.CHIN, 1]
    span = max(chin_y - nose_y, 0.3 * iod)
    pad = SEAM_REACH + 1
    peaks = []
    rows = _box(grey.shape, cx - 0.45 * iod, eye_y + 0.25 * iod - pad, cx + 0.45 * iod,
                chin_y + SEAM_BELOW_CHIN * span + pad)
    if rows is not None:
        x0, y0, x1, y1 = rows
        # p[i]: the edge between rows y0+i and y0+i+1, on every other pixel along the row (a
        # percentile needs no more)
        p = _line_peaks(np.abs(np.diff(grey[y0:y1, x0:x1:2], axis=0)))
        y = y0 + np.arange(len(p)) + 0.5
        lips = lm[_OUTER_LIPS, 1]
        keep = (y >= y0 + pad) & (y <= y1 - pad) & ((y < lips.min() - 2) | (y > lips.max() + 2))
        if keep.any():
            peaks.append(p[keep].max())
    sides = ((lm[L.RIGHT_EYE_OUTER, 0], lm[L.MOUTH_LEFT, 0] - 0.1 * iod),
             (lm[L.MOUTH_RIGHT, 0] + 0.1 * iod, lm[L.LEFT_EYE_OUTER, 0]))
    for xa, xb in sides:
        cols = _box(grey.shape, xa - pad, nose_y, xb + pad, chin_y - 0.1 * span)
        if cols is None or xb <= xa:
            continue
        x0, y0, x1, y1 = cols
        p = _line_peaks(np.abs(np.diff(grey[y0:y1:2, x0:x1], axis=1)).T)
        x = x0 + np.arange(len(p)) + 0.5
        keep = (x >= xa) & (x <= xb) & (x >= x0 + pad) & (x <= x1 - pad)
        if keep.any():
            peaks.append(p[keep].max())
    return float(max(peaks)) if peaks else float("nan")


def _ycc(rgb: tuple[float, float, float]) -> np.ndarray:
    """(Y, Cb, Cr), BT.601 on 0-255, of an RGB colour."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.array([y, 0.564 * (b - y), 0.713 * (r - y)])


def _mean_colour(frame: np.ndarray, boxes: list) -> tuple[float, float, float]:
    """Pixel-weighted mean RGB over boxes (x0, y0, x1, y1) of the frame."""
    sums, n = np.zeros(3), 0
    for x0, y0, x1, y1 in boxes:
        area = (x1 - x0) * (y1 - y0)
        sums += np.array(cv2.mean(frame[y0:y1, x0:x1])[:3]) * area  # cv2.mean: no copy of the patch
        n += area
    return tuple(sums / n)


def neck_colour(frame: np.ndarray, lm: np.ndarray, iod: float) -> tuple[float, float]:
    """(chroma distance, luma difference) between the cheeks and a patch of neck under the chin; NaN
    when the neck is outside the frame. A face generated or relit apart from the rest of the frame
    (another white balance, a pasted face) differs from its own neck more than a real one does."""
    half = 0.1 * iod
    cheeks = [b for b in (_box(frame.shape, lm[i, 0] - half, lm[i, 1] - half, lm[i, 0] + half, lm[i, 1] + half)
                          for i in (L.RIGHT_CHEEK, L.LEFT_CHEEK)) if b is not None]
    chin = lm[L.CHIN, :2]
    neck = _box(frame.shape, chin[0] - 0.2 * iod, chin[1] + 0.15 * iod, chin[0] + 0.2 * iod, chin[1] + 0.4 * iod)
    if not cheeks or neck is None or neck[3] - neck[1] < 0.2 * iod:
        return float("nan"), float("nan")
    face, below = _ycc(_mean_colour(frame, cheeks)), _ycc(_mean_colour(frame, [neck]))
    return float(np.hypot(*(face[1:] - below[1:]))), float(face[0] - below[0])


def upper_change(frame: np.ndarray, before: np.ndarray, box: tuple[int, int, int, int] | None) -> float:
    """Mean |luma change| (0-255) between two frames inside one box (x0, y0, x1, y1), on UPPER_THUMB
    thumbnails; NaN without a box."""
    if box is None:
        return float("nan")
    x0, y0, x1, y1 = box
    now, then = (cv2.resize(np.ascontiguousarray(f[y0:y1, x0:x1]).astype(np.float32) @ LUMA, UPPER_THUMB,
                            interpolation=cv2.INTER_AREA) for f in (frame, before))
    return float(np.abs(now - then).mean())


def static_blocks(grey: np.ndarray, previous: np.ndarray, origin: tuple[int, int]) -> float:
    """Share of the STATIC_BLOCK-px blocks of `grey` (a region whose top-left pixel is at `origin` =
    (x0, y0) of the frame) in which no pixel changed by STATIC_LEVEL or more against `previous` (the same
    region of the frame before). Blocks lie on the frame's own grid (a coder's blocks do), so the region's
    partial blocks at its edges are left out. NaN for a repeated frame (REPEATED_FRAME) or no whole block."""
    b = STATIC_BLOCK
    ox, oy = (-origin[0]) % b, (-origin[1]) % b
    change = np.abs(grey[oy:, ox:] - previous[oy:, ox:])
    h, w = (change.shape[0] // b) * b, (change.shape[1] // b) * b
    if h == 0 or w == 0:
        return float("nan")
    still = change[:h, :w].reshape(h // b, b, w // b, b).max(axis=(1, 3)) < STATIC_LEVEL
    share = float(still.mean())
    return share if share < REPEATED_FRAME else float("nan")


def _finer_share(bands: list[np.ndarray], mask: np.ndarray) -> float:
    """var(finest band) / sum of the three bands' variances, over the mask's pixels."""
    energy = [float(cv2.meanStdDev(b, mask=mask)[1][0, 0]) ** 2 for b in bands]
    total = sum(energy)
    return energy[0] / total if total > EPS else float("nan")


def surround_detail(frame: np.ndarray, pts: np.ndarray, iod: float) -> float:
    """The face's share of detail in the finest of three octave bands (SURROUND_SCALE x IOD and up), over the
    same share in a ring around the face. Blur, upscaling and a soft lens empty the finer band; when that
    happened to the whole frame, face and ring lose it alike and the ratio stays near its usual value, while a
    face blurred (or generated softer) than the frame around it reads far below. Octave shares, not energies:
    skin has less texture than hair or a patterned shirt, but within each region natural images spread their
    detail over octaves alike. NaN when the inner face or the ring (the frame's edge cuts it) is too small."""
    reach = SURROUND_RING[1] * iod + 2
    box = _box(frame.shape, pts[:, 0].min() - reach, pts[:, 1].min() - reach, pts[:, 0].max() + reach,
               pts[:, 1].max() + reach)
    if box is None:
        return float("nan")
    x0, y0, x1, y1 = box
    g = frame[y0:y1, x0:x1].astype(np.float32) @ LUMA
    scale = min(1.0, SURROUND_IOD / iod)
    if scale < 1.0:
        g = cv2.resize(g, (max(1, round(g.shape[1] * scale)), max(1, round(g.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    unit = iod * scale  # IOD in working pixels
    hull = np.zeros(g.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round((pts[:468] - (x0, y0)) * scale).astype(np.int32)), 1)
    inside = cv2.distanceTransform(hull, cv2.DIST_L2, 3)  # distance to the hull's edge, inside it
    outside = cv2.distanceTransform(1 - hull, cv2.DIST_L2, 3)
    face = (inside >= SURROUND_INSET * unit).astype(np.uint8)
    ring = ((outside >= SURROUND_RING[0] * unit) & (outside <= SURROUND_RING[1] * unit)).astype(np.uint8)
    if face.sum() < SURROUND_MIN_PIXELS or ring.sum() < SURROUND_MIN_PIXELS:
        return float("nan")
    sigma = SURROUND_SCALE * unit
    blurs = [cv2.GaussianBlur(g, (0, 0), sigma * 2**k) for k in range(4)]
    bands = [blurs[k] - blurs[k + 1] for k in range(3)]
    ring_share = _finer_share(bands, ring)
    return _finer_share(bands, face) / ring_share if ring_share > EPS else float("nan")


def frame_stats(frame: np.ndarray, lm: np.ndarray, period: int, before: np.ndarray | None = None,
                previous: np.ndarray | None = None) -> np.ndarray:
    """(len(FRAME_STATS),) float32 for one analysis frame (H, W, 3 uint8 RGB) and its face mesh
    (478, 3, analysis pixels); `period` is block_period() of the clip (0: no blockiness); `before` the
    analysis frame EVERY frames earlier (None: no upper_change); `previous` the frame just before (None:
    no static_blocks)."""
    out = np.full(len(FRAME_STATS), np.nan, np.float32)
    pts = lm[:, :2].astype(np.float64)
    iod = float(np.linalg.norm(pts[L.RIGHT_EYE_OUTER] - pts[L.LEFT_EYE_OUTER]))
    if not np.isfinite(pts).all() or iod < 4:
        return out
    x_r, x_l = sorted((pts[L.RIGHT_EYE_OUTER, 0], pts[L.LEFT_EYE_OUTER, 0]))
    brow_y = min(pts[L.RIGHT_BROW_MID, 1], pts[L.LEFT_BROW_MID, 1])
    chin_y = pts[L.CHIN, 1]
    # Only what the measures below look at becomes grey (the frame can be 640 px wide, the face half
    # of it): between the outer eye corners, from the brows to the lowest seam row, plus margins.
    reach = SEAM_REACH + 2
    below = SEAM_BELOW_CHIN * max(chin_y - pts[L.NOSE_TIP, 1], 0.3 * iod)
    near = _box(frame.shape, x_r - reach, brow_y - reach, x_l + reach, chin_y + below + reach)
    if near is None:
        return out
    nx0, ny0, nx1, ny1 = near
    grey = frame[ny0:ny1, nx0:nx1].astype(np.float32) @ LUMA  # not cv2's uint8 grey: no rounding to levels
    local = pts - (nx0, ny0)
    lips = local[_OUTER_LIPS]
    m = 0.1 * iod
    # The inner face stops under the lower lip: lower down the jaw narrows and the box would reach the neck.
    face_box = _box(grey.shape, x_r - nx0, brow_y - ny0, x_l - nx0, lips[:, 1].max() + m)
    if face_box is None:
        return out
    # Band images only where the detail regions are (all inside the face box, which the mouth box may
    # overhang a little), with a margin so the blurs see real pixels at the regions' edges.
    bx0, by0 = max(0, min(face_box[0], int(lips[:, 0].min() - m)) - 6), max(0, face_box[1] - 6)
    bx1 = min(grey.shape[1], max(face_box[2], int(lips[:, 0].max() + m) + 1) + 6)
    by1 = min(grey.shape[0], face_box[3] + 6)
    fine, mid = band_energies(grey[by0:by1, bx0:bx1])

    def share(box):
        if box is None:
            return float("nan")
        rows, cols = slice(box[1] - by0, box[3] - by0), slice(box[0] - bx0, box[2] - bx0)
        return fine_share(fine[rows, cols], mid[rows, cols])

    out[0] = iod
    out[1] = share(face_box)
    out[2] = share(_box(grey.shape, x_r - nx0, brow_y - ny0, x_l - nx0, local[L.NOSE_TIP, 1]))
    out[3] = share(_box(grey.shape, lips[:, 0].min() - m, lips[:, 1].min() - m, lips[:, 0].max() + m,
                        lips[:, 1].max() + m))
    out[4] = seam_strength(grey, local, iod)
    if period:
        fx0, fy0, fx1, fy1 = face_box
        out[5] = blockiness(grey[fy0:fy1, fx0:fx1], period, origin=(nx0 + fx0, ny0 + fy0))
    out[6], out[7] = neck_colour(frame, pts, iod)
    if before is not None and before.shape == frame.shape:
        out[8] = upper_change(frame, before, _box(frame.shape, x_r, brow_y, x_l, pts[L.NOSE_TIP, 1]))
    if previous is not None and previous.shape == frame.shape:
        fx0, fy0, fx1, fy1 = face_box
        x0, y0 = nx0 + fx0, ny0 + fy0
        earlier = previous[y0:ny0 + fy1, x0:nx0 + fx1].astype(np.float32) @ LUMA
        out[9] = static_blocks(grey[fy0:fy1, fx0:fx1], earlier, (x0, y0))
    reader = load_reader()
    if reader is not None:
        out[10] = reader.read_frame(frame, pts)
    out[11] = surround_detail(frame, pts, iod)
    return out
