"""BlazeFace's pre- and post-processing constants, written down once.

Every number here comes from MediaPipe's own graph options for the two face-detection models
(``mediapipe/modules/face_detection/face_detection.pbtxt``, ``face_detection_short_range.pbtxt`` and
``face_detection_full_range.pbtxt``): ImageToTensorCalculator, SsdAnchorsCalculator,
TensorsToDetectionsCalculator and NonMaxSuppressionCalculator. The detector and the quantizer both read
them from here so the int8 models are judged against exactly the pipeline the float models were made for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One model's geometry and decoding options."""

    name: str
    input_size: int  # square tensor_width == tensor_height
    strides: tuple[int, ...]  # one per SSD layer; consecutive equal strides share a feature map
    interpolated_scale_aspect_ratio: float  # 1.0 adds a second anchor per layer, 0.0 none
    num_boxes: int
    min_score: float  # min_score_thresh
    # Shared by both models (face_detection.pbtxt):
    anchor_offset: float = 0.5
    num_coords: int = 16  # box (cx, cy, w, h) + 6 keypoints (x, y)
    num_keypoints: int = 6
    score_clip: float = 100.0  # score_clipping_thresh, applied to the logit before the sigmoid
    nms_iou: float = 0.3  # min_suppression_threshold, weighted NMS with IoU overlap
    tensor_range: tuple[float, float] = (-1.0, 1.0)  # output_tensor_float_range of ImageToTensor

    @property
    def coord_scale(self) -> float:
        """x_scale == y_scale == w_scale == h_scale == the input size for both models."""
        return float(self.input_size)


SHORT_RANGE = BlazeFaceSpec(
    name="short", input_size=128, strides=(8, 16, 16, 16), interpolated_scale_aspect_ratio=1.0,
    num_boxes=896, min_score=0.5,
)
FULL_RANGE = BlazeFaceSpec(
    name="full", input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0,
    num_boxes=2304, min_score=0.6,
)
SPECS = {"short": SHORT_RANGE, "full": FULL_RANGE}


def anchor_centres(spec: BlazeFaceSpec) -> np.ndarray:
    """SSD anchor centres ``(num_boxes, 2)`` as (x, y) in [0, 1] of the model input.

    With ``fixed_anchor_size`` every anchor is 1x1, so only the centres matter. Layers that share a
    stride share a feature map; each layer contributes one anchor per cell for aspect ratio 1.0 plus one
    more when ``interpolated_scale_aspect_ratio`` is non-zero (MediaPipe's SsdAnchorsCalculator).
    """
    per_layer = 1 + (1 if spec.interpolated_scale_aspect_ratio > 0 else 0)
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        group = 0
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            group += per_layer
            layer += 1
        cells = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        cell_xy = np.stack([(xs + spec.anchor_offset) / cells, (ys + spec.anchor_offset) / cells], axis=-1)
        centres.append(np.repeat(cell_xy.reshape(-1, 2), group, axis=0))
    out = np.concatenate(centres).astype(np.float32)
    if out.shape[0] != spec.num_boxes:
        raise ValueError(f"anchor generation for {spec.name} gave {out.shape[0]} anchors, expected {spec.num_boxes}")
    return out
