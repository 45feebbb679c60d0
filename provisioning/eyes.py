"""Where a portrait's eyes are: corners, lid contour, iris centre and radius, in image pixels.

Three MediaPipe float models chained the way MediaPipe's own face-mesh + iris graphs chain them:
BlazeFace (face box, eye keypoints) -> face mesh on a rotated square face crop (eye corners) -> iris
model on a rotated square crop around each eye (16-point lid contour, iris centre and 4 edge points).
The iris model is what the eye warp and the gaze measure rely on: it is accurate to a fraction of a
pixel on a 64x64 eye crop, where BlazeFace's eye keypoints are only "somewhere on the eye".

Every pre- and post-processing constant is in the block below, with where it comes from.
Workstation only: the Pi never runs these.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import PackError

# --- model constants (MediaPipe 0.10.14 modules) ------------------------------------------------------
#: Wheel members of the three float models.
FACE_DETECTOR_MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
FACE_MESH_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
IRIS_MEMBER = "mediapipe/modules/iris_landmark/iris_landmark.tflite"

#: Face mesh: 1x192x192x3 RGB in [0, 1]; outputs 1x1x1x1404 (468 x (x, y, z) in input pixels) and a
#: face-presence logit. The crop is the detection box's centre, square side = long side x 1.5, rotated so
#: the BlazeFace eye keypoints are level (face_detection_front_detection_to_roi.pbtxt).
MESH_INPUT = 192
MESH_RANGE = (0.0, 1.0)
MESH_ROI_SCALE = 1.5
MESH_POINTS = 468
MESH_MIN_LOGIT = 0.0  # sigmoid 0.5: below it the crop holds no face
#: Face-mesh indices of each eye's (outer, inner) corner. The first pair is the subject's right eye,
#: which is on the image's left (iris_tracking_cpu.pbtxt calls 33/133 the "left eye boundary").
MESH_EYE_CORNERS = ((33, 133), (263, 362))

#: Iris model: 1x64x64x3 RGB in [0, 1] (zero_center false); outputs 1x213 (71 x (x, y, z) eye contour and
#: brow points) and 1x15 (5 x (x, y, z) iris: centre then 4 edge points), in input pixels. The crop is
#: centred between the two corners, square side = corner distance x 2.3, rotated so the corners are level
#: (iris_landmark_landmarks_to_roi.pbtxt). The model knows one eye only: the image-right eye's crop is
#: mirrored before inference and its points mirrored back (iris_landmark_cpu.pbtxt, IS_RIGHT_EYE).
IRIS_INPUT = 64
IRIS_RANGE = (0.0, 1.0)
IRIS_ROI_SCALE = 2.3
IRIS_CONTOUR_POINTS = 71
#: The first 16 contour points trace the eye opening: 0 = outer corner, 1..7 lower lid (outer to inner),
#: 8 = inner corner, 9..15 upper lid (outer to inner, so 15 sits by the inner corner). Checked by plotting
#: them on real eyes. :data:`LID_LOOP` orders them into one closed loop round the opening.
LID_POINTS = 16
LID_LOOP = (0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9)
LID_OUTER, LID_INNER = 0, 8


@dataclass(frozen=True)
class Eye:
    """One eye in image pixels (x, y).

    ``lid`` is the closed 16-point loop round the visible opening (:data:`LID_LOOP` order: outer corner,
    lower lid, inner corner at index 8, upper lid back towards the outer corner); the iris
    radius is the mean distance of the model's four iris edge points from its centre.
    """

    outer_corner: np.ndarray
    inner_corner: np.ndarray
    lid: np.ndarray
    iris_centre: np.ndarray
    iris_radius: float

    @property
    def corners_left_to_right(self) -> tuple[np.ndarray, np.ndarray]:
        """The two corners in the order the viewer sees them, left then right."""
        if self.outer_corner[0] <= self.inner_corner[0]:
            return self.outer_corner, self.inner_corner
        return self.inner_corner, self.outer_corner

    @property
    def width(self) -> float:
        return float(np.hypot(*(self.inner_corner - self.outer_corner)))

    @property
    def centre(self) -> np.ndarray:
        return (self.outer_corner + self.inner_corner) * 0.5

    def gaze(self) -> float:
        """Iris position between the corners along their line: -1 at the left corner, +1 at the right."""
        left, right = self.corners_left_to_right
        axis = right - left
        t = float(np.dot(self.iris_centre - left, axis) / max(float(np.dot(axis, axis)), 1e-9))
        return 2.0 * t - 1.0

    def opening_mask(self, shape: tuple[int, int], supersample: int = 4) -> np.ndarray:
        """Anti-aliased fill of the lid contour, float32 in [0, 1], for an image of ``shape`` (h, w)."""
        h, w = shape[:2]
        pts = np.round((self.lid + 0.5) * supersample - 0.5).astype(np.int32)
        big = np.zeros((h * supersample, w * supersample), np.uint8)
        cv2.fillPoly(big, [pts], (255,), lineType=cv2.LINE_8)
        return cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@dataclass(frozen=True)
class EyeGeometry:
    """Both eyes of the one face in a portrait, ``left`` being the eye on the image's left."""

    left: Eye
    right: Eye
    face_box: np.ndarray  # (x0, y0, x1, y1) from the face detector
    image_size: tuple[int, int]  # (w, h) of the image they were found in

    @property
    def eyes(self) -> tuple[Eye, Eye]:
        return self.left, self.right

    def gaze(self) -> float:
        """Mean of the two eyes' :meth:`Eye.gaze`: the portrait's horizontal gaze, -1 left .. +1 right."""
        return 0.5 * (self.left.gaze() + self.right.gaze())


# --- model plumbing -----------------------------------------------------------------------------------
@cache
def _interpreter(member: str) -> Any:
    """One interpreter per model per process: loading costs ~50 ms, invoking a few ms."""
    from edge.tflite import load_interpreter
    from provisioning.mediapipe_wheel import extract_member

    return load_interpreter(Path(extract_member(member)), threads=2)


@cache
def _face_detector() -> Any:
    from edge.detector import FaceDetector
    from provisioning.mediapipe_wheel import extract_member

    return FaceDetector(Path(extract_member(FACE_DETECTOR_MEMBER)), "short")


def _square_crop(rgb: np.ndarray, centre: np.ndarray, side: float, angle_rad: float, size: int,
                 flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop of a rotated square; returns it and the 2x3 crop->image affine.

    Models give points in continuous crop coordinates (pixel j spans [j, j+1]); the returned affine takes
    those to image pixel-index coordinates (pixel (x, y) is centred on (x, y)), the ones used everywhere
    else here. Half a crop pixel matters on a 20 px eye.
    """
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    scale = side / size
    linear = scale * np.array([[c, -s], [s, c]])
    if flip:  # crop u -> size - u before the rotation
        linear = linear @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    to_image = np.zeros((2, 3), np.float64)
    to_image[:, :2] = linear
    # continuous crop centre (size/2, size/2) lands on continuous image centre (index + 0.5), minus 0.5
    to_image[:, 2] = np.asarray(centre, np.float64) - linear @ np.array([size / 2.0, size / 2.0])
    index_affine = to_image.copy()  # crop index q is continuous q + 0.5
    index_affine[:, 2] += linear @ np.array([0.5, 0.5])
    crop = cv2.warpAffine(rgb, cv2.invertAffineTransform(index_affine), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, to_image


def _run(member: str, crop: np.ndarray, value_range: tuple[float, float]) -> list:
    interp = _interpreter(member)
    lo, hi = value_range
    tensor = (crop.astype(np.float32) * ((hi - lo) / 255.0) + lo)[None]
    interp.set_tensor(interp.get_input_details()[0]["index"], tensor)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def _to_image(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"portrait: expected an (H, W, 3) uint8 RGB array, got {got}")
    return rgb


# --- the stages ---------------------------------------------------------------------------------------
def detect_face(rgb: np.ndarray):
    """The portrait's face (an ``edge.faces.Face``): the biggest confident BlazeFace detection."""
    faces = _face_detector().detect(_check_rgb(rgb))
    if not faces:
        raise PackError("portrait: no face found by BlazeFace (short range); crop the picture closer to the face")
    return max(faces, key=lambda f: f.width * f.height)


def face_mesh(rgb: np.ndarray, face) -> np.ndarray:
    """468 face-mesh points (x, y) in image pixels for a detected face."""
    box = np.asarray(face.box, np.float64)
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    side = max(box[2] - box[0], box[3] - box[1]) * MESH_ROI_SCALE
    d = np.asarray(face.keypoints[1], np.float64) - np.asarray(face.keypoints[0], np.float64)
    crop, to_image = _square_crop(rgb, centre, side, float(np.arctan2(d[1], d[0])), MESH_INPUT)
    outputs = _run(FACE_MESH_MEMBER, crop, MESH_RANGE)
    landmarks = next(o for o in outputs if o.size == MESH_POINTS * 3).reshape(MESH_POINTS, 3)
    flag = next(o for o in outputs if o.size == 1)
    if float(flag.ravel()[0]) < MESH_MIN_LOGIT:
        raise PackError("portrait: the face mesh model sees no face in the detected face box")
    return _to_image(landmarks[:, :2].astype(np.float64), to_image)


def iris_eye(rgb: np.ndarray, outer: np.ndarray, inner: np.ndarray, mirrored: bool) -> Eye:
    """Run the iris model on the crop spanned by one eye's corners (``mirrored`` for the image-right eye)."""
    outer = np.asarray(outer, np.float64)
    inner = np.asarray(inner, np.float64)
    a, b = (inner, outer) if mirrored else (outer, inner)  # left-to-right in the model's view
    d = b - a
    side = float(np.hypot(*d)) * IRIS_ROI_SCALE
    if side < 4:
        raise PackError(f"portrait: eye only {side / IRIS_ROI_SCALE:.1f} px wide; use a larger picture")
    crop, to_image = _square_crop(rgb, (a + b) / 2, side, float(np.arctan2(d[1], d[0])), IRIS_INPUT,
                                  flip=mirrored)
    outputs = _run(IRIS_MEMBER, crop, IRIS_RANGE)
    contour = next(o for o in outputs if o.size == IRIS_CONTOUR_POINTS * 3).reshape(-1, 3)[:, :2]
    iris = next(o for o in outputs if o.size == 15).reshape(5, 3)[:, :2]
    lid = _to_image(contour[list(LID_LOOP)].astype(np.float64), to_image)
    iris_px = _to_image(iris.astype(np.float64), to_image)
    radius = float(np.mean(np.hypot(*(iris_px[1:] - iris_px[0]).T)))
    return Eye(outer_corner=lid[LID_OUTER].copy(), inner_corner=lid[LID_INNER].copy(), lid=lid,
               iris_centre=iris_px[0].copy(), iris_radius=radius)


def locate_eyes(rgb: np.ndarray) -> EyeGeometry:
    """Find the portrait's face and both eyes (BlazeFace -> face mesh -> iris model)."""
    rgb = _check_rgb(rgb)
    face = detect_face(rgb)
    mesh = face_mesh(rgb, face)
    eyes = [iris_eye(rgb, mesh[o], mesh[i], mirrored=k == 1) for k, (o, i) in enumerate(MESH_EYE_CORNERS)]
    eyes.sort(key=lambda e: float(e.centre[0]))
    return EyeGeometry(left=eyes[0], right=eyes[1], face_box=np.asarray(face.box, np.float64).copy(),
                       image_size=(rgb.shape[1], rgb.shape[0]))


def relocate_eyes(rgb: np.ndarray, hint: EyeGeometry | None = None) -> EyeGeometry:
    """Re-find both eyes, running only the iris model in the crops ``hint``'s corners define.

    Used to measure many images of the same portrait whose lids did not move: the iris model alone is
    fast and its crop does not depend on where the iris now is. Without a hint, :func:`locate_eyes`.
    """
    if hint is None:
        return locate_eyes(rgb)
    rgb = _check_rgb(rgb)
    if (rgb.shape[1], rgb.shape[0]) != tuple(hint.image_size):
        raise ValueError(f"geometry hint: made for a {hint.image_size[0]}x{hint.image_size[1]} image, "
                         f"got {rgb.shape[1]}x{rgb.shape[0]}")
    left = iris_eye(rgb, hint.left.outer_corner, hint.left.inner_corner, mirrored=False)
    right = iris_eye(rgb, hint.right.outer_corner, hint.right.inner_corner, mirrored=True)
    return EyeGeometry(left=left, right=right, face_box=hint.face_box, image_size=hint.image_size)
