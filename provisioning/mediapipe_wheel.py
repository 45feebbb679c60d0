"""MediaPipe's float models, taken from the ``mediapipe==0.10.14`` wheel on the package registry.

The wheel is fetched with ``pip download`` (never installed: mediapipe drags in a large tree and pins
numpy), cached, and the wanted ``.tflite`` member extracted next to it. Nothing is fetched from a model
hub; a user without registry access passes the file itself (``--float-model PATH``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from edge.errors import ModelError

MEDIAPIPE_VERSION = "0.10.14"
FACE_DETECTION_DIR = "mediapipe/modules/face_detection"
SHORT_RANGE_MEMBER = f"{FACE_DETECTION_DIR}/face_detection_short_range.tflite"
FULL_RANGE_MEMBER = f"{FACE_DETECTION_DIR}/face_detection_full_range_sparse.tflite"


def cache_dir() -> Path:
    """Where fetched wheels and extracted models live (``$MONA_EDGE_CACHE`` or ``~/.cache/mona-edge``)."""
    root = os.environ.get("MONA_EDGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mona-edge")
    return Path(root)


def find_or_fetch_wheel(version: str = MEDIAPIPE_VERSION) -> Path:
    """Return a cached mediapipe wheel, downloading it (without dependencies) if none is cached."""
    wheels = cache_dir() / "wheels"
    pattern = f"mediapipe-{version}-*.whl"
    cached = sorted(wheels.glob(pattern))
    if cached:
        return cached[0]
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "-d", str(wheels), f"mediapipe=={version}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    cached = sorted(wheels.glob(pattern))
    if result.returncode != 0 or not cached:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(f"could not fetch mediapipe=={version} with pip ({tail[0]}); "
                         "pass the model file with --float-model PATH instead")
    return cached[0]


def extract_member(member: str, wheel: Path | None = None) -> Path:
    """Extract one file of the wheel into the cache (once) and return its path."""
    wheel = wheel or find_or_fetch_wheel()
    target = cache_dir() / "models" / wheel.stem / member
    if target.exists():
        return target
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except KeyError as exc:
        raise ModelError(f"{wheel}: has no member {member}") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{wheel}: not a readable wheel (zip) file: {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target
