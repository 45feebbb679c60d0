"""Counting the daemon's unclean ends, so that a crash loop ends in safe mode, not in a failed unit.

systemd restarts a daemon that crashed (``Restart=on-failure``), but after ``StartLimitBurst`` starts within
``StartLimitIntervalSec`` it gives up and leaves the unit failed: no portrait until someone logs in. A
crash that comes back at every start is most likely caused by what the daemon was given (a pack, a model,
a camera setting that trips a native library), which safe mode replaces. The daemon cannot ask systemd
for its restart count (no system bus is assumed), so it keeps its own, in the unit's ``StateDirectory``
(``$STATE_DIRECTORY``): every start adds one, a clean stop or :data:`STEADY_AFTER` seconds of running
set it back to zero, and at :data:`SAFE_AFTER` unclean starts in a row the daemon starts in safe mode on
the bundled pack and model and the default config, keeping only ``[display]``, ``[camera]`` and
``[service]`` (how to show a picture, see the room and be asked about it). :data:`SAFE_AFTER` is below the unit's ``StartLimitBurst`` so
that systemd's limit is only reached if safe mode crashes too.

Without ``$STATE_DIRECTORY`` (run from a shell) nothing is counted. The counter file is one small JSON
object written atomically; an unreadable one counts as zero (the worst that does is one more restart).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: Unclean starts in a row after which the daemon starts in safe mode (systemd/mona-edge.service allows
#: StartLimitBurst=10 starts in 300 s).
SAFE_AFTER = 4
#: Seconds of running after which a start counts as a good one (the count goes back to zero).
STEADY_AFTER = 60.0
FILE_NAME = "unclean-starts.json"


class CrashCounter:
    """The number of starts since the daemon last stopped cleanly or ran steadily."""

    def __init__(self, folder: Path | None) -> None:
        self.path = None if folder is None else Path(folder) / FILE_NAME
        self._timer: threading.Timer | None = None

    @classmethod
    def from_environment(cls) -> CrashCounter:
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return cls(Path(state) if state else None)

    def _read(self) -> int:
        if self.path is None:
            return 0
        try:
            value = json.loads(self.path.read_text()).get("unclean_starts", 0)
        except (OSError, ValueError, AttributeError):
            return 0
        return value if isinstance(value, int) and value >= 0 else 0

    def _write(self, value: int) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"unclean_starts": value}) + "\n")
            tmp.replace(self.path)
        except OSError as exc:  # a read-only state directory must not stop the portrait
            log.warning("cannot record the start count in %s: %s", self.path, exc)

    def started(self) -> int:
        """Count this start; returns how many unclean starts in a row this one makes (1 after a clean
        stop). From now on, :data:`STEADY_AFTER` seconds of running reset the count."""
        count = self._read() + 1
        self._write(count)
        if self.path is not None:
            self._timer = threading.Timer(STEADY_AFTER, self.stopped_cleanly)
            self._timer.daemon = True
            self._timer.start()
        return count

    def stopped_cleanly(self) -> None:
        """The daemon ran steadily or stopped as asked: the next start is a fresh one."""
        if self._timer is not None and threading.current_thread() is not self._timer:
            self._timer.cancel()
        self._write(0)

    @staticmethod
    def in_a_loop(count: int) -> bool:
        return count >= SAFE_AFTER
