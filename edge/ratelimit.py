"""Repeated log messages, bounded: the first occurrence at once, then at most one summary per interval.

Why: the frame loop runs 15-30 times a second, and a fault that hits every frame (a model that fails on
every invoke, a display that refuses every draw) would otherwise write a warning per frame: on a Pi that
is the SD card and the journal's quota filling with one sentence. What the operator needs is that it
happened, what it said, how often and until when:

    detector: face.tflite: inference failed: Input tensor 215 lacks data
    detector: face.tflite: inference failed: Input tensor 215 lacks data (repeated 412 times since 20:31:05, last 20:32:10)

Why not a library: the standard library's logging has no rate limiting. ``log-rate-limit`` (the
best-kept one on PyPI) suppresses repeats with a filter and appends "+ skipped N logs" as a second line of
the next record it lets through, so it can name neither when the repeats began and ended nor report a
burst that then stops (no record comes after it to carry the count); ``ratelimitingfilter`` drops records
by a token bucket without counting them. A filter only sees records, never the moment a fault ends, so
this is a helper its callers feed and flush (:meth:`RepeatLimiter.flush` when the fault clears), a few
dozen lines with nothing to install on the Pi.

Bounded in memory too: at most ``max_keys`` different messages are remembered (the oldest is summarised
and forgotten first), and at most ``max_new`` first occurrences are logged per interval, so a fault whose
text changes every time (a counter in it) cannot flood the log either; the ones beyond are counted in one
"other messages" summary.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Seconds between two summaries of the same message: a fault that lasts an hour writes 60 lines, not
#: 100 000; a minute is also how far apart the journal's own "suppressed N messages" lines come.
INTERVAL = 60.0
#: Different messages remembered at once.
MAX_KEYS = 32
#: First occurrences logged per interval before new messages are only counted.
MAX_NEW = 10
OTHER = "other messages"


@dataclass(slots=True)
class _Repeats:
    level: int
    last_logged: float          # monotonic time of the last line written for this message
    count: int = 0              # occurrences since that line, not yet written
    first_wall: float = 0.0     # wall time of the first of them
    last_wall: float = 0.0      # wall time of the latest of them
    last_text: str = ""         # for OTHER: the latest message counted in it


def _hms(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


class RepeatLimiter:
    """Logs ``message`` on ``logger`` at ``level``: in full the first time (and again after it has been
    quiet for a whole ``interval``), as a summary at most once per ``interval`` while it repeats.

    ``clock`` is monotonic (for intervals), ``wall_clock`` gives the times printed. One thread: the
    loop's (it is not locked).
    """

    def __init__(self, logger: logging.Logger, *, interval: float = INTERVAL, max_keys: int = MAX_KEYS,
                 max_new: int = MAX_NEW, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._log = logger
        self.interval = float(interval)
        self._max_keys = max_keys
        self._max_new = max_new
        self._clock = clock
        self._wall = wall_clock
        self._seen: OrderedDict[str, _Repeats] = OrderedDict()
        self._window_start = -float("inf")
        self._new_in_window = 0

    def log(self, level: int, message: str) -> bool:
        """Log or count one occurrence of ``message``; returns whether a line was written."""
        now, wall = self._clock(), self._wall()
        entry = self._seen.get(message)
        if entry is None or (entry.count == 0 and now - entry.last_logged >= self.interval):
            return self._first(level, message, now, wall)
        self._seen.move_to_end(message)
        self._count(entry, wall)
        if now - entry.last_logged >= self.interval:
            self._summary(message, entry, now)
            return True
        return False

    def warning(self, message: str) -> bool:
        return self.log(logging.WARNING, message)

    def flush(self, message: str | None = None) -> None:
        """Write the pending summary of ``message`` (None: of every message) now, e.g. when its fault has
        cleared, so the count up to the end of a burst is never lost."""
        keys = list(self._seen) if message is None else [message]
        for key in keys:
            entry = self._seen.get(key)
            if entry is not None and entry.count:
                self._summary(key, entry, self._clock())

    # --- inside ---------------------------------------------------------------------------------------
    def _first(self, level: int, message: str, now: float, wall: float) -> bool:
        if now - self._window_start >= self.interval:
            self._window_start, self._new_in_window = now, 0
        if self._new_in_window >= self._max_new:  # too many different messages: count them together
            other = self._seen.get(OTHER)
            if other is None:
                other = self._remember(OTHER, _Repeats(level, last_logged=now))
            self._count(other, wall)
            other.last_text = message
            if now - other.last_logged >= self.interval:
                self._summary(OTHER, other, now)
                return True
            return False
        self._new_in_window += 1
        self._log.log(level, "%s", message)
        entry = self._seen.get(message)
        if entry is None:
            self._remember(message, _Repeats(level, last_logged=now))
        else:
            entry.last_logged = now
            self._seen.move_to_end(message)
        return True

    def _remember(self, key: str, entry: _Repeats) -> _Repeats:
        self._seen[key] = entry
        while len(self._seen) > self._max_keys:
            old_key, old = self._seen.popitem(last=False)
            if old.count:
                self._summary(old_key, old, self._clock())
        return entry

    @staticmethod
    def _count(entry: _Repeats, wall: float) -> None:
        if entry.count == 0:
            entry.first_wall = wall
        entry.count += 1
        entry.last_wall = wall

    def _summary(self, key: str, entry: _Repeats, now: float) -> None:
        span = f"since {_hms(entry.first_wall)}, last {_hms(entry.last_wall)}"
        if key == OTHER:
            self._log.log(entry.level, "%d other messages not logged (%s; the latest: %s)", entry.count, span,
                          entry.last_text)
        else:
            times = "once" if entry.count == 1 else f"{entry.count} times"
            self._log.log(entry.level, "%s (repeated %s %s)", key, times, span)
        entry.count = 0
        entry.last_logged = now
