"""sd_notify: real datagram sockets (a path and an abstract name) receive exactly the protocol's messages."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from edge import sdnotify
from edge.sdnotify import Notifier, parse_address, watchdog_interval


def _bound(address) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture(params=["path", "abstract"])
def receiver(request, tmp_path):
    """(NOTIFY_SOCKET value, bound socket) the way systemd would set them up."""
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        sock, env_value = _bound(path), path
    else:
        name = f"mona-edge-test-{os.getpid()}-{time.monotonic_ns()}"
        sock, env_value = _bound(b"\0" + name.encode()), "@" + name
    yield env_value, sock
    sock.close()


def _nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2.0)
    return False


def test_datagrams_carry_exactly_the_protocol_messages(receiver):
    address, sock = receiver
    with Notifier(env={"NOTIFY_SOCKET": address}) as notifier:
        assert notifier.enabled and notifier.backend == "socket"
        assert notifier.ready("showing 'test', 9 frames")
        assert sock.recv(4096) == b"READY=1\nSTATUS=showing 'test', 9 frames"
        assert notifier.status("camera lost\nretrying")
        assert sock.recv(4096) == b"STATUS=camera lost retrying"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert notifier.reloading("loading new pack")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        lines = sock.recv(4096).decode().split("\n")
        assert lines[0] == "RELOADING=1" and lines[2] == "STATUS=loading new pack" and len(lines) == 3
        key, value = lines[1].split("=")
        assert key == "MONOTONIC_USEC" and before <= int(value) <= after
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        assert _nothing_waiting(sock)


def test_explicit_address_overrides_the_environment(receiver):
    address, sock = receiver
    notifier = Notifier(address, env={})
    assert notifier.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
    notifier.close()
    assert not notifier.enabled and not notifier.watchdog()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(receiver, monkeypatch):
    _, sock = receiver
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    for notifier in (Notifier(env={}), Notifier()):
        assert not notifier.enabled and notifier.backend == "none"
        assert notifier.ready("x") is False and notifier.watchdog() is False and notifier.stopping() is False
        assert notifier.reloading() is False and notifier.status("y") is False
        notifier.close()
    assert _nothing_waiting(sock)


def test_a_vanished_manager_is_logged_once_not_raised(tmp_path, caplog):
    path = str(tmp_path / "gone.sock")
    _bound(path).close()
    os.unlink(path)
    notifier = Notifier(env={"NOTIFY_SOCKET": path})
    with caplog.at_level(logging.WARNING, logger="edge.sdnotify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


def test_bad_addresses_and_fields(caplog):
    assert parse_address("@abc") == b"\0abc" and parse_address("/run/x") == "/run/x"
    with pytest.raises(ValueError, match="vsock"):
        parse_address("vsock:2:1234")
    with caplog.at_level(logging.WARNING, logger="edge.sdnotify"):
        notifier = Notifier(env={"NOTIFY_SOCKET": "relative/path"})
    assert not notifier.enabled and "expected an absolute path" in caplog.text
    with pytest.raises(ValueError, match="one KEY=value line"):
        notifier.notify("READY")
    with pytest.raises(ValueError, match="backend 'dbus'"):
        Notifier(backend="dbus")


@pytest.mark.skipif(not sdnotify.systemd_python_available(), reason="systemd-python not installed")
def test_systemd_python_backend_sends_the_same_datagrams(receiver, monkeypatch):
    address, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = Notifier(backend="systemd")
    assert notifier.backend == "systemd"
    assert notifier.ready("up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    assert notifier.watchdog() and sock.recv(4096) == b"WATCHDOG=1"
    with pytest.raises(ValueError, match="give no address"):
        Notifier(address, backend="systemd")


def test_a_manager_that_does_not_read_never_stalls_the_loop(receiver, caplog):
    """Found by fuzzing the running daemon: with nobody draining the notify socket, the loop blocked in
    sendto once the socket's queue was full (and the status socket went unanswered). Now a full queue
    drops the message, once logged, and every call returns at once."""
    address, _unread = receiver
    notifier = Notifier(env={"NOTIFY_SOCKET": address})
    assert notifier.backend == "socket"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="edge.sdnotify"):
        sent = [notifier.status(f"frame {i}: " + "x" * 200) for i in range(20000)]
    assert time.monotonic() - started < 2.0
    assert sent[0] and not sent[-1]  # queued until the queue was full, dropped after
    assert caplog.text.count("sd_notify to") == 1


def test_watchdog_interval():
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "2500000"}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": me}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "me"}) is None
