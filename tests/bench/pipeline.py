"""Pipeline benchmark: frames per second and per-stage cost on one core, and peak memory with a big pack.

The daemon's own pipeline step (edge.pipeline.Pipeline.step, what edge.service.EdgeService runs) on the
bundled viewer clip, decoded as fast as it goes, with the shipped defaults (edge.pipeline.make_detector
of the default config: the full-range int8 model on whole frames, the short-range one on crops around
a followed viewer, motion gating; one thread), the gaze tracker, and a 1080x1920 XRGB8888
framebuffer *file* showing a 33-frame pack made here from the test pack scaled up (a portrait-mounted
1080p screen with a full-size pack: the memory case that matters on a 1 GB Pi).

    .venv/bin/python tests/bench/pipeline.py [--frames 600] [--camera-size 640x480]

The clip is stored as raw I420 (the camera's stand-in: fetching a frame costs about what a Pi camera's
lores hand-over and conversion do, not an MPEG decode). Figures printed: the CPU features, fps,
per-stage p50/p95/mean (capture = fetch + colour conversion here; on a Pi it is the picamera2 lores
read), the share of each stage, the same for the frames searched in a crop, searched whole and gated,
the cost of a worst-case redraw, and peak RSS before and after the pack is loaded. Every per-stage
figure is taken from the steps' own FrameResult times.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge.camera import VideoFileSource  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.detector import FaceDetector  # noqa: E402
from edge.display import open_display  # noqa: E402
from edge.pack import load_pack, write_pack  # noqa: E402
from edge.pipeline import STAGES, FrameResult, Pipeline, build_parts, make_detector  # noqa: E402

CLIP = REPO / "assets" / "clips" / "viewer-walk.mp4"
TEST_PACK = REPO / "assets" / "packs" / "test"
SCREEN = (1080, 1920)
FRAMES = 33


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def big_pack(out: Path) -> Path:
    """A 33-frame pack on a 1080x1920 canvas: the test pack's frames interpolated and scaled up."""
    small = load_pack(TEST_PACK)
    cw, ch = small.screen_size
    scale = SCREEN[1] / ch
    canvas = (int(round(cw * scale)), SCREEN[1])
    x, y, w, h = small.rect
    pad = 4
    px0 = max(0, int((x - pad) * scale))
    py0 = max(0, int((y - pad) * scale))
    px1 = min(canvas[0], int(np.ceil((x + w + pad) * scale)))
    py1 = min(canvas[1], int(np.ceil((y + h + pad) * scale)))
    base = cv2.resize(np.asarray(small.base), canvas, interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(FRAMES):
        u = i * (small.frame_count - 1) / (FRAMES - 1)
        a, b = int(np.floor(u)), min(small.frame_count - 1, int(np.floor(u)) + 1)
        mix = cv2.addWeighted(small.frame_image(a), 1 - (u - a), small.frame_image(b), u - a, 0)
        big = cv2.resize(mix, canvas, interpolation=cv2.INTER_CUBIC)
        frames.append(np.ascontiguousarray(big[py0:py1, px0:px1]))
        # outside the patch every frame must equal the base: paste the patch into the base's copy
    eyes = {k: [v[0] * scale, v[1] * scale] for k, v in small.eyes.items()}
    return write_pack(out, base=base, frames=frames, patch=(px0, py0, px1 - px0, py1 - py0),
                      name="bench: test pack scaled to 1080x1920, 33 frames", eyes=eyes,
                      span_deg=small.span_deg, generator={"method": "bench-scale", "parameters": {}},
                      credits=[dict(c) for c in small.manifest.credits])


@dataclass(frozen=True)
class StageFigures:
    """One stage over the measured frames, in milliseconds; ``count`` frames had it (draw: those that drew)."""

    count: int
    p50: float
    p95: float
    mean: float


def measure(pipeline: Pipeline, frames: int, warmup: int = 20) -> tuple[list[FrameResult], float]:
    """Step ``pipeline`` until ``frames`` frames went through every stage (after ``warmup`` such frames);
    the measured steps' results and their wall time in seconds."""
    done = 0
    while done < warmup:
        done += pipeline.step().times is not None
    results: list[FrameResult] = []
    t = time.perf_counter()
    while len(results) < frames:
        result = pipeline.step()
        if result.times is not None:
            results.append(result)
    return results, time.perf_counter() - t


def stage_figures(results: Sequence[FrameResult]) -> dict[str, StageFigures | None]:
    """Per-stage figures from the results' own times (None for a stage no frame had)."""
    figures: dict[str, StageFigures | None] = {}
    for name in STAGES:
        seconds = [r.times.by_stage()[name] for r in results if r.times is not None]
        values = np.array([s for s in seconds if s is not None], np.float64) * 1e3
        figures[name] = StageFigures(int(values.size), float(np.percentile(values, 50)),
                                     float(np.percentile(values, 95)), float(values.mean())) if values.size else None
    return figures


def cpu_features() -> str:
    """The CPU and its SIMD flags (/proc/cpuinfo): int8 and float kernels rank differently between them."""
    flags: set[str] = set()
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware") and model == "unknown CPU":
                    model = value.strip()
                elif key in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")
    have = [f for f in wanted if f in flags]
    return f"{model}; {', '.join(have) if have else 'none of ' + ', '.join(wanted)}"


def frame_fig_of(figures: dict[str, StageFigures | None]) -> StageFigures | None:
    return figures["frame"]


def print_table(figures: dict[str, StageFigures | None], frames: int) -> None:
    print("stage          p50 ms   p95 ms  mean ms  share of frame")
    frame_fig = figures["frame"]
    frame_mean = frame_fig.mean if frame_fig is not None else 1e-9
    for name in STAGES:
        fig = figures[name]
        if fig is None:
            print(f"  {name:<10}      -        -        -")
            continue
        # draw runs only when the index changes, detect only on frames not gated: shares per frame on average
        share = (fig.mean * fig.count / frames) / frame_mean
        print(f"  {name:<10} {fig.p50:8.2f} {fig.p95:8.2f} {fig.mean:8.2f}     {share:6.1%}" + (
            f"  (on {fig.count} of {frames} frames)" if fig.count != frames else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--camera-size", default=None,
                        help="frames are resized to this (the Pi's lores; default: the shipped [camera] size)")
    parser.add_argument("--make-pack", type=Path, help=argparse.SUPPRESS)  # child process: write the pack
    args = parser.parse_args()
    if args.make_pack:
        big_pack(args.make_pack)
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    config = load_config(None)
    size = args.camera_size or f"{config.camera.width}x{config.camera.height}"
    cam_w, cam_h = (int(v) for v in size.lower().split("x"))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = tmp / "clip.avi"
        cap = cv2.VideoCapture(str(CLIP))
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"I420"), 15, (cam_w, cam_h))
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(bgr, (cam_w, cam_h), interpolation=cv2.INTER_AREA))
        writer.release()
        # Made in a child process so that building it does not count in this process's peak RSS.
        pack_dir = tmp / "pack"
        subprocess.run([sys.executable, __file__, "--make-pack", str(pack_dir)], check=True)

        rss0, peak0 = current_rss_mb(), peak_rss_mb()
        display = open_display("file", output=str(tmp / "fb"), size=SCREEN)
        t = time.perf_counter()
        pack = load_pack(pack_dir, screen_size=display.size)
        load_s = time.perf_counter() - t
        rss_pack = current_rss_mb()
        detector = make_detector(config)
        pipeline = Pipeline(build_parts(config, camera=VideoFileSource(clip, realtime=False, loop=True),
                                        display=display, detector=detector, pack=pack))
        pipeline.open()
        results, wall = measure(pipeline, args.frames)
        # The peer, in the same run: the configured model on every whole frame (no gate, no crop), as the
        # loop ran before edge.search; the shipped figures are also given as a ratio to it (load moves
        # both alike on a shared machine).
        peer_parts = build_parts(config, camera=VideoFileSource(clip, realtime=False, loop=True), display=display,
                                 detector=FaceDetector(None, config.detector.range, threads=config.detector.threads),
                                 pack=pack)
        peer = Pipeline(peer_parts)
        peer.open()
        peer_results, _ = measure(peer, args.frames)
        peer_parts.camera.close()
        # Worst-case redraw: every frame's patch, one after another.
        t = time.perf_counter()
        for i in range(pack.frame_count):
            display.update(*pack.patch(i))
        redraw = (time.perf_counter() - t) / pack.frame_count
        t = time.perf_counter()
        display.show_full(pack.frame_image(pack.centre_index))
        full = time.perf_counter() - t
        pipeline.close()

    frames = len(results)
    figures = stage_figures(results)
    d = config.detector
    print(f"CPU: {cpu_features()}")
    print(f"one core, camera {cam_w}x{cam_h}, shipped detector: bundled int8 {d.range} range on whole frames, "
          f"short range on crops ({getattr(detector, 'runtime_name', '')}, {d.threads} thread), "
          f"screen {SCREEN[0]}x{SCREEN[1]} XRGB8888 file, pack {pack.frame_count} frames, patch {pack.rect}")
    print(f"{frames} frames in {wall:.2f} s: {frames / wall:.1f} fps through the whole loop")
    print_table(figures, frames)
    for where in ("crop", "whole", "gated"):
        subset = [r for r in results if r.searched == where]
        if subset:
            sub = stage_figures(subset)
            whole_frame = sub["frame"]
            assert whole_frame is not None
            print(f"  {where:<6} frames: {len(subset):4d} ({len(subset) / frames:5.1%}), frame p50 "
                  f"{whole_frame.p50:.2f} ms, p95 {whole_frame.p95:.2f} ms"
                  + (f", detect p50 {sub['detect'].p50:.2f} ms" if sub["detect"] is not None else ""))
    tracked = [r for r in results if r.searched in ("crop", "whole") and r.viewer is not None]
    peer_fig = stage_figures(peer_results)["frame"]
    peer_tracked = stage_figures([r for r in peer_results if r.viewer is not None])["frame"]
    assert peer_fig is not None and frame_fig_of(figures) is not None
    if tracked:
        fig = stage_figures(tracked)["frame"]
        assert fig is not None
        print(f"  while a viewer is tracked: {len(tracked)} frames, whole loop p50 {fig.p50:.2f} ms, "
              f"p95 {fig.p95:.2f} ms, mean {fig.mean:.2f} ms"
              + (f"; peer {peer_tracked.p50:.2f} ms p50, {peer_tracked.mean:.2f} ms mean: shipped/peer "
                 f"{fig.p50 / peer_tracked.p50:.2f}x p50, {fig.mean / peer_tracked.mean:.2f}x mean"
                 if peer_tracked is not None else ""))
    shipped_fig = frame_fig_of(figures)
    assert shipped_fig is not None
    print(f"peer (the {config.detector.range}-range model on every whole frame, same frames): whole loop p50 "
          f"{peer_fig.p50:.2f} ms, mean {peer_fig.mean:.2f} ms; shipped/peer {shipped_fig.p50 / peer_fig.p50:.2f}x "
          f"p50, {shipped_fig.mean / peer_fig.mean:.2f}x mean")
    print(f"worst-case redraw (one patch {pack.rect[2]}x{pack.rect[3]}): {redraw * 1e3:.2f} ms; "
          f"full screen: {full * 1e3:.1f} ms ({full / max(redraw, 1e-9):.0f}x a patch)")
    print(f"pack load: {load_s:.2f} s; RSS {rss0:.0f} MB before display+pack (peak so far {peak0:.0f} MB), "
          f"{rss_pack:.0f} MB after (+{rss_pack - rss0:.0f} MB); peak RSS of the whole run {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
