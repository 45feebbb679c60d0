"""Work per frame on the Pi's own CPU: guest instructions counted on an emulated Pi 4 and Pi 5.

There is no Pi here, and time under emulation says nothing, but the number of instructions the Pi's CPU
executes per frame is exact and repeatable: the runtimes' aarch64 builds pick their kernels for the emulated
core (Pi 4: Cortex-A72, NEON; Pi 5: Cortex-A76, NEON with dot product) and a qemu plugin
(tests/pi/count_instructions.c) counts what runs. Per frame = (run over N frames - run over none) / N, each
run after the same warm-up, so Python's start-up and the model load cancel. Same frames and same detectors
as tests/bench/detector.py (pre-processing + inference + decode, one thread), and the ratios between them.
Instructions are not time (the cores retire 1-3 a cycle, and int8 moves a quarter of the bytes), so the
ratios are what to read: they show whether the int8 kernels do more work per instruction than fp32's, which
needs the Pi 5's dot product (16 int8 multiply-accumulates an instruction, against 4 for fp32).

    .venv/bin/python tests/bench/pi_work.py [--frames 12] [--boards pi4 pi5] [--runtime litert|tflite]
                                            [--os bookworm|trixie] [--rows full-int8 full-auto ...]

The float rows are the bundled float models (MediaPipe's, unmodified); the "shipped (auto)" rows are what
``[detector] precision = "auto"`` loads on the emulated CPU (the daemon's default), with the file and why
printed, and a tracked frame's average from them (crops with the short range, a whole frame a second).

Needs the emulated Pi (tests/pi/setup; tests/run builds it) and gcc.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detector import make_frames  # noqa: E402

PI = REPO / "tests" / "pi"
PI_ROOT = Path(os.environ.get("MONA_EDGE_PI_ROOT", REPO / ".emulated-pi"))
PI_OS = ["bookworm"]  # the emulated OS (tests/pi/python's first word), set by --os

#: Runs in the Pi's Python: warm up on the first frames, then detect on ``count`` more.
GUEST = """
import sys, numpy as np, cv2
frames, kind, model, count = np.load(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cv2.setNumThreads(1)
if kind == "haar":
    from haar import haar_detector
    detect = haar_detector()
else:
    from edge.detector import FaceDetector
    from edge.detector import describe_models
    bundled = model in ("int8", "float", "auto")  # a bundled model, "auto": as the daemon chooses on this CPU
    detector = FaceDetector(None if bundled else model, kind, threads=1, precision=model if bundled else "int8")
    print("model", describe_models(detector), file=sys.stderr)
    detect = detector.detect
for frame in frames[:3]:
    detect(frame)
for frame in frames[3:3 + count]:
    detect(frame)
"""


def build_plugin(workdir: Path) -> Path:
    plugin = workdir / "count_instructions.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(plugin), str(PI / "count_instructions.c")],
                   check=True)
    return plugin


def instructions(plugin: Path, board: str, runtime: str, frames: Path, kind: str, model: str, count: int) -> int:
    env = dict(os.environ, PYTHONPATH=f"{REPO}:{Path(__file__).resolve().parent}", PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1",
               MONA_EDGE_PI_ROOT=str(PI_ROOT), QEMU_PLUGIN=f"file={plugin}", QEMU_LOG="plugin",
               MONA_EDGE_PI_OS=PI_OS[0])
    done = subprocess.run([str(PI / "python"), board, runtime, "-c", GUEST, str(frames), kind, model, str(count)],
                          capture_output=True, text=True, env=env, timeout=3600)
    found = re.search(r"guest instructions: (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"{board} {kind} {model}: exit {done.returncode}: {done.stderr[-1500:]}")
    chosen = re.search(r"^model (.+)$", done.stderr, re.M)
    if count and chosen and model in ("int8", "float", "auto"):
        print(f"  {board}  {kind} {model}: {chosen.group(1)}")
    return int(found.group(1))


def per_frame(plugin: Path, board: str, runtime: str, frames: Path, kind: str, model: str, count: int) -> float:
    return (instructions(plugin, board, runtime, frames, kind, model, count)
            - instructions(plugin, board, runtime, frames, kind, model, 0)) / count


#: --rows: key -> (name, range, model: "int8"/"auto" bundled, else a file).
ROWS = {
    "short-int8": ("BlazeFace short int8 (ours)", "short", "int8"),
    "short-float": ("BlazeFace short float32", "short", "float"),
    "full-int8": ("BlazeFace full int8 (ours)", "full", "int8"),
    "full-float": ("BlazeFace full float32", "full", "float"),
    "haar": ("OpenCV Haar frontal face", "haar", "-"),
    "short-auto": ("BlazeFace short, shipped (auto)", "short", "auto"),
    "full-auto": ("BlazeFace full, shipped (auto)", "full", "auto"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS),
                        help="detectors to count (auto: [detector] precision's choice on the emulated CPU)")
    parser.add_argument("--frames", type=int, default=12, help="frames measured per detector (after 3 warm-up)")
    parser.add_argument("--boards", nargs="+", default=["pi4", "pi5"], choices=["pi4", "pi5"])
    parser.add_argument("--runtime", default="litert", choices=["litert", "tflite"],
                        help="ai-edge-litert (the `pi` extra's) or tflite-runtime 2.14 (Bookworm only)")
    parser.add_argument("--os", default="bookworm", choices=["bookworm", "trixie"],
                        help="the emulated Raspberry Pi OS (its Python, numpy and pygame from apt)")
    args = parser.parse_args()
    PI_OS[0] = args.os
    if not (PI_ROOT / args.os / "sysroot" / "usr" / "bin" / "python3").exists():
        print(f"no emulated Pi at {PI_ROOT}: run tests/pi/setup first", file=sys.stderr)
        return 1
    rows = [(name, kind, model) for key, (name, kind, model) in ROWS.items() if key in args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plugin = build_plugin(workdir)
        frames = workdir / "frames.npy"
        np.save(frames, np.stack(make_frames(3 + args.frames)))
        runtime = {"litert": "ai-edge-litert", "tflite": "tflite-runtime 2.14"}[args.runtime]
        print(f"{runtime} aarch64 on emulated boards ({args.os}), one thread, {args.frames} frames of 640x480 "
              f"(as tests/bench/detector.py), guest instructions per frame")
        for board in args.boards:
            counts: dict[str, float] = {}
            for name, kind, model in rows:
                counts[name] = per_frame(plugin, board, args.runtime, frames, kind, model, args.frames)
                print(f"  {board}  {name:32s} {counts[name] / 1e6:9.1f} M")
            haar: float | None = counts.get("OpenCV Haar frontal face")
            for rng in ("short", "full"):
                ours, peer = counts.get(f"BlazeFace {rng} int8 (ours)"), counts.get(f"BlazeFace {rng} float32")
                if ours and peer:
                    print(f"  {board}  {rng} range: float32 / int8 = {peer / ours:.2f}x"
                          + (f", Haar / int8 = {haar / ours:.2f}x" if haar else ""))
            short, full = counts.get("BlazeFace short, shipped (auto)"), counts.get("BlazeFace full, shipped (auto)")
            if short and full:  # a followed viewer at 15 fps: crops, and a whole frame every full_scan_s (1 s)
                print(f"  {board}  shipped, a tracked frame at 15 fps (14 crops + 1 whole): "
                      f"{(14 * short + full) / 15 / 1e6:.1f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
