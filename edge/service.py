"""The daemon's lifecycle: start, loop, reload, stop; signals on a thread of their own; ``mona-edge run``.

The loop itself is :class:`edge.pipeline.Pipeline` (the demo, the benches and the tests drive the same
step); health and sd_notify are :mod:`edge.health`, SIGHUP is :mod:`edge.reload`, the status socket's
answers are :mod:`edge.status_api`. What stays here is their order, which carries the reliability rules
(ARCHITECTURE.md, reliability rules):

  * the portrait is on screen before anything else starts, and stays there through every fault;
  * the status socket answers before the camera is opened, so a camera that hangs can be asked about;
  * SIGTERM ends the daemon within a second even if a camera driver call hangs: signals are taken by a
    thread of their own (:class:`SignalThread`), never delayed behind a blocking C call in the loop.

Safe mode (OctoPrint's is the model): if what the config names cannot be used at start, the daemon does
not exit, because under the unit's ``Restart=`` limits that ends in a failed unit and a black screen. It
runs on the defaults for whatever was unusable instead: the sections of a bad config file that are
valid on their own, built-in defaults for the others (:func:`load_config_safely`); the bundled default
pack for a pack that cannot be loaded; the bundled model of the configured range for a model that cannot
(and no detection at all, eyes at centre, if that cannot be loaded either). It says so everywhere an
operator looks: one ERROR line in the journal, DEGRADED with the reason in STATUS=, ``"safe_mode":
{"reason", "since"}`` on the status socket (``mona-edge status``), a FAIL line in ``mona-edge doctor``.
It keeps serving the status socket and reloading: the config path is watched as before, and a SIGHUP
whose config, pack and model all load leaves safe mode (READY).

What may still end the process at start: a display that cannot be opened at all (nothing could be shown
anyway, and the unit's restart is the only retry there is), a status socket another daemon answers on
(that daemon has the screen), and a bundled default pack that cannot be loaded (a broken install).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from edge import __version__
from edge.assets import default_pack_path
from edge.camera import CameraSource
from edge.config import SECTIONS, Config, ConfigError, config_from_dict, load_config, read_toml
from edge.crashes import CrashCounter, daemon_inputs
from edge.display import choice_of
from edge.errors import MonaEdgeError
from edge.health import DETECTOR, SAFE_MODE, Health, Notify
from edge.pipeline import (
    Detector,
    Display,
    FrameResult,
    NoDetector,
    Pack,
    Parts,
    Pipeline,
    gaze_tracker,
    make_bundled_detector,
    make_camera,
    make_detector,
    make_display,
    make_pack,
    show_portrait,
)
from edge.reload import BackgroundReload, reload
from edge.screen_power import ReleasableDisplay, ScreenPower, mechanisms_for, releasable
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
    screen: ScreenPower


class EdgeService:
    """One daemon: builds the pipeline from ``config`` (parts given here are used instead, for tests and
    tools), runs it until :meth:`stop`, and reloads from ``config_path`` when asked.

    ``boot_problems``: what was already found unusable before start (a config file that could not be
    used, :func:`load_config_safely`); start adds what it finds, and any of them means safe mode.
    """

    def __init__(self, config: Config, config_path: Path | None = None, *, notifier: Notify | None = None,
                 camera: CameraSource | None = None, display: Display | None = None,
                 detector: Detector | None = None, pack: Pack | None = None,
                 status_socket: Path | None = None, serve_status: bool = True,
                 clock: Callable[[], float] = time.monotonic, boot_problems: Sequence[str] = ()) -> None:
        self.config = config
        self._boot_problems = list(boot_problems)
        self.config_path = Path(config_path) if config_path else None
        # Parts given here are used instead of building them (tests, tools); the rest come from config.
        self._given_camera, self._given_display = camera, display
        self._given_detector, self._given_pack = detector, pack
        self._display_choice: str | None = None  # set when the display opens (edge.display.choice_of)
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
    @property
    def safe_mode(self) -> str | None:
        """Why the daemon runs in safe mode, or None."""
        entry = self.health.reason(SAFE_MODE)
        return None if entry is None else entry[0]

    def start(self) -> None:
        """Display and portrait first, then model, status socket, and the camera last; in safe mode if
        the config, pack or model cannot be used (see the module docstring)."""
        problems = list(self._boot_problems)
        parts, stand_in = self._build_parts(problems)
        pipeline = Pipeline(parts, wait=self._stop.wait, fallback=self._fallback_detector,
                            detector_stand_in=stand_in)
        self._closers.callback(pipeline.close)
        screen = self._screen_power(pipeline)
        self._closers.callback(screen.wake_for_exit)  # before the display closes: a stop leaves the portrait
        api = StatusAPI(pipeline, self.stats, self.health, config_path=self.config_path, stop=self._stop,
                        clock=self._clock, screen=screen.status, display=self._display_choice)
        self._closers.callback(api.fail_pending, "the daemon is stopping")
        if self._serve_status:
            server = StatusServer(self._socket_path, api.handle, mode=int(self.config.service.socket_mode))
            server.start()
            self._server = server
            self._closers.callback(server.stop)
        if problems:
            self._enter_safe_mode(problems, parts.pack.name)
        self.health.note("starting: camera")
        pipeline.open()
        self.health.begin()
        self._running = _Running(pipeline, api, screen)
        log.info("mona-edge %s: pack %s (%d frames), display %s, camera %s", __version__, parts.pack.name,
                 parts.pack.frame_count, "x".join(map(str, parts.display.size)), parts.camera.name)

    def _build_parts(self, problems: list[str]) -> tuple[Parts, bool]:
        """:func:`edge.pipeline.build_parts`'s order (display, portrait on screen, model, camera), with
        the fallbacks of safe mode: each unusable part is noted in ``problems`` and replaced by its
        default. Returns the parts and whether the detector is a stand-in for the configured one."""
        stage = self.health.note
        stage("starting: display")
        # A display that cannot be opened ends the start: nothing could be shown anyway (module docstring).
        screen = self._given_display if self._given_display is not None else make_display(self.config)
        chosen = choice_of(screen)  # what sink = "auto" took and why, for status and doctor
        self._display_choice = None if chosen is None else str(chosen)
        if self._given_display is None:
            # SDL holds DRM master while pygame's display is open; DPMS needs it (edge/screen_power.py).
            screen = releasable(screen, lambda: make_display(self.config))
        try:
            pack = self._given_pack
            if pack is None:
                try:
                    pack = make_pack(self.config, screen.size)
                except Exception as exc:
                    problems.append(_unusable("pack", exc) + "; showing the bundled default pack")
                    self.config = dataclasses.replace(
                        self.config, pack=dataclasses.replace(self.config.pack, path=default_pack_path()))
                    pack = make_pack(self.config, screen.size)  # this failing too is a broken install
            show_portrait(screen, pack)
            stage("starting: detector")
            detector, stand_in = self._given_detector, False
            if detector is None:
                try:
                    detector = make_detector(self.config)
                except Exception as exc:
                    reason, stand_in = _unusable("model", exc), True
                    try:
                        detector = make_bundled_detector(self.config)
                        reason += f"; running the bundled model {getattr(detector, 'model_path', '')}"
                    except Exception as bundled_exc:
                        reason += (f"; the bundled model cannot be used either ({bundled_exc}); "
                                   "detection stopped, eyes at centre")
                        detector = NoDetector(reason)
                    problems.append(reason)
            return Parts(camera=make_camera(self.config, self._given_camera), detector=detector, pack=pack,
                         display=screen, make_tracker=gaze_tracker(self.config.gaze)), stand_in
        except BaseException:
            if self._given_display is None:
                screen.close()
            raise

    def _screen_power(self, pipeline: Pipeline) -> ScreenPower:
        """Screen power for the running display, redrawing the portrait at the current gaze on a wake."""
        display = pipeline.parts.display

        def redraw() -> None:
            screen = pipeline.parts.display
            if isinstance(screen, ReleasableDisplay):
                screen.reacquire()
            screen.show_full(pipeline.parts.pack.frame_image(pipeline.index))

        mechanisms = mechanisms_for(self.config.screen, display)
        power = ScreenPower(self.config.screen, mechanisms, redraw, clock=self._clock)
        power.restore()
        return power

    def _enter_safe_mode(self, problems: list[str], pack_name: str) -> None:
        reason = "; ".join(problems)
        self.health.degrade(SAFE_MODE, reason)
        self.stats.last_error = f"safe mode: {reason}"
        fix = ("fix it, then: sudo systemctl reload mona-edge" if self.config_path is not None
               else "fix it, then restart mona-edge")
        log.error("safe mode: %s; on screen: %s; %s", reason, pack_name, fix)

    def _fallback_detector(self) -> Detector:
        """What replaces a detector that keeps failing: the bundled model of the running config's range."""
        return make_bundled_detector(self.config)

    def _running_config(self) -> Config:
        """The config the running parts really follow, as a reload compares it with the file's.

        A reload loads a new detector only if ``[detector]`` changed; but when the running detector is a
        stand-in (safe mode's, or the bundled fallback for a failing model), the configured model must be
        loaded afresh even though the file says the same (the file it names may have been fixed in place).
        So the running ``[detector]`` is reported with ``threads = 0``, which no config file can hold
        (1..4): it never equals the file's, and the reload builds the configured model again."""
        if self._running is None or not self._running.pipeline.detector_replaced:
            return self.config
        return dataclasses.replace(self.config, detector=dataclasses.replace(self.config.detector, threads=0))

    def _reloaded(self, config: Config) -> None:
        """A reload switched to ``config``: its config, pack and model all loaded, so safe mode ends. (Keys
        that apply on restart only, the display's among them, are named by the reload as for any reload.)"""
        self.config = config
        if self._running is not None:
            self._running.screen.configure(config.screen)
        if self.safe_mode is not None:
            if self.stats.last_error == f"safe mode: {self.safe_mode}":
                self.stats.last_error = None
            self.health.degrade(SAFE_MODE, None)
            log.info("safe mode ended: %s loaded whole", config.path)

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
        # A room the frame cannot see (camera down, detection stopped) never blanks the screen.
        run.screen.observe(result.viewer_present or result.camera_down
                           or isinstance(run.pipeline.parts.detector, NoDetector))
        self.health.degrade(DETECTOR, run.pipeline.detector_fault)
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
                self._background.start(self._running_config(), run.pipeline.parts)
        if self._background is not None:
            finished, config = self._background.finish(run.pipeline, self.stats)
            if config is not None:
                self._reloaded(config)
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
            config = reload(self.config_path, self._running_config(), run.pipeline, self.stats,
                            keep_camera=self._given_camera is not None)
            if config is not None:
                self._reloaded(config)
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


def _unusable(what: str, exc: BaseException) -> str:
    """The start boundary, as the reload's (:func:`edge.reload.refuse`): the user's fault is its own
    message; anything else is a bug, logged with its traceback, and still only costs safe mode."""
    if isinstance(exc, MonaEdgeError | OSError):
        return f"{what}: {exc}"
    log.error("%s: a bug in mona-edge", what, exc_info=exc)
    return f"{what}: internal error {type(exc).__name__}: {exc} (see the journal)"


def load_config_safely(path: Path | None) -> tuple[Config, str | None]:
    """The config at ``path`` and None; or, if it cannot be used, what of it can and why not.

    "What can": each section that is valid on its own (a typo in ``[gaze]`` keeps the screen's rotation
    and the pack), built-in defaults for the others, or for everything if the file cannot be read or
    parsed. The returned config keeps ``path``, so that a reload re-reads the same file.
    """
    try:
        return load_config(path), None
    except Exception as exc:  # ConfigError: the user's; anything else a bug, and still only safe mode
        reason = _unusable("config", exc)
    p = Path(path) if path is not None else None
    kept: dict[str, object] = {}
    try:
        data = read_toml(p) if p is not None else {}
    except ConfigError:  # missing, unreadable or not TOML: nothing to keep
        data = {}
    for section in SECTIONS:
        table = data.get(section)
        if isinstance(table, dict):
            try:
                config_from_dict({section: table})
            except ConfigError:
                continue
            kept[section] = table
    try:
        config = config_from_dict(kept, str(p))
    except ConfigError:  # cannot happen (each section's checks are its own), but defaults are always fine
        config, kept = Config(), {}
    unusable = [f"[{name}]" for name in data if name not in kept]
    reason += "; built-in defaults for " + (", ".join(unusable) if kept or unusable else "the whole file")
    return dataclasses.replace(config, path=p), reason


def run_daemon(config_path: Path | None) -> int:
    """``mona-edge run``: load config (or what of it can be used: safe mode), notify systemd, loop until
    SIGTERM. Ends early only for what safe mode cannot replace (the module docstring)."""
    crashes = CrashCounter.from_environment()
    unclean = crashes.started(daemon_inputs(config_path))
    config, problem = load_config_safely(config_path)
    problems = [problem] if problem else []
    if crashes.in_a_loop(unclean):
        config = crash_safe_config(config)
        problems.append(f"the daemon ended uncleanly {unclean - 1} times in a row: running the bundled pack and "
                        "model with the default config, keeping [display], [camera] and [service]")
    logging.getLogger().setLevel(config.service.log_level.upper())
    service = EdgeService(config, config_path, notifier=Notifier(), boot_problems=problems)
    signals = SignalThread(service)
    signals.start()
    try:
        code = service.run()
    finally:
        signals.done.set()
    crashes.stopped_cleanly()  # only a return counts: a crash, a kill or the watchdog leave the count
    return code


def crash_safe_config(config: Config) -> Config:
    """What a daemon caught in a crash loop starts on (:mod:`edge.crashes`): the defaults and the bundled
    pack and model, except how to show a picture, where the camera is and how to be asked about it (with
    the default camera a frame whose camera is a USB one would see nobody; a camera that itself crashes
    the daemon at every start still ends at systemd's start limit)."""
    defaults = Config()
    return dataclasses.replace(defaults, display=config.display, camera=config.camera, service=config.service,
                               path=config.path, pack=dataclasses.replace(defaults.pack, path=default_pack_path()))
