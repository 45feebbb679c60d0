"""Relative motion transfer: how driving keypoints move the source's keypoints (paper Sec. 3.4).

Absolute driving keypoints would paste the driver's face shape onto the source; relative transfer moves the
source's own keypoints by the driver's displacement from a reference frame, scaled by the ratio of the two
faces' sizes.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError

from .keypoint_detector import Keypoints


def hull_side(points: np.ndarray) -> float:
    """sqrt of the convex-hull area of ``points`` ``(K, 2)``: a length that grows with the face's size.

    In 2-D, ``ConvexHull.volume`` is the area (``area`` would be the perimeter). Collinear or coincident
    keypoints have no area; that is returned as 0.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    try:
        return float(np.sqrt(ConvexHull(pts).volume))
    except (QhullError, ValueError):
        return 0.0


def movement_scale(source_points: np.ndarray, initial_points: np.ndarray) -> float:
    """How much to scale driving displacements: sqrt(hull area) of source over initial-driving keypoints.

    Degenerate keypoint sets (no hull area on either side) make the ratio meaningless, so motion is then
    transferred unscaled (1.0).
    """
    source, initial = hull_side(source_points), hull_side(initial_points)
    if source == 0.0 or initial == 0.0:
        return 1.0
    return source / initial


def relative_keypoints(kp_source: Keypoints, kp_driving: Keypoints, kp_initial: Keypoints,
                       scale: float) -> Keypoints:
    """Source keypoints moved as the driving ones moved since ``kp_initial``.

    value = kp_s + scale * (kp_d - kp_di); jacobian = (J_d J_di^-1) J_s. Batch sizes broadcast, so one
    source and one initial frame serve a batch of driving frames.
    """
    value = kp_source.value + (kp_driving.value - kp_initial.value) * scale
    jacobian = (kp_driving.jacobian @ torch.linalg.inv(kp_initial.jacobian)) @ kp_source.jacobian
    return Keypoints(value, jacobian)


def normalised_shape(points: np.ndarray) -> np.ndarray:
    """Keypoints centred on their mean and divided by ``hull_side``: pose, not position or size."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    centred = pts - pts.mean(axis=0, keepdims=True)
    side = hull_side(pts)
    return centred / side if side > 0 else centred


def best_aligned_frame(source_points: np.ndarray, driving_points: np.ndarray) -> int:
    """Index of the driving frame whose normalised keypoints are closest (sum of squares) to the source's.

    Relative transfer reproduces the source exactly at that frame, so starting there keeps the source's
    pose as the animation's rest pose instead of the driver's first frame.
    """
    driving = np.asarray(driving_points, dtype=np.float64)
    if driving.ndim != 3 or driving.shape[0] == 0:
        raise ValueError(f"driving keypoints of shape {driving.shape}: expected (frames >= 1, K, 2)")
    target = normalised_shape(source_points)
    distances = [float(((normalised_shape(frame) - target) ** 2).sum()) for frame in driving]
    return int(np.argmin(distances))
