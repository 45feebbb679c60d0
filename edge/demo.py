"""``mona-edge demo``: the whole Pi pipeline on a bundled clip, with pictures to show for it.

The daemon's own pipeline step (:meth:`edge.pipeline.Pipeline.step`) runs on a recording of a visitor walking through
a room (made from a real photograph, see :mod:`edge.viewerclip`) with the real int8 detector, the gaze
tracker and a headless display, frame by frame as fast as it goes. It writes:

  * ``demo.mp4`` and ``demo.gif``: the camera's view with the chosen viewer boxed | the portrait as shown (the GIF smaller, 5 fps),
  * ``plot.png``: the viewer's eye X and the chosen frame over time (drawn with Pillow: no matplotlib
    on a Pi),
  * ``latency.json``: per-stage p50/p95 in milliseconds, also printed,
  * ``trace.csv``: one row per camera frame: frame number, time, the followed viewer's eye midpoint in
    camera pixels (empty when nobody), the frame index shown, faces detected, faces taken for pictures,
    and where the detector looked (whole frame, a crop around the viewer, or gated: not run).

It runs what the Pi runs: the same config file (``--config``, else the daemon's), so the daemon's detector
stack (:func:`edge.pipeline.make_detector`: the configured range on whole frames, the short-range model in
crops around the viewer, motion gating) and gaze settings, and the clip's own frame rate (its timestamps drive the tracker, the video and
the plot's time axis).

Only Pi dependencies are needed (numpy, Pillow, OpenCV, a TFLite runtime). ``python -m edge.demo
make-clip OUT.mp4`` re-makes the bundled clip and needs scikit-image for the photograph.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edge.assets import find_asset  # where the demo finds its clip and packs (also imported from here)
from edge.camera import VideoFileSource
from edge.config import Config, load_config
from edge.display import open_display
from edge.errors import CameraError, ConfigError, PackError
from edge.pack import load_pack
from edge.pipeline import STAGES, FrameResult, Pipeline, build_parts, gaze_tracker, make_detector
from edge.viewerclip import demo_walk, write_clip

CLIP_NAME = "viewer-walk.mp4"
DEMO_FPS = 15.0
#: Height of each half of the side-by-side video; the GIF is half that and every other frame.
VIDEO_HEIGHT = 360
GIF_HEIGHT = 160
GIF_STEP = 3
GIF_COLOURS = 64
#: Dot colours of the people the eyes follow in the plot, one per person (all blue: the upper panel only).
PERSON_COLOURS = [(30, 90, 200), (20, 160, 230), (60, 40, 170), (40, 200, 200)]


def clip_frame_count(path: Path) -> int:
    """Frames in a clip, counted by decoding (container headers can be wrong by a frame or two)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CameraError(f"{path}: OpenCV cannot decode this video")
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    if count == 0:
        raise CameraError(f"{path}: no frames")
    return count


@dataclass
class DemoTrace:
    """What happened on each frame, for the plot, trace.csv and the tests. ``viewer_x`` is the eye X of
    the viewer seen in that frame; ``followed`` the id of the person the eyes were on (also through a
    detector dropout), ``viewer_y`` their eye Y; ``pictures_x`` the eye X of the faces taken for pictures."""

    times: list[float] = field(default_factory=list)
    viewer_x: list[float | None] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    viewer_y: list[float | None] = field(default_factory=list)
    followed: list[int | None] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)
    pictures_x: list[tuple[float, ...]] = field(default_factory=list)
    followed_x: list[float | None] = field(default_factory=list)
    idle: list[bool] = field(default_factory=list)  # nobody followed, the eyes at centre or on an idle glance
    searched: list[str] = field(default_factory=list)  # where faces were looked for (edge.search.WHERE)
    frame_width: int = 0
    frame_count: int = 0
    wall_seconds: float = 0.0
    latency_ms: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"frames": len(self.times), "pack_frames": self.frame_count, "frame_width": self.frame_width,
                "wall_seconds": round(self.wall_seconds, 3),
                "pipeline_fps": round(len(self.times) / self.wall_seconds, 1) if self.wall_seconds else None,
                "latency_ms": self.latency_ms}


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    width = max(1, int(round(w * height / h)))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if height < h else cv2.INTER_LINEAR)


def side_by_side(camera: np.ndarray, viewer_box: np.ndarray | None, portrait: np.ndarray, index: int,
                 frame_count: int, height: int = VIDEO_HEIGHT,
                 crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Camera view with the chosen viewer boxed (and, thin and yellow, the crop the detector searched on
    that frame) | the portrait as the screen shows it, one RGB image."""
    cam = Image.fromarray(_fit_height(camera, height))
    draw = ImageDraw.Draw(cam)
    scale = height / camera.shape[0]
    if crop is not None:
        draw.rectangle([float(v) * scale for v in crop], outline=(250, 220, 40), width=1)
    if viewer_box is not None:
        box = [float(v) * scale for v in viewer_box]
        draw.rectangle(box, outline=(40, 255, 40), width=3)
    draw.text((8, 8), "camera" + ("" if viewer_box is not None else " (nobody)"), fill=(255, 255, 255))
    por = Image.fromarray(_fit_height(portrait, height))
    ImageDraw.Draw(por).text((8, 8), f"frame {index}/{frame_count - 1}", fill=(255, 255, 255))
    out = Image.new("RGB", (cam.width + 8 + por.width, height), (20, 20, 20))
    out.paste(cam, (0, 0))
    out.paste(por, (cam.width + 8, 0))
    return np.asarray(out)


def plot_trace(trace: DemoTrace, path: Path, size: tuple[int, int] = (960, 480)) -> None:
    """Two panels sharing a time axis: viewer eye X (camera px) above, chosen frame below."""
    w, h = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, right = 70, w - 20
    panels = [(30, h // 2 - 25), (h // 2 + 25, h - 45)]
    t = np.asarray(trace.times, np.float64)
    t0, t1 = (float(t[0]), float(t[-1])) if t.size > 1 else (0.0, 1.0)
    span = max(t1 - t0, 1e-6)

    def tx(v: float) -> float:
        return left + (v - t0) / span * (right - left)

    def axes(top: int, bottom: int, lo: float, hi: float, label: str, ticks: Sequence[float]) -> Callable[[float], float]:
        draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
        draw.text((left, top - 16), label, fill=(0, 0, 0))

        def ty(v: float) -> float:
            return bottom - (v - lo) / (hi - lo) * (bottom - top)

        for v in ticks:
            y = ty(v)
            draw.line([left - 4, y, left, y], fill=(0, 0, 0))
            draw.line([left + 1, y, right - 1, y], fill=(225, 225, 225))
            draw.text((8, y - 6), f"{v:g}", fill=(0, 0, 0))
        return ty

    # where nobody was seen: shaded in both panels
    present = np.array([x is not None for x in trace.viewer_x])
    for top, bottom in panels:
        start = None
        for i, p in enumerate(list(present) + [True]):
            if not p and start is None:
                start = i
            elif p and start is not None:
                x0 = tx(t[start]) if t.size else left
                x1 = tx(t[min(i, t.size - 1)]) if t.size else right
                draw.rectangle([x0, top + 1, max(x0 + 1, x1), bottom - 1], fill=(236, 236, 244))
                start = None
    width = max(1, trace.frame_width)
    ty = axes(*panels[0], 0, width, "viewer eye X (camera px); shaded: nobody seen",
              [0, width // 4, width // 2, 3 * width // 4, width])
    for ti, xs in zip(t, trace.pictures_x):  # faces taken for pictures: grey crosses
        for px in xs:
            cx, cy = tx(ti), ty(px)
            draw.line([cx - 2, cy - 2, cx + 2, cy + 2], fill=(150, 150, 150))
            draw.line([cx - 2, cy + 2, cx + 2, cy - 2], fill=(150, 150, 150))
    followed = trace.followed if len(trace.followed) == len(trace.viewer_x) else [None] * len(trace.viewer_x)
    people = sorted({p for p in followed if p is not None})
    for ti, x, who in zip(t, trace.viewer_x, followed):
        if x is not None:  # the viewer's eye X, one blue per person the eyes follow
            cx, cy = tx(ti), ty(x)
            colour = PERSON_COLOURS[people.index(who) % len(PERSON_COLOURS)] if who is not None else PERSON_COLOURS[0]
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
    if any(trace.pictures_x):
        draw.text((right - 260, panels[0][0] - 16), "x: a face taken for a picture", fill=(110, 110, 110))
    n = max(2, trace.frame_count)
    ty = axes(*panels[1], 0, n - 1, "chosen frame (0 = looking left)",
              sorted({0, (n - 1) // 2, n - 1}))
    points = [(tx(ti), ty(i)) for ti, i in zip(t, trace.index)]
    if len(points) > 1:
        draw.line(points, fill=(200, 60, 30), width=2)
    for s in range(0, int(span) + 1, max(1, int(span) // 12 or 1)):
        x = tx(t0 + s)
        draw.line([x, panels[1][1], x, panels[1][1] + 4], fill=(0, 0, 0))
        draw.text((x - 6, panels[1][1] + 8), f"{s}", fill=(0, 0, 0))
    draw.text(((left + right) // 2 - 30, h - 18), "time (s)", fill=(0, 0, 0))
    img.save(path)


def run_demo(clip: Path, pack_path: Path, out_dir: Path, *, max_frames: int | None = None,
             write_video: bool = True, write_gif: bool = True, screen_height: int = 480,
             quiet: bool = False, config: Config | None = None) -> DemoTrace:
    """Run the daemon's pipeline over ``clip`` and write the demo's outputs into ``out_dir``.

    Every figure and picture comes from the :class:`~edge.pipeline.FrameResult` of each step: the demo
    shows what the daemon's own step did, not a copy of its loop. ``config`` is the daemon's (default:
    :func:`edge.config.load_config`'s): its detector range and gaze settings are used, its camera, display
    and pack sections are not (the clip, a headless screen and ``pack_path`` stand in for them).
    """
    config = load_config(None) if config is None else config
    out_dir.mkdir(parents=True, exist_ok=True)
    total = clip_frame_count(clip)
    if max_frames:
        total = min(total, int(max_frames))
    natural = load_pack(pack_path)  # verify once at its own size to learn its shape
    cw, ch = natural.screen_size
    screen = (max(2, int(round(cw * screen_height / ch))), screen_height)
    display = open_display("headless", size=screen)
    pack = load_pack(pack_path, screen_size=display.size, rotation=0)
    trackers: list = []
    factory = gaze_tracker(config.gaze)

    def make_tracker(frame_count, frame_size, span_deg):
        trackers.append(factory(frame_count, frame_size, span_deg))  # the demo reads whom it follows
        return trackers[-1]

    source = VideoFileSource(clip, realtime=False, loop=False)
    # The daemon's detector stack (edge.search.FaceSearch: the configured model on whole frames, crops
    # around the viewer, motion gating), so the demo finds, misses and holds faces as the Pi does. A clip
    # decoded as fast as it goes is not slowed down while gated (VideoFileSource.set_frame_rate).
    parts = build_parts(config, camera=source, display=display, make_tracker=make_tracker, pack=pack,
                        detector=make_detector(config))
    pipeline = Pipeline(parts)
    trace = DemoTrace(frame_count=pack.frame_count)
    results: list[FrameResult] = []
    writer = None
    gif_frames: list[Image.Image] = []
    pipeline.open()
    fps = float(source.fps or DEMO_FPS)  # the clip's own rate, known once it is open
    started = time.perf_counter()
    try:
        while len(results) < total:
            result = pipeline.step()
            if result.frame is None:
                if result.camera_down:
                    raise CameraError(f"{clip}: the camera source failed: {parts.camera.last_error}")
                continue
            results.append(result)
            trace.frame_width = result.frame.shape[1]
            trace.times.append(float(result.timestamp) if result.timestamp is not None else len(results) / fps)
            trace.viewer_x.append(result.viewer_x)
            trace.index.append(result.index)
            trace.faces.append(len(result.faces))
            trace.searched.append(result.searched)
            tracker = trackers[-1]
            followed = getattr(tracker, "followed", result.viewer)
            selector = getattr(tracker, "selector", None)
            trace.followed.append(None if followed is None or selector is None else selector.current_id)
            trace.viewer_y.append(None if followed is None else float(followed.eye_midpoint[1]))
            if followed is not None and result.viewer is None:  # held through a dropout: where they were
                trace.viewer_x[-1] = None
            trace.pictures_x.append(tuple(float(f.eye_midpoint[0]) for f in getattr(tracker, "pictures", ())))
            trace.followed_x.append(None if followed is None else float(followed.eye_midpoint[0]))
            trace.idle.append(bool(getattr(tracker, "idle", followed is None and result.index == pack.centre_index)))
            if write_video or write_gif:
                frame = side_by_side(result.frame, None if result.viewer is None else result.viewer.box,
                                     display.snapshot(), result.index, pack.frame_count, crop=result.crop)
                if write_video:
                    if writer is None:
                        writer = cv2.VideoWriter(str(out_dir / "demo.mp4"), cv2.VideoWriter.fourcc(*"mp4v"),
                                                 fps, (frame.shape[1], frame.shape[0]))
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if write_gif and (len(results) - 1) % GIF_STEP == 0:
                    small = _fit_height(frame, GIF_HEIGHT)
                    gif_frames.append(Image.fromarray(small).quantize(colors=GIF_COLOURS, method=Image.Quantize.MEDIANCUT))
    finally:
        trace.wall_seconds = time.perf_counter() - started
        pipeline.close()
        if writer is not None:
            writer.release()
    trace.latency_ms = stage_latency_ms(results)
    if gif_frames:
        gif_frames[0].save(out_dir / "demo.gif", save_all=True, append_images=gif_frames[1:],
                           duration=int(1000 * GIF_STEP / fps), loop=0, optimize=True)
    plot_trace(trace, out_dir / "plot.png")
    write_trace_csv(trace, out_dir / "trace.csv")
    (out_dir / "latency.json").write_text(json.dumps(trace.as_dict(), indent=2) + "\n")
    if not quiet:
        print(report(trace, out_dir))
    return trace


def write_trace_csv(trace: DemoTrace, path: Path) -> None:
    """One row per camera frame: frame, time (s), the followed viewer's eye midpoint (camera px; empty
    when nobody is followed), the frame index shown, faces detected, faces taken for pictures, and where
    the detector looked ("whole", "crop", "gated": :data:`edge.search.WHERE`)."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["frame", "time_s", "viewer_x", "viewer_y", "index", "faces", "pictures", "searched"])
        for k, t in enumerate(trace.times):
            x = trace.followed_x[k] if k < len(trace.followed_x) else trace.viewer_x[k]
            y = trace.viewer_y[k] if k < len(trace.viewer_y) else None
            out.writerow([k, f"{t:.4f}", "" if x is None else f"{x:.1f}", "" if y is None else f"{y:.1f}",
                          trace.index[k], trace.faces[k] if k < len(trace.faces) else "",
                          len(trace.pictures_x[k]) if k < len(trace.pictures_x) else "",
                          trace.searched[k] if k < len(trace.searched) else ""])


def stage_latency_ms(results: Sequence[FrameResult]) -> dict[str, dict[str, float | int | None]]:
    """Per stage p50/p95 in ms and the sample count, over the frames that went through every stage
    (``draw`` only over those that drew)."""
    samples: dict[str, list[float]] = {name: [] for name in STAGES}
    for result in results:
        times = result.times
        if times is None:
            continue
        for name, seconds in times.by_stage().items():
            if seconds is not None:
                samples[name].append(seconds)
    return {name: {"p50": _ms(float(np.percentile(values, 50))) if values else None,
                   "p95": _ms(float(np.percentile(values, 95))) if values else None,
                   "samples": len(values)}
            for name, values in samples.items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def report(trace: DemoTrace, out_dir: Path) -> str:
    seen = sum(x is not None for x in trace.viewer_x)
    frame_p50 = (trace.latency_ms.get("frame") or {}).get("p50")
    loop_fps = f"{1000.0 / frame_p50:.0f} fps" if frame_p50 else "-"
    lines = [f"{len(trace.times)} frames in {trace.wall_seconds:.1f} s including the demo's own video "
             f"rendering; the loop alone runs at {loop_fps} (median frame, one core)",
             f"viewer seen in {seen} frames; eyes used frames {min(trace.index)}..{max(trace.index)} "
             f"of 0..{trace.frame_count - 1}",
             "detector looked at " + ", ".join(f"{where} {trace.searched.count(where)}"
                                               for where in ("whole", "crop", "gated")) + " frames",
             "latency per frame (ms):   p50     p95"]
    for name in ("capture", "detect", "gaze", "draw", "frame"):
        stats = trace.latency_ms.get(name, {})
        p50, p95 = stats.get("p50"), stats.get("p95")
        lines.append(f"  {name:<22} {'-' if p50 is None else f'{p50:6.2f}'}  {'-' if p95 is None else f'{p95:6.2f}'}")
    outputs = [p.name for p in (out_dir / "demo.mp4", out_dir / "demo.gif", out_dir / "plot.png",
                                out_dir / "latency.json", out_dir / "trace.csv") if p.exists()]
    lines.append(f"wrote {', '.join(outputs)} in {out_dir}")
    return "\n".join(lines)


def default_pack() -> Path:
    """The configured pack if it is installed, else the bundled default pack, else the small test pack."""
    try:
        path = Path(load_config(None).pack.path)
        if path.exists():
            return path
    except ConfigError:
        pass
    try:
        return find_asset("packs", "default")
    except PackError:
        return find_asset("packs", "test")


def cmd_demo(args: argparse.Namespace) -> int:
    clip = args.clip or find_asset("clips", CLIP_NAME)
    pack = args.pack or default_pack()
    run_demo(clip, pack, args.out, max_frames=args.frames, write_video=not args.no_video,
             write_gif=not args.no_gif, config=load_config(args.config))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the whole pipeline on a bundled clip; writes video, plot, latency",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("mona-edge-demo"), help="output folder (default: ./mona-edge-demo)")
    p.add_argument("--clip", type=Path, help=f"a video of viewers (default: the bundled {CLIP_NAME})")
    p.add_argument("--pack", type=Path, help="a gaze pack (default: the configured one, else the bundled one)")
    p.add_argument("--frames", type=int, help="stop after this many frames")
    p.add_argument("--config", type=Path, help="the config whose detector and gaze settings to use "
                                                "(default: the daemon's, /etc/mona-edge/config.toml)")
    p.add_argument("--no-video", action="store_true", help="skip demo.mp4")
    p.add_argument("--no-gif", action="store_true", help="skip demo.gif")
    p.set_defaults(handler=cmd_demo)


def make_clip_main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge.demo make-clip OUT.mp4``: re-make the bundled viewer clip (needs scikit-image)."""
    parser = argparse.ArgumentParser(prog="python -m edge.demo")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make-clip", help="render the astronaut walking through a room")
    p.add_argument("out", type=Path)
    p.add_argument("--fps", type=float, default=DEMO_FPS)
    args = parser.parse_args(argv)
    count = write_clip(args.out, demo_walk(args.fps), args.fps)
    print(f"{args.out}: {count} frames, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(make_clip_main())
