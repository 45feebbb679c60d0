"""The SSH transport: the system OpenSSH client, key authentication, strict host-key checking.

Why OpenSSH's binaries and not paramiko: they honour the user's agent, ``~/.ssh/config`` and
known_hosts exactly as ``ssh`` at a terminal does, they are already on every workstation, and the Pi
needs nothing but its stock sshd. One master connection (ControlMaster) carries every command of a
run, so the host key is checked once and each later command costs no new handshake.

Files travel as a tar stream written by Python into ``ssh ... tar -x``: the bytes are counted here (the
transfer log that proves a second run sends nothing), and a connection dropped mid-stream leaves only a
partial staging folder that the next run completes.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import edge.install
from edge.errors import ProvisioningError
from provisioning.target import check_host, check_port, check_user
from provisioning.target import parse_destination as parse_checked

#: The target's OS interpreter (Raspberry Pi OS: the one whose dist-packages hold picamera2).
OS_PYTHON = "/usr/bin/python3"


class HostKeyError(ProvisioningError):
    """The target's host key is unknown or changed; the message carries its fingerprint."""


class TransferError(ProvisioningError):
    """The connection failed while files were being sent; the target still runs what it ran before."""


class RemoteError(ProvisioningError):
    """A command on the target failed; ``step`` names the install step (``connect``, ``probe``, ...)."""

    def __init__(self, message: str, step: str = ""):
        super().__init__(message)
        self.step = step


@dataclass
class TransferLog:
    """Every file sent and its size: what the idempotence guarantee is checked against."""

    files: list[tuple[str, int]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)


class _CountingWriter:
    def __init__(self, raw: IO[bytes]):
        self.raw, self.count = raw, 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def parse_destination(text: str) -> tuple[str, str, int]:
    """``user@host`` or ``user@host:port`` (a bracketed IPv6 host with a port: ``user@[::1]:2222``), each
    part checked by :func:`provisioning.target.parse_destination` (one ProvisioningError line if not)."""
    checked = parse_checked(text)
    return checked.user, checked.host, checked.port


def ssh_path(path: Path | str, what: str) -> str:
    """A file path as an ssh option value: ``%`` doubled (ssh expands ``%h``-style tokens in every path it
    takes) and, in ``-o`` values, quoted (a space would split UserKnownHostsFile into two files)."""
    text = str(path)
    if any(c in text for c in '"\n\r'):
        raise ProvisioningError(f"{what} {text!r}: a path with a double quote or a line break cannot be "
                                "given to ssh; move the file")
    return text.replace("%", "%%")


def _option(key: str, path: Path | str, what: str) -> str:
    return f'{key}="{ssh_path(path, what)}"'


class SshTarget:
    """One target reached over SSH; use as a context manager so the master connection is closed."""

    def __init__(self, user: str, host: str, port: int = 22, known_hosts: Path | None = None,
                 identity: Path | None = None, ssh_program: str = "ssh", connect_timeout: int = 10):
        # Checked here as well as by parse_destination: whoever builds a target, nothing that ssh could
        # take for an option (``-oProxyCommand=...``) becomes its user or host.
        self.user, self.host = check_user(user), check_host(host)
        self.port = check_port(port)
        self.known_hosts = known_hosts or Path.home() / ".ssh/known_hosts"
        self.identity = identity
        self.ssh_program = ssh_program
        self.connect_timeout = connect_timeout
        self.sudo = False  # set once the target says the login user is not root and the prefix is /
        self.log = TransferLog()
        self._control_dir: tempfile.TemporaryDirectory | None = None

    # ------------------------------------------------------------------------------- connection
    @property
    def name(self) -> str:
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts spells this host: a non-standard port is written ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def destination(self) -> str:
        """``user@host`` as ssh takes it; every argv puts ``--`` before it (see :meth:`_ssh_argv`)."""
        return f"{self.user}@{self.host}"

    def _options(self) -> list[str]:
        opts = ["-p", str(self.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", _option("UserKnownHostsFile", self.known_hosts, "--known-hosts"),
                "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self.identity:
            # As an -o value, not -i: ssh checks an -i path as given but opens it %-expanded.
            opts += ["-o", _option("IdentityFile", self.identity, "--identity"), "-o", "IdentitiesOnly=yes"]
        if self._control_dir:
            opts += ["-o", self._control_path(self._control_dir), "-o", "ControlMaster=no"]
        return opts

    @staticmethod
    def _control_path(folder: tempfile.TemporaryDirectory) -> str:
        return f'ControlPath="{ssh_path(folder.name, "temporary folder")}/%C"'

    def _ssh_argv(self, options: Sequence[str], *command: str) -> list[str]:
        """``ssh OPTIONS -- user@host [COMMAND]``: after ``--`` ssh reads nothing as an option, neither
        the destination nor the command (OpenSSH otherwise parses options after the host too)."""
        return [self.ssh_program, *options, "--", self.destination, *command]

    def __enter__(self) -> SshTarget:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Start the master connection; this is where an unknown or changed host key stops the run.
        Opening an open target does nothing."""
        if self._control_dir is not None:
            return
        self._ensure_known_hosts()
        control = tempfile.TemporaryDirectory(prefix="mona-ssh-")
        argv = self._ssh_argv([*self._options(), "-o", self._control_path(control),
                               "-o", "ControlMaster=yes", "-o", "ControlPersist=300", "-N", "-f"])
        # -f forks the master into the background after authentication; its stderr goes to a file, so
        # nothing here waits on a pipe the master keeps open.
        with tempfile.TemporaryFile() as err:
            try:
                code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err).returncode
            except FileNotFoundError as exc:
                control.cleanup()
                raise ProvisioningError(f"{self.ssh_program}: not found; install the OpenSSH client") from exc
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
        if code != 0:
            control.cleanup()
            self._raise_connect_error(message)
        self._control_dir = control

    def _ensure_known_hosts(self) -> None:
        try:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            self.known_hosts.touch(exist_ok=True)
        except OSError as exc:
            raise ProvisioningError(f"--known-hosts {self.known_hosts}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._control_dir is None:
            return
        subprocess.run(self._ssh_argv(["-o", self._control_path(self._control_dir), "-O", "exit"]),
                       capture_output=True)
        self._control_dir.cleanup()
        self._control_dir = None

    # ----------------------------------------------------------------------------------- host keys
    def scan_host_keys(self) -> list[tuple[str, str]]:
        """(fingerprint, known_hosts line) for every key the server presents right now."""
        try:
            scan = subprocess.run(["ssh-keyscan", "-p", str(self.port), "-T", str(self.connect_timeout), "--",
                                   self.host], capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise ProvisioningError("ssh-keyscan: not found; install the OpenSSH client") from exc
        found = []
        for line in scan.stdout.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            fp = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=line + "\n", capture_output=True, text=True)
            parts = fp.stdout.split()
            if fp.returncode == 0 and len(parts) >= 2:
                found.append((f"{parts[-1].strip('()')} {parts[1]}", line))
        return found

    def _raise_connect_error(self, message: str) -> None:
        changed = "REMOTE HOST IDENTIFICATION HAS CHANGED" in message
        if changed or "Host key verification failed" in message or "No " in message and "host key is known" in message:
            presented = ", ".join(fp for fp, _ in self.scan_host_keys()) or "none (ssh-keyscan got no answer)"
            if changed:
                head = (f"host key of {self.known_hosts_name} has CHANGED since it was recorded in "
                        f"{self.known_hosts}: if the Pi was re-flashed that is expected, otherwise someone may "
                        f"be intercepting the connection.")
            else:
                head = f"host key of {self.known_hosts_name} is not in {self.known_hosts}."
            example = presented.split(", ")[0].split(" ")[-1]
            raise HostKeyError(f"{head} The server presents {presented}. Compare it with "
                               f"`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the Pi's console, then run "
                               f"again with --accept-host-key {example}")
        raise RemoteError(f"ssh {self.name}: {message or 'connection failed'}", step="connect")

    def accept_host_key(self, fingerprint: str) -> None:
        """Record the key the server presents, but only if it has the fingerprint the user verified."""
        presented = self.scan_host_keys()
        matches = [line for fp, line in presented if fp.split(" ")[-1] == fingerprint]
        if not matches:
            raise HostKeyError(f"--accept-host-key {fingerprint}: {self.known_hosts_name} does not present that key "
                               f"(it presents {', '.join(fp for fp, _ in presented) or 'nothing'}); nothing recorded")
        self._ensure_known_hosts()
        subprocess.run(["ssh-keygen", "-R", self.known_hosts_name, "-f", str(self.known_hosts)], capture_output=True)
        Path(f"{self.known_hosts}.old").unlink(missing_ok=True)
        with open(self.known_hosts, "a") as fh:
            fh.write(matches[0] + "\n")

    # ------------------------------------------------------------------------------------ commands
    def _remote(self, argv: Sequence[str], shell: str | None = None) -> list[str]:
        command = shell if shell is not None else shlex.join(argv)
        if self.sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        return self._ssh_argv(self._options(), command)

    def run(self, argv: Sequence[str], input: bytes | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
        return subprocess.run(self._remote(argv), input=input, capture_output=True, timeout=timeout)

    @staticmethod
    def _helper_command(action: str, args: dict) -> str:
        """``python3 - ACTION PAYLOAD`` on the target, by the OS's own interpreter when there is one.

        Why not the ``python3`` first on the login PATH: a pyenv or conda in the user's shell start-up
        would then build the frame's venv, and that interpreter sees neither the OS's picamera2 nor the
        numpy it was built against. ``/usr/bin/python3`` is also what the first-boot unit runs.
        """
        payload = base64.b64encode(json.dumps(args).encode()).decode()
        tail = f"- {shlex.quote(action)} {shlex.quote(payload)}"
        return f"if [ -x {OS_PYTHON} ]; then exec {OS_PYTHON} {tail}; else exec python3 {tail}; fi"

    def helper(self, action: str, args: dict, timeout: float = 3600) -> dict:
        """Run ``edge/install.py ACTION`` on the target: the script itself travels on stdin."""
        script = Path(edge.install.__file__).read_bytes()
        try:
            done = subprocess.run(self._remote([], shell=self._helper_command(action, args)), input=script,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{self.name}: {action} did not finish within {timeout:.0f} s", step=action) from exc
        out = done.stdout.decode(errors="replace").strip().splitlines()
        if done.returncode == 127:
            raise RemoteError(f"{self.name}: no python3 on the target", step=action)
        try:
            result = json.loads(out[-1])
        except (IndexError, ValueError) as exc:  # no JSON line: the helper died before it could say why
            err = done.stderr.decode(errors="replace").strip()
            raise RemoteError(f"{self.name}: {action} failed (exit {done.returncode}): {err[-800:]}", step=action) from exc
        if not result.get("ok", True):
            raise RemoteError(f"{result.get('step', action)} failed: {result.get('error')}", step=result.get("step", action))
        return result

    def stream_helper(self, action: str, args: dict) -> int:
        """Run a helper action whose output goes straight to this terminal (``logs -f``)."""
        script = Path(edge.install.__file__).read_bytes()
        with tempfile.NamedTemporaryFile() as fh:  # stdin carries the script; stdout is the terminal
            fh.write(script)
            fh.flush()
            fh.seek(0)
            return subprocess.run(self._remote([], shell=self._helper_command(action, args)), stdin=fh).returncode

    def upload(self, files: Sequence[tuple[Path, str]], dest: str) -> int:
        """Send ``files`` (local path, name relative to ``dest``) as one tar stream; returns bytes sent."""
        command = f"mkdir -p {shlex.quote(dest)} && tar -x --no-same-owner -C {shlex.quote(dest)} -f -"
        proc = subprocess.Popen(self._remote([], shell=command), stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stdin is not None and proc.stderr is not None  # both are pipes
        writer = _CountingWriter(proc.stdin)
        current = ""
        try:  # a stream ("w|") only ever writes: the counting writer is file enough
            with tarfile.open(fileobj=cast(IO[bytes], writer), mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for local, rel in files:
                    current = rel
                    info = tar.gettarinfo(str(local), arcname=rel)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o644
                    with open(local, "rb") as fh:
                        tar.addfile(info, fh)
                    self.log.files.append((f"{dest}/{rel}", info.size))
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        lines = proc.stderr.read().decode(errors="replace").splitlines()
        err = "; ".join(line for line in dict.fromkeys(lines) if line.strip())  # one line, repeats dropped
        code = proc.wait()
        if code != 0:
            raise TransferError(f"copy to {self.name}:{dest} broke off at {current} after {writer.count} bytes "
                                f"(exit {code}: {err[-300:] or 'connection lost'}); the target still runs its "
                                f"previous version; run again to send the rest")
        return writer.count
