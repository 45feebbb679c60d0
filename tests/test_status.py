"""The status socket under clients that misbehave: slow, many, deep, big, or a handler with a bug.

Each test here is a defect found on a running daemon (issue 11): one client at a time with a timeout per
``recv`` let a group member dripping one byte every 1.5 s block ``status`` for hours; deep JSON logged a
traceback; a handler's ValueError was answered as "bad request" without one. The last test fuzzes the
real daemon's socket with random requests.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import status
from edge.errors import MonaEdgeError, StatusError
from edge.status import MAX_DEPTH, MAX_REQUEST, StatusServer, query_status

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def sock_path():
    folder = tempfile.mkdtemp(prefix="me-", dir="/tmp")  # AF_UNIX paths must stay short
    yield Path(folder) / "status.sock"
    shutil.rmtree(folder, ignore_errors=True)


def serve(path, handler=None, **kwargs) -> StatusServer:
    server = StatusServer(path, handler or (lambda request: {"state": "READY", "echo": request}), **kwargs)
    server.start()
    return server


def raw(path, payload: bytes, *, shut: bool = True, timeout: float = 5.0) -> dict:
    """Send ``payload`` as a client that speaks the bytes it likes; the reply, parsed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        try:
            s.sendall(payload)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):  # it answered and closed before reading it all
            pass
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:  # closed with our bytes unread; its answer came first
                break
            if not chunk:
                break
            data += chunk
    assert data.endswith(b"\n") and data.count(b"\n") == 1, data[:200]
    reply = json.loads(data)
    assert isinstance(reply, dict)
    return reply


# --- slow clients, many clients ---------------------------------------------------------------------------
def test_a_slow_loris_does_not_block_status_and_is_cut_off_at_its_request_deadline(sock_path):
    """A client dripping a byte every 0.5 s (each recv well within any per-recv timeout) is answered an
    error once its whole request has taken 2 s, and nobody else waits for it meanwhile."""
    server = serve(sock_path)
    try:
        loris = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        loris.connect(str(sock_path))
        started = time.monotonic()
        reply: dict = {}

        def drip():
            try:
                for byte in b'{"command": "status"' * 10:
                    loris.sendall(bytes([byte]))
                    time.sleep(0.5)
            except OSError:  # cut off: the answer is waiting
                pass

        def read_answer():
            reply.update(json.loads(loris.makefile("rb").readline()))
            reply["after"] = time.monotonic() - started

        threading.Thread(target=drip, daemon=True).start()
        reader = threading.Thread(target=read_answer, daemon=True)
        reader.start()
        time.sleep(0.6)
        for _ in range(3):
            t0 = time.monotonic()
            assert query_status(sock_path, timeout=1.0)["state"] == "READY"
            assert time.monotonic() - t0 < 0.5
        reader.join(4.0)
        assert "no whole request within 2 s" in reply["error"]
        assert 1.9 <= reply["after"] < 3.0
        loris.close()
        assert query_status(sock_path)["state"] == "READY"
    finally:
        server.stop()


def test_twenty_clients_at_once_are_all_answered(sock_path):
    """More clients than threads: the rest wait briefly for one, and every one gets its status."""
    def slow_status(request):
        time.sleep(0.05)
        return {"state": "READY"}

    server = serve(sock_path, slow_status)
    try:
        start = threading.Barrier(20)
        replies: list = []
        errors: list = []

        def client():
            start.wait()
            try:
                replies.append(query_status(sock_path, timeout=3.0))
            except StatusError as exc:
                errors.append(exc)

        t0 = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5.0)
        elapsed = time.monotonic() - t0
        assert errors == [] and len(replies) == 20 and all(r == {"state": "READY"} for r in replies)
        # served concurrently: 20 x 50 ms one at a time would be 1 s; 8 threads make it three rounds
        assert elapsed < 0.8, elapsed
        assert server.served == 20 and server.busy == 0
    finally:
        server.stop()


def test_when_every_thread_is_taken_one_more_client_is_told_busy_and_then_served(sock_path):
    release = threading.Event()

    def handler(request):
        if request.get("command") == "hold":
            release.wait(5.0)
        return {"state": "READY"}

    server = serve(sock_path, handler, max_clients=2, busy_wait=0.2)
    try:
        holders = [threading.Thread(target=query_status, args=(sock_path, 5.0, {"command": "hold"}))
                   for _ in range(2)]
        for t in holders:
            t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(StatusError, match="busy: 2 requests in progress"):
            query_status(sock_path, timeout=2.0)
        assert time.monotonic() - t0 < 1.0 and server.busy == 1
        release.set()
        for t in holders:
            t.join(2.0)
        assert query_status(sock_path)["state"] == "READY"
    finally:
        release.set()
        server.stop()


def test_the_client_gives_up_at_its_own_overall_deadline(sock_path):
    """A server that drips its answer a byte at a time (each recv well within the timeout) still costs the
    client at most its timeout, and that is "no answer", not "not running"."""
    sock_path.parent.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)
    stop = threading.Event()

    def dripping_server():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            for byte in b'{"state": "READY"' + b" " * 1000:
                if stop.is_set():
                    return
                conn.sendall(bytes([byte]))
                time.sleep(0.2)

    threading.Thread(target=dripping_server, daemon=True).start()
    outcome: dict = {}

    def ask():
        t0 = time.monotonic()
        try:
            query_status(sock_path, timeout=1.0)
        except Exception as exc:
            outcome["exc"] = exc
        outcome["took"] = time.monotonic() - t0

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(3.0)
    stop.set()
    listener.close()
    assert not asking.is_alive(), "query_status did not return within 3 s of a 1 s timeout"
    exc = outcome["exc"]
    assert isinstance(exc, StatusError) and not isinstance(exc, status.NotRunningError)
    assert "no answer within 1 s" in str(exc) and 0.9 <= outcome["took"] < 1.5


# --- what clients send ------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload, expected", [
    (b"[" * 5000 + b"]" * 5000 + b"\n", f"nested deeper than {MAX_DEPTH} levels"),
    (json.dumps({"command": "status", "x": [[[[[[[[[[1]]]]]]]]]]}).encode() + b"\n",
     f"nested deeper than {MAX_DEPTH} levels"),
    (b'{"command": "status", "n": ' + b"9" * 5000 + b"}\n", "not JSON"),
    (b"x" * (MAX_REQUEST + 5000), f"larger than {MAX_REQUEST} bytes"),
    (b"\xff\xfe{}\n", "not UTF-8"),
    (b'"status"\n', "expected a JSON object"),
    (b"not json\n", "not JSON"),
])
def test_deep_big_or_garbled_requests_get_an_error_reply_and_the_server_goes_on(sock_path, caplog, payload,
                                                                                 expected):
    server = serve(sock_path)
    try:
        with caplog.at_level(logging.DEBUG, logger="edge.status"):
            reply = raw(sock_path, payload)
        assert reply["error"].startswith("bad request: ") and expected in reply["error"], reply
        assert "\n" not in reply["error"] and len(reply["error"]) < 300
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]  # no traceback
        assert query_status(sock_path)["state"] == "READY"
    finally:
        server.stop()


def test_a_request_is_one_line_and_an_empty_one_asks_for_status(sock_path):
    server = serve(sock_path)
    try:
        assert raw(sock_path, b'{"command": "x"}\n{"command": "y"}\n')["echo"] == {"command": "x"}
        assert raw(sock_path, b"")["echo"] == {"command": "status"}
        assert raw(sock_path, b"  \n")["echo"] == {"command": "status"}
    finally:
        server.stop()


# --- handlers ---------------------------------------------------------------------------------------------
def test_a_bug_in_a_handler_is_an_internal_error_with_its_traceback_a_refusal_is_not(sock_path, caplog):
    """A ValueError from the handler is our defect, not a bad request (it used to be answered as one)."""
    def handler(request):
        command = request.get("command")
        if command == "value":
            raise ValueError("a defect deep in the handler")
        if command == "refuse":
            raise MonaEdgeError("no camera frame yet")
        if command == "unserialisable":
            return {"state": object()}
        if command == "not-a-dict":
            return ["READY"]
        return {"state": "READY"}

    server = serve(sock_path, handler)
    try:
        with caplog.at_level(logging.DEBUG, logger="edge.status"):
            reply = raw(sock_path, b'{"command": "value"}\n')
            assert reply["error"].startswith("internal error: ValueError: a defect deep in the handler")
            bugs = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(bugs) == 1 and bugs[0].exc_info is not None and bugs[0].exc_info[0] is ValueError
            caplog.clear()
            assert raw(sock_path, b'{"command": "refuse"}\n') == {"error": "no camera frame yet"}
            assert not [r for r in caplog.records if r.exc_info]
            assert raw(sock_path, b'{"command": "unserialisable"}\n')["error"].startswith("internal error: TypeError")
            assert raw(sock_path, b'{"command": "not-a-dict"}\n')["error"].startswith("internal error: TypeError")
        assert query_status(sock_path)["state"] == "READY"
    finally:
        server.stop()


def test_a_world_accessible_mode_is_refused_by_the_server_too(sock_path):
    with pytest.raises(StatusError, match=r"socket mode 0o666 would let anyone .* \[service\] socket_mode"):
        StatusServer(sock_path, lambda r: {}, mode=0o666).start()
    assert not sock_path.exists()
    server = serve(sock_path, mode=0o600)
    try:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    finally:
        server.stop()


# --- the real daemon's socket, fuzzed ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon():
    """A real daemon (bundled clip as its camera, short-range model, test pack, headless screen), its loop
    running on a thread as ``mona-edge run`` runs it, serving its status socket."""
    from edge.config import load_config
    from edge.service import EdgeService

    folder = Path(tempfile.mkdtemp(prefix="me-", dir="/tmp"))
    sock = folder / "status.sock"
    cfg = folder / "config.toml"
    cfg.write_text(f'[camera]\nsource = "video"\npath = "{REPO / "assets" / "clips" / "viewer-walk.mp4"}"\n'
                   '[detector]\nrange = "short"\nthreads = 1\n'
                   '[display]\nsink = "headless"\nwidth = 96\nheight = 128\n'
                   f'[pack]\npath = "{REPO / "assets" / "packs" / "test"}"\n'
                   f'[service]\nstatus_socket = "{sock}"\nready_timeout = 5\n')
    service = EdgeService(load_config(cfg), cfg)
    runner = threading.Thread(target=service.run, name="daemon-loop", daemon=True)
    runner.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            query_status(sock)
            break
        except StatusError:
            time.sleep(0.1)
    yield sock
    service.stop()
    runner.join(5.0)
    shutil.rmtree(folder, ignore_errors=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
requests = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"command": st.sampled_from(["status", "snapshot", "calibrate", "", "STATUS"])
                           | st.text(max_size=10) | json_values},
                          optional={"source": st.sampled_from(["display", "camera", "disk"]) | json_values,
                                    "extra": json_values}).map(lambda d: json.dumps(d).encode()),
    st.integers(1, 20000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 20000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(MAX_REQUEST - 64, MAX_REQUEST + 4096).map(lambda n: b"7" * n),
)


@settings(max_examples=150, derandomize=True, deadline=timedelta(seconds=10),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payload=requests, newline=st.booleans())
def test_any_request_to_the_daemon_gets_a_json_answer_and_status_still_answers(daemon, payload, newline):
    reply = raw(daemon, payload + (b"\n" if newline else b""))
    assert "error" in reply or "state" in reply or "png_base64" in reply, reply
    if "error" in reply:
        assert isinstance(reply["error"], str) and "\n" not in reply["error"]
    t0 = time.monotonic()
    assert query_status(daemon, timeout=2.0)["state"] in ("STARTING", "READY", "DEGRADED")
    assert time.monotonic() - t0 < 2.0
