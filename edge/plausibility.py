"""Faces that cannot be faces: dropped before the tracker sees them.

Why: BlazeFace finds "faces" in smooth, low-detail scenes. Measured on the room scenarios
(``tests/bench/rooms.py``), the short-range int8 model sees a frame-sized face (500-565 px wide in a
640x480 frame, score 0.50-0.65) in a plain room in over half the frames, and being the widest face it won
the viewer choice. A real face has a size the camera's geometry bounds and keypoints in a face's
arrangement, so each detection is checked against:

* its width: no wider than a face box (``FACE_BOX_MM``, a generous head width) at the closest a viewer
  comes to the camera (``[gaze] nearest_mm``), through the camera's focal length;
* its keypoints: both eyes and the nose inside the box (with a margin), eyes level-ish;
* its inter-eye distance against the box width: a frontal face's eyes are about 0.4 of its box apart
  (0.40 on the astronaut, 0.39 on Grace Hopper); a turned head brings them closer, but never to nothing
  and never wider than the box.

The score threshold stays the model's own (the detector's ``min_score``): on the scenarios no threshold
above it removed false faces without also losing real viewers (see README, "Real rooms").
"""

from __future__ import annotations

from edge.faces import Face

#: A face box's width in life, mm, with room to spare: a 155 mm face (ear to ear, 63 mm between the eyes)
#: is given 1.5x, since BlazeFace's box varies with pose and hair.
FACE_BOX_MM = 240.0
#: Keypoints may stick out of the box by this fraction of its width (the box is a regression of its own).
KEYPOINT_MARGIN = 0.15
#: Inter-eye distance over box width: allowed range (frontal faces measure about 0.4).
IPD_RATIO = (0.18, 0.7)
#: The eyes' height difference may be at most this fraction of their distance (a head tilted 45 degrees).
MAX_EYE_TILT = 1.0


def max_face_width_px(focal_px: float, nearest_mm: float) -> float:
    """The widest a real face's box can be, in pixels, for a camera of focal length ``focal_px``."""
    return focal_px * FACE_BOX_MM / nearest_mm


def implausible(face: Face, max_width_px: float) -> str | None:
    """Why ``face`` cannot be a face, or None when it can."""
    x0, y0, x1, y1 = (float(v) for v in face.box)
    w, h = x1 - x0, y1 - y0
    if not (w > 0.0 and h > 0.0):
        return "empty box"
    if w > max_width_px:
        return f"{w:.0f} px wide, more than a face at the nearest distance ({max_width_px:.0f} px)"
    kp = face.keypoints
    mx, my = KEYPOINT_MARGIN * w, KEYPOINT_MARGIN * h
    for k in (0, 1, 2):
        x, y = float(kp[k, 0]), float(kp[k, 1])
        if not (x0 - mx <= x <= x1 + mx and y0 - my <= y <= y1 + my):
            return "eyes or nose outside the box"
    dx, dy = float(kp[1, 0] - kp[0, 0]), float(kp[1, 1] - kp[0, 1])
    ipd = (dx * dx + dy * dy) ** 0.5
    if not IPD_RATIO[0] * w <= ipd <= IPD_RATIO[1] * w:
        return f"eyes {ipd:.0f} px apart in a {w:.0f} px box"
    if abs(dy) > MAX_EYE_TILT * abs(dx):
        return "eyes not side by side"
    return None


__all__ = ["FACE_BOX_MM", "implausible", "max_face_width_px"]
