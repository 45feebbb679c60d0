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
import sys
import threading
from pathlib import Path

from edge import __version__
from edge.digest import new_sha256

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
        self._inputs = ""

    @classmethod
    def from_environment(cls) -> CrashCounter:
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return cls(Path(state) if state else None)

    def _read(self, inputs: str) -> int:
        """The count so far, for the same ``inputs`` only: a new deployment or config (an update, a
        rollback) starts a fresh count, so one that failed never sends the next into safe mode."""
        if self.path is None:
            return 0
        try:
            data = json.loads(self.path.read_text())
            value = data.get("unclean_starts", 0)
            if data.get("inputs", inputs) != inputs:
                return 0
        except (OSError, ValueError, AttributeError):
            return 0
        return value if isinstance(value, int) and value >= 0 else 0

    def _write(self, value: int) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"unclean_starts": value, "inputs": self._inputs}) + "\n")
            tmp.replace(self.path)
        except OSError as exc:  # a read-only state directory must not stop the portrait
            log.warning("cannot record the start count in %s: %s", self.path, exc)

    def started(self, inputs: str = "") -> int:
        """Count this start; returns how many unclean starts in a row this one makes (1 after a clean
        stop, or when ``inputs``, what the daemon runs on, differ from the last start's). From now on,
        :data:`STEADY_AFTER` seconds of running reset the count."""
        self._inputs = inputs
        count = self._read(inputs) + 1
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


def daemon_inputs(config_path: Path | None) -> str:
    """What a start runs on, as the crash count compares it: the installed software and the config file."""
    digest = new_sha256(f"{sys.prefix}\0{__version__}\0".encode())
    try:
        digest.update(Path(config_path).read_bytes() if config_path is not None else b"")
    except OSError:
        pass
    return digest.hexdigest()[:16]
