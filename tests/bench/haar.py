"""OpenCV's Haar frontal-face cascade as the benchmarks' peer, set up once for every bench that runs it.

What many Pi projects use. It needs only OpenCV (no pytest, no project code), so the emulated Pi's Python
can import it too (tests/bench/pi_work.py), and both benches measure the very same detector.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np


def haar_detector() -> Callable[[np.ndarray], list]:
    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier (removed in 5.x; install opencv 4.x)")
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))

    def detect(rgb: np.ndarray) -> list:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return list(cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40)))

    return detect
