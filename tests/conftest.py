"""Shared fixtures: real photographs placed as a wall camera would see them, and MediaPipe's float models."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "assets" / "models"

#: The astronaut's eye centres in scikit-image's 512x512 ``astronaut.png``, measured by hand on a 4x
#: enlargement: her right eye (image left) and her left eye.
ASTRONAUT_RIGHT_EYE = (203.0, 101.0)
ASTRONAUT_LEFT_EYE = (246.0, 103.0)
#: Head-and-shoulders crop used to place her in a room-sized frame, and the face width in it.
ASTRONAUT_CROP = (slice(0, 330), slice(90, 370))
ASTRONAUT_FACE_WIDTH = 106.0


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def place_astronaut(astronaut: np.ndarray, face_width: float, eye_mid_x: float, eye_mid_y: float,
                    mirror: bool = False, size=(640, 480), background: int = 90):
    """A ``size`` frame with her face ``face_width`` px wide, eye midpoint at (x, y).

    Returns the frame and where her two eyes (hand-measured) land in it, in image order (left, right).
    """
    crop = astronaut[ASTRONAUT_CROP]
    x_off, y_off = ASTRONAUT_CROP[1].start, ASTRONAUT_CROP[0].start
    eyes = np.array([ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE]) - [x_off, y_off]
    if mirror:
        crop = crop[:, ::-1]
        eyes[:, 0] = crop.shape[1] - eyes[:, 0]
    scale = face_width / ASTRONAUT_FACE_WIDTH
    patch = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    eyes = eyes * scale
    mid = eyes.mean(axis=0)
    x0, y0 = int(round(eye_mid_x - mid[0])), int(round(eye_mid_y - mid[1]))
    frame = np.full((size[1], size[0], 3), background, np.uint8)
    h, w = patch.shape[:2]
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(size[0], x0 + w), min(size[1], y0 + h)
    frame[fy0:fy1, fx0:fx1] = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    eyes = eyes + [x0, y0]
    return frame, eyes[np.argsort(eyes[:, 0])]


#: Issue 2's agreement scenes per range: face widths the model is made for, three positions across the room,
#: two heights, and mirrored. Short range sees faces from about 60 px up in a 640x480 frame; full range
#: smaller ones.
SCENE_WIDTHS = {"short": (90, 130, 180), "full": (60, 90, 130, 180)}
SCENE_POSITIONS = [(x, y) for x in (160, 320, 480) for y in (180, 260)]


def agreement_scenes(astronaut: np.ndarray, detector_range: str) -> Iterator[tuple]:
    """``((width, x, y, mirrored), frame, eyes)`` for every agreement scene of ``detector_range``."""
    for width in SCENE_WIDTHS[detector_range]:
        for x, y in SCENE_POSITIONS:
            for mirror in (False, True):
                frame, eyes = place_astronaut(astronaut, width, x, y, mirror)
                yield (width, x, y, mirror), frame, eyes


_DETECT_BOTH = """
import json, platform, sys, numpy as np
from edge.detector import FaceDetector
frames, ref_path, rng, runtime = np.load(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] or None
out = {"numpy": np.__version__, "machine": platform.machine()}
for name, path in (("float", ref_path), ("int8", None)):
    detector = FaceDetector(path, rng, runtime=runtime)
    out["runtime"] = detector.runtime_name
    out[name] = [[[float(v) for v in f.box] + [float(v) for v in f.keypoints.ravel()] + [f.score]
                  for f in detector.detect(frame)] for frame in frames]
print(json.dumps(out))
"""


def detect_both_in(python: Sequence[str], runtime: str | None, detector_range: str, float_model: Path,
                   frames: np.ndarray, workdir: Path, timeout: float | None = 600) -> dict:
    """The bundled int8 model and ``float_model`` on the same ``frames``, run by another Python (``python``
    is its command line: tflite-runtime's own environment, or the emulated Pi) in the TFLite ``runtime``
    module given (None: whichever that Python has).

    Returns the runtime's name, numpy version and machine, and ``"int8"`` / ``"float"``: per frame the faces found.
    """
    from edge.faces import Face

    np.save(workdir / "frames.npy", frames)
    done = subprocess.run([*python, "-c", _DETECT_BOTH, str(workdir / "frames.npy"), str(float_model),
                           detector_range, runtime or ""],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("float", "int8"):
        out[name] = [[Face(box=np.array(row[:4], np.float32), keypoints=np.array(row[4:16], np.float32).reshape(6, 2),
                           score=row[16]) for row in frame] for frame in out[name]]
    return out


def agreement_in(python: Sequence[str], runtime: str, detector_range: str, float_model: Path,
                 frames: np.ndarray, workdir: Path) -> dict:
    """:func:`detect_both_in`, compared: per frame the box IoU and the worst eye offset (px) between the two
    models; a frame where either finds other than one face fails the caller."""
    from edge.detector import iou

    result = detect_both_in(python, runtime, detector_range, float_model, frames, workdir)
    ious: list[float] = []
    offsets: list[float] = []
    for i, (int8, ref) in enumerate(zip(result["int8"], result["float"])):
        assert len(int8) == len(ref) == 1, f"frame {i}: int8 found {len(int8)} faces, float {len(ref)}"
        ious.append(float(iou(ref[0].box, int8[0].box[None])[0]))
        offsets.append(float(np.abs(ref[0].keypoints[:2] - int8[0].keypoints[:2]).max()))
    return {"runtime": result["runtime"], "numpy": result["numpy"], "machine": result["machine"],
            "iou": np.array(ious), "eye": np.array(offsets)}


@pytest.fixture(scope="session")
def float_models() -> dict:
    """MediaPipe's float models from the mediapipe 0.10.14 wheel (fetched once with pip, then cached)."""
    from provisioning.mediapipe_wheel import FULL_RANGE_MEMBER, SHORT_RANGE_MEMBER, extract_member

    return {"short": extract_member(SHORT_RANGE_MEMBER), "full": extract_member(FULL_RANGE_MEMBER)}


#: Scenes with ground truth for recall and eye-midpoint error: the calibration generator with a seed the
#: committed models were not calibrated on (they used provisioning.calibration.DEFAULT_SEED).
GROUND_TRUTH_SEED = 7
GROUND_TRUTH_FRAMES = 384


def assert_int8_matches_float(float_score: dict, int8_score: dict, label: str) -> None:
    """Issue 2: on annotated faces the int8 model's recall and eye-midpoint error match its float model's.

    "Match" within what 384 scenes can resolve: recall at most 2 points lower (a point is ~3.5 faces), the
    eye-midpoint error (fraction of face width) at most 12% higher at the median and 15% at the 95th
    percentile (measured: recall -0.6/+1.4 points, p50 +6%/+4%, p95 -2%/+1% for short/full range).
    """
    assert int8_score["faces"] == float_score["faces"], label
    assert int8_score["recall"] >= float_score["recall"] - 0.02, (label, float_score, int8_score)
    assert int8_score["midpoint_p50"] <= 1.12 * float_score["midpoint_p50"], (label, float_score, int8_score)
    assert int8_score["midpoint_p95"] <= 1.15 * float_score["midpoint_p95"], (label, float_score, int8_score)


#: The emulated Pis tests/pi/setup builds (tests/pi/python runs them).
PI_OSES = ("bookworm", "trixie")


@pytest.fixture(scope="session")
def pi_root() -> Path:
    """$MONA_EDGE_PI_ROOT, the emulated Pis' folder (tests/run sets it), with both OS trees in it."""
    root = os.environ.get("MONA_EDGE_PI_ROOT")
    if not root:
        pytest.skip("MONA_EDGE_PI_ROOT is not set (tests/run builds the emulated Pis with tests/pi/setup)")
    for os_name in PI_OSES:
        if not (Path(root) / os_name / "sysroot" / "usr" / "bin" / "python3").exists():
            pytest.fail(f"MONA_EDGE_PI_ROOT={root} has no {os_name}/sysroot/usr/bin/python3; run tests/pi/setup")
    return Path(root)


@pytest.fixture
def notify_socket():
    """A datagram socket where systemd would listen, and a real Notifier sending to it; ``received()``
    returns the messages that arrived since it was last asked."""
    import shutil
    import socket
    import tempfile

    from edge.sdnotify import Notifier

    folder = tempfile.mkdtemp(prefix="me-", dir="/tmp")  # short: a socket path has ~100 bytes
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)

    def received() -> list[str]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096).decode())
            except BlockingIOError:
                return out

    yield Notifier(path, backend="socket"), received
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)
