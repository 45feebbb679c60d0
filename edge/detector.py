"""BlazeFace face detection on RGB frames, with int8 or float TFLite models.

The per-frame path is: letterbox into a preallocated input tensor (aspect kept, black borders, as
MediaPipe's ImageToTensorCalculator does), invoke, decode only the anchors whose score passes the
threshold, weighted non-max suppression, and project back to source pixels. Quantized models get their
input through a 256-entry lookup table (pixel -> int8), so int8 costs no more pre-processing than float.

Two bundled models per range: our int8 one and MediaPipe's float one it came from (unmodified); which a
CPU runs with less work is :mod:`edge.precision`'s choice (``[detector] precision``): a Pi 4 runs the
full range in float. A model is checked before it is loaded (:func:`edge.tflite.read_model`): the
bundled ones must match the record shipped beside them, any other its record if it has one and
``[detector] sha256`` if configured.
A model that loads but fails when run raises a :class:`ModelError` from :meth:`FaceDetector.detect`
carrying only that call's message (:class:`edge.tflite.ErrorText`), so a caller that keeps going frame
after frame (:class:`edge.pipeline.Pipeline`) can count and rate-limit one repeated message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.assets import asset_dirs
from edge.blazeface import SPECS, BlazeFaceSpec, anchor_centres
from edge.errors import ModelError
from edge.faces import Face
from edge.precision import Choice, choose
from edge.tflite import ErrorText, load_interpreter

#: File names of the committed int8 models (``assets/models``) by range.
MODEL_FILES = {
    "short": "face_detection_short_range_int8.tflite",
    "full": "face_detection_full_range_int8.tflite",
}
#: File names of MediaPipe's float models (``assets/models``, from the mediapipe==0.10.14 wheel, unmodified;
#: the full range is its sparse file, whose whole graph XNNPACK runs with sparse fp32 kernels).
FLOAT_MODEL_FILES = {
    "short": "face_detection_short_range.tflite",
    "full": "face_detection_full_range_sparse.tflite",
}
BUNDLED = {"int8": MODEL_FILES, "float": FLOAT_MODEL_FILES}
#: Largest side we accept: bigger frames are a configuration mistake, not something to resize per frame.
MAX_SIDE = 16384


def model_search_dirs() -> list[Path]:
    """Where bundled models are looked for: ``$MONA_EDGE_MODELS``, then the bundled assets' places
    (:func:`edge.assets.asset_dirs`: an installed wheel's share dir, then the source tree)."""
    dirs = []
    if os.environ.get("MONA_EDGE_MODELS"):
        dirs.append(Path(os.environ["MONA_EDGE_MODELS"]))
    return dirs + asset_dirs("models")


def default_model_path(detector_range: str, precision: str = "int8") -> Path:
    """The bundled model for a range ("short" or "full") in ``precision`` ("int8": ours, "float":
    MediaPipe's, shipped unmodified; :data:`MODEL_FILES`, :data:`FLOAT_MODEL_FILES`)."""
    if detector_range not in MODEL_FILES:
        raise ModelError(f"detector range {detector_range!r}: expected one of {sorted(MODEL_FILES)}")
    if precision not in BUNDLED:
        raise ModelError(f"precision {precision!r}: expected one of {sorted(BUNDLED)}")
    name = BUNDLED[precision][detector_range]
    for folder in model_search_dirs():
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise ModelError(f"{name}: bundled model not found in " + ", ".join(str(d) for d in model_search_dirs()))


def describe_models(detector: object) -> str | None:
    """The models a detector stack runs and why (:class:`edge.search.FaceSearch`: its whole-frame model
    and its crops' model; a plain :class:`FaceDetector`: itself), for ``mona-edge status``; None if it
    runs none (a stand-in that finds nobody)."""
    parts = []
    for role, part in (("whole frame", getattr(detector, "whole", detector)), ("crops", getattr(detector, "crop", None))):
        if isinstance(part, FaceDetector):
            parts.append(f"{role}: {part.describe()}")
    return "; ".join(parts) or None


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) against boxes ``b`` (n, 4), all (x0, y0, x1, y1)."""
    ix0 = np.maximum(a[0], b[:, 0])
    iy0 = np.maximum(a[1], b[:, 1])
    ix1 = np.minimum(a[2], b[:, 2])
    iy1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float):
    """MediaPipe's WEIGHTED non-max suppression.

    Candidates are taken best first; every remaining candidate overlapping the best by more than
    ``threshold`` IoU is merged into it, box and keypoints averaged with the scores as weights, and the
    merged detection keeps the best score. Averaging is what makes BlazeFace's boxes steady frame to frame.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    kept = []
    while remaining.size:
        best = remaining[0]
        overlap = iou(boxes[best], boxes[remaining])
        group = remaining[overlap > threshold]
        if group.size == 0:  # a degenerate box overlaps nothing, not even itself
            group = remaining[:1]
        weights = scores[group][:, None]
        total = float(weights.sum())
        box = (boxes[group] * weights).sum(axis=0) / total
        kps = (keypoints[group] * weights[:, :, None]).sum(axis=0) / total
        kept.append((box, kps, float(scores[best])))
        remaining = remaining[~np.isin(remaining, group)]
    return kept


def input_levels(values: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """Quantize model-input values with ties rounded down (``ceil(v - 0.5)``)."""
    levels = np.asarray(values, dtype=np.float64) / scale + zero
    return np.ceil(np.round(levels, 6) - 0.5)  # round first: 127.4999999 is a tie, not below one


class FaceDetector:
    """Finds faces in RGB frames of any size with a BlazeFace model (int8 or float).

    ``model_path`` None is the bundled model for ``detector_range`` in ``precision`` ("int8", "float", or
    "auto": :func:`edge.precision.choose` for this CPU), which must match its record; ``sha256``
    (``[detector] sha256``) is checked as well when given. ``choice`` says which file and why (status and
    doctor print it). One instance per thread: it owns its interpreter and input buffer.
    """

    def __init__(self, model_path: Path | None = None, detector_range: str = "full", threads: int = 1,
                 min_score: float | None = None, runtime: str | None = None, *,
                 sha256: str | None = None, precision: str = "int8") -> None:
        if detector_range not in SPECS:
            raise ModelError(f"detector range {detector_range!r}: expected one of {sorted(SPECS)}")
        self.spec: BlazeFaceSpec = SPECS[detector_range]
        self.bundled = not model_path
        if model_path:
            self.model_path = Path(model_path)
            self.choice = Choice("configured", "[detector] model")
        else:
            try:
                self.choice = choose(detector_range, precision)
            except ValueError as exc:
                raise ModelError(str(exc)) from None
            self.model_path = default_model_path(detector_range, self.choice.precision)
        self.interpreter: Any = load_interpreter(self.model_path, threads=threads, prefer=runtime,
                                                 sha256=sha256, require_record=self.bundled)
        self.runtime_name: str = self.interpreter.runtime_name
        self._errors = ErrorText()
        self.min_score = self.spec.min_score if min_score is None else float(min_score)
        if not 0.0 < self.min_score < 1.0:
            raise ModelError(f"min_score {self.min_score}: expected a number between 0 and 1")
        # Compare in logit space so the sigmoid runs only on the few anchors that pass.
        self._min_logit = float(np.log(self.min_score / (1.0 - self.min_score)))
        self._anchors = anchor_centres(self.spec)
        self._setup_input()
        self._setup_outputs()

    # --- model I/O -------------------------------------------------------------------------------
    def _setup_input(self) -> None:
        detail = self.interpreter.get_input_details()[0]
        size = self.spec.input_size
        if tuple(detail["shape"]) != (1, size, size, 3):
            raise ModelError(f"{self.model_path}: input shape {tuple(detail['shape'])} does not match the "
                             f"{self.spec.name}-range model (1, {size}, {size}, 3)")
        self._input_index = detail["index"]
        self._input_dtype = np.dtype(detail["dtype"])
        lo, hi = self.spec.tensor_range
        pixel_values = lo + np.arange(256, dtype=np.float64) * (hi - lo) / 255.0
        if self._input_dtype == np.float32:
            self._lut = None
            self._input = np.full((1, size, size, 3), lo, dtype=np.float32)
        elif self._input_dtype in (np.int8, np.uint8):
            scale, zero = detail["quantization"]
            info = np.iinfo(self._input_dtype)
            # Ties round down: with scale 2/255 every pixel lands exactly half a step below a level, and
            # round-half-even would merge neighbouring pixel values. The quantizer folds the resulting
            # constant -scale/2 into the first convolution's bias (see provisioning.quantize).
            q = np.clip(input_levels(pixel_values, scale, zero), info.min, info.max)
            # cv2.LUT wants a uint8 table; int8 values are stored by their bit pattern.
            self._lut = q.astype(self._input_dtype).view(np.uint8).reshape(1, 256)
            black = q[0]
            self._input = np.full((1, size, size, 3), black, dtype=self._input_dtype)
        else:
            raise ModelError(f"{self.model_path}: input type {self._input_dtype} not supported (float32, int8, uint8)")
        self._border = self._input[0, 0, 0, 0].copy()
        self._last_geometry: tuple[int, int, int, int] | None = None

    def _setup_outputs(self) -> None:
        details = self.interpreter.get_output_details()
        regressor = classifier = None
        for detail in details:
            shape = tuple(detail["shape"])
            if shape == (1, self.spec.num_boxes, self.spec.num_coords):
                regressor = detail
            elif shape == (1, self.spec.num_boxes, 1):
                classifier = detail
        if regressor is None or classifier is None:
            raise ModelError(f"{self.model_path}: outputs {[tuple(d['shape']) for d in details]} are not "
                             f"BlazeFace {self.spec.name}-range regressors and classificators")
        self._regressor: dict = regressor
        self._classifier: dict = classifier

    def _output(self, detail: dict) -> np.ndarray:
        raw = self.interpreter.get_tensor(detail["index"])[0]
        if raw.dtype == np.float32:
            return raw
        scale, zero = detail["quantization"]
        return (raw.astype(np.float32) - zero) * scale

    @property
    def input_tensor(self) -> np.ndarray:
        """The model input as last written by :meth:`letterbox` (the quantizer calibrates on exactly this)."""
        return self._input

    @property
    def is_quantized(self) -> bool:
        return self._input_dtype != np.float32

    def describe(self) -> str:
        """Which file this detector runs and why: ``face_x.tflite (float; auto: <CPU>: float (figures))``."""
        return f"{self.model_path.name} ({self.spec.name} range, {self.choice.why})"

    # --- per frame ---------------------------------------------------------------------------------
    def letterbox(self, rgb: np.ndarray):
        """Write ``rgb`` into the input tensor, aspect kept and centred; return (scale, pad_x, pad_y)."""
        h, w = rgb.shape[:2]
        size = self.spec.input_size
        scale = min(size / w, size / h)
        nw, nh = max(1, min(size, int(round(w * scale)))), max(1, min(size, int(round(h * scale))))
        px, py = (size - nw) // 2, (size - nh) // 2
        geometry = (nw, nh, px, py)
        if geometry != self._last_geometry:  # frame size changed: clear the borders once
            self._input[...] = self._border
            self._last_geometry = geometry
        resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        region = self._input[0, py:py + nh, px:px + nw]
        if self._lut is None:
            lo, hi = self.spec.tensor_range
            np.multiply(resized, (hi - lo) / 255.0, out=region, casting="unsafe")
            region += lo
        else:
            region.view(np.uint8)[...] = cv2.LUT(resized, self._lut)
        return nw / w, nh / h, px, py

    def _invoke(self, rgb: np.ndarray):
        sx, sy, px, py = self.letterbox(rgb)
        try:
            self.interpreter.set_tensor(self._input_index, self._input)
            self.interpreter.invoke()
        except (RuntimeError, ValueError) as exc:  # the model fails when run: name it, this call's text only
            raise ModelError(f"{self.model_path.name}: inference failed: {self._errors.new(exc)}") from exc
        return sx, sy, px, py

    def raw_outputs(self, rgb: np.ndarray):
        """(regressors (N, 16), logits (N,)) as floats: for tools comparing models, not the per-frame path."""
        self._invoke(self._check_image(rgb))
        return self._output(self._regressor).copy(), self._output(self._classifier)[:, 0].copy()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in ``rgb`` (H, W, 3 uint8; grey (H, W) and RGBA are accepted), best score first."""
        sx, sy, px, py = self._invoke(self._check_image(rgb))
        logits = self._output(self._classifier)[:, 0]
        hits = np.nonzero(logits >= self._min_logit)[0]
        if hits.size == 0:
            return []
        raw = self._output(self._regressor)[hits]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits], -self.spec.score_clip, self.spec.score_clip)))
        boxes, keypoints = self._decode(raw, self._anchors[hits])
        faces = []
        size = float(self.spec.input_size)
        for box, kps, score in weighted_nms(boxes, keypoints, scores, self.spec.nms_iou):
            # model-input [0,1] -> letterboxed pixels -> source pixels
            box_px = np.empty(4, dtype=np.float32)
            box_px[0::2] = (box[0::2] * size - px) / sx
            box_px[1::2] = (box[1::2] * size - py) / sy
            kps_px = np.empty_like(kps)
            kps_px[:, 0] = (kps[:, 0] * size - px) / sx
            kps_px[:, 1] = (kps[:, 1] * size - py) / sy
            faces.append(Face(box=box_px, keypoints=kps_px, score=score))
        return faces

    def _decode(self, raw: np.ndarray, anchors: np.ndarray):
        """Regressor values -> boxes (x0, y0, x1, y1) and keypoints (6, 2), normalised to the input."""
        s = self.spec.coord_scale
        cx = raw[:, 0] / s + anchors[:, 0]
        cy = raw[:, 1] / s + anchors[:, 1]
        w = raw[:, 2] / s
        h = raw[:, 3] / s
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        kps = raw[:, 4:4 + 2 * self.spec.num_keypoints].reshape(-1, self.spec.num_keypoints, 2) / s
        kps = kps + anchors[:, None, :]
        return boxes, kps

    @staticmethod
    def _check_image(image: np.ndarray) -> np.ndarray:
        """The frame as contiguous RGB; a ValueError for anything else, because frames come from our own
        camera and image readers (a caller that lets a user's too-large image through checks it first)."""
        if not isinstance(image, np.ndarray):
            raise ValueError(f"image: expected a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(f"image: expected uint8 pixels, got {image.dtype}")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        elif image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
        elif image.ndim == 3 and image.shape[2] == 1:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        elif not (image.ndim == 3 and image.shape[2] == 3):
            raise ValueError(f"image: expected shape (H, W, 3) RGB, got {image.shape}")
        h, w = image.shape[:2]
        if h < 1 or w < 1:
            raise ValueError(f"image: empty image of shape {image.shape}")
        if max(h, w) > MAX_SIDE:
            raise ValueError(f"image: {w}x{h} is larger than {MAX_SIDE} px on a side")
        if not image.flags.c_contiguous:
            image = np.ascontiguousarray(image)
        return image


def bundled_fallback(detector_range: str, precision: str = "auto", **kwargs: Any) -> FaceDetector:
    """The bundled model ``precision`` picks for the range or, if that file cannot be used (damaged,
    missing), the int8 one: what stands in for a configured model that failed. Why int8 last: it ships
    everywhere and is what the tests hold on every CPU, so a Pi 4 with a bad float file keeps detecting."""
    try:
        return FaceDetector(None, detector_range, precision=precision, **kwargs)
    except ModelError as exc:
        if precision == "int8":
            raise
        detector = FaceDetector(None, detector_range, precision="int8", **kwargs)
        detector.choice = Choice("int8", f"the bundled int8 model, because {exc}")
        return detector

