"""Detector benchmark: per-frame latency of our int8 BlazeFace against its peers, on the same frames.

Each figure is pre-processing + inference + decode for one 640x480 RGB frame on one thread:
  - our int8 short-range model (the one the Pi runs),
  - the float model it came from, through the same runtime (bundled too: edge/precision.py says which of
    the two the daemon's default takes on this CPU, printed first),
  - OpenCV's Haar frontal-face cascade (what many Pi projects use; needs opencv-python-headless 4.x).
Frames: scikit-image's astronaut placed across a room-sized frame, plus frames with nobody in them.

    .venv/bin/python tests/bench/detector.py [--frames 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import place_astronaut  # noqa: E402
from haar import haar_detector  # noqa: E402

from edge.detector import FaceDetector  # noqa: E402
from edge.precision import choose  # noqa: E402
from provisioning.mediapipe_wheel import FULL_RANGE_MEMBER, SHORT_RANGE_MEMBER, extract_member  # noqa: E402


def make_frames(count: int) -> list[np.ndarray]:
    import skimage.data

    astronaut = skimage.data.astronaut()
    rng = np.random.default_rng(7)
    frames = []
    for i in range(count):
        if i % 5 == 4:
            frames.append(np.full((480, 640, 3), int(rng.integers(40, 200)), np.uint8))
            continue
        width = float(rng.uniform(70, 220))
        frame, _ = place_astronaut(astronaut, width, float(rng.uniform(120, 520)), float(rng.uniform(160, 300)),
                                   bool(rng.random() < 0.5))
        frames.append(frame)
    return frames


def time_it(detect: Callable[[np.ndarray], list], frames: list[np.ndarray], repeat: int):
    for frame in frames[:10]:  # warm-up: first invokes allocate and pack weights
        detect(frame)
    times, found = [], 0
    for _ in range(repeat):
        for frame in frames:
            start = time.perf_counter()
            faces = detect(frame)
            times.append(time.perf_counter() - start)
            found += bool(len(faces))
    ms = np.array(times) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), found / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    frames = make_frames(args.frames)
    with_face = sum(1 for i in range(args.frames) if i % 5 != 4)
    int8 = FaceDetector(None, "short", threads=1)
    fp32 = FaceDetector(extract_member(SHORT_RANGE_MEMBER), "short", threads=1)
    full_int8 = FaceDetector(None, "full", threads=1)
    full_fp32 = FaceDetector(extract_member(FULL_RANGE_MEMBER), "full", threads=1)
    rows = [("BlazeFace short int8 (ours)", int8.detect), ("BlazeFace short float32", fp32.detect),
            ("BlazeFace full int8 (ours)", full_int8.detect), ("BlazeFace full float32", full_fp32.detect),
            ("OpenCV Haar frontal face", haar_detector())]
    print(f"runtime: {int8.runtime_name}, OpenCV {cv2.__version__}, one thread, {args.frames} frames of 640x480 "
          f"({with_face} with a face) x {args.repeat}")
    for rng in ("short", "full"):  # what the daemon's default ([detector] precision = "auto") takes here
        print(f"{rng} range, precision auto on this CPU: {choose(rng).why}")
    results = {}
    print(f"{'detector':32s} {'p50 ms':>8s} {'p95 ms':>8s} {'frames with a face found':>26s}")
    for name, fn in rows:
        p50, p95, found = time_it(fn, frames, args.repeat)
        results[name] = p50
        print(f"{name:32s} {p50:8.2f} {p95:8.2f} {found:20.0f}/{with_face}")
    haar = results["OpenCV Haar frontal face"]
    for rng in ("short", "full"):
        ours, peer = results[f"BlazeFace {rng} int8 (ours)"], results[f"BlazeFace {rng} float32"]
        print(f"{rng} range: float32 / int8 p50 = {peer / ours:.2f}x, Haar / int8 p50 = {haar / ours:.2f}x")
    # Pre-processing alone (letterbox + int8 lookup), the part that dominates if done with PIL per frame.
    start = time.perf_counter()
    for frame in frames:
        int8.letterbox(frame)
    print(f"pre-processing alone (letterbox + LUT): {(time.perf_counter() - start) / len(frames) * 1000:.3f} ms/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
