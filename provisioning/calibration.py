"""Calibration frames for the int8 detector: real faces as a wall-mounted camera sees them.

A picture frame's camera looks into a room: faces from about 20 px wide (across the room) to 300 px (right
in front), anywhere in a 640x480 frame, sometimes two, under varying light and sensor noise, and plenty of
frames with no face at all. The faces are real photographs that ship inside registry packages (no download):
scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain), its ``camera`` (the cameraman) and its
LFW subset of 25x25 faces, and matplotlib's ``grace_hopper`` (US Navy, public domain). Backgrounds are
scikit-image's other sample photographs. Everything is seeded, so the set (and the quantized model) is
reproducible byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FRAME_SIZE = (640, 480)
DEFAULT_COUNT = 192
DEFAULT_SEED = 20261123


Point = tuple[float, float]


@dataclass(frozen=True)
class FaceSource:
    """A portrait crop, where its face is in it (x0, y0, x1, y1) and, for frontal faces, its two eye
    centres (image order), all measured once by hand in crop pixels."""

    name: str
    image: np.ndarray
    face: tuple[int, int, int, int]
    eyes: tuple[Point, Point] | None = None


@dataclass(frozen=True)
class PlacedFace:
    """Where a face landed in a generated frame: the ground truth a detector is scored against."""

    source: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    eyes: np.ndarray | None  # (2, 2) eye centres in frame pixels, image order; None when not annotated
    patch: tuple[int, int, int, int]  # the frame region the portrait was pasted into (for occlusion)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image[..., :3])


def face_sources() -> list[FaceSource]:
    """The real portraits, each cropped to head and shoulders with its face box."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    astronaut = skimage.data.astronaut()
    with Image.open(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))) as img:
        hopper = np.asarray(img.convert("RGB"))
    camera = _rgb(skimage.data.camera())
    sources = [
        FaceSource("skimage:astronaut", astronaut[0:330, 90:370], (82, 70, 190, 180), ((113, 101), (156, 103))),
        FaceSource("matplotlib:grace_hopper", hopper[40:520, 60:460], (100, 95, 305, 300), ((161, 150), (242, 147))),
        FaceSource("skimage:camera", camera[60:330, 150:330], (45, 69, 104, 128)),  # profile: one eye shows
    ]
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces, tightly cropped, 25x25 grey
    for i, face in enumerate(lfw):
        grey = (face * 255).astype(np.uint8) if face.dtype != np.uint8 else face
        padded = cv2.copyMakeBorder(_rgb(grey), 12, 12, 12, 12, cv2.BORDER_REPLICATE)
        sources.append(FaceSource(f"skimage:lfw_subset[{i}]", padded, (14, 12, 35, 37)))
    return sources


def background_images() -> list[np.ndarray]:
    import skimage.data

    names = ["coffee", "chelsea", "rocket", "brick", "grass", "gravel", "motorcycle_left", "hubble_deep_field",
             "coins", "page", "text", "colorwheel", "immunohistochemistry", "retina"]
    out = []
    for name in names:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        out.append(cv2.resize(_rgb(np.asarray(loader())), FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return out


def _place(frame: np.ndarray, source: FaceSource, face_width: float, centre: tuple[float, float],
           mirror: bool, rng: np.random.Generator) -> PlacedFace | None:
    fx0, fy0, fx1, fy1 = source.face
    scale = face_width / (fx1 - fx0)
    img = source.image[:, ::-1] if mirror else source.image
    h, w = img.shape[:2]
    nw, nh = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
    patch = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    fcx = ((w - (fx0 + fx1) / 2) if mirror else (fx0 + fx1) / 2) * scale
    fcy = (fy0 + fy1) / 2 * scale
    x0, y0 = int(round(centre[0] - fcx)), int(round(centre[1] - fcy))
    fh, fw = frame.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(fw, x0 + nw), min(fh, y0 + nh)
    if dx1 <= dx0 or dy1 <= dy0:
        return None
    region = patch[sy0:sy0 + (dy1 - dy0), sx0:sx0 + (dx1 - dx0)]
    # Soft elliptical edge: a pasted rectangle would teach the quantizer ranges no camera produces.
    yy, xx = np.mgrid[0:region.shape[0], 0:region.shape[1]].astype(np.float32)
    cy, cx = (region.shape[0] - 1) / 2, (region.shape[1] - 1) / 2
    r = np.sqrt(((yy - cy) / max(cy, 1)) ** 2 + ((xx - cx) / max(cx, 1)) ** 2)
    alpha = np.clip((1.15 - r) / 0.3, 0, 1)[..., None] if rng.random() < 0.5 else 1.0
    target = frame[dy0:dy1, dx0:dx1].astype(np.float32)
    frame[dy0:dy1, dx0:dx1] = (region * alpha + target * (1 - alpha)).astype(np.uint8)
    box_x = (w - fx1, w - fx0) if mirror else (fx0, fx1)
    box = (x0 + box_x[0] * scale, y0 + fy0 * scale, x0 + box_x[1] * scale, y0 + fy1 * scale)
    eyes = None
    if source.eyes is not None:
        eyes = np.array([((w - ex) if mirror else ex, ey) for ex, ey in source.eyes], dtype=np.float64) * scale
        eyes += (x0, y0)
        eyes = eyes[np.argsort(eyes[:, 0])]
    bx0, by0, bx1, by1 = (float(v) for v in box)
    return PlacedFace(source.name, (bx0, by0, bx1, by1), eyes, (dx0, dy0, dx1, dy1))


def calibration_frames(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> tuple[list[np.ndarray], dict]:
    """``count`` RGB 640x480 frames and a record of how they were made (for the model's JSON record)."""
    frames, _, record = room_scenes(count, seed)
    return frames, record


#: A placed face is one a detector must find only if this much of its box is inside the frame.
MIN_VISIBLE = 0.8


def room_scenes(count: int, seed: int) -> tuple[list[np.ndarray], list[list[PlacedFace]], dict]:
    """The calibration generator with its ground truth: frames, and per frame the faces not pasted over by
    a later face, with their boxes and eyes (see :func:`fully_visible` for those cut by the frame edge).

    A different ``seed`` gives scenes the quantizer never saw, for scoring detectors against the truth.
    """
    rng = np.random.default_rng(seed)
    sources = face_sources()
    backgrounds = background_images()
    portraits = sources[:3]
    frames, truths = [], []
    for i in range(count):
        bg = backgrounds[rng.integers(len(backgrounds))]
        frame = cv2.GaussianBlur(bg, (0, 0), float(rng.uniform(0.5, 6.0)))
        frame = np.ascontiguousarray(frame if rng.random() < 0.5 else frame[:, ::-1])
        kind = i % 8
        n_faces = 0 if kind == 7 else (2 if kind == 6 else 1)
        placed: list[PlacedFace] = []
        for _ in range(n_faces):
            # Most faces are real portraits; one in three comes from the LFW set for variety of people.
            source = portraits[rng.integers(3)] if rng.random() < 0.67 else sources[3 + rng.integers(len(sources) - 3)]
            # Face widths log-uniform over 18..320 px: across the room to right in front.
            width = float(np.exp(rng.uniform(np.log(18), np.log(320))))
            centre = (float(rng.uniform(0.1, 0.9) * FRAME_SIZE[0]), float(rng.uniform(0.15, 0.85) * FRAME_SIZE[1]))
            face = _place(frame, source, width, centre, bool(rng.random() < 0.5), rng)
            if face is not None:
                placed = [p for p in placed if not _overlaps(p.box, face.patch)] + [face]
        gain = rng.uniform(0.55, 1.35)
        offset = rng.uniform(-25, 25)
        noisy = frame.astype(np.float32) * gain + offset + rng.normal(0, rng.uniform(0, 6), frame.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
        truths.append(placed)
    record = {
        "frames": count,
        "seed": seed,
        "size": list(FRAME_SIZE),
        "faces": ["skimage:astronaut", "matplotlib:grace_hopper", "skimage:camera", "skimage:lfw_subset[0:100]"],
        "face_width_px": [18, 320],
        "backgrounds": "scikit-image sample photographs, blurred, mirrored",
        "photometric": "gain 0.55..1.35, offset +-25, Gaussian noise sigma 0..6",
    }
    return frames, truths, record


def _overlaps(box: tuple[float, float, float, float], region: tuple[int, int, int, int]) -> bool:
    return box[0] < region[2] and region[0] < box[2] and box[1] < region[3] and region[1] < box[3]


def fully_visible(face: PlacedFace) -> bool:
    """At least :data:`MIN_VISIBLE` of the face box inside the frame."""
    x0, y0, x1, y1 = face.box
    inside = max(0.0, min(x1, FRAME_SIZE[0]) - max(x0, 0.0)) * max(0.0, min(y1, FRAME_SIZE[1]) - max(y0, 0.0))
    return inside / max((x1 - x0) * (y1 - y0), 1e-9) >= MIN_VISIBLE
