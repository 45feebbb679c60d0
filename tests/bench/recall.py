"""Recall and eye-midpoint error against ground truth: each int8 model beside the float model it came from.

The scenes are the calibration generator's with a seed the quantizer never used (real portraits with
hand-measured face boxes and eyes, pasted into blurred sample photographs at 18-320 px, with lighting
changes and sensor noise; see provisioning/calibration.py). Printed per range and per face-width band:
faces, recall, false positives, eye-midpoint error as a fraction of face width (p50/p95), and the int8/float
ratios. Issue 2 asks that recall and eye-midpoint error of the int8 models match their float models.

    .venv/bin/python tests/bench/recall.py [--frames 384] [--seed 7] [--pi pi4:tflite]

``--pi BOARD:RUNTIME`` runs both models on an emulated Pi (tests/pi/; BOARD pi4 or pi5, RUNTIME litert or
tflite) instead of here: the Pi's own kernels, about 13 minutes for the default 384 scenes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import detect_both_in  # noqa: E402

from edge.detector import FaceDetector  # noqa: E402
from provisioning.calibration import room_scenes  # noqa: E402
from provisioning.mediapipe_wheel import FULL_RANGE_MEMBER, SHORT_RANGE_MEMBER, extract_member  # noqa: E402
from provisioning.scoring import score  # noqa: E402

MEMBERS = {"short": SHORT_RANGE_MEMBER, "full": FULL_RANGE_MEMBER}
BANDS = ((18, 40), (40, 80), (80, 160), (160, 400))


def detections_here(detector_range: str, frames: Sequence[np.ndarray]):
    models = {"float": FaceDetector(extract_member(MEMBERS[detector_range]), detector_range),
              "int8": FaceDetector(None, detector_range)}
    return ({name: [detector.detect(frame) for frame in frames] for name, detector in models.items()},
            models["int8"].runtime_name)


def detections_on_pi(board: str, runtime: str, detector_range: str, frames: Sequence[np.ndarray]):
    with tempfile.TemporaryDirectory() as tmp:
        out = detect_both_in([str(REPO / "tests" / "pi" / "python"), board, runtime], None, detector_range,
                             extract_member(MEMBERS[detector_range]), np.stack(frames), Path(tmp), timeout=None)
    return {name: out[name] for name in ("float", "int8")}, f"{out['runtime']} on an emulated {board}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=384)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pi", metavar="BOARD:RUNTIME", help="run on an emulated Pi, e.g. pi4:tflite or pi5:litert")
    args = parser.parse_args()
    pi: list[str] | None = args.pi.split(":") if args.pi else None
    if pi is not None and (len(pi) != 2 or pi[0] not in ("pi4", "pi5") or pi[1] not in ("litert", "tflite")):
        parser.error(f"--pi {args.pi}: expected BOARD:RUNTIME with BOARD pi4 or pi5, RUNTIME litert or tflite")
    frames, truths, _ = room_scenes(args.frames, args.seed)
    print(f"{args.frames} scenes, seed {args.seed}; midpoint error in face widths")
    for detector_range in ("short", "full"):
        if pi is None:
            detections, where = detections_here(detector_range, frames)
        else:
            detections, where = detections_on_pi(pi[0], pi[1], detector_range, frames)
        print(f"\n{detector_range} range ({where})")
        print(f"  {'face width':>12} {'model':>6} {'faces':>6} {'recall':>7} {'false+':>7} {'mid p50':>8} {'mid p95':>8}")
        for lo, hi in BANDS + ((18, 400),):
            band = [[f for f in truth if lo <= f.box[2] - f.box[0] < hi] for truth in truths]
            results = {}
            for name in ("float", "int8"):
                s = score(detections[name], band).summary()
                results[name] = s
                label = f"{lo}-{hi} px" if (lo, hi) != (18, 400) else "all"
                false_pos = s["false_positives"] if (lo, hi) == (18, 400) else ""
                print(f"  {label:>12} {name:>6} {s['faces']:>6} {s['recall']:>7.3f} {false_pos!s:>7} "
                      f"{s['midpoint_p50']:>8.4f} {s['midpoint_p95']:>8.4f}")
            f, q = results["float"], results["int8"]
            if f["recall"] and f["midpoint_p50"]:
                print(f"  {'':>12} {'ratio':>6} {'':>6} {q['recall'] / f['recall']:>7.3f} {'':>7} "
                      f"{q['midpoint_p50'] / f['midpoint_p50']:>8.3f} {q['midpoint_p95'] / f['midpoint_p95']:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
