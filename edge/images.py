"""Reading still images from disk for the command-line tools (never camera frames: those stay in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from edge.errors import ImageError


def read_rgb(path: Path, what: str = "image") -> np.ndarray:
    """Any Pillow-readable file as an (H, W, 3) uint8 RGB array, upright; one-line errors naming the file.

    Upright: phone cameras store a portrait photo's pixels sideways with an EXIF orientation tag, and every
    viewer (and whoever marks faces on it) shows it turned. Faces, eyes and portraits must be where people
    see them, not where the sensor put them.

    The file is the user's, so every way it fails (missing, unreadable, not an image, a decompression
    bomb) is an :class:`ImageError`.
    """
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: {what} not found") from exc
    except (OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
