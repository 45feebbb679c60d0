"""Reading still images from disk for the command-line tools (never camera frames: those stay in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def read_rgb(path: Path, what: str = "image") -> np.ndarray:
    """Any Pillow-readable file as an (H, W, 3) uint8 RGB array; one-line errors naming the file."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None
