"""The daemon's Unix status socket: one JSON request in, one JSON object out, per connection.

A Unix socket, not a network port: nothing listens on the network by default, and file permissions
(mode 0660, the service's group; never anything for others, :mod:`edge.config` refuses it) decide who may
ask. Operators reach it over SSH through the ``mona-edge status``/``snapshot``/``calibrate``/``doctor``
commands, which use :func:`query_status`.

Protocol: the client sends one JSON object (``{"command": "status"}`` if it sends nothing) on one line,
terminated by a newline or by shutting down its side; the server answers one JSON object and a newline,
and closes. Errors come back as ``{"error": "..."}`` so a client can print them as they are.

Why the limits below: every member of the service's group can connect, and the commands that need an
answer (``status`` above all, which scripts and ``doctor`` use to tell whether the frame runs) must get
one whatever another client does. So several clients are served at once, each on a thread of its own,
and each has a deadline for its *whole* request (not per ``recv``: a client dripping one byte a second
would otherwise hold its thread for ever), a size limit and a nesting limit; each refusal is an error
reply, and the server goes on. The number of threads is bounded too (:data:`MAX_CLIENTS`): one more
client waits :data:`BUSY_WAIT` for a free one, then is told the daemon is busy; more wait in the listen
backlog (:data:`LISTEN_BACKLOG`), and beyond that the kernel refuses them. A handler that fails with a
:class:`~edge.errors.MonaEdgeError` answers its text; anything else is a bug, logged with its traceback
and answered as an internal error.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import MonaEdgeError, NotRunningError, StatusError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/run/mona-edge/status.sock")
#: Largest request accepted, in bytes; requests are tiny (``{"command": "snapshot", "source": "camera"}``),
#: anything bigger is a confused client and gets an error reply.
MAX_REQUEST = 64 * 1024
#: Deepest nesting of arrays and objects accepted in a request (a request is one flat object: 1).
MAX_DEPTH = 8
#: Seconds a client has to send its whole request, from the moment it is accepted.
REQUEST_DEADLINE = 2.0
#: Seconds a client has to take the whole answer (a snapshot of a 1080x1920 screen is a few MB).
REPLY_DEADLINE = 10.0
#: Clients served at once, each on its own thread.
MAX_CLIENTS = 8
#: Seconds one more client waits for a free thread before it is answered "busy".
BUSY_WAIT = 0.5
#: Connections the kernel queues while every thread is taken; beyond this it refuses them.
LISTEN_BACKLOG = 32
#: Largest answer a client reads (a 1080x1920 PNG snapshot, base64, fits well within it).
MAX_RESPONSE = 64 * 1024 * 1024

Handler = Callable[[dict], dict]


#: Nobody answers on the socket: the daemon is not running (or we may not talk to it). The old name of
#: :class:`edge.errors.NotRunningError`, kept so existing imports keep working.
StatusUnavailable = NotRunningError


class _BadRequest(Exception):
    """What a client sent is not a request (the reply names why); never leaves this module."""


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed request; stops counting past :data:`MAX_DEPTH`.

    Iterative, so that measuring a deep request cannot itself run out of stack."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_request(data: bytes) -> dict:
    """One request from the bytes a client sent (up to its newline); :class:`_BadRequest` if it is not one."""
    line = data.split(b"\n", 1)[0]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadRequest(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        return {"command": "status"}
    try:
        request = json.loads(text)
    except RecursionError:  # the C decoder's own guard: arrays or objects nested hundreds deep
        raise _BadRequest(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and int()'s refusal of a number over 4300 digits
        raise _BadRequest(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(request, dict):
        raise _BadRequest(f"expected a JSON object such as {{\"command\": \"status\"}}, got {type(request).__name__}")
    if _depth(request) > MAX_DEPTH:
        raise _BadRequest(f"nested deeper than {MAX_DEPTH} levels")
    return request


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The stdlib's threaded Unix stream server with a bounded number of handler threads."""

    daemon_threads = True        # a client still talking must not keep the daemon from exiting
    block_on_close = False       # nor delay stop(): each client's own deadline ends its thread
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, owner: StatusServer) -> None:
        self.owner = owner
        self.slots = threading.BoundedSemaphore(owner.max_clients)
        super().__init__(str(owner.path), _Handler, bind_and_activate=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(timeout=self.owner.busy_wait):
            self.owner.answer_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (none left?): give the slot back; the caller closes
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Only our own code gets here (:meth:`StatusServer.answer` keeps clients' faults apart)."""
        log.exception("status socket: a bug in mona-edge while serving a client")


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        server.owner.answer(self.request)


class StatusServer:
    """Serves ``handler(request) -> dict`` on a Unix socket from background threads.

    ``client_timeout`` is the deadline for a client's whole request (:data:`REQUEST_DEADLINE`); the
    handler runs on the client's thread, so one that is slow (a snapshot waits for the loop) delays only
    its own client.
    """

    def __init__(self, path: str | Path, handler: Handler, mode: int = 0o660,
                 client_timeout: float = REQUEST_DEADLINE, *, reply_timeout: float = REPLY_DEADLINE,
                 max_clients: int = MAX_CLIENTS, busy_wait: float = BUSY_WAIT) -> None:
        self.path = Path(path)
        self.handler = handler
        self.mode = mode
        self.client_timeout = client_timeout
        self.reply_timeout = reply_timeout
        self.max_clients = max_clients
        self.busy_wait = busy_wait
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.served = 0  #: requests answered (errors included; "busy" refusals not)
        self.busy = 0    #: clients turned away because every thread was taken

    def start(self) -> None:
        """Bind (replacing a stale socket file, refusing if a live daemon answers there) and serve.

        Every way this fails is the configured socket path's fault (taken, or a folder we may not write),
        so each is a :class:`StatusError` naming it.
        """
        if self.mode & 0o007:
            raise StatusError(f"{self.path}: socket mode 0o{self.mode:03o} would let anyone on the machine "
                              "ask for snapshots; expected nothing for others, such as 0o660 "
                              "(set [service] socket_mode)")
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
            server = _Server(self)
            old_umask = os.umask(0o117)  # never world-accessible, not even between bind and chmod
            try:
                server.server_bind()
                os.chmod(self.path, self.mode)
                server.server_activate()
            except OSError:
                server.server_close()
                raise
            finally:
                os.umask(old_umask)
        except OSError as exc:
            raise StatusError(f"{self.path}: cannot serve the status socket: {exc.strerror or exc} "
                              "(set [service] status_socket)") from exc
        self._server = server
        # poll_interval: how soon stop() is noticed
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="status-socket", daemon=True)
        self._thread.start()

    # --- one client (on its own thread) -------------------------------------------------------------------
    def answer(self, conn: socket.socket) -> None:
        """Read one request within the deadline, answer it, whatever it is."""
        try:
            data, problem = self._read(conn)
        except OSError as exc:  # the client hung up: its own problem
            log.debug("status client: %s", exc)
            return
        body = self._error(problem) if problem is not None else self._respond(data)
        with self._lock:
            self.served += 1
        try:
            conn.settimeout(self.reply_timeout)  # sendall's timeout covers the whole answer
            conn.sendall(body)
        except OSError as exc:
            log.debug("status client did not take its answer: %s", exc)

    def _read(self, conn: socket.socket) -> tuple[bytes, str | None]:
        """The request's bytes, or why there is none: too slow, or too big."""
        deadline = time.monotonic() + self.client_timeout
        data = bytearray()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(data), f"bad request: no whole request within {self.client_timeout:g} s"
            conn.settimeout(left)
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue  # the deadline check above answers it
            if not chunk:
                return bytes(data), None
            data += chunk
            if b"\n" in chunk:
                return bytes(data), None
            if len(data) > MAX_REQUEST:
                return b"", f"bad request: larger than {MAX_REQUEST} bytes"

    def _respond(self, data: bytes) -> bytes:
        try:
            request = parse_request(data)
        except _BadRequest as exc:
            return self._error(f"bad request: {exc}")
        try:
            response = self.handler(request)
            if not isinstance(response, dict):
                raise TypeError(f"the status handler returned {type(response).__name__}, not a dict")
            return json.dumps(response).encode("utf-8") + b"\n"
        except MonaEdgeError as exc:  # the handler refused for a reason the asker can act on: no traceback
            return self._error(str(exc))
        except Exception as exc:  # a bug in the handler: its traceback in the journal, and keep serving
            log.exception("status request %.200r failed: a bug in mona-edge", request)
            return self._error(f"internal error: {type(exc).__name__}: {exc} "
                               "(a bug in mona-edge; see journalctl -u mona-edge)")

    @staticmethod
    def _error(message: str) -> bytes:
        return json.dumps({"error": message}).encode("utf-8") + b"\n"

    def answer_busy(self, conn: socket.socket) -> None:
        """Every thread is taken (on the accepting thread: must not block)."""
        with self._lock:
            self.busy += 1
        log.debug("status socket: %d clients at once; turning one away", self.max_clients)
        try:
            conn.settimeout(0.05)
            conn.sendall(self._error(f"busy: {self.max_clients} requests in progress; try again"))
        except OSError:
            pass

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        if thread is not None and thread.is_alive():
            server.shutdown()  # returns once serve_forever has (within its poll interval)
            thread.join(timeout=1.0)
        server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def query_status(path: str | Path = DEFAULT_SOCKET, timeout: float = 2.0,
                 request: dict | None = None) -> dict:
    """Ask the daemon, all within ``timeout`` seconds (connecting, sending and the whole answer).

    Raises :class:`NotRunningError` if nobody is there (no socket, nobody listening, no permission), and
    :class:`StatusError` on an error reply, on one that is not the protocol, or when the daemon took the
    connection but did not answer in time (it runs, but is busy or stuck: that is not "not running").
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    late = StatusError(f"{path}: no answer within {timeout:g} s (the daemon is busy or stuck; "
                       "journalctl -u mona-edge)")

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise late
        return remaining

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    chunks: list[bytes] = []
    try:
        sock.settimeout(left())
        try:
            sock.connect(str(path))
        except FileNotFoundError as exc:
            raise NotRunningError(f"{path}: no status socket (is mona-edge running? systemctl status mona-edge)") from exc
        except PermissionError as exc:
            raise NotRunningError(f"{path}: permission denied (add yourself to the service's group)") from exc
        except TimeoutError as exc:  # the listen backlog is full
            raise late from exc
        except OSError as exc:
            raise NotRunningError(f"{path}: nobody answers ({exc.strerror or exc}); is mona-edge running?") from exc
        try:
            sock.settimeout(left())
            sock.sendall(json.dumps(request or {"command": "status"}).encode("utf-8") + b"\n")
        except TimeoutError as exc:
            raise late from exc
        except OSError:  # it answered and closed before reading us (busy): read what it said
            pass
        total = 0
        while True:
            sock.settimeout(left())
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError as exc:
                raise late from exc
            except ConnectionResetError:  # it closed with our request unread (busy, too big): answer read
                break
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_RESPONSE:
                raise StatusError(f"{path}: answer larger than {MAX_RESPONSE} bytes")
    finally:
        sock.close()
    if not chunks:
        raise StatusError(f"{path}: the daemon closed the connection without answering")
    try:
        reply = json.loads(b"".join(chunks).decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise StatusError(f"{path}: the daemon's answer is not JSON") from exc
    if not isinstance(reply, dict):
        raise StatusError(f"{path}: the daemon's answer is not a JSON object")
    if "error" in reply:
        raise StatusError(f"daemon: {reply['error']}")
    return reply
