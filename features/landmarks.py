"""Indices into MediaPipe's 478-point face mesh (468 face points + 10 iris points with refine)."""

# Eye corners (subject's right eye is on the image left).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
# Six-point eye contours for the eye aspect ratio: corner, top, top, corner, bottom, bottom.
RIGHT_EYE_EAR = (33, 160, 158, 133, 153, 144)
LEFT_EYE_EAR = (362, 385, 387, 263, 373, 380)
RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473

NOSE_TIP = 1
RIGHT_CHEEK, LEFT_CHEEK = 50, 280  # on the cheekbones, below the eyes
CHIN = 152
FOREHEAD = 10
MOUTH_LEFT, MOUTH_RIGHT = 61, 291  # image-left and image-right mouth corners
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
UPPER_LIP_OUTER, LOWER_LIP_OUTER = 0, 17
# Inner-lip contour, clockwise from the image-left corner (used to paint/measure the mouth opening).
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)

# Brows: mid-brow points and inner-brow points.
RIGHT_BROW_MID, LEFT_BROW_MID = 105, 334
RIGHT_BROW_INNER, LEFT_BROW_INNER = 55, 285
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)

# Stable anchors for the similarity alignment: they move little with expression.
ALIGN_ANCHORS = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER, NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT)

# Upper face (eyes + brows) vs mouth region, for motion-energy ratios.
UPPER_FACE = RIGHT_BROW + LEFT_BROW + RIGHT_EYE_EAR + LEFT_EYE_EAR
MOUTH = OUTER_LIPS + INNER_LIPS
# Left/right pairs for motion symmetry (image-left point, image-right point).
SYMMETRIC_PAIRS = (
    (RIGHT_EYE_OUTER, LEFT_EYE_OUTER),
    (RIGHT_BROW_MID, LEFT_BROW_MID),
    (RIGHT_BROW_INNER, LEFT_BROW_INNER),
    (MOUTH_LEFT, MOUTH_RIGHT),
    (160, 385),
    (144, 380),
    (58, 288),
)
