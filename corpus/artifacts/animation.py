"""Single-image animation: the clip replaced by one of its own frames, animated by the synthetic renderer.

The commonest thing a talking-head generator gets wrong is also the plainest to a viewer: one photo whose
mouth follows the speech while the rest of the face barely lives. `still_portrait` makes that from the
clip itself (the live mouth pasted into a held frame); this artifact makes it the way a generator does,
by warping a single photo with driven controls (corpus/render.py), so the model also learns the look of
rendered motion on a photo and not only of a held frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..render import NoFaceError, TalkingHeadRenderer
from ..speech import controls_from_audio
from .base import ARTIFACTS, Artifact

# Motion channels frozen at each level, in the order a viewer misses them least to most: brows and smile,
# then the head, then the eyes (a photo that never blinks). The mouth is always driven by the speech.
_FROZEN = (("brow", "smile"), ("yaw", "roll", "dx", "dy"), ("blink_l", "blink_r"))
_FEATHER = 0.06  # share of the rendered square over which it fades into the photo (hides the crop's edge)


def _feather_mask(size: int) -> np.ndarray:
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / max(1.0, _FEATHER * size), 0.0, 1.0)
    return np.minimum.outer(ramp, ramp).astype(np.float32)


@ARTIFACTS.register
class PhotoAnimation(Artifact):
    """The segment replaced by its first frame animated from the audio by the synthetic renderer; levels
    are how many motion channels the animation freezes (1: brows and smile, 2: and the head, 3: and the
    eyes, leaving a talking photo whose mouth alone moves)."""

    name = "photo_animation"
    kind = "video"
    order = 10  # before the picture artifacts, which then damage the animated frames as they would a generator's
    needs_landmarks = True
    impacts = {"expression": 3.0, "consistency": 1.0}  # as still_portrait: the same fault, made another way
    levels = (1, 2, 3)
    unit = "motion channels frozen (brows, head, eyes)"
    max_render_side = 512  # render at the face's own resolution up to this side (rendering time grows with it)

    def apply(self, sample, severity, segment, rng):
        out = sample.copy()
        a, b = out.frame_range(segment)
        frozen = int(round(self.parameter(severity)))
        photo = sample.frames[a]
        height, width = photo.shape[:2]
        pts = sample.landmarks[a]
        side = 2.0 * float((pts.max(axis=0) - pts.min(axis=0)).max())  # the renderer's crop: twice the face
        size = int(np.clip(round(min(side, width, height) / 2) * 2, 64, self.max_render_side))
        renderer = TalkingHeadRenderer(photo, size=size)
        try:
            renderer.prepare()
        except NoFaceError:  # the detector misses a face the tracker followed: nothing to animate
            self._note(out, severity, segment, effective=False)
            return out
        controls = controls_from_audio(sample.audio[a * sample.hop: b * sample.hop], sample.sr, sample.fps,
                                       rng=rng, n_frames=b - a)
        for group in _FROZEN[:frozen]:
            for name in group:
                controls.pop(name, None)
        rendered, mesh = renderer.render_with_landmarks(controls)
        # back into the photo: the rendered square where it was cut from, faded in at its edge
        back = cv2.invertAffineTransform(renderer.crop_)
        mask = cv2.warpAffine(_feather_mask(size), back, (width, height), flags=cv2.INTER_LINEAR)[..., None]
        still = photo.astype(np.float32)
        out.landmarks = sample.landmarks.copy()
        for i, t in enumerate(range(a, b)):
            face = cv2.warpAffine(rendered[i], back, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            out.frames[t] = np.clip(mask * face + (1.0 - mask) * still + 0.5, 0, 255).astype(np.uint8)
            out.landmarks[t] = mesh[i, :, :2] @ back[:, :2].T + back[:, 2]
        still_parts = ["brows", "head", "eyes"][:frozen]
        self._note(out, severity, segment, frozen_channels=frozen,
                   issue="a single photo animated, " + ", ".join(still_parts) + " still"
                   + (" (only the mouth moves)" if frozen == len(_FROZEN) else ""))
        return out
