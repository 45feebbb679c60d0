"""Idle bench: CPU seconds per second of the daemon's pipeline, paced in real time, for an empty room and
for one viewer, with the shipped motion gating and crop tracking and with gating off, side by side.

Why paced clips: a Pi's camera hands frames over at almost no CPU, a video file does not (decoding a
640x480 MPEG-4 frame costs about a millisecond here). A raw I420 .avi (0.2-0.3 ms a frame to fetch)
stands in for the camera; the same scenes as .mp4 are measured beside it. The clips are written to a
temporary directory: the empty room is tests/rooms.py's room with its photos on the wall and camera noise
(frames never identical), the viewer is the bundled clip's stretch with her in view (assets/clips).

    .venv/bin/python tests/bench/idle.py [--seconds 12]

Printed: the CPU features (int8 kernels differ: AVX2, AVX-512 VNNI, AVX-VNNI), then per run the CPU
seconds per second (process user+system, all threads, resource.getrusage), frames read per second, the
share of frames the detector looked at (whole frame / crop / gated), and each run's CPU as a share of
the busy one (one viewer, shipped config). The empty room is measured once settled (more than
[motion] settle_s after the last change: the steady state of an empty room) and in its first seconds
after a change (scans every [motion] scan_s).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.append(str(REPO / "tests" / "bench"))  # last: tests/rooms.py, not tests/bench/rooms.py

import rooms  # noqa: E402
from pipeline import cpu_features  # noqa: E402  (tests/bench/pipeline.py: one list of CPU flags)

from edge.config import Config, config_from_dict  # noqa: E402
from edge.display import open_display  # noqa: E402
from edge.pack import load_pack  # noqa: E402
from edge.pipeline import Pipeline, build_parts  # noqa: E402

CLIP = REPO / "assets" / "clips" / "viewer-walk.mp4"
PACK = REPO / "assets" / "packs" / "default"
SCREEN = (1080, 1920)
#: The bundled clip's frames with her in view (edge.viewerclip.demo_walk: from the right, nearer,
#: lingering, walking away to the left): 13 s at 15 fps.
VIEWER_FRAMES = range(135, 330)
def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_clips(tmp: Path) -> dict[str, Path]:
    """The empty room and the viewer, each as raw I420 .avi (the camera's stand-in) and as .mp4."""
    clips: dict[str, Path] = {}
    writers = {}
    for scene in ("empty", "viewer"):
        for kind, fourcc in (("i420", "I420"), ("mp4", "mp4v")):
            path = tmp / f"{scene}.{'avi' if kind == 'i420' else 'mp4'}"
            writers[scene, kind] = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), rooms.FPS,
                                                   rooms.SIZE)
            clips[f"{scene}-{kind}"] = path
    empty = dataclasses.replace(rooms.empty_room(), seconds=8.0, tv=None, name="empty")
    for rgb, _t, _truth in empty.frames():
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        writers["empty", "i420"].write(bgr)
        writers["empty", "mp4"].write(bgr)
    cap = cv2.VideoCapture(str(CLIP))
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if index in VIEWER_FRAMES:
            writers["viewer", "i420"].write(bgr)
            writers["viewer", "mp4"].write(bgr)
        index += 1
    cap.release()
    for writer in writers.values():
        writer.release()
    return clips


def wake_up(config: Config, pack, display, empty_s: float) -> tuple[float, int, float]:
    """A room empty for ``empty_s`` (settled, camera slowed), then a person walks in at 1.5 m and stops.
    Returns (seconds from when she is first in view to the first detector run, frames delivered with
    her in view that the gate let pass before it, seconds from when she is first in view to the first
    frame whose faces hold her)."""
    z = 1500.0
    x0 = -(rooms.half_width_mm(z) + 300.0)
    stop = empty_s + abs(x0) / 1200.0
    points = [(empty_s, x0, z), (stop, 0.0, z), (stop + 30.0, 0.0, z)]
    scenario = rooms.Scenario("enters", stop + 2.0, [rooms.Walker("A", rooms.walk(points))], seed=31)
    def inside(truth) -> bool:
        her = next((f for f in truth if f.kind == "person"), None)
        return her is not None and her.eye_x + her.face_width / 2 > 0

    # when she is first in view, on the 15 fps clock (a slowed camera delivers that frame later, or never)
    entered = next(i / rooms.FPS for i in range(scenario.frame_count) if inside(scenario.truth(i / rooms.FPS)))
    camera = rooms.ScenarioCamera(scenario, slows=True)
    pipeline = Pipeline(build_parts(config, camera=camera, pack=pack, display=display))
    pipeline.open()
    woke = found = None
    frames_between = 0
    while camera.state == "ok":
        result = pipeline.step()
        if result.frame is None or result.timestamp is None:
            continue
        t = result.timestamp
        her = next((f for f in camera.truth if f.kind == "person"), None)
        if inside(camera.truth) and woke is None:
            if result.searched == "gated":
                frames_between += 1
            else:
                woke = t
        if her is not None and found is None and any(
                abs(float(f.eye_midpoint[0]) - her.eye_x) < her.face_width / 2
                and abs(float(f.eye_midpoint[1]) - her.eye_y) < her.face_width / 2 for f in result.faces):
            found = t
    pipeline.parts.camera.close()
    assert woke is not None and found is not None, "she was never found"
    return woke - entered, frames_between, found - entered


@dataclass
class Run:
    name: str
    cpu_per_s: float
    fps: float
    whole: float
    crop: float
    gated: float
    detect_ms: float | None


def measure(name: str, clip: Path, config: Config, pack, display, seconds: float, warmup: float) -> Run:
    """Run the daemon's pipeline on ``clip`` paced in real time: ``warmup`` seconds, then ``seconds``
    measured. The detector is what the config builds (make_detector: the shipped search)."""
    config = dataclasses.replace(config, camera=dataclasses.replace(
        config.camera, source="file", path=clip, realtime=True, loop=True))
    pipeline = Pipeline(build_parts(config, pack=pack, display=display))
    pipeline.open()
    try:
        end = time.monotonic() + warmup
        while time.monotonic() < end:
            pipeline.step()
        counts = {"whole": 0, "crop": 0, "gated": 0}
        frames = 0
        detect: list[float] = []
        c0, t0 = cpu_seconds(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            result = pipeline.step()
            if result.frame is None:
                continue
            frames += 1
            counts[result.searched] = counts.get(result.searched, 0) + 1
            if result.times is not None and result.times.detected:
                detect.append(result.times.detect)
        wall = time.monotonic() - t0
        cpu = cpu_seconds() - c0
    finally:
        pipeline.parts.camera.close()
    n = max(1, frames)
    detect.sort()
    return Run(name, cpu / wall, frames / wall, counts["whole"] / n, counts["crop"] / n, counts["gated"] / n,
               detect[len(detect) // 2] * 1e3 if detect else None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per run")
    args = parser.parse_args()
    shipped = config_from_dict({})
    off = dataclasses.replace(shipped, motion=dataclasses.replace(shipped.motion, enabled=False))
    settle = shipped.motion.settle_s + shipped.motion.idle_after_s + 0.5
    print(f"CPU: {cpu_features()}")
    m, d = shipped.motion, shipped.detector
    print(f"shipped: camera {shipped.camera.width}x{shipped.camera.height}, detector {d.range} range "
          f"{d.threads} thread(s), crop {d.crop} ({d.crop_widths:g} face widths, whole frame every "
          f"{d.full_scan_s:g} s), gate threshold {m.threshold:g} on {m.min_changed:g} of cells, scans every "
          f"{m.scan_s:g} s for {m.settle_s:g} s then every {m.idle_scan_s:g} s, idle {m.idle_fps:g} fps")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clips = write_clips(tmp)
        display = open_display("file", output=str(tmp / "fb"), size=SCREEN)
        pack = load_pack(PACK, screen_size=display.size)
        runs: list[Run] = []
        for kind in ("i420", "mp4"):
            label = "I420 avi" if kind == "i420" else "mp4"
            plan = [
                (f"one viewer, shipped ({label})", clips[f"viewer-{kind}"], shipped, 2.0),
                (f"one viewer, gating off ({label})", clips[f"viewer-{kind}"], off, 2.0),
                (f"empty room, settled ({label})", clips[f"empty-{kind}"], shipped, settle),
                (f"empty room, first {m.settle_s:g} s ({label})", clips[f"empty-{kind}"], shipped, 0.0),
                (f"empty room, gating off ({label})", clips[f"empty-{kind}"], off, 2.0),
            ]
            for name, clip, config, warmup in plan:
                seconds = min(args.seconds, m.settle_s) if "first" in name else args.seconds
                runs.append(measure(name, clip, config, pack, display, seconds, warmup))
                print(f"  measured: {name}", file=sys.stderr, flush=True)
        wake = wake_up(shipped, pack, display, empty_s=shipped.motion.settle_s + 3.0)
        display.close()
    print(f"a person walks in at 1.5 m after {shipped.motion.settle_s + 3.0:g} s of empty room (camera at "
          f"{m.idle_fps:g} fps), clip time: detector woke {wake[0]:.2f} s after her first frame in view "
          f"({wake[1]} frames with her in view gated before), she was found {wake[2]:.2f} s after it")
    print(f"paced in real time at {rooms.FPS:g} fps, {args.seconds:g} s a run; screen {SCREEN[0]}x{SCREEN[1]} "
          "XRGB8888 file; CPU = process user+system s per wall s (all threads)")
    print(f"{'run':<42} {'CPU s/s':>8} {'of busy':>8} {'fps':>6} {'whole':>6} {'crop':>6} {'gated':>6} "
          f"{'det p50 ms':>10}")
    for kind in ("I420 avi", "mp4"):
        busy = next(r for r in runs if r.name == f"one viewer, shipped ({kind})")
        for r in (r for r in runs if r.name.endswith(f"({kind})")):
            det = f"{r.detect_ms:10.2f}" if r.detect_ms is not None else f"{'-':>10}"
            print(f"{r.name:<42} {r.cpu_per_s:8.3f} {r.cpu_per_s / busy.cpu_per_s:8.1%} {r.fps:6.1f} "
                  f"{r.whole:6.1%} {r.crop:6.1%} {r.gated:6.1%} {det}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
