"""SIGHUP: a new config and pack, loaded completely as a *candidate* before anything switches.

Why: a reload is how a new pack reaches the wall (provisioning switches a symlink, then reloads), and a
broken one must never reach the screen. So the candidate (config, verified pack, and a new detector or
camera only if their settings changed) is built beside the running parts, on a thread of its own while
the loop goes on (:class:`BackgroundReload`); whatever goes wrong stays with the candidate, and the
running config and pack keep going. Only a whole candidate is switched to, in one
full draw of the new portrait (:meth:`edge.pipeline.Pipeline.switch_to`).

At this boundary a fault in what the user gave us (:class:`edge.errors.MonaEdgeError`, or an OSError
reading their files) is one warning line naming the file and the reason (``-v``, i.e. debug logging,
adds where it was raised); anything else is a bug in mona-edge, one error line with its traceback, so it
gets reported. Either way the reload is refused and nothing changes. A candidate that takes longer than
:data:`LOAD_DEADLINE` to load (a pack on a dying SD card, a network mount, a camera driver that hangs) is
refused too, while the loop keeps drawing and feeding the watchdog; when it does finish, its result is
dropped.

What a reload applies, section by section (the rest of the file applies even when a key below does not):

==============  =========================================================================================
``[camera]``    a new camera when its settings changed (the old one closed, the new one opened); never
                for a camera the daemon was given (tools, tests): those keys are then not applied
``[detector]``  a new detector when its settings changed
``[gaze]``      applied: a new tracker
``[pack]``      the pack is always loaded afresh (provisioning switches a symlink under the same path)
``[display]``   on restart only: the screen is opened once; a change is named in one warning line and
                the running display settings stay (the new pack is scaled and turned for the running
                screen)
``[service]``   ``log_level`` applied at once; ``status_socket``, ``socket_mode``, ``watchdog`` and
                ``ready_timeout`` on restart only, each named in one warning line: the socket is bound
                once, and the other two are start-up settings (the watchdog pairs with the unit's
                WatchdogSec, which itself changes on restart; ready_timeout is how long start-up waits
                for the camera)
==============  =========================================================================================
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import Config, load_config
from edge.errors import MonaEdgeError
from edge.pipeline import Parts, Pipeline, gaze_tracker, make_camera, make_detector, make_pack
from edge.status_api import LoopStats

log = logging.getLogger(__name__)

REFUSED = "reload refused, still running the previous config and pack"
RESTART = "takes effect on restart (systemctl restart mona-edge)"
#: Seconds a candidate may take to load beside the loop before the reload is refused. Verifying a
#: full-screen pack and loading a model take a few seconds on a Pi 4; systemd gives a reload
#: TimeoutStartSec (90 s in the unit) to answer READY=1, so this answers well before it gives up.
LOAD_DEADLINE = 30.0
#: The ``[service]`` keys a reload applies at once; any other ``[service]`` key waits for a restart.
LIVE_SERVICE_KEYS = frozenset({"log_level"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """A config and the parts it needs, complete and not yet running.

    ``config`` is what will run: keys that take effect on restart only keep their running values, so the
    config the daemon reports (and the next reload compares against) is what it really runs. ``restart``
    names those keys, one line per section; ``live`` the ``[service]`` keys applied at the switch."""

    config: Config
    parts: Parts
    new_camera: bool
    restart: tuple[str, ...] = ()
    live: tuple[str, ...] = ()


def _changed(running: Any, new: Any) -> list[str]:
    """The names of the fields of two config sections that differ."""
    return [f.name for f in dataclasses.fields(running) if getattr(running, f.name) != getattr(new, f.name)]


def effective_config(config: Config, running: Config, *, keep_camera: bool) -> tuple[Config, tuple[str, ...],
                                                                                     tuple[str, ...]]:
    """What a reload to ``config`` really runs, from ``running``: (the config, one line per section naming
    the keys that wait for a restart, the ``[service]`` keys applied at once). See the module docstring."""
    restart: list[str] = []
    display = _changed(running.display, config.display)
    if display:
        restart.append(f"[display] {', '.join(display)}: {RESTART}")
        config = dataclasses.replace(config, display=running.display)
    service = _changed(running.service, config.service)
    later = [key for key in service if key not in LIVE_SERVICE_KEYS]
    if later:
        restart.append(f"[service] {', '.join(later)}: {RESTART}")
        kept = {key: getattr(running.service, key) for key in later}
        config = dataclasses.replace(config, service=dataclasses.replace(config.service, **kept))
    if keep_camera:
        camera = _changed(running.camera, config.camera)
        if camera:
            restart.append(f"[camera] {', '.join(camera)} not applied: this daemon runs a camera it was given")
            config = dataclasses.replace(config, camera=running.camera)
    return config, tuple(restart), tuple(key for key in service if key in LIVE_SERVICE_KEYS)


def load_candidate(path: Path, running: Config, parts: Parts, *, keep_camera: bool) -> Candidate:
    """Read ``path`` and build what differs from ``running``: the pack always (it may have changed on
    disk under the same path), the detector (with its [motion] gate) and camera only if their settings changed (a camera the
    daemon was given, ``keep_camera``, is never replaced). The display stays: it opens on restart only."""
    config, restart, live = effective_config(load_config(path), running, keep_camera=keep_camera)
    pack = make_pack(config, parts.display.size)
    # The detector part is the whole face search (edge/search.py): the model and its [motion] gate.
    same_search = (config.detector, config.motion) == (running.detector, running.motion)
    detector = parts.detector if same_search else make_detector(config)
    new_camera = not keep_camera and config.camera != running.camera
    camera = make_camera(config) if new_camera else parts.camera
    return Candidate(config, Parts(camera=camera, detector=detector, pack=pack, display=parts.display,
                                   make_tracker=gaze_tracker(config.gaze)), new_camera, restart, live)


def reload(path: Path, running: Config, pipeline: Pipeline, stats: LoopStats, *,
           keep_camera: bool) -> Config | None:
    """Load a candidate from ``path`` on this thread and switch ``pipeline`` to it. Returns the config now
    running, or None if the reload was refused (the pipeline untouched; the refusal counted in ``stats``).
    No deadline here: the caller waits on its own thread (``EdgeService.reload``, tools and tests)."""
    try:
        candidate = load_candidate(path, running, pipeline.parts, keep_camera=keep_camera)
    except Exception as exc:
        refuse(exc, stats, path)
        return None
    return switch(candidate, pipeline, stats)


def switch(candidate: Candidate, pipeline: Pipeline, stats: LoopStats) -> Config | None:
    """Switch ``pipeline`` to a whole ``candidate`` (on the loop's thread). Returns its config, or None if
    the switch was refused (the new portrait could not be drawn: the old parts and picture stay)."""
    try:
        pipeline.switch_to(candidate.parts)
    except Exception as exc:
        refuse(exc, stats, candidate.config.path)
        return None
    service = candidate.config.service
    if "log_level" in candidate.live:  # as run_daemon sets it at start
        logging.getLogger().setLevel(service.log_level.upper())
    stats.reloads += 1
    applied = f", [service] {', '.join(candidate.live)} applied" if candidate.live else ""
    log.info("reloaded %s: pack %s (%d frames)%s%s", candidate.config.path, candidate.parts.pack.name,
             candidate.parts.pack.frame_count, ", new camera" if candidate.new_camera else "", applied)
    for line in candidate.restart:
        log.warning("reload: %s; the rest of the reload is applied", line)
    return candidate.config


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()) or "(no message)"


def refuse(exc: BaseException, stats: LoopStats, path: Path | None = None) -> None:
    """The reload boundary: the user's fault is one warning line, anything else a bug with its traceback.

    ``path`` is the config file the candidate came from, named when the exception itself may not name a
    file (a bug)."""
    if isinstance(exc, MonaEdgeError | OSError):
        message = f"{REFUSED}: {_one_line(str(exc))}"
        log.warning("%s", message)
        if log.isEnabledFor(logging.DEBUG):  # -v: where it was raised, for whoever chases it further
            log.debug("where the reload was refused", exc_info=exc)
    else:
        where = f" loading {path}" if path is not None else ""
        log.error("%s: a bug in mona-edge%s", REFUSED, where, exc_info=exc)
        message = (f"{REFUSED}: internal error{where}: {type(exc).__name__}: {_one_line(str(exc))} "
                   "(a bug in mona-edge; see the journal)")
    stats.error("reload", message)


class BackgroundReload:
    """One reload at a time, its candidate loaded on a thread of its own, within ``deadline`` seconds.

    Why: verifying a full-screen pack takes a second or more on a Pi; loading it on the loop's thread
    would freeze the eyes and starve the watchdog for that long. Loading touches neither the display nor
    the running camera, so it can run beside the loop; only :func:`switch` must run on the loop's thread.

    Why a deadline: a load that hangs (a file on a stalled mount, a driver call that never returns) would
    otherwise leave the reload pending for ever and systemd waiting for READY=1. Past the deadline the
    reload is refused; the thread cannot be killed, so it runs on, and whatever it builds is dropped (a new
    camera it made is closed). Until it ends, another reload is refused at once rather than piling up
    threads behind a hang.
    """

    def __init__(self, path: Path, *, keep_camera: bool, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._keep_camera = keep_camera
        self._deadline = float(LOAD_DEADLINE if deadline is None else deadline)  # None: LOAD_DEADLINE, now
        self._clock = clock
        self._future: Future[Candidate] | None = None
        self._started = 0.0
        self._late: Future[Candidate] | None = None  # refused for its deadline, still loading

    @property
    def loading(self) -> bool:
        return self._future is not None

    def start(self, running: Config, parts: Parts) -> None:
        """Begin loading a candidate against the config and parts running now (the loop's thread)."""
        if self._future is not None:
            return
        future: Future[Candidate] = Future()
        self._future = future
        self._started = self._clock()
        if self._late is not None and not self._late.done():
            future.set_exception(MonaEdgeError(
                f"{self._path}: the previous reload, refused after {self._deadline:g} s, is still loading; "
                "reload again once it has finished, or restart (systemctl restart mona-edge)"))
            return

        def load() -> None:
            try:
                future.set_result(load_candidate(self._path, running, parts, keep_camera=self._keep_camera))
            except BaseException as exc:  # handed to the loop's thread, which decides what it means
                future.set_exception(exc)

        try:
            threading.Thread(target=load, name="reload", daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: refused at the next finish(), the loop goes on
            future.set_exception(exc)

    def finish(self, pipeline: Pipeline, stats: LoopStats) -> tuple[bool, Config | None]:
        """Once the candidate is loaded (or refused, or past its deadline): switch to it. Returns (finished,
        the config now running or None if refused); (False, None) while it is still loading within its
        deadline, or when none was started."""
        future = self._future
        if future is None:
            return False, None
        if not future.done():
            if self._clock() - self._started < self._deadline:
                return False, None
            self._future = None
            self._late = future
            future.add_done_callback(self._drop)
            refuse(MonaEdgeError(f"{self._path}: the new config, pack or model took longer than "
                                 f"{self._deadline:g} s to load (storage too slow, or a camera or file that "
                                 "hangs); it will be dropped when it finishes"), stats)
            return True, None
        self._future = None
        exc = future.exception()
        if exc is not None:  # anything the load thread raised, SystemExit from a library included
            refuse(exc, stats, self._path)
            return True, None
        return True, switch(future.result(), pipeline, stats)

    def _drop(self, future: Future[Candidate]) -> None:
        """A candidate refused for its deadline has finished (on its own thread): let go of what it made."""
        if future.exception() is not None:
            log.info("reload: the late candidate from %s failed as well: %s", self._path, future.exception())
            return
        candidate = future.result()
        log.info("reload: the late candidate from %s finished loading; dropped", self._path)
        if candidate.new_camera:
            try:
                candidate.parts.camera.close()
            except Exception as exc:  # never opened; closing is only to be sure
                log.debug("closing the dropped candidate's camera: %s", exc)
