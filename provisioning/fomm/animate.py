"""Animate a still portrait with a driving video: relative keypoint motion with adapted movement scale,
starting from the driving frame best aligned with the portrait."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from edge.errors import PackError

from .checkpoint import FommModel
from .keypoint_detector import Keypoints
from .motion import best_aligned_frame, movement_scale, relative_keypoints


def read_driving_video(path: str | Path) -> list[np.ndarray]:
    """Every frame of the video at ``path`` (the user's ``--driver``) as RGB uint8 ``(H, W, 3)``; a
    :class:`PackError` naming it if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise PackError(f"driving video {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise PackError(f"driving video {path}: OpenCV cannot open it (not a video, or an unsupported codec)")
        frames = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise PackError(f"driving video {path}: no frames could be decoded")
    return frames


def _check_rgb(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{what}: got {dtype} of shape {shape}, expected uint8 RGB (H, W, 3)")


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), cubic when enlarging."""
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    shrinking = width * height < w * h
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _to_tensor(frames: Sequence[np.ndarray], size: int, device: torch.device) -> torch.Tensor:
    """``(B, 3, size, size)`` float in [0, 1], the networks' input."""
    batch = np.stack([_resize(f, size, size) for f in frames])
    tensor = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2)
    return tensor.float().div_(255.0)


def _to_uint8(prediction: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, H, W, 3)`` uint8."""
    scaled = prediction.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def detect_keypoints(model: FommModel, frames: Sequence[np.ndarray], batch_size: int,
                     progress: bool = False) -> Keypoints:
    """Keypoints of every frame, ``batch_size`` frames at a time, gathered on the model's device."""
    values, jacobians = [], []
    size = model.config.image_size
    with torch.inference_mode(), tqdm(total=len(frames), unit="frame", desc="FOMM keypoints",
                                      disable=not progress) as bar:
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            kp = model.kp_detector(_to_tensor(chunk, size, model.device))
            values.append(kp.value)
            jacobians.append(kp.jacobian)
            bar.update(len(chunk))
    return Keypoints(torch.cat(values), torch.cat(jacobians))


class DrivingMotion(NamedTuple):
    """Where the source's keypoints go in every driving frame, and how that was decided."""

    best_frame: int  # the driving frame taken as the source's pose
    scale: float  # movement scale, sqrt hull area of source / initial driving keypoints
    keypoints: Keypoints  # (N, K, ...) source keypoints moved relative to the best frame


def driving_motion(kp_source: Keypoints, kp_driving: Keypoints) -> DrivingMotion:
    """Relative motion with adapted scale from the best aligned driving frame, for all frames at once.

    ``kp_source`` has batch 1; ``kp_driving`` one entry per driving frame.
    """
    source_points = kp_source.value[0].cpu().numpy()
    best = best_aligned_frame(source_points, kp_driving.value.cpu().numpy())
    initial = kp_driving.take(slice(best, best + 1))
    scale = movement_scale(source_points, initial.value[0].cpu().numpy())
    return DrivingMotion(best, scale, relative_keypoints(kp_source, kp_driving, initial, scale))


def animate(model: FommModel, source_rgb: np.ndarray, driving_frames: Sequence[np.ndarray],
            batch_size: int = 8, progress: bool = True) -> list[np.ndarray]:
    """One uint8 RGB frame per driving frame, each the size of ``source_rgb``.

    The source is resized to the model's square input (256) and the results back to the source's size, so
    callers should pass a square head crop. Motion is relative to the driving frame whose keypoints best
    match the source's pose, scaled by the ratio of the keypoint hulls' sizes.
    """
    _check_rgb(source_rgb, "source image")
    if len(driving_frames) == 0:
        raise ValueError("driving frames: none given; need at least one")
    for i, frame in enumerate(driving_frames):
        _check_rgb(frame, f"driving frame {i}")
    if int(batch_size) < 1:
        raise PackError(f"batch_size {batch_size}: must be >= 1")  # --batch-size
    batch_size = int(batch_size)
    height, width = source_rgb.shape[:2]
    size = model.config.image_size

    with torch.inference_mode():
        source = _to_tensor([source_rgb], size, model.device)
        kp_source = model.kp_detector(source)
        motion = driving_motion(kp_source, detect_keypoints(model, driving_frames, batch_size, progress))
        encoded = model.generator.encode(source)

        results: list[np.ndarray] = []
        with tqdm(total=len(driving_frames), unit="frame", desc="FOMM frames", disable=not progress) as bar:
            for start in range(0, len(driving_frames), batch_size):
                kp_norm = motion.keypoints.take(slice(start, start + batch_size))
                prediction = model.generator.render(encoded, kp_norm, kp_source)["prediction"]
                results.extend(_resize(frame, width, height) for frame in _to_uint8(prediction))
                bar.update(kp_norm.value.shape[0])
    return results
