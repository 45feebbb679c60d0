"""The daemon: status socket, rolling statistics, and (further down) the whole loop end to end."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading

import numpy as np
import pytest

from edge.service import RollingStats
from edge.status import StatusServer, StatusUnavailable, query_status


# --- rolling statistics --------------------------------------------------------------------------------
def test_rolling_stats_keep_the_last_window():
    stats = RollingStats(size=10)
    assert stats.percentile(50) is None and stats.mean() is None
    for v in range(100):
        stats.add(float(v))
    assert stats.count == 100
    assert sorted(stats.samples()) == list(range(90, 100))
    assert stats.percentile(50) == pytest.approx(94.5)
    assert stats.percentile(95) == pytest.approx(np.percentile(np.arange(90, 100), 95))


# --- status socket -------------------------------------------------------------------------------------
@pytest.fixture
def sock_path(tmp_path):
    # AF_UNIX paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    import tempfile

    folder = tempfile.mkdtemp(prefix="me-", dir="/tmp")
    yield os.path.join(folder, "run", "status.sock")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def test_status_socket_answers_json_with_mode_0660(sock_path):
    seen = []

    def handler(request):
        seen.append(request)
        if request.get("command") == "boom":
            raise RuntimeError("exploded")
        return {"state": "READY", "echo": request}

    server = StatusServer(sock_path, handler)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660
        assert query_status(sock_path) == {"state": "READY", "echo": {"command": "status"}}
        assert query_status(sock_path, request={"command": "x", "n": 2})["echo"] == {"command": "x", "n": 2}
        with pytest.raises(ValueError, match="RuntimeError: exploded"):
            query_status(sock_path, request={"command": "boom"})
        # A client that sends nothing and just shuts its side down gets the status too.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock_path)
            s.shutdown(socket.SHUT_WR)
            reply = json.loads(s.makefile().read())
        assert reply["state"] == "READY"
        # Garbage is answered with an error, and the server keeps serving.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock_path)
            s.sendall(b"not json\n")
            assert "bad request" in json.loads(s.makefile().read())["error"]
        assert query_status(sock_path)["state"] == "READY"
        assert server.served == 6
    finally:
        server.stop()
    assert not os.path.exists(sock_path)
    with pytest.raises(StatusUnavailable, match="is mona-edge running"):
        query_status(sock_path)


def test_stale_socket_is_replaced_but_a_live_one_is_not(sock_path):
    os.makedirs(os.path.dirname(sock_path))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()  # a file left by a daemon that died
    with pytest.raises(StatusUnavailable, match="nobody answers"):
        query_status(sock_path, timeout=0.5)
    first = StatusServer(sock_path, lambda r: {"who": "first"})
    first.start()
    try:
        with pytest.raises(OSError, match="another mona-edge daemon"):
            StatusServer(sock_path, lambda r: {"who": "second"}).start()
        assert query_status(sock_path) == {"who": "first"}
    finally:
        first.stop()


def test_a_regular_file_in_the_way_is_not_deleted(sock_path):
    os.makedirs(os.path.dirname(sock_path))
    with open(sock_path, "w") as f:
        f.write("precious")
    with pytest.raises(OSError, match="not a socket"):
        StatusServer(sock_path, lambda r: {}).start()
    assert open(sock_path).read() == "precious"


def test_a_slow_client_does_not_block_the_next(sock_path):
    server = StatusServer(sock_path, lambda r: {"ok": True}, client_timeout=0.3)
    server.start()
    try:
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(sock_path)  # connects, sends nothing, never closes
        result = {}
        t = threading.Thread(target=lambda: result.update(query_status(sock_path, timeout=2.0)))
        t.start()
        t.join(3.0)
        assert result == {"ok": True}
        idle.close()
    finally:
        server.stop()
