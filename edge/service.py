"""The daemon: camera -> detector -> gaze -> display, kept alive for years on a wall.

Reliability rules this loop enforces (design.md):
  * the screen never goes black because of a fault: the portrait is on screen before anything else
    starts, a failing camera leaves the eyes at centre while it is retried, a detector error skips one
    frame, and a reload loads the new pack completely before it replaces the one on screen;
  * systemd learns READY only once camera, model and display are up, and WATCHDOG only while the loop
    really iterates, so a hung loop is restarted;
  * SIGTERM ends it within a second even if a camera driver call hangs: signals are taken by a thread of
    their own (``sigwait``), never delayed behind a blocking C call in the loop.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.camera import CameraSource, RetryingCamera, open_source
from edge.status import StatusServer

log = logging.getLogger(__name__)

STARTING, READY, DEGRADED, STOPPING = "STARTING", "READY", "DEGRADED", "STOPPING"
#: Seconds the loop may take to wind down after SIGTERM before the signal thread ends the process.
STOP_GRACE = 0.8
#: How long a request that needs the loop (a snapshot) waits for it.
REQUEST_TIMEOUT = 2.0
#: How often the STATUS line sent to systemd is refreshed.
STATUS_EVERY = 5.0
#: The loop's pause while no frame can come (camera retrying): short, so signals and requests stay prompt.
IDLE_WAIT = 0.05


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


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 2)


def png_bytes(image: Any) -> bytes:
    """PNG of an RGB array or a PIL image (what a display sink's ``snapshot`` returns)."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class EdgeService:
    """The loop and its health. Parts may be injected (tests, the demo); otherwise built from config.

    ``config`` is an ``edge.config.Config``; ``config_path`` is where SIGHUP re-reads it from.
    """

    def __init__(self, config: Any, config_path: Path | None = None, *, notifier: Any = None,
                 camera: CameraSource | None = None, display: Any = None, detector: Any = None,
                 pack: Any = None, status_socket: Path | None = None, serve_status: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.notifier = notifier
        self._camera_override = camera
        self.camera: RetryingCamera | None = None
        self.display = display
        self.detector = detector
        self.pack: Any = pack
        self.tracker: Any = None
        self._tracker_frame_size: tuple | None = None
        self._status_socket = status_socket
        self._serve_status = serve_status
        self.status_server: StatusServer | None = None
        self.clock = clock

        self.state = STARTING
        self.started_at = clock()
        self.index: int | None = None       # the frame on screen
        self.frames = 0                        # camera frames through the whole pipeline
        self.frames_read = 0                   # camera frames read (some may be skipped by a detector error)
        self.iterations = 0
        self.errors: dict[str, int] = {"camera": 0, "detector": 0, "display": 0, "reload": 0, "request": 0}
        self.last_error: str | None = None
        self.reloads = 0
        self.timing = {name: RollingStats() for name in ("capture", "detect", "gaze", "draw", "frame")}
        self._frame_times = RollingStats(60)   # timestamps of processed frames, for fps
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._requests: queue.Queue[tuple[dict, Future]] = queue.Queue()
        self._last_watchdog = 0.0
        self._watchdog_every: float | None = None
        self._last_status = 0.0
        self._ready_sent = False
        self.last_frame: np.ndarray | None = None  # the newest camera frame, in memory only
        self.viewer_x: float | None = None

    # --- building the parts from config ---------------------------------------------------------------
    def _make_display(self):
        from edge.display import open_display

        d = self.config.display
        return open_display(d.kind, device=d.device, size=d.size, drm_card=d.drm_card, output=d.output)

    def _load_pack(self, config: Any):
        from edge.pack import load_pack

        return load_pack(config.pack.path, screen_size=self.display.size, rotation=config.display.rotation)

    @staticmethod
    def _make_detector(config: Any):
        from edge.detector import FaceDetector

        d = config.detector
        return FaceDetector(d.model, d.range, threads=d.threads, min_score=d.min_score)

    @staticmethod
    def _make_camera(config: Any, source: CameraSource | None = None) -> RetryingCamera:
        c = config.camera
        # A video file plays at its own frame rate: [camera] fps has a default, so it cannot tell us the
        # user meant to override the file's.
        src = source or open_source(c.source, device=c.device, path=c.path, size=tuple(c.size),
                                    fps=None if c.source == "file" else c.fps, realtime=c.realtime, loop=c.loop,
                                    hflip=c.hflip, vflip=c.vflip)
        return RetryingCamera(src, initial=c.retry_initial, maximum=c.retry_max)

    def _make_tracker(self, frame_size: tuple):
        from edge.gaze import GazeTracker

        tracker = GazeTracker(self.config.gaze, self.pack.frame_count, frame_size=frame_size,
                              span_deg=tuple(self.pack.span_deg))
        self._tracker_frame_size = frame_size
        return tracker

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Display first (with the portrait looking ahead), then model, camera and status socket."""
        self._status("starting: display")
        if self.display is None:
            self.display = self._make_display()
        if self.pack is None:
            self.pack = self._load_pack(self.config)
        self.index = int(self.pack.centre_index)
        self.display.show_full(self.pack.frame_image(self.index))
        self._status("starting: detector")
        if self.detector is None:
            self.detector = self._make_detector(self.config)
        if self._serve_status:  # before the camera: a camera that hangs on open can still be asked about
            path = self._status_socket or Path(self.config.service.status_socket)
            self.status_server = StatusServer(path, self.handle_request, mode=int(self.config.service.socket_mode))
            self.status_server.start()
        self._status("starting: camera")
        self.camera = self._make_camera(self.config, self._camera_override)
        self.camera.open()
        if self.notifier is not None:
            from edge.sdnotify import watchdog_interval

            interval = watchdog_interval() if self.config.service.watchdog else None
            self._watchdog_every = interval / 2.0 if interval else None
        self.started_at = self.clock()
        log.info("mona-edge %s: pack %s (%d frames), display %s, camera %s", __version__, self.pack_name,
                 self.pack.frame_count, "x".join(map(str, self.display.size)), self.camera.name)

    @property
    def pack_name(self) -> str | None:
        if self.pack is None:
            return None
        return getattr(self.pack, "name", None) or Path(str(self.config.pack.path)).name

    def stop(self) -> None:
        """Ask the loop to end (any thread, signal-safe)."""
        self._stop.set()

    def request_reload(self) -> None:
        self._reload_requested.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def shutdown(self) -> None:
        """Leave the portrait on screen; close the camera and the socket."""
        self.state = STOPPING
        if self.notifier is not None:
            self.notifier.stopping()
        if self.status_server is not None:
            self.status_server.stop()
        if self.camera is not None:
            self.camera.close()
        if self.display is not None:
            self.display.close()
        self._fail_pending("the daemon is stopping")

    def run(self) -> int:
        """Start, loop until asked to stop, shut down. Returns the exit code."""
        try:
            self.start()
            while not self._stop.is_set():
                self.step()
        finally:
            self.shutdown()
        return 0

    # --- one iteration ---------------------------------------------------------------------------------
    def step(self) -> None:
        self.iterations += 1
        self._serve_requests()
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()
        t0 = time.perf_counter()
        frame = self.camera.read()
        t1 = time.perf_counter()
        if frame is None:
            self._no_frame()
        else:
            self._process(frame, t0, t1)
        self._health()

    def _no_frame(self) -> None:
        if self.camera.state != "ok":
            # Camera down: eyes to centre, screen untouched otherwise; wait a little for the next retry.
            if self.index != self.pack.centre_index:
                if self.tracker is not None:
                    self.tracker.reset()
                self._draw(int(self.pack.centre_index))
            self.viewer_x = None
            self._stop.wait(min(IDLE_WAIT, max(0.001, self.camera.retry_in)))

    def _process(self, frame: tuple, t0: float, t1: float) -> None:
        rgb, t = frame
        self.frames_read += 1
        self.last_frame = rgb
        size = (rgb.shape[1], rgb.shape[0])
        if self.tracker is None or size != self._tracker_frame_size:
            self.tracker = self._make_tracker(size)
        try:
            faces = self.detector.detect(rgb)
        except Exception as exc:  # one bad frame must not stop the portrait
            self._error("detector", f"detector: {exc}")
            return
        t2 = time.perf_counter()
        index = int(self.tracker.update(faces, t))
        viewer = getattr(self.tracker, "viewer", None)
        self.viewer_x = float(viewer.eye_midpoint[0]) if viewer is not None else None
        t3 = time.perf_counter()
        drew = index != self.index and self._draw(index)
        t4 = time.perf_counter()
        self.frames += 1
        self.timing["capture"].add(t1 - t0)
        self.timing["detect"].add(t2 - t1)
        self.timing["gaze"].add(t3 - t2)
        if drew:
            self.timing["draw"].add(t4 - t3)
        self.timing["frame"].add(t4 - t0)
        self._frame_times.add(self.clock())

    def _draw(self, index: int) -> bool:
        try:
            rect, patch = self.pack.patch(index)
            self.display.update(rect, patch)
        except Exception as exc:
            self._error("display", f"display: {exc}")
            return False
        self.index = index
        return True

    def _error(self, kind: str, message: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = message
        log.warning("%s", message)

    def _health(self) -> None:
        now = self.clock()
        cam_ok = self.camera.state == "ok" and self.camera.frames > 0
        self.state = READY if cam_ok else (DEGRADED if self._ready_sent else STARTING)
        if not self._ready_sent:
            timeout = float(self.config.service.ready_timeout)
            if cam_ok or now - self.started_at >= timeout:
                if not cam_ok:
                    # The display and model are up and the portrait is showing; a camera that never came
                    # is not worth a restart loop (which would blank the screen): report DEGRADED instead.
                    self.state = DEGRADED
                    log.error("camera not up after %.0f s: running degraded, eyes at centre", timeout)
                if self.notifier is not None:
                    self.notifier.ready()
                self._ready_sent = True
        if self.notifier is not None:
            if self._watchdog_every is not None and now - self._last_watchdog >= self._watchdog_every:
                self.notifier.watchdog()
                self._last_watchdog = now
            if now - self._last_status >= STATUS_EVERY or self.state != getattr(self, "_last_state", None):
                self.notifier.status(self.status_line())
                self._last_status = now
                self._last_state = self.state

    def _status(self, text: str) -> None:
        if self.notifier is not None:
            self.notifier.status(text)

    def status_line(self) -> str:
        fps = self.fps()
        cam = self.camera.state if self.camera else "closed"
        viewer = "viewer" if self.viewer_x is not None else "nobody"
        return f"{self.state.lower()}: {fps:.1f} fps, camera {cam}, {viewer}, frame {self.index}"

    # --- reload (SIGHUP) -------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read config and pack; switch only when everything new has loaded. Returns success."""
        if self.config_path is None:
            log.info("reload: no config file to re-read")
            return False
        if self.notifier is not None:
            self.notifier.reloading("reloading config and pack")
        try:
            return self._reload()
        finally:
            if self.notifier is not None and self._ready_sent:
                self.notifier.ready(self.status_line())  # systemd waits for READY=1 after RELOADING=1

    def _reload(self) -> bool:
        from edge.config import load_config

        try:
            config = load_config(self.config_path)
            pack = self._load_pack(config)
        except (ValueError, OSError) as exc:  # ConfigError and PackError are ValueErrors
            self._error("reload", f"reload refused, still running the previous config and pack: {exc}")
            return False
        detector = self.detector
        if config.detector != self.config.detector:
            try:
                detector = self._make_detector(config)
            except (ValueError, OSError) as exc:
                self._error("reload", f"reload refused (detector), nothing changed: {exc}")
                return False
        if config.display != self.config.display:
            log.warning("reload: display settings change on restart only (systemctl restart mona-edge)")
        camera_changed = config.camera != self.config.camera and self._camera_override is None
        old_config, self.config, self.pack, self.detector = self.config, config, pack, detector
        self.index = int(pack.centre_index)
        self.display.show_full(pack.frame_image(self.index))  # the whole new portrait in one draw
        self.tracker = None
        if camera_changed:
            self.camera.close()
            self.camera = self._make_camera(config)
            self.camera.open()
        self.reloads += 1
        log.info("reloaded %s: pack %s (%d frames)%s", self.config_path, self.pack_name, pack.frame_count,
                 ", new camera" if camera_changed else "")
        del old_config
        return True

    # --- status socket -------------------------------------------------------------------------------
    def fps(self) -> float:
        times = self._frame_times.samples()
        if times.size < 2:
            return 0.0
        times.sort()
        span = times[-1] - times[0]
        if span <= 0 or self.clock() - times[-1] > 2.0:  # no frames lately: not "30 fps" from old data
            return 0.0
        return float((times.size - 1) / span)

    def status(self) -> dict:
        """Everything ``mona-edge status`` shows (safe to call from the socket thread: reads only)."""
        detect = self.timing["detect"]
        cam = self.camera
        tracker = self.tracker
        return {
            "state": self.state,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(self.clock() - self.started_at, 1),
            "fps": round(self.fps(), 2),
            "frames": self.frames,
            "detect_ms": {"p50": _ms(detect.percentile(50)), "p95": _ms(detect.percentile(95))},
            "stage_ms": {name: _ms(stats.mean()) for name, stats in self.timing.items()},
            "viewer_present": bool(getattr(tracker, "viewer_present", False)) if tracker else False,
            "viewer_x": None if self.viewer_x is None else round(self.viewer_x, 2),
            "frame_width": self._tracker_frame_size[0] if self._tracker_frame_size else None,
            "angle_deg": (None if tracker is None or getattr(tracker, "angle_deg", None) is None
                          else round(float(tracker.angle_deg), 2)),
            "index": self.index,
            "frame_count": self.pack.frame_count if self.pack else None,
            "pack": self.pack_name,
            "camera": {
                "name": cam.name if cam else None,
                "state": cam.state if cam else "closed",
                "failures": cam.failures if cam else 0,
                "recoveries": cam.recoveries if cam else 0,
                "last_error": cam.last_error if cam else None,
                "retry_in_s": round(cam.retry_in, 1) if cam else None,
            },
            "errors": dict(self.errors, camera=cam.failures if cam else 0),
            "last_error": self.last_error or (cam.last_error if cam else None),
            "reloads": self.reloads,
            "config": str(self.config_path) if self.config_path else None,
        }

    def handle_request(self, request: dict) -> dict:
        """Answer one socket request (called on the socket thread)."""
        command = request.get("command", "status")
        if command == "status":
            return self.status()
        if command == "snapshot":
            source = request.get("source", "display")
            if source not in ("display", "camera"):
                raise ValueError(f"snapshot source {source!r}: expected 'display' or 'camera'")
            return self._via_loop(request)
        raise ValueError(f"unknown command {command!r}: expected 'status' or 'snapshot'")

    def _via_loop(self, request: dict) -> dict:
        """Run a request on the loop's thread (the display and camera are not shared across threads)."""
        if self._stop.is_set():
            raise ValueError("the daemon is stopping")
        future: Future = Future()
        self._requests.put((request, future))
        try:
            return future.result(timeout=REQUEST_TIMEOUT)
        except TimeoutError:
            self.errors["request"] += 1
            raise ValueError(f"the loop did not answer within {REQUEST_TIMEOUT:g} s") from None

    def _serve_requests(self) -> None:
        while True:
            try:
                request, future = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(self._snapshot(request.get("source", "display")))
            except Exception as exc:
                future.set_exception(exc)

    def _snapshot(self, source: str) -> dict:
        if source == "camera":
            if self.last_frame is None:
                raise ValueError("no camera frame yet (camera state: %s)" % (self.camera.state if self.camera else "closed"))
            image = self.last_frame.copy()  # debug capture on request only: never stored by the daemon
        else:
            image = self.display.snapshot()
        data = png_bytes(image)
        return {"source": source, "index": self.index, "png_base64": base64.b64encode(data).decode("ascii")}

    def _fail_pending(self, reason: str) -> None:
        while True:
            try:
                _request, future = self._requests.get_nowait()
            except queue.Empty:
                return
            future.set_exception(ValueError(reason))


class SignalThread:
    """Takes SIGTERM/SIGINT/SIGHUP on a thread of its own, so a loop stuck in a driver call cannot delay them.

    Python runs signal handlers only in the main thread, and only between bytecodes: a main thread blocked
    inside a C call (a wedged camera driver) would never see SIGTERM. So the handlers themselves do
    nothing; Python's C-level handler also writes the signal number to a wakeup socket, whichever thread
    the kernel delivered it to, and this thread reads that socket and acts. After a stop request the loop
    has :data:`STOP_GRACE` seconds to wind down; if it is still stuck, the process exits anyway (the
    screen keeps its last image).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self, service: EdgeService, grace: float = STOP_GRACE,
                 hard_exit: Callable[[int], None] = os._exit) -> None:
        self.service = service
        self.grace = grace
        self.hard_exit = hard_exit
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signals", daemon=True)
        self._reader, self._writer = socket.socketpair()

    def start(self) -> None:
        """Call from the main thread, before anything slow starts."""
        self._writer.setblocking(False)
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            signal.signal(signum, self._ignore)
        self._thread.start()

    @staticmethod
    def _ignore(signum, frame) -> None:
        """The main thread's handler: the signal thread has already acted on it."""

    def _run(self) -> None:
        while True:
            data = self._reader.recv(64)
            if not data:
                return
            for signum in data:
                if signum == signal.SIGHUP:
                    log.info("SIGHUP: reloading config and pack")
                    self.service.request_reload()
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    self._stop(signum)
                    return

    def _stop(self, signum: int) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        self.service.stop()
        if self.done.wait(self.grace):
            return
        log.error("the loop did not stop within %.1f s (a blocked driver call?): exiting now", self.grace)
        try:
            if self.service.status_server is not None:
                self.service.status_server.path.unlink(missing_ok=True)
            if self.service.notifier is not None:
                self.service.notifier.stopping()
            logging.shutdown()
        finally:
            self.hard_exit(0)


def run_daemon(config_path: Path | None) -> int:
    """``mona-edge run``: load config, notify systemd, loop until SIGTERM."""
    from edge.config import load_config
    from edge.sdnotify import Notifier

    config = load_config(config_path)
    logging.getLogger().setLevel(config.service.log_level.upper())
    service = EdgeService(config, config_path, notifier=Notifier())
    signals = SignalThread(service)
    signals.start()
    try:
        return service.run()
    finally:
        signals.done.set()
