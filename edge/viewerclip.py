"""Synthetic viewer footage from a real photograph: a person walking through a room, for the demo and tests.

A camera and a visitor are what this product needs and what a workstation lacks, so we film one: the
astronaut photograph (NASA, public domain; shipped by scikit-image) is cut out along a hand-drawn
head-and-shoulders outline and composited into a plain room at a given face width and eye position.
The renderer is here (numpy, OpenCV, Pillow: Pi dependencies only) so tests and the demo can make any walk;
scikit-image is needed only to obtain the photograph, when a clip is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edge.errors import MonaEdgeError

#: Her eye centres in scikit-image's 512x512 ``astronaut`` (hand-measured on a 4x enlargement), image order.
PHOTO_EYES = np.array([[203.0, 101.0], [246.0, 103.0]])
#: Face width (ear to ear at eye height) in that photo, px: the scale reference for ``face_width``.
PHOTO_FACE_WIDTH = 106.0
#: Her outline in the photo, drawn by hand: head ellipse, helmet ring ellipse, shoulders polygon.
_HEAD = (227.0, 98.0, 77.0, 87.0)
_RING = (210.0, 222.0, 102.0, 78.0)
_SHOULDERS = [(112, 245), (60, 268), (18, 330), (0, 400), (0, 512), (330, 512), (338, 330), (345, 270), (305, 245)]

FRAME_SIZE = (640, 480)


@dataclass(frozen=True)
class Person:
    """Where one person is in a frame: face width and eye midpoint, in frame pixels."""

    face_width: float
    eye_x: float
    eye_y: float
    mirror: bool = False


def astronaut_photo() -> np.ndarray:
    """The public-domain photograph, from scikit-image (a workstation/test dependency, not a Pi one)."""
    import skimage.data

    return skimage.data.astronaut()


def cutout(photo: np.ndarray) -> np.ndarray:
    """RGBA float32 cut-out of her head and shoulders: the outline, feathered by a few pixels."""
    h, w = photo.shape[:2]
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for cx, cy, rx, ry in (_HEAD, _RING):
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    draw.polygon(_SHOULDERS, fill=255)
    alpha = cv2.GaussianBlur(np.asarray(mask, np.float32) / 255.0, (0, 0), 2.5)
    rgba = np.empty((h, w, 4), np.float32)
    rgba[..., :3] = photo
    rgba[..., 3] = alpha
    return rgba


def room(size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A plain room: lit wall with a window and a door, skirting board, wooden floor. No faces in it."""
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    horizon = int(h * 0.72)
    for y in range(horizon):  # wall: lighter towards the ceiling light
        shade = int(200 - 35 * y / horizon)
        draw.line([(0, y), (w, y)], fill=(shade, int(shade * 0.95), int(shade * 0.85)))
    for y in range(horizon, h):  # floor: darker near the camera
        shade = int(130 - 50 * (y - horizon) / (h - horizon))
        draw.line([(0, y), (w, y)], fill=(shade, int(shade * 0.72), int(shade * 0.5)))
    for x in range(-h, w, max(24, w // 16)):  # floor boards converging slightly
        draw.line([(x + h // 2, horizon), (x, h)], fill=(70, 50, 35))
    draw.rectangle([0, horizon - 8, w, horizon], fill=(235, 235, 228))
    draw.rectangle([int(w * 0.06), int(h * 0.12), int(w * 0.3), int(h * 0.5)], fill=(205, 222, 235),
                   outline=(245, 245, 245), width=6)
    draw.line([(int(w * 0.18), int(h * 0.12)), (int(w * 0.18), int(h * 0.5))], fill=(245, 245, 245), width=4)
    draw.rectangle([int(w * 0.72), int(h * 0.18), int(w * 0.88), horizon - 8], fill=(150, 110, 75),
                   outline=(110, 80, 55), width=4)
    draw.ellipse([int(w * 0.85), int(h * 0.45), int(w * 0.86) + 4, int(h * 0.46) + 4], fill=(210, 190, 90))
    return np.asarray(img).copy()


def compose(background: np.ndarray, sprite: np.ndarray, people: Sequence[Person]) -> np.ndarray:
    """``background`` with each person alpha-blended in, farthest (smallest) first so nearer ones occlude."""
    frame = background.astype(np.float32)
    fh, fw = frame.shape[:2]
    for person in sorted(people, key=lambda p: p.face_width):
        scale = person.face_width / PHOTO_FACE_WIDTH
        src = sprite[:, ::-1] if person.mirror else sprite
        eyes = PHOTO_EYES.copy()
        if person.mirror:
            eyes[:, 0] = sprite.shape[1] - eyes[:, 0]
        mid = eyes.mean(axis=0) * scale
        scaled = cv2.resize(np.ascontiguousarray(src), None, fx=scale, fy=scale,
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x0, y0 = int(round(person.eye_x - mid[0])), int(round(person.eye_y - mid[1]))
        sh, sw = scaled.shape[:2]
        fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(fw, x0 + sw), min(fh, y0 + sh)
        if fx1 <= fx0 or fy1 <= fy0:
            continue
        part = scaled[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
        alpha = part[..., 3:4]
        region = frame[fy0:fy1, fx0:fx1]
        region += (part[..., :3] - region) * alpha
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def eye_height(face_width: float, frame_height: int = FRAME_SIZE[1]) -> float:
    """Eye height that keeps her shoulders running out of the bottom of the frame (no floating busts)."""
    scale = face_width / PHOTO_FACE_WIDTH
    return float(min(frame_height * 0.5, max(frame_height * 0.3, frame_height + 12 - (512 - 102) * scale)))


def _lerp(a: float, b: float, u: float) -> float:
    return a + (b - a) * u


def demo_walk(fps: float = 15.0) -> list[list[Person]]:
    """The bundled clip's script: empty room; a walk across at mid distance, leaving right; back from the
    right coming nearer (face 100 -> 200 px), lingering; walking away farther to the left (200 -> 60 px)
    and out; an empty room long enough for the eyes to return to centre; a last peek in from the right.
    About 27 s."""
    shots: list[list[Person]] = []

    def seg(seconds: float, fn) -> None:
        n = int(round(seconds * fps))
        for i in range(n):
            u = i / max(1, n - 1)
            t = len(shots) / fps
            people = fn(u, t)
            shots.append([people] if people else [])

    def walker(w0, w1, x0, x1):
        def fn(u, t):
            w = _lerp(w0, w1, u)
            bob = 3.0 * np.sin(2 * np.pi * 1.8 * t)  # stride bob
            return Person(w, _lerp(x0, x1, u), eye_height(w) + bob)
        return fn

    def linger(w, x, amplitude):
        def fn(u, t):
            return Person(w, x + amplitude * np.sin(2 * np.pi * 0.4 * t), eye_height(w) + 2 * np.sin(2 * np.pi * 0.7 * t))
        return fn

    seg(1.5, lambda u, t: None)
    seg(6.0, walker(100, 110, -70, 710))
    seg(1.5, lambda u, t: None)
    seg(4.0, walker(110, 195, 710, 330))
    seg(2.0, linger(195, 330, 18))
    seg(5.0, walker(195, 60, 330, -50))
    seg(5.0, lambda u, t: None)  # longer than [gaze] idle_seconds: the eyes go back to centre
    seg(2.0, walker(120, 120, 700, 500))
    return shots


def write_clip(path: str | Path, script: Iterable[Sequence[Person]], fps: float = 15.0,
               size: tuple[int, int] = FRAME_SIZE, photo: np.ndarray | None = None,
               blur: float = 0.9) -> int:
    """Render ``script`` (people per frame) to a video (``.mp4``: MPEG-4 part 2, ``.avi``: MJPG); returns frames."""
    path = Path(path)
    photo = astronaut_photo() if photo is None else photo
    sprite = cutout(photo)
    background = room(size)
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise MonaEdgeError(f"{path}: OpenCV cannot write {fourcc} video here")  # the user's output path
    count = 0
    try:
        for people in script:
            frame = compose(background, sprite, people)
            if blur:  # a small camera's optics: also what keeps the clip small
                frame = cv2.GaussianBlur(frame, (0, 0), blur)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        writer.release()
    return count
