"""``mona-edge quantize``: MediaPipe's float BlazeFace models -> the int8 models the Pi runs.

Writes, for each range, ``face_detection_<range>_range_int8.tflite`` and a JSON record next to it
(sha256 of input and output, source wheel and member, calibration set, tool version), so anyone can
check that the committed models are what this command makes. Beside them it copies the float model each
came from, unmodified, with a record of its own (``edge.detector.FLOAT_MODEL_FILES``): a CPU without
fast int8 arithmetic (a Pi 4) runs the full range in float (:mod:`edge.precision`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from edge.detector import FLOAT_MODEL_FILES, MODEL_FILES
from edge.errors import ExitStatus, ModelError
from edge.install import file_sha256
from provisioning import mediapipe_wheel as wheel
from provisioning.calibration import DEFAULT_COUNT, DEFAULT_SEED, calibration_frames
from provisioning.quantize import TOOL_VERSION, quantize_model

MEMBERS = {"short": wheel.SHORT_RANGE_MEMBER, "full": wheel.FULL_RANGE_MEMBER}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "assets" / "models"


def quantize_range(detector_range: str, out_dir: Path, float_model: Path | None = None,
                   frames: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> dict:
    """Quantize one model; return its record (also written as ``<model>.json``)."""
    source: dict = {}
    if float_model is None:
        whl = wheel.find_or_fetch_wheel()
        float_model = wheel.extract_member(MEMBERS[detector_range], whl)
        source = {"wheel": f"mediapipe=={wheel.MEDIAPIPE_VERSION}", "member": MEMBERS[detector_range]}
    else:
        source = {"file": Path(float_model).name}
    float_model = Path(float_model)
    if not float_model.is_file():
        raise ModelError(f"{float_model}: float model not found")
    source["sha256"] = file_sha256(float_model)
    calib_frames, calib_record = calibration_frames(frames, seed)
    provenance = {"source": source, "calibration": calib_record, "tool": TOOL_VERSION}
    started = time.perf_counter()
    data, search = quantize_model(float_model, detector_range, calib_frames, provenance, log=print)
    provenance["search"] = search
    target = out_dir / MODEL_FILES[detector_range]
    tmp = target.with_suffix(".tflite.part")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(target)
        record = dict(provenance, model=target.name, sha256=file_sha256(target), bytes=len(data))
        # Timing is printed, not recorded: the record (like the model) must come out byte for byte the same.
        target.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ModelError(f"--out {out_dir}: cannot write {target.name}: {exc.strerror or exc}") from exc
    return dict(record, seconds=round(time.perf_counter() - started, 1))


def copy_float(detector_range: str, out_dir: Path, float_model: Path | None = None) -> dict:
    """Copy the range's float model (the wheel's member, or ``float_model``) unmodified to ``out_dir``
    under :data:`FLOAT_MODEL_FILES`, with a record (``sha256``, ``bytes``, its source) that the detector
    checks at load as it checks the int8 models'; return the record."""
    if float_model is None:
        float_model = wheel.extract_member(MEMBERS[detector_range], wheel.find_or_fetch_wheel())
        source: dict = {"wheel": f"mediapipe=={wheel.MEDIAPIPE_VERSION}", "member": MEMBERS[detector_range]}
    else:
        source = {"file": Path(float_model).name}
    try:
        data = Path(float_model).read_bytes()
    except OSError as exc:
        raise ModelError(f"{float_model}: cannot read the float model: {exc.strerror or exc}") from exc
    target = out_dir / FLOAT_MODEL_FILES[detector_range]
    sha = hashlib.sha256(data).hexdigest()
    record = {"model": target.name, "sha256": sha, "bytes": len(data), "source": dict(source, sha256=sha),
              "license": "Apache-2.0 (The MediaPipe Authors), copied unmodified"}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tflite.part")
        tmp.write_bytes(data)
        tmp.replace(target)
        target.with_suffix(".json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ModelError(f"--out {out_dir}: cannot write {target.name}: {exc.strerror or exc}") from exc
    return record


def _run(args: argparse.Namespace) -> ExitStatus:
    ranges = ["short", "full"] if args.range == "both" else [args.range]
    if args.float_model and len(ranges) != 1:
        raise ModelError("--float-model needs --range short or --range full (one file is one model)")
    for detector_range in ranges:
        record = quantize_range(detector_range, Path(args.out), args.float_model, args.frames, args.seed)
        print(f"{record['model']}: {record['bytes']} bytes, sha256 {record['sha256'][:16]}..., "
              f"calibrated on {record['calibration']['frames']} frames in {record['seconds']} s")
        copied = copy_float(detector_range, Path(args.out), args.float_model)
        print(f"{copied['model']}: {copied['bytes']} bytes, sha256 {copied['sha256'][:16]}..., copied unmodified")
    return ExitStatus.OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("quantize", help="make the int8 BlazeFace models (workstation)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--range", choices=["short", "full", "both"], default="both")
    parser.add_argument("--float-model", type=Path, help="use this float .tflite instead of the mediapipe wheel's")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: assets/models)")
    parser.add_argument("--frames", type=int, default=DEFAULT_COUNT, help="calibration frames")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="calibration set seed")
    parser.set_defaults(handler=_run)
