"""SIGHUP: a new config and pack, loaded completely as a *candidate* before anything switches.

Why: a reload is how a new pack reaches the wall (provisioning switches a symlink, then reloads), and a
broken one must never reach the screen. So the candidate (config, verified pack, and a new detector or
camera only if their settings changed) is built beside the running parts, on a thread of its own while
the loop goes on (:class:`BackgroundReload`); whatever goes wrong stays with the candidate, and the
running config and pack keep going. Only a whole candidate is switched to, in one
full draw of the new portrait (:meth:`edge.pipeline.Pipeline.switch_to`).

At this boundary a fault in what the user gave us (:class:`edge.errors.MonaEdgeError`, or an OSError
reading their files) is one warning line; anything else is a bug in mona-edge and is logged with its
traceback. Either way the reload is refused and nothing changes.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from edge.config import Config, load_config
from edge.errors import MonaEdgeError
from edge.pipeline import Parts, Pipeline, gaze_tracker, make_camera, make_detector, make_pack
from edge.status_api import LoopStats

log = logging.getLogger(__name__)

REFUSED = "reload refused, still running the previous config and pack"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A config and the parts it needs, complete and not yet running."""

    config: Config
    parts: Parts
    new_camera: bool


def load_candidate(path: Path, running: Config, parts: Parts, *, keep_camera: bool) -> Candidate:
    """Read ``path`` and build what differs from ``running``: the pack always (it may have changed on
    disk under the same path), the detector and camera only if their settings changed (a camera the
    daemon was given, ``keep_camera``, is never replaced). The display stays: it opens on restart only."""
    config = load_config(path)
    pack = make_pack(config, parts.display.size)
    detector = parts.detector if config.detector == running.detector else make_detector(config)
    new_camera = not keep_camera and config.camera != running.camera
    camera = make_camera(config) if new_camera else parts.camera
    if config.display != running.display:
        log.warning("reload: display settings change on restart only (systemctl restart mona-edge)")
    return Candidate(config, Parts(camera=camera, detector=detector, pack=pack, display=parts.display,
                                   make_tracker=gaze_tracker(config.gaze)), new_camera)


def reload(path: Path, running: Config, pipeline: Pipeline, stats: LoopStats, *,
           keep_camera: bool) -> Config | None:
    """Load a candidate from ``path`` on this thread and switch ``pipeline`` to it. Returns the config now
    running, or None if the reload was refused (the pipeline untouched; the refusal counted in ``stats``)."""
    try:
        candidate = load_candidate(path, running, pipeline.parts, keep_camera=keep_camera)
    except Exception as exc:
        refuse(exc, stats)
        return None
    return switch(candidate, pipeline, stats)


def switch(candidate: Candidate, pipeline: Pipeline, stats: LoopStats) -> Config | None:
    """Switch ``pipeline`` to a whole ``candidate`` (on the loop's thread). Returns its config, or None if
    the switch was refused (the new portrait could not be drawn: the old parts and picture stay)."""
    try:
        pipeline.switch_to(candidate.parts)
    except Exception as exc:
        refuse(exc, stats)
        return None
    stats.reloads += 1
    log.info("reloaded %s: pack %s (%d frames)%s", candidate.config.path, candidate.parts.pack.name,
             candidate.parts.pack.frame_count, ", new camera" if candidate.new_camera else "")
    return candidate.config


def refuse(exc: Exception, stats: LoopStats) -> None:
    """The reload boundary: the user's fault is one warning line, anything else a bug with its traceback."""
    if isinstance(exc, MonaEdgeError | OSError):
        message = f"{REFUSED}: {exc}"
        log.warning("%s", message)
    else:
        log.error("%s: a bug in mona-edge", REFUSED, exc_info=exc)
        message = f"{REFUSED}: internal error {type(exc).__name__}: {exc} (see the journal)"
    stats.error("reload", message)


class BackgroundReload:
    """One reload at a time, its candidate loaded on a thread of its own.

    Why: verifying a full-screen pack takes a second or more on a Pi; loading it on the loop's thread
    would freeze the eyes and starve the watchdog for that long. Loading touches neither the display nor
    the running camera, so it can run beside the loop; only :func:`switch` must run on the loop's thread.
    """

    def __init__(self, path: Path, *, keep_camera: bool) -> None:
        self._path = path
        self._keep_camera = keep_camera
        self._future: Future[Candidate] | None = None

    @property
    def loading(self) -> bool:
        return self._future is not None

    def start(self, running: Config, parts: Parts) -> None:
        """Begin loading a candidate against the config and parts running now (the loop's thread)."""
        if self._future is not None:
            return
        future: Future[Candidate] = Future()
        self._future = future

        def load() -> None:
            try:
                future.set_result(load_candidate(self._path, running, parts, keep_camera=self._keep_camera))
            except BaseException as exc:  # handed to the loop's thread, which decides what it means
                future.set_exception(exc)

        threading.Thread(target=load, name="reload", daemon=True).start()

    def finish(self, pipeline: Pipeline, stats: LoopStats) -> tuple[bool, Config | None]:
        """Once the candidate is loaded (or refused): switch to it. Returns (finished, the config now
        running or None if refused); (False, None) while it is still loading, or when none was started."""
        future = self._future
        if future is None or not future.done():
            return False, None
        self._future = None
        exc = future.exception()
        if exc is not None:
            if not isinstance(exc, Exception):
                raise exc  # KeyboardInterrupt, SystemExit: not a reload's to swallow
            refuse(exc, stats)
            return True, None
        return True, switch(future.result(), pipeline, stats)
