"""The daemon's lifecycle: start, loop, reload, stop; signals on a thread of their own; ``mona-edge run``.

The loop itself is :class:`edge.pipeline.Pipeline` (the demo, the benches and the tests drive the same
step); health and sd_notify are :mod:`edge.health`, SIGHUP is :mod:`edge.reload`, the status socket's
answers are :mod:`edge.status_api`. What stays here is their order, which carries the reliability rules
(design.md):

  * the portrait is on screen before anything else starts, and stays there through every fault;
  * the status socket answers before the camera is opened, so a camera that hangs can be asked about;
  * SIGTERM ends the daemon within a second even if a camera driver call hangs: signals are taken by a
    thread of their own (:class:`SignalThread`), never delayed behind a blocking C call in the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from edge import __version__
from edge.camera import CameraSource
from edge.config import Config, load_config
from edge.health import Health, Notify
from edge.pipeline import Detector, Display, FrameResult, Pack, Parts, Pipeline, build_parts
from edge.reload import BackgroundReload, reload
from edge.sdnotify import Notifier
from edge.status import StatusServer
from edge.status_api import JSON, LoopStats, StatusAPI

log = logging.getLogger(__name__)

#: Seconds the loop may take to wind down after SIGTERM before the signal thread ends the process.
STOP_GRACE = 0.8


@dataclass(frozen=True, slots=True)
class _Running:
    """What exists once :meth:`EdgeService.start` has returned."""

    pipeline: Pipeline
    api: StatusAPI


class EdgeService:
    """One daemon: builds the pipeline from ``config`` (parts given here are used instead, for tests and
    tools), runs it until :meth:`stop`, and reloads from ``config_path`` when asked."""

    def __init__(self, config: Config, config_path: Path | None = None, *, notifier: Notify | None = None,
                 camera: CameraSource | None = None, display: Display | None = None,
                 detector: Detector | None = None, pack: Pack | None = None,
                 status_socket: Path | None = None, serve_status: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        # Parts given here are used instead of building them (tests, tools); the rest come from config.
        self._given_camera, self._given_display = camera, display
        self._given_detector, self._given_pack = detector, pack
        self._socket_path = status_socket or Path(config.service.status_socket)
        self._serve_status = serve_status
        self._clock = clock
        self.health = Health(notifier, ready_timeout=config.service.ready_timeout,
                             watchdog=config.service.watchdog, clock=clock)
        self.stats = LoopStats(clock)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._background = (BackgroundReload(self.config_path, keep_camera=camera is not None)
                            if self.config_path else None)
        self._server: StatusServer | None = None  # kept apart: the signal thread may need it mid-start
        self._running: _Running | None = None
        self._closers = contextlib.ExitStack()

    # --- what a started daemon has ----------------------------------------------------------------------
    @property
    def running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("the service has not started (call start() first)")
        return self._running

    @property
    def pipeline(self) -> Pipeline:
        return self.running.pipeline

    @property
    def parts(self) -> Parts:
        return self.running.pipeline.parts

    @property
    def pack(self) -> Pack:
        return self.parts.pack

    @property
    def frames(self) -> int:
        """Camera frames through the whole pipeline so far (0 before start)."""
        return self.stats.frames

    # --- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Display and portrait first, then model, status socket, and the camera last."""
        parts = build_parts(self.config, camera=self._given_camera, display=self._given_display,
                            detector=self._given_detector, pack=self._given_pack,
                            on_stage=lambda stage: self.health.note(f"starting: {stage}"))
        pipeline = Pipeline(parts, wait=self._stop.wait)
        self._closers.callback(pipeline.close)
        api = StatusAPI(pipeline, self.stats, self.health, config_path=self.config_path, stop=self._stop,
                        clock=self._clock)
        self._closers.callback(api.fail_pending, "the daemon is stopping")
        if self._serve_status:
            server = StatusServer(self._socket_path, api.handle, mode=int(self.config.service.socket_mode))
            server.start()
            self._server = server
            self._closers.callback(server.stop)
        self.health.note("starting: camera")
        pipeline.open()
        self.health.begin()
        self._running = _Running(pipeline, api)
        log.info("mona-edge %s: pack %s (%d frames), display %s, camera %s", __version__, parts.pack.name,
                 parts.pack.frame_count, "x".join(map(str, parts.display.size)), parts.camera.name)

    def stop(self) -> None:
        """Ask the loop to end (any thread, signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_reload(self) -> None:
        """Ask the loop to reload at its next step (any thread)."""
        self._reload_requested.set()

    def shutdown(self) -> None:
        """Leave the portrait on screen; stop the socket, close camera and display (whatever was started)."""
        self.health.stopping()
        self._closers.close()

    def abandon(self) -> None:
        """The loop is stuck in a driver call and the process is about to end without it (signal thread):
        remove what would outlive the process, the socket file, and tell systemd we stop."""
        if self._server is not None:
            self._server.path.unlink(missing_ok=True)
        self.health.stopping()

    def run(self) -> int:
        """Start, loop until asked to stop, shut down. Returns the exit code."""
        try:
            self.start()
            while not self._stop.is_set():
                self.step()
        finally:
            self.shutdown()
        return 0

    # --- one iteration ----------------------------------------------------------------------------------
    def step(self) -> FrameResult:
        """Snapshots asked for, a reload asked for or loaded, one pipeline step, then health (and the
        watchdog: a reload loads beside the loop, so the loop and its pings go on meanwhile)."""
        run = self.running
        run.api.serve_pending()
        self._reload_in_background(run)
        result = run.pipeline.step()
        self.stats.record(result)
        camera = run.pipeline.parts.camera
        self.health.tick(camera.state == "ok" and camera.frames > 0, run.api.status_line)
        return result

    def _reload_in_background(self, run: _Running) -> None:
        if self._reload_requested.is_set():
            if self._background is None:
                self._reload_requested.clear()
                log.info("reload: no config file to re-read")
            elif not self._background.loading:  # a SIGHUP during a load: another load after this one
                self._reload_requested.clear()
                self.health.reloading()
                self._background.start(self.config, run.pipeline.parts)
        if self._background is not None:
            finished, config = self._background.finish(run.pipeline, self.stats)
            if config is not None:
                self.config = config
            if finished:
                self.health.reloaded(run.api.status_line())

    def reload(self) -> bool:
        """Re-read config and pack now, on this thread; switch only when everything new has loaded.
        Returns success. (SIGHUP reloads through :meth:`request_reload`, loaded beside the loop.)"""
        if self.config_path is None:
            log.info("reload: no config file to re-read")
            return False
        run = self.running
        self.health.reloading()
        try:
            config = reload(self.config_path, self.config, run.pipeline, self.stats,
                            keep_camera=self._given_camera is not None)
            if config is not None:
                self.config = config
            return config is not None
        finally:
            self.health.reloaded(run.api.status_line())

    def status(self) -> JSON:
        """What ``mona-edge status`` shows (the status socket's answer)."""
        return self.running.api.status()


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
    def _ignore(signum: int, frame: FrameType | None) -> None:
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
            self.service.abandon()
            logging.shutdown()
        finally:
            self.hard_exit(0)


def run_daemon(config_path: Path | None) -> int:
    """``mona-edge run``: load config, notify systemd, loop until SIGTERM."""
    config = load_config(config_path)
    logging.getLogger().setLevel(config.service.log_level.upper())
    service = EdgeService(config, config_path, notifier=Notifier())
    signals = SignalThread(service)
    signals.start()
    try:
        return service.run()
    finally:
        signals.done.set()
