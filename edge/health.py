"""The daemon's health as systemd sees it: STARTING -> READY or DEGRADED, the watchdog, the status line.

Why these rules (ARCHITECTURE.md, reliability rules): systemd learns READY only once display, model, status socket
and camera are up, so ``systemctl start`` means the frame works; if the camera never comes, the portrait
is showing anyway and a restart loop would only blank it, so after ``[service] ready_timeout`` the daemon
says READY and reports itself DEGRADED. WATCHDOG is sent only from :meth:`Health.tick`, which only the
loop calls, once per iteration: a hung loop stops the pings and systemd restarts it.

A daemon that runs but not as configured (safe mode at boot, a detector replaced by the bundled model or
stopped) is DEGRADED too, with its reasons (:meth:`Health.degrade`): READY=1 is still sent, because
the portrait is on screen and a restart would only blank it, and the reasons go into STATUS=, the status
socket and ``mona-edge doctor`` so that nobody has to read the journal to learn why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from edge.sdnotify import watchdog_interval

log = logging.getLogger(__name__)

STARTING, READY, DEGRADED, STOPPING = "STARTING", "READY", "DEGRADED", "STOPPING"
#: The keys of :meth:`Health.degrade`: safe mode at boot (status shows it as ``safe_mode``), a detector
#: replaced or stopped (:attr:`edge.pipeline.Pipeline.detector_fault`).
SAFE_MODE, DETECTOR = "safe_mode", "detector"
#: How often the STATUS line sent to systemd is refreshed (also at once whenever the state changes).
STATUS_EVERY = 5.0


class Notify(Protocol):
    """What the daemon tells the service manager (:class:`edge.sdnotify.Notifier`)."""

    def ready(self, status: str | None = None) -> bool: ...
    def status(self, text: str) -> bool: ...
    def watchdog(self) -> bool: ...
    def reloading(self, status: str | None = None) -> bool: ...
    def stopping(self, status: str | None = None) -> bool: ...


class Health:
    """The state, and every sd_notify message the daemon sends. ``notifier`` None: nobody to tell (a shell,
    the tests), and then no watchdog either."""

    def __init__(self, notifier: Notify | None, *, ready_timeout: float, watchdog: bool,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self._notifier = notifier
        self._ready_timeout = float(ready_timeout)
        self._watchdog_wanted = watchdog
        self._clock = clock
        self._wall_clock = wall_clock
        self.state = STARTING
        self.started_at = clock()
        self.ready_sent = False
        self._watchdog_every: float | None = None
        self._last_watchdog = 0.0
        self._last_status = 0.0
        self._last_state: str | None = None
        self._reasons: dict[str, tuple[str, float]] = {}  # key -> (reason, wall time it arose)
        self._last_reasons: tuple[str, ...] = ()

    @property
    def notifier(self) -> Notify | None:
        return self._notifier

    def note(self, text: str) -> None:
        """A STATUS= line, e.g. the start-up stage ("starting: camera")."""
        if self._notifier is not None:
            self._notifier.status(text)

    def begin(self) -> None:
        """Start-up is done (parts built, camera opened): the ready timeout and the watchdog run from now."""
        if self._notifier is not None and self._watchdog_wanted:
            interval = watchdog_interval()
            self._watchdog_every = interval / 2.0 if interval else None
        self.started_at = self._clock()

    def degrade(self, key: str, reason: str | None) -> None:
        """Set (``reason``) or clear (None) one reason, under ``key`` ("safe_mode", "detector"), why the
        daemon runs DEGRADED; the state follows at the next :meth:`tick`."""
        if reason is None:
            self._reasons.pop(key, None)
        elif key not in self._reasons or self._reasons[key][0] != reason:
            since = self._reasons[key][1] if key in self._reasons else self._wall_clock()
            self._reasons[key] = (reason, since)

    def reason(self, key: str) -> tuple[str, float] | None:
        """The reason under ``key`` and since when (wall time, seconds since the epoch), or None."""
        return self._reasons.get(key)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the daemon is DEGRADED besides its camera, in the order they arose (empty: nothing)."""
        return tuple(reason for reason, _since in self._reasons.values())

    @property
    def watchdog_every(self) -> float | None:
        """Seconds between WATCHDOG pings (half systemd's WatchdogSec), None when not watched."""
        return self._watchdog_every

    def tick(self, camera_ok: bool, status_line: Callable[[], str]) -> None:
        """Once per loop iteration: the state, READY once, WATCHDOG, and the STATUS line now and then."""
        now = self._clock()
        self.state = (READY if not self._reasons else DEGRADED) if camera_ok else (
            DEGRADED if self.ready_sent else STARTING)
        if not self.ready_sent and (camera_ok or now - self.started_at >= self._ready_timeout):
            if not camera_ok:
                # The display and model are up and the portrait is showing; a camera that never came
                # is not worth a restart loop (which would blank the screen): report DEGRADED instead.
                self.state = DEGRADED
                log.error("camera not up after %.0f s: running degraded, eyes at centre", self._ready_timeout)
            if self._notifier is not None:
                self._notifier.ready()
            self.ready_sent = True
        if self._notifier is None:
            return
        if self._watchdog_every is not None and now - self._last_watchdog >= self._watchdog_every:
            self._notifier.watchdog()
            self._last_watchdog = now
        reasons = self.reasons
        if now - self._last_status >= STATUS_EVERY or self.state != self._last_state or reasons != self._last_reasons:
            self._notifier.status(status_line())
            self._last_status = now
            self._last_state = self.state
            self._last_reasons = reasons

    def reloading(self) -> None:
        if self._notifier is not None:
            self._notifier.reloading("reloading config and pack")

    def reloaded(self, status_line: str) -> None:
        """After a reload, whether it switched or not: systemd waits for READY=1 after RELOADING=1."""
        if self._notifier is not None and self.ready_sent:
            self._notifier.ready(status_line)

    def stopping(self) -> None:
        self.state = STOPPING
        if self._notifier is not None:
            self._notifier.stopping()
