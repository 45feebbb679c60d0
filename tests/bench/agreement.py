"""How closely the int8 models reproduce their float models, beside the float models' own noise floor.

For each range: scikit-image's astronaut placed across a 640x480 frame (five face widths, five positions,
three heights, mirrored); for every scene the float model finds a face in, the int8 model's box IoU and its
eye keypoints' offset from the float model's. As a yardstick, the same offsets for the float model against
itself on the same frame with +-1 grey level of noise added: an offset below that is below what any
perturbation of the input already causes.

    .venv/bin/python tests/bench/agreement.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import place_astronaut  # noqa: E402

from edge.detector import FaceDetector, iou  # noqa: E402
from provisioning.mediapipe_wheel import FULL_RANGE_MEMBER, SHORT_RANGE_MEMBER, extract_member  # noqa: E402

WIDTHS = {"short": (80, 100, 130, 170, 220), "full": (40, 60, 90, 130, 180)}
MEMBERS = {"short": SHORT_RANGE_MEMBER, "full": FULL_RANGE_MEMBER}


def summary(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"p50 {np.median(v):5.2f}  p95 {np.percentile(v, 95):5.2f}  max {v.max():5.2f}"


def main() -> int:
    import skimage.data

    astronaut = skimage.data.astronaut()
    rng = np.random.default_rng(0)
    for detector_range in ("short", "full"):
        reference = FaceDetector(extract_member(MEMBERS[detector_range]), detector_range)
        int8 = FaceDetector(None, detector_range)
        scenes = found = 0
        ious, offsets, noise = [], [], []
        for width in WIDTHS[detector_range]:
            for x in (120, 220, 320, 420, 520):
                for y in (170, 240, 300):
                    for mirror in (False, True):
                        frame, _ = place_astronaut(astronaut, width, x, y, mirror)
                        expected = reference.detect(frame)
                        if not expected:
                            continue
                        scenes += 1
                        noisy = np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255)
                        again = reference.detect(noisy.astype(np.uint8))
                        if again:
                            noise.append(np.abs(expected[0].keypoints[:2] - again[0].keypoints[:2]).max())
                        got = int8.detect(frame)
                        if not got:
                            continue
                        found += 1
                        ious.append(iou(expected[0].box, got[0].box[None])[0])
                        offsets.append(np.abs(expected[0].keypoints[:2] - got[0].keypoints[:2]).max())
        print(f"{detector_range} range ({int8.runtime_name}): int8 found {found}/{scenes} faces the float model "
              f"found; box IoU min {min(ious):.3f}, p50 {np.median(ious):.3f}")
        print(f"  eye offset int8 vs float (px at 640x480):        {summary(offsets)}")
        print(f"  eye offset float vs float+-1 grey level (px):     {summary(noise)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
