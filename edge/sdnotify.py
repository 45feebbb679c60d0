"""Tell systemd how the service is doing: ready, status line, watchdog pings, reloading, stopping.

The protocol is one datagram per notification on the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path,
or ``@name`` for Linux's abstract namespace), each a few ``KEY=value`` lines. With ``Type=notify`` systemd
waits for ``READY=1`` before it calls the unit started; with ``WatchdogSec=`` it restarts the service
when ``WATCHDOG=1`` stops arriving, which is why the loop pings only while it really runs.

The datagram is sent directly, from a non-blocking socket: a notification is called from the frame loop,
and a manager that does not read its socket (a stalled systemd, a test harness that never drains it) must
not stall the portrait; when the socket's queue is full the message is dropped, like any other failure.
``backend="systemd"`` uses ``systemd-python``'s ``sd_notify`` instead (Raspberry Pi OS: ``python3-systemd``);
libsystemd sends blocking, so it is never chosen by itself. Without ``$NOTIFY_SOCKET`` (run from a shell,
tests) every call is a no-op. A failure to notify is logged once and never raised: a missing status line
must not take the picture down.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

BACKENDS = ("auto", "systemd", "socket")

_systemd_daemon: Any
try:  # by name, typed Any: systemd-python ships no type information for mypy to check against
    _systemd_daemon = importlib.import_module("systemd.daemon")
except ImportError:
    _systemd_daemon = None


def systemd_python_available() -> bool:
    return _systemd_daemon is not None


def parse_address(address: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` -> a ``sendto`` address: a filesystem path, or ``b"\\0name"`` for ``@name``."""
    if address.startswith("@") and len(address) > 1:
        return b"\0" + address[1:].encode()
    if address.startswith("/"):
        return address
    raise ValueError(f"NOTIFY_SOCKET {address!r}: expected an absolute path or @abstract-name")


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: what ``RELOADING=1`` must carry as ``MONOTONIC_USEC``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    return " ".join(str(text).splitlines())


class Notifier:
    """Sends notifications to the service manager, or does nothing when there is none.

    ``socket_address`` overrides ``$NOTIFY_SOCKET`` (read from ``env``). ``backend`` is ``"auto"``
    (systemd-python when importable and the address is the environment's, else the datagram),
    ``"systemd"`` or ``"socket"``. Every method returns whether the message was handed to the manager.
    """

    def __init__(self, socket_address: str | None = None, *, backend: str = "auto",
                 env: Mapping[str, str] | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"sd_notify backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        environ = os.environ if env is None else env
        from_env = socket_address is None
        self.address = environ.get("NOTIFY_SOCKET") if from_env else socket_address
        self._sock: socket.socket | None = None
        self._target: str | bytes | None = None
        self._warned = False
        if backend == "systemd":
            if _systemd_daemon is None:
                raise ValueError("sd_notify backend 'systemd': systemd-python is not installed")
            if not from_env:
                raise ValueError("sd_notify backend 'systemd' reads $NOTIFY_SOCKET itself; give no address")
        if backend == "auto":
            backend = "socket"
        self.backend = backend
        if not self.address:
            self.backend = "none"
            return
        if backend == "socket":
            try:
                self._target = parse_address(self.address)
            except ValueError as exc:
                log.warning("%s; not notifying the service manager", exc)
                self.backend = "none"
                return
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | getattr(socket, "SOCK_CLOEXEC", 0))
            self._sock.setblocking(False)  # a full queue drops the message instead of stalling the loop

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to talk to."""
        return self.backend != "none"

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one message."""
        for field in fields:
            if "=" not in field or "\n" in field:
                raise ValueError(f"sd_notify field {field!r}: expected one KEY=value line")
        if not self.enabled:
            return False
        message = "\n".join(fields)
        reason = "not accepted"
        try:
            if self.backend == "systemd":
                sent = bool(_systemd_daemon.notify(message))
            else:
                assert self._sock is not None and self._target is not None
                self._sock.sendto(message.encode("utf-8"), self._target)
                sent = True
        except OSError as exc:
            sent, reason = False, str(exc)
        if not sent and not self._warned:
            self._warned = True
            log.warning("sd_notify to %s failed (%s); further failures are not logged", self.address, reason)
        return sent

    def ready(self, status: str | None = None) -> bool:
        """Startup is complete: the first frame is on screen and the loop runs."""
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.notify(*self._status(text))

    def watchdog(self) -> bool:
        """The loop is alive: call at least every ``watchdog_interval() / 2`` seconds."""
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """A reload (new pack or config) began; call :meth:`ready` when it is done."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", *self._status(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown began."""
        return self.notify("STOPPING=1", *self._status(status))

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        return () if text is None else (f"STATUS={_one_line(text)}",)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.backend = "none"

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds systemd set for *this* process, or None when there is none.

    ``$WATCHDOG_USEC`` is the timeout; ``$WATCHDOG_PID``, when set, names the process it is meant for
    (a child that inherited the environment must not think it is watched). Ping at half the timeout.
    """
    environ = os.environ if env is None else env
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC %r: not an integer; watchdog ignored", usec)
        return None
    if value <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            log.warning("WATCHDOG_PID %r: not an integer; watchdog ignored", pid)
            return None
    return value / 1e6
