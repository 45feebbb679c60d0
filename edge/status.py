"""The daemon's Unix status socket: one JSON request in, one JSON object out, per connection.

A Unix socket, not a network port: nothing listens on the network by default, and file permissions
(mode 0660, the service's group) decide who may ask. Operators reach it over SSH through the
``mona-edge status``/``snapshot``/``calibrate`` commands, which use :func:`query_status`.

Protocol: the client sends one JSON object (``{"command": "status"}`` if it sends nothing) terminated by
a newline or by shutting down its side; the server answers one JSON object and closes. Errors come back
as ``{"error": "..."}`` so a client can print them as they are.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from edge.errors import MonaEdgeError, NotRunningError, StatusError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/run/mona-edge/status.sock")
#: Largest request accepted; requests are tiny, anything bigger is a confused client.
MAX_REQUEST = 64 * 1024
#: Largest answer a client reads (a 1080x1920 PNG snapshot, base64, fits well within it).
MAX_RESPONSE = 64 * 1024 * 1024

Handler = Callable[[dict], dict]


#: Nobody answers on the socket: the daemon is not running (or we may not talk to it). The old name of
#: :class:`edge.errors.NotRunningError`, kept so existing imports keep working.
StatusUnavailable = NotRunningError


class StatusServer:
    """Serves ``handler(request) -> dict`` on a Unix socket from a background thread."""

    def __init__(self, path: str | Path, handler: Handler, mode: int = 0o660,
                 client_timeout: float = 2.0) -> None:
        self.path = Path(path)
        self.handler = handler
        self.mode = mode
        self.client_timeout = client_timeout
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.served = 0

    def start(self) -> None:
        """Bind (replacing a stale socket file, refusing if a live daemon answers there) and serve.

        Every way this fails is the configured socket path's fault (taken, or a folder we may not write),
        so each is a :class:`StatusError` naming it.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() or self.path.is_symlink():
                if not stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    raise StatusError(f"{self.path}: exists and is not a socket; refusing to replace it")
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                probe.settimeout(0.5)
                try:
                    probe.connect(str(self.path))
                except OSError:
                    self.path.unlink()  # left behind by a daemon that died: safe to replace
                else:
                    raise StatusError(f"{self.path}: another mona-edge daemon is answering there")
                finally:
                    probe.close()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o117)  # never world-accessible, not even between bind and chmod
            try:
                sock.bind(str(self.path))
                os.chmod(self.path, self.mode)
            except OSError:
                sock.close()
                raise
            finally:
                os.umask(old_umask)
        except OSError as exc:
            raise StatusError(f"{self.path}: cannot serve the status socket: {exc.strerror or exc} "
                              "(set [service] status_socket)") from exc
        sock.listen(8)
        sock.settimeout(0.2)  # so stop() is noticed promptly
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="status-socket", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            with conn:
                try:
                    self._answer(conn)
                except OSError as exc:  # a client that hung up early is its own problem
                    log.debug("status client: %s", exc)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(self.client_timeout)
        data = b""
        while len(data) <= MAX_REQUEST and b"\n" not in data:
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        try:
            request = json.loads(data.decode("utf-8")) if data.strip() else {"command": "status"}
            if not isinstance(request, dict):
                raise ValueError("the request must be a JSON object")
            response = self.handler(request)
        except (ValueError, UnicodeDecodeError) as exc:
            response = {"error": f"bad request: {exc}"}
        except MonaEdgeError as exc:  # the handler refused for a reason the asker can act on: no traceback
            response = {"error": str(exc)}
        except Exception as exc:  # the handler failed: report it, keep serving
            log.exception("status request %r failed", data[:200])
            response = {"error": f"{type(exc).__name__}: {exc}"}
        self.served += 1
        conn.sendall(json.dumps(response).encode("utf-8") + b"\n")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def query_status(path: str | Path = DEFAULT_SOCKET, timeout: float = 2.0,
                 request: dict | None = None) -> dict:
    """Ask the daemon; raises :class:`NotRunningError` if it is not there, :class:`StatusError` on an error
    reply or one that is not the protocol."""
    path = Path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError as exc:
            raise NotRunningError(f"{path}: no status socket (is mona-edge running? systemctl status mona-edge)") from exc
        except PermissionError as exc:
            raise NotRunningError(f"{path}: permission denied (add yourself to the service's group)") from exc
        except OSError as exc:
            raise NotRunningError(f"{path}: nobody answers ({exc.strerror or exc}); is mona-edge running?") from exc
        sock.sendall(json.dumps(request or {"command": "status"}).encode("utf-8") + b"\n")
        chunks = []
        total = 0
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError as exc:
                raise NotRunningError(f"{path}: no answer within {timeout:g} s") from exc
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_RESPONSE:
                raise StatusError(f"{path}: answer larger than {MAX_RESPONSE} bytes")
    finally:
        sock.close()
    try:
        reply = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise StatusError(f"{path}: the daemon's answer is not JSON") from exc
    if not isinstance(reply, dict):
        raise StatusError(f"{path}: the daemon's answer is not a JSON object")
    if "error" in reply:
        raise StatusError(f"daemon: {reply['error']}")
    return reply
