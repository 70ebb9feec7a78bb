"""visual: is the picture of the face clean and natural?

Measured on the aligned crops (96 px face, 48x96 mouth; regions in IOD units, see nss.crop_box):
  * sharpness and detail of face and mouth: variance of the Laplacian, gradient energy and
    scikit-image's blur_effect (0 sharp .. 1 blurred);
  * mouth_face_detail_ratio: Laplacian variance of the lips region over that of eyes + brows +
    nose bridge, both in the face crop at the same scale; a blurred mouth (Wav2Lip's 96-px face
    pasted back) lowers it;
  * flicker: frame-to-frame luminance change of the face (mouth excluded) that does not follow a
    smooth course, in % of its luminance; texture_instability: how much the fine texture (the image
    minus its sigma-1.5 blur) changes between consecutive aligned crops, relative to its size. The
    alignment is the motion compensation: what still changes is the picture, not the pose;
  * teeth_detail (std of the Laplacian) and inner_mouth_contrast (std of the luminance) inside the
    inner-lip polygon, on frames with the mouth open;
  * color_drift / texture_drift: face colour (Y, Cb, Cr) and detail of the first seconds against the
    last ones; per window, the colour distance from the clip's median;
  * nss_distance: distance of the face's MSCN statistics from real faces (nss.py), on sampled frames.
From the analysis frame, via the per-frame statistics of preprocessing (frame_stats.py; NaN for
clips preprocessed before they existed): finest-octave detail of face and mouth at the frame's own
resolution and their ratio, the face's size in pixels, seam strength around the lower face, coding
blockiness, the share of face blocks a starved coder copied from the frame before (static_blocks), how hard
a coder squeezed the face as a small network reads it at the frame's own resolution (codec_logit,
codec_reader.py) and that reading where the coder's grid shows too (heavy_coding_logit, NaN unless the face
is coded hard), the colour difference between the face and the neck below the chin, and the face's detail
relative to what surrounds it (surround_detail: a face blurred on a sharp frame, however soft the source).

Clip values are medians over frames (robust to blinks, a turned head or a few bad frames), except
seam_strength_p90 and the drifts; window values are medians over the window's frames.

What these see is the picture, not where it came from: on ../shared/data the real clips are mostly
smaller, older and more compressed videos than the generated ones, so sharpness, blockiness and
teeth detail rank real below generated, while against the very clip a generated one was made from
they mostly rank it worse (benchmarks/visual_family_eval.py prints both).
"""

from __future__ import annotations

import cv2
import numpy as np

from .. import geometry as G
from .. import landmarks as L
from .. import signals as S
from ..align import mouth_zoom
from ..clip import PreprocessedClip
from ..filters import blur_effect
from ..nss import INNER_FACE, crop_box, face_nss_features, load_model
from ..texture import EPS, LUMA, gradient_energy, grey, laplacian, laplacian_var, second_difference_rms
from .base import FAMILIES, FamilyOutput, FeatureFamily, FeatureLabel

# Regions of the aligned face crop in IOD units around the eye midpoint (x0, y0, x1, y1).
UPPER_FACE = (-0.6, -0.3, 0.6, 0.35)  # brows, eyes, nose bridge
LIPS = (-0.45, 0.42, 0.45, 0.85)  # the mouth with a margin (template mouth corners at +-0.36, 0.62)
_INNER_LIPS = list(L.INNER_LIPS)
# Heavy coding (heavy_coding_logit): the codec reading where the coder's 8-px grid shows (blockiness at least
# GRID_BLOCKINESS) and the reader says coded (codec_logit >= 0, its own boundary: about CRF 38 or harder); NaN
# elsewhere. Neither reading alone says it: the reader takes a blurred face for a squeezed one (a blur takes away
# the detail a starved coder takes), and blockiness is high on still frames a coder keeps refining and on small,
# old, compressed sources. A blur lowers the blockiness and a still frame does not fool the reader, so together
# they read heavy coding alone. 1.23: on the default model's two training corpora no blurred face reads higher (the
# most: 1.22), nor do 95 % of the clips labelled clean on the picture (their q95: 1.23). Without the reader's floor
# a small compressed source read just under it (pcavs/Input__00010, -0.34) and, out of fold, took the cap of the
# coded clips (README, version 41).
GRID_BLOCKINESS = 1.23
# frame_stats whose clip median is a feature of the same name
_NATIVE = ("face_fine_share", "mouth_fine_share", "face_iod_px", "seam_strength", "blockiness",
           "neck_chroma_delta", "neck_luma_delta", "static_blocks", "codec_logit", "surround_detail")


def _ycc(rgb_mean: np.ndarray) -> np.ndarray:
    """(N, 3) mean RGB -> (N, 3) Y, Cb, Cr (BT.601, 0-255 scale, chroma centred on 0)."""
    y = rgb_mean @ LUMA.astype(np.float64)
    return np.stack([y, 0.564 * (rgb_mean[:, 2] - y), 0.713 * (rgb_mean[:, 0] - y)], axis=1)


def _spread(values: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """(n,) series with values at frames t and NaN elsewhere."""
    out = np.full(n, np.nan)
    out[t] = values
    return out


@FAMILIES.register
class Visual(FeatureFamily):
    name = "visual"
    modality = "visual"
    description = ("sharpness and detail of face and mouth, mouth/face detail ratio, seams, blockiness, flicker, "
                   "texture instability, teeth detail, face/neck colour, appearance drift, natural-face statistics")
    clip_features = (
        "face_lapvar",
        "face_grad_energy",
        "face_blur_effect",
        "mouth_lapvar",
        "mouth_grad_energy",
        "mouth_blur_effect",
        "mouth_face_detail_ratio",
        "face_fine_share",
        "mouth_fine_share",
        "mouth_face_fine_ratio",
        "face_iod_px",
        "seam_strength",
        "seam_strength_p90",
        "blockiness",
        "static_blocks",
        "codec_logit",
        "heavy_coding_logit",
        "flicker",
        "texture_instability",
        "teeth_detail",
        "inner_mouth_contrast",
        "neck_chroma_delta",
        "neck_luma_delta",
        "color_drift",
        "texture_drift",
        "nss_distance",
        "surround_detail",
    )
    conditional_features = ("heavy_coding_logit",)  # NaN unless the picture is coded hard
    window_features = (
        "face_lapvar",
        "face_blur_effect",
        "mouth_lapvar",
        "mouth_blur_effect",
        "mouth_face_detail_ratio",
        "face_fine_share",
        "mouth_face_fine_ratio",
        "seam_strength",
        "blockiness",
        "static_blocks",
        "codec_logit",
        "flicker",
        "texture_instability",
        "teeth_detail",
        "neck_chroma_delta",
        "color_deviation",
        "nss_distance",
    )
    feature_labels = {
        "face_lapvar": FeatureLabel("face sharpness (Laplacian variance)", fmt="{:.0f}"),
        "face_grad_energy": FeatureLabel("face edge energy (mean gradient²)", fmt="{:.0f}"),
        "face_blur_effect": FeatureLabel("face blur (0 sharp .. 1 blurred)"),
        "mouth_lapvar": FeatureLabel("mouth sharpness (Laplacian variance)", fmt="{:.0f}"),
        "mouth_grad_energy": FeatureLabel("mouth edge energy (mean gradient²)", fmt="{:.0f}"),
        "mouth_blur_effect": FeatureLabel("mouth blur (0 sharp .. 1 blurred)"),
        "mouth_face_detail_ratio": FeatureLabel("mouth detail relative to the eyes (1 = as sharp)"),
        "face_fine_share": FeatureLabel("finest detail in the face, at the video's resolution", "% of detail",
                                        "{:.0f}", 100),
        "mouth_fine_share": FeatureLabel("finest detail in the mouth, at the video's resolution", "% of detail",
                                         "{:.0f}", 100),
        "mouth_face_fine_ratio": FeatureLabel("finest mouth detail relative to the face's (1 = as fine)"),
        "face_iod_px": FeatureLabel("face size (eye distance)", "px", "{:.0f}"),
        "seam_strength": FeatureLabel("seam around the lower face (median)"),
        "seam_strength_p90": FeatureLabel("seam around the lower face (worst 10 % of frames)"),
        "blockiness": FeatureLabel("coding blockiness (8-px grid edges)"),
        "static_blocks": FeatureLabel("face blocks the coder copied from the frame before", "% of blocks",
                                      "{:.0f}", 100),
        "codec_logit": FeatureLabel("how hard a video coder squeezed the face (> 0: about CRF 38 or harder)"),
        "heavy_coding_logit": FeatureLabel("heavy video coding: the codec reading where the coder's grid shows "
                                           "(none: not coded hard)"),
        "flicker": FeatureLabel("face brightness flicker", "% of brightness", "{:.2f}"),
        "texture_instability": FeatureLabel("fine texture changing between frames (relative)"),
        "teeth_detail": FeatureLabel("teeth detail (Laplacian std, mouth open)", fmt="{:.1f}"),
        "inner_mouth_contrast": FeatureLabel("inner-mouth contrast (luminance std)", fmt="{:.1f}"),
        "neck_chroma_delta": FeatureLabel("face/neck colour difference", fmt="{:.1f}"),
        "neck_luma_delta": FeatureLabel("face/neck brightness difference", fmt="{:.1f}"),
        "color_drift": FeatureLabel("face colour drift, start vs end", fmt="{:.1f}"),
        "texture_drift": FeatureLabel("face detail drift, start vs end (relative)"),
        "color_deviation": FeatureLabel("face colour away from the clip's median", fmt="{:.1f}"),
        "nss_distance": FeatureLabel("distance from real-face image statistics"),
        "surround_detail": FeatureLabel("face detail relative to what surrounds the face (about 1: as sharp; "
                                        "a blurred face on a sharp frame far less)"),
    }
    series_names = ("face_lapvar", "mouth_lapvar", "mouth_face_detail_ratio", "face_luminance", "flicker",
                    "texture_instability", "teeth_detail", "nss_distance", "face_fine_share", "seam_strength",
                    "blockiness", "neck_chroma_delta", "static_blocks", "codec_logit")
    defaults = {
        "blur_every": 10,  # blur_effect (about 1 ms a crop) on every Nth face frame
        "nss_every": 5,  # NSS features on every Nth face frame
        "nss_model": None,  # path of a fitted reference (None: the shipped features/models/face_nss.npz)
        "open_aperture": 0.1,  # inner-lip gap / IOD from which the inside of the mouth is measured ...
        "teeth_every": 2,  # ... on every Nth such frame
        "texture_sigma": 1.5,  # px of the blur whose residue is the fine texture
        "drift_s": 2.0,  # seconds at either end compared by the drifts
    }

    def compute(self, clip: PreprocessedClip, windows: np.ndarray) -> FamilyOutput:
        p = self.params
        n = clip.n_frames
        t = np.flatnonzero(np.asarray(clip.face_valid, bool))
        out = FamilyOutput()
        self._native(clip, windows, out)
        if len(t) == 0:
            return out
        size = clip.face_crops.shape[1]
        face = grey(clip.face_crops[t])
        mouth = grey(clip.mouth_crops[t])
        inner, upper, lips = (crop_box(size, b) for b in (INNER_FACE, UPPER_FACE, LIPS))

        face_lap = _spread(laplacian_var(face[:, inner[0], inner[1]]), t, n)
        mouth_lap = _spread(laplacian_var(mouth), t, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_t = laplacian_var(face[:, lips[0], lips[1]]) / laplacian_var(face[:, upper[0], upper[1]])
        ratio = _spread(np.where(np.isfinite(ratio_t), ratio_t, np.nan), t, n)
        sampled = t[:: p["blur_every"]]
        pick = np.isin(t, sampled)
        face_blur = _spread([blur_effect(g) for g in face[pick][:, inner[0], inner[1]]], sampled, n)
        mouth_blur = _spread([blur_effect(g) for g in mouth[pick]], sampled, n)
        out.series.update(face_lapvar=face_lap, mouth_lapvar=mouth_lap, mouth_face_detail_ratio=ratio)
        out.clip.update(
            face_lapvar=S.nanmedian(face_lap),
            face_grad_energy=float(np.median(gradient_energy(face[:, inner[0], inner[1]]))),
            face_blur_effect=S.nanmedian(face_blur),
            mouth_lapvar=S.nanmedian(mouth_lap),
            mouth_grad_energy=float(np.median(gradient_energy(mouth))),
            mouth_blur_effect=S.nanmedian(mouth_blur),
            mouth_face_detail_ratio=S.nanmedian(ratio),
        )
        out.windows.update(
            face_lapvar=S.window_reduce(face_lap, windows, S.nanmedian),
            face_blur_effect=S.window_reduce(face_blur, windows, S.nanmedian),
            mouth_lapvar=S.window_reduce(mouth_lap, windows, S.nanmedian),
            mouth_blur_effect=S.window_reduce(mouth_blur, windows, S.nanmedian),
            mouth_face_detail_ratio=S.window_reduce(ratio, windows, S.nanmedian),
        )
        self._temporal(clip, t, face, inner, lips, windows, out)
        self._inner_mouth(clip, t, mouth, windows, out)
        self._appearance(clip, t, face_lap, inner, windows, out)
        self._nss(clip, t, windows, out)
        return out

    # ------------------------------------------------------------------ analysis-frame statistics
    def _native(self, clip: PreprocessedClip, windows: np.ndarray, out: FamilyOutput) -> None:
        stats = clip.frame_stats
        if not stats:
            return
        valid = np.asarray(clip.face_valid, bool)
        series = {k: np.where(valid, np.asarray(v, np.float64), np.nan) for k, v in stats.items()}
        for name in _NATIVE:
            if name in series:
                out.clip[name] = S.nanmedian(series[name])
        if "mouth_fine_share" in series and "upper_fine_share" in series:
            with np.errstate(divide="ignore", invalid="ignore"):
                fine_ratio = series["mouth_fine_share"] / series["upper_fine_share"]
            out.clip["mouth_face_fine_ratio"] = S.nanmedian(fine_ratio)
            out.windows["mouth_face_fine_ratio"] = S.window_reduce(fine_ratio, windows, S.nanmedian)
        if "codec_logit" in out.clip and "blockiness" in out.clip:
            codec = out.clip["codec_logit"]
            heavy = out.clip["blockiness"] >= GRID_BLOCKINESS and codec >= 0.0  # False for NaN
            out.clip["heavy_coding_logit"] = codec if heavy else np.nan
        if "seam_strength" in series:
            out.clip["seam_strength_p90"] = S.nanpercentile(series["seam_strength"], 90)
        for name in ("face_fine_share", "seam_strength", "blockiness", "neck_chroma_delta", "static_blocks",
                     "codec_logit"):
            if name in series:
                out.windows[name] = S.window_reduce(series[name], windows, S.nanmedian)
                out.series[name] = series[name]

    # ------------------------------------------------------------------ over time
    def _temporal(self, clip, t, face, inner, lips, windows, out) -> None:
        """Flicker and texture instability over the face without the mouth (speech moves it)."""
        n = clip.n_frames
        region = face[:, inner[0], inner[1]]
        keep = np.ones(region.shape[1:], bool)
        r0, c0 = inner[0].start, inner[1].start
        keep[max(0, lips[0].start - r0):lips[0].stop - r0, max(0, lips[1].start - c0):lips[1].stop - c0] = False
        luminance = _spread(region[:, keep].mean(axis=1), t, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            flicker = 100.0 * second_difference_rms(luminance) / luminance
        sigma = self.params["texture_sigma"]
        texture = np.stack([g - cv2.GaussianBlur(g, (0, 0), sigma) for g in region])[:, keep]
        size = np.abs(texture).mean(axis=1)
        change = np.full(n, np.nan)
        follows = np.flatnonzero(np.diff(t) == 1)  # consecutive face frames only
        if len(follows):
            a, b = follows, follows + 1
            change[t[b]] = np.abs(texture[b] - texture[a]).mean(axis=1) / np.maximum((size[a] + size[b]) / 2, EPS)
        out.series.update(face_luminance=luminance, flicker=flicker, texture_instability=change)
        out.clip.update(flicker=S.nanmedian(flicker), texture_instability=S.nanmedian(change))
        out.windows.update(flicker=S.window_reduce(flicker, windows, S.nanmedian),
                           texture_instability=S.window_reduce(change, windows, S.nanmedian))

    # ------------------------------------------------------------------ teeth and inner mouth
    def _inner_mouth(self, clip, t, mouth, windows, out) -> None:
        """Detail (std of the Laplacian) and contrast (std of the luminance) inside the inner-lip
        polygon, eroded by a pixel so the lip edge itself does not count, on open-mouth frames (every
        `teeth_every`th). Real teeth are crisp and bright against a dark mouth; generated ones are
        often a grey smear."""
        n = clip.n_frames
        aligned = clip.aligned[t].astype(np.float64)
        open_ = np.flatnonzero(G.lip_aperture(aligned) >= self.params["open_aperture"])[:: self.params["teeth_every"]]
        zoom = mouth_zoom(clip.face_crops.shape[1], mouth.shape[1:3])
        detail, contrast = np.full(n, np.nan), np.full(n, np.nan)
        h, w = mouth.shape[1:3]
        kernel = np.ones((3, 3), np.uint8)
        for i in open_:
            poly = aligned[i, _INNER_LIPS] @ zoom[:2, :2].T + zoom[:2, 2]
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
            mask = cv2.erode(mask, kernel).astype(bool)
            mask[[0, -1], :] = mask[:, [0, -1]] = False  # the Laplacian has no value on the border
            if mask.sum() < 12:
                continue
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            r0, r1, c0, c1 = rows[0] - 1, rows[-1] + 2, cols[0] - 1, cols[-1] + 2
            lap = laplacian(mouth[i, r0:r1, c0:c1])
            detail[t[i]] = float(lap[mask[r0 + 1:r1 - 1, c0 + 1:c1 - 1]].std())
            contrast[t[i]] = float(mouth[i][mask].std())
        out.series["teeth_detail"] = detail
        out.clip.update(teeth_detail=S.nanmedian(detail), inner_mouth_contrast=S.nanmedian(contrast))
        out.windows["teeth_detail"] = S.window_reduce(detail, windows, S.nanmedian)

    # ------------------------------------------------------------------ appearance over the clip
    def _appearance(self, clip, t, face_lap, inner, windows, out) -> None:
        n = clip.n_frames
        rgb = clip.face_crops[t][:, inner[0], inner[1]].reshape(len(t), -1, 3).mean(axis=1)
        colour = np.full((n, 3), np.nan)
        colour[t] = _ycc(rgb)
        reference = S.nanmedian(colour, axis=0)
        out.windows["color_deviation"] = np.array(
            [np.linalg.norm(S.nanmedian(colour[s:e], axis=0) - reference) for s, e in windows])
        span = int(round(self.params["drift_s"] * clip.fps))
        span = min(span, len(t) // 3)  # a short clip compares its first and last thirds
        if span < 1:
            return
        first, last = t[:span], t[-span:]
        out.clip["color_drift"] = float(np.linalg.norm(np.median(colour[first], 0) - np.median(colour[last], 0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            out.clip["texture_drift"] = float(abs(np.log(S.nanmedian(face_lap[first]) / S.nanmedian(face_lap[last]))))

    # ------------------------------------------------------------------ natural-face statistics
    def _nss(self, clip, t, windows, out) -> None:
        model = load_model(self.params["nss_model"])
        if model.meta.get("face_size") != clip.face_crops.shape[1]:
            return  # fitted on crops of another size: not comparable
        sampled = t[:: self.params["nss_every"]]
        dist = _spread(model.distance(face_nss_features(clip.face_crops[sampled])), sampled, clip.n_frames)
        out.series["nss_distance"] = dist
        out.clip["nss_distance"] = S.nanmedian(dist)
        out.windows["nss_distance"] = S.window_reduce(dist, windows, S.nanmedian)
