"""A real OpenSSH server on 127.0.0.1 for the provisioning tests, started by the test session itself.

Its own host key, its own client key in its own authorized_keys, a random free port, key-only login
for the current user. Skips (with the reason) only when Debian's openssh-server is not installed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")


@dataclass
class SshServer:
    host: str
    port: int
    user: str
    identity: Path
    host_key_pub: Path
    known_hosts: Path  # already holds the server's key
    workdir: Path

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-f", str(self.host_key_pub)], capture_output=True, text=True,
                             check=True).stdout
        return out.split()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mona-edge-test", "-f", str(path)],
                   check=True)


def start_sshd(workdir: Path):
    """Start sshd; returns (server, process). The caller terminates the process."""
    if not SSHD.exists() or shutil.which("ssh") is None:
        pytest.skip("OpenSSH is not installed (apt-get install openssh-server openssh-client)")
    workdir.mkdir(parents=True, exist_ok=True)
    _keygen(workdir / "host_ed25519")
    _keygen(workdir / "client_ed25519")
    shutil.copy(workdir / "client_ed25519.pub", workdir / "authorized_keys")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    user = getpass.getuser()
    # OpenSSH 9.8+ (Debian 13) penalises a source whose connections fail or never authenticate, which the
    # host-key tests and ssh-keyscan do on purpose: from then on it refuses 127.0.0.1. Older sshd (Debian
    # 12) does not know the option and refuses a config that names it.
    penalties = subprocess.run([str(SSHD), "-t", "-f", os.devnull, "-h", str(workdir / "host_ed25519"),
                                "-o", "PerSourcePenalties=no"], capture_output=True).returncode == 0
    for _attempt in range(5):
        port = _free_port()
        config = workdir / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {workdir / 'host_ed25519'}",
            f"PidFile {workdir / 'sshd.pid'}", f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no", f"AllowUsers {user}",
            "X11Forwarding no", "PrintMotd no", "LogLevel ERROR", "MaxSessions 50", "MaxStartups 50",
            "Subsystem sftp internal-sftp", *(["PerSourcePenalties no"] if penalties else []), ""]))
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                stderr=open(workdir / "sshd.log", "ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        raise RuntimeError(f"sshd would not start: {(workdir / 'sshd.log').read_text()[-500:]}")
    host_pub = (workdir / "host_ed25519.pub").read_text().split()
    known = workdir / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    server = SshServer("127.0.0.1", port, user, workdir / "client_ed25519", workdir / "host_ed25519.pub", known,
                       workdir)
    return server, proc


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server, proc = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    proc.terminate()
    proc.wait(timeout=10)
