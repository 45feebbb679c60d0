"""The detector's result type, shared by the detector, the gaze logic and the tools.

Kept apart from ``edge.detector`` so that code which only *consumes* faces (gaze, tests, the frame
builder) does not pull in a TFLite runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: BlazeFace's six keypoints, in the model's output order. "Right" is the subject's right, which
#: appears on the *left* of an unmirrored image.
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion")


@dataclass(frozen=True)
class Face:
    """One detected face in source-image pixel coordinates.

    ``box`` is ``(x0, y0, x1, y1)``; ``keypoints`` is a ``(6, 2)`` array of ``(x, y)`` in
    :data:`KEYPOINT_NAMES` order; ``score`` is the sigmoid confidence in ``[0, 1]``.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def right_eye(self) -> np.ndarray:
        return self.keypoints[0]

    @property
    def left_eye(self) -> np.ndarray:
        return self.keypoints[1]

    @property
    def eye_midpoint(self) -> np.ndarray:
        return (self.keypoints[0] + self.keypoints[1]) * 0.5

    @property
    def eye_distance(self) -> float:
        """Inter-pupil distance in pixels: with the camera's field of view it gives the viewer's distance."""
        return float(np.hypot(*(self.keypoints[1] - self.keypoints[0])))

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def moved(self, dx: float, dy: float) -> Face:
        """The same face ``(dx, dy)`` pixels away (a crop's faces in the frame's pixels, a walker's face
        where their velocity has taken them)."""
        box = np.asarray(self.box)
        kps = np.asarray(self.keypoints)
        return Face(box=(box + np.array([dx, dy, dx, dy], np.float32)).astype(box.dtype),
                    keypoints=(kps + np.array([dx, dy], np.float32)).astype(kps.dtype), score=self.score)

    def to_dict(self) -> dict:
        """A JSON-ready form: what ``mona-edge detect --json`` prints and the status socket reports."""
        out: dict = {
            "score": round(float(self.score), 4),
            "box": [round(float(v), 2) for v in self.box],
        }
        for name, (x, y) in zip(KEYPOINT_NAMES, self.keypoints):
            out[name] = [round(float(x), 2), round(float(y), 2)]
        return out
