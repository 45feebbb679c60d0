"""What the status socket answers: the loop's rolling figures, the status object, and snapshots.

Why apart from the loop: ``mona-edge status``, ``snapshot``, ``calibrate`` and ``doctor``
(:mod:`edge.commands`) read these JSON fields, so they are written down in one place, and the socket
thread (:class:`edge.status.StatusServer`) only ever *reads* what the loop publishes. A snapshot needs
the display and the camera frame, which belong to the loop's thread: it is queued here and answered by
the loop between two steps (:meth:`StatusAPI.serve_pending`).
"""

from __future__ import annotations

import base64
import datetime
import io
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge import __version__
from edge.detector import describe_models
from edge.errors import StatusError
from edge.health import SAFE_MODE, Health
from edge.pipeline import STAGES, FrameResult, Pipeline

if TYPE_CHECKING:
    from PIL import Image

#: How long a request that needs the loop (a snapshot) waits for it.
REQUEST_TIMEOUT = 2.0
SNAPSHOT_SOURCES = ("display", "camera")
#: A request or an answer on the socket: one JSON object.
JSON = dict[str, object]


class RequestError(StatusError):
    """A request the daemon cannot answer (unknown command, no camera frame yet, the loop busy or stopping):
    :class:`edge.status.StatusServer` sends its text back as ``{"error": ...}``, without a traceback."""


class RollingStats:
    """The last ``size`` samples in a preallocated ring: adding one allocates nothing."""

    def __init__(self, size: int = 300) -> None:
        self._values = np.zeros(size, np.float64)
        self._next = 0
        self.count = 0

    def add(self, value: float) -> None:
        self._values[self._next] = value
        self._next = (self._next + 1) % self._values.size
        self.count += 1

    def samples(self) -> np.ndarray:
        return self._values[: min(self.count, self._values.size)].copy()

    def percentile(self, q: float) -> float | None:
        data = self.samples()
        return float(np.percentile(data, q)) if data.size else None

    def mean(self) -> float | None:
        data = self.samples()
        return float(data.mean()) if data.size else None


class LoopStats:
    """Counts and timings of the loop, fed one :class:`FrameResult` at a time (by the loop's thread)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.frames = 0          # camera frames through the whole pipeline
        self.frames_read = 0     # camera frames read (a detector error skips the rest of one)
        self.reloads = 0
        self.errors: dict[str, int] = {"camera": 0, "detector": 0, "display": 0, "reload": 0, "request": 0}
        self.last_error: str | None = None
        self.timing = {name: RollingStats() for name in STAGES}
        self._frame_times = RollingStats(60)  # when processed frames finished, for fps
        self.last: FrameResult | None = None

    def record(self, result: FrameResult) -> None:
        self.last = result
        if result.frame is not None:
            self.frames_read += 1
        if result.error is not None:
            self.error(result.error.stage, result.error.message)
        times = result.times
        if times is None:
            return
        self.frames += 1
        for name, seconds in times.by_stage().items():
            if seconds is not None:  # draw: only frames that drew
                self.timing[name].add(seconds)
        self._frame_times.add(self._clock())

    def error(self, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = message

    def fps(self) -> float:
        times = self._frame_times.samples()
        if times.size < 2:
            return 0.0
        times.sort()
        span = times[-1] - times[0]
        if span <= 0 or self._clock() - times[-1] > 2.0:  # no frames lately: not "30 fps" from old data
            return 0.0
        return float((times.size - 1) / span)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 2)


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """PNG of an RGB array or a PIL image. (PIL is imported here, when a snapshot is asked for: the daemon
    has no other use for it, and it costs 2 MB and 20 ms at every start.)"""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class StatusAPI:
    """Answers the socket's requests about one running ``pipeline``.

    ``status`` is safe on any thread (it reads; the loop replaces whole objects, never edits them in
    place). ``snapshot`` requests wait for the loop, which calls :meth:`serve_pending` between steps.
    """

    def __init__(self, pipeline: Pipeline, stats: LoopStats, health: Health, *, config_path: Path | None,
                 stop: threading.Event, clock: Callable[[], float] = time.monotonic,
                 screen: Callable[[], JSON] | None = None, display: str | None = None) -> None:
        self._pipeline = pipeline
        self._display = display  # what sink = "auto" chose and why (None: a sink configured by name)
        self._screen = screen  # screen power's report (edge/screen_power.py), or None
        self._stats = stats
        self._health = health
        self._config_path = config_path
        self._stop = stop
        self._clock = clock
        self._requests: queue.Queue[tuple[str, Future[JSON]]] = queue.Queue()

    def status(self) -> JSON:
        """Everything ``mona-edge status`` shows."""
        stats, pipeline = self._stats, self._pipeline
        parts, last = pipeline.parts, stats.last
        cam = parts.camera
        opened = pipeline.opened
        detect = stats.timing["detect"]
        viewer_x = None if last is None else last.viewer_x
        angle = None if last is None else last.angle_deg
        size = pipeline.frame_size
        return {
            "state": self._health.state,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(self._clock() - self._health.started_at, 1),
            "fps": round(stats.fps(), 2),
            "frames": stats.frames,
            "detect_ms": {"p50": _ms(detect.percentile(50)), "p95": _ms(detect.percentile(95))},
            "stage_ms": {name: _ms(s.mean()) for name, s in stats.timing.items()},
            "viewer_present": last is not None and last.viewer_present,
            "viewer_x": None if viewer_x is None else round(viewer_x, 2),
            "frame_width": None if size is None else size[0],
            "angle_deg": None if angle is None else round(angle, 2),
            "index": pipeline.index,
            "frame_count": parts.pack.frame_count,
            "pack": parts.pack.name,
            "camera": {
                "name": cam.name,
                "state": cam.state if opened else "closed",
                "failures": cam.failures,
                "recoveries": cam.recoveries,
                "last_error": cam.last_error,
                "retry_in_s": round(cam.retry_in, 1),
            },
            "errors": dict(stats.errors, camera=cam.failures),
            "last_error": stats.last_error or cam.last_error,
            "reloads": stats.reloads,
            "config": None if self._config_path is None else str(self._config_path),
            "safe_mode": self._safe_mode(),
            "reasons": list(self._health.reasons),
            "screen": None if self._screen is None else self._screen(),
            "display": self._display,
            "model": describe_models(parts.detector),  # which files and why ([detector] precision)
        }

    def _safe_mode(self) -> JSON | None:
        """None, or why the daemon started in safe mode and since when (ISO 8601, local time)."""
        entry = self._health.reason(SAFE_MODE)
        if entry is None:
            return None
        reason, since = entry
        when = datetime.datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds")
        return {"reason": reason, "since": when}

    def status_line(self) -> str:
        """The one line ``systemctl status`` shows."""
        last = self._stats.last
        cam = self._pipeline.parts.camera.state if self._pipeline.opened else "closed"
        viewer = "viewer" if last is not None and last.viewer_present else "nobody"
        line = (f"{self._health.state.lower()}: {self._stats.fps():.1f} fps, camera {cam}, {viewer}, "
                f"frame {self._pipeline.index}")
        screen = None if self._screen is None else self._screen()
        if screen is not None and screen.get("state") != "on":
            line += f", screen {screen.get('state')} ({screen.get('why')})"
        reasons = self._health.reasons
        return line + "".join(f"; {reason}" for reason in reasons)

    def handle(self, request: JSON) -> JSON:
        """Answer one socket request (on the socket's thread)."""
        command = request.get("command", "status")
        if command == "status":
            return self.status()
        if command == "snapshot":
            source = request.get("source", "display")
            if source not in SNAPSHOT_SOURCES:
                raise RequestError(f"snapshot source {source!r}: expected 'display' or 'camera'")
            return self._via_loop(str(source))
        raise RequestError(f"unknown command {command!r}: expected 'status' or 'snapshot'")

    def _via_loop(self, source: str) -> JSON:
        if self._stop.is_set():
            raise RequestError("the daemon is stopping")
        future: Future[JSON] = Future()
        self._requests.put((source, future))
        try:
            return future.result(timeout=REQUEST_TIMEOUT)
        except TimeoutError:
            self._stats.errors["request"] += 1
            raise RequestError(f"the loop did not answer within {REQUEST_TIMEOUT:g} s") from None

    def serve_pending(self) -> None:
        """Answer queued snapshots (on the loop's thread, between steps)."""
        while True:
            try:
                source, future = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(self._snapshot(source))
            except Exception as exc:  # goes back to the client as {"error": ...}
                future.set_exception(exc)

    def fail_pending(self, reason: str) -> None:
        while True:
            try:
                _source, future = self._requests.get_nowait()
            except queue.Empty:
                return
            future.set_exception(RequestError(reason))

    def _snapshot(self, source: str) -> JSON:
        pipeline = self._pipeline
        if source == "camera":
            frame = pipeline.last_frame
            if frame is None:
                state = pipeline.parts.camera.state if pipeline.opened else "closed"
                raise RequestError(f"no camera frame yet (camera state: {state})")
            image = frame.copy()  # debug capture on request only: never stored by the daemon
        else:
            image = pipeline.parts.display.snapshot()
        data = png_bytes(image)
        return {"source": source, "index": pipeline.index, "png_base64": base64.b64encode(data).decode("ascii")}
