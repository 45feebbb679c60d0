"""Debian containers booted by systemd-nspawn, with systemd as their PID 1, for the tests of the real unit.

Why nspawn and not the plain-process supervisor: ``Type=notify``, the watchdog, restart and start limits,
``ExecReload``, ``ProtectSystem=``, ``DevicePolicy=``, ``User=`` and provisioning's systemctl/useradd/sudo
path only mean something under a real systemd. A booted container gives one in 1-3 s.

How a container is run (each choice is needed on a host that is not itself booted by systemd):

* the root tree is ``debootstrap --variant=minbase`` of a Debian suite plus what the frame needs
  (:data:`PACKAGES`), built once and kept as a tarball under :data:`CACHE`, so later sessions only unpack it;
* ``unshare -m`` gives nspawn a private mount namespace with a tmpfs on ``/run/systemd/nspawn``, so
  nothing it mounts or locks there outlives it or meets another container;
* ``--register=no --keep-unit``: there is no system bus (no machined) to register with;
* ``--private-network``: the container reaches nothing; what it installs arrives as files;
* ``SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1`` and ``--system-call-filter=bpf``: a pure cgroup v2 hierarchy
  with BPF allowed, so the container's systemd enforces ``DevicePolicy=``/``DeviceAllow=`` (with the
  host's hybrid cgroups it silently does not);
* commands run inside with ``nsenter -t <leader> -a`` (machinectl and ``systemd-run -M`` need the bus).

Everything is bounded by timeouts, and :meth:`Container.stop` always ends with SIGKILL of the
container's PID 1 (which takes every process of its PID namespace with it), so nothing is left running.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Where the root tarballs are kept between runs (outside the checkout: they are about 150 MB each).
CACHE = Path(os.environ.get("MONA_EDGE_NSPAWN_CACHE", "/var/cache/mona-edge-tests"))
MIRROR = os.environ.get("MONA_EDGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: What a Raspberry Pi OS image has that minbase lacks, as far as the frame uses it: systemd as init,
#: udev (it creates the ``render`` group the unit asks for), the OS's Python with venv, pip and numpy
#: (the frame's venv keeps the OS's numpy), and OpenSSH and sudo for provisioning over SSH. procps for
#: ``kill``, which minbase lacks and the unit's ExecReload calls.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "udev", "procps", "python3", "python3-venv", "python3-pip",
            "python3-numpy", "openssh-server", "sudo")
#: The Debian suites the frame supports (Raspberry Pi OS Bookworm and Trixie), with their Python.
SUITES = {"bookworm": "3.11", "trixie": "3.13"}
#: Host tools, by the Debian package that has them.
HOST_TOOLS = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap", "unshare": "util-linux",
              "nsenter": "util-linux", "tar": "tar"}


def missing_host_tools() -> list[str]:
    """Debian packages this module needs and the host lacks."""
    return sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})


def unusable_reason() -> str | None:
    """Why containers cannot be booted here, or None: root and the host tools are needed."""
    if os.geteuid() != 0:
        return "booting a systemd-nspawn container needs root"
    missing = missing_host_tools()
    if missing:
        return f"no {', '.join(missing)} on this machine (apt-get install {' '.join(missing)})"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no /sys/fs/cgroup: systemd-nspawn needs cgroups"
    return None


def tarball(suite: str) -> Path:
    """The cached root tree of ``suite``, built first if absent.

    Its name carries a hash of what went into it, so a change to :data:`PACKAGES` or the mirror builds a
    new one instead of reusing a stale tree. Built into a temporary folder and renamed when whole, so an
    interrupted build is never taken for a cached one.
    """
    key = hashlib.sha256(f"{suite}\n{MIRROR}\n{' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    path = CACHE / f"debian-{suite}-minbase-{key}.tar"
    if path.is_file():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=f".build-{suite}-") as work:
        tree = Path(work) / "root"
        done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite,
                               str(tree), MIRROR], capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap {suite} failed: {(done.stderr or done.stdout)[-2000:]}")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (tree / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = Path(work) / "tree.tar"
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "--acls", "-C", str(tree), "-cf", str(partial), "."],
                       check=True, timeout=600)
        os.replace(partial, path)
    return path


def unpack(suite: str, dest: Path) -> Path:
    """A fresh copy of ``suite``'s root tree at ``dest`` (about 2 s from the cached tarball)."""
    source = tarball(suite)
    dest.mkdir(parents=True)
    subprocess.run(["tar", "--numeric-owner", "--xattrs", "--acls", "-C", str(dest), "-xf", str(source)],
                   check=True, timeout=600)
    return dest


#: Containers booted and not yet stopped: powered off at interpreter exit if a test run breaks off.
_RUNNING: list[Container] = []


@atexit.register
def _stop_leftovers() -> None:
    for container in list(_RUNNING):
        container.stop(timeout=5)


@dataclass
class Container:
    """One booted container; use :func:`boot` to make one and :meth:`stop` (always) to end it."""

    tree: Path
    name: str
    process: subprocess.Popen
    console: Path
    leader: int = 0
    journal_dumps: list[Path] = field(default_factory=list)

    def run(self, *argv: str, timeout: float = 60, input: str | None = None, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the container (all of its namespaces, its root), as root."""
        prefix = ["nsenter", "-t", str(self.leader), "-a", "--wdns=/"]
        if env:
            prefix += ["env", *(f"{k}={v}" for k, v in env.items())]
        done = subprocess.run(prefix + list(argv), capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"in {self.name}: {' '.join(argv)} exited {done.returncode}: "
                                 f"{(done.stderr or done.stdout)[-2000:]}")
        return done

    def sh(self, script: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        return self.run("/bin/sh", "-c", script, timeout=timeout, check=check)

    def systemctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run("systemctl", *args, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` properties of ``unit`` as a dict."""
        out = self.systemctl("show", unit, "--property=" + ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", "-q", "-o", "short-monotonic", *args, timeout=60).stdout

    def host_pid(self, pid: int) -> int:
        """The host's pid of the container's process ``pid`` (nsenter and /proc on the host need it)."""
        pidns = os.readlink(f"/proc/{self.leader}/ns/pid")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                ns = _ns_pids(int(entry.name))
                try:
                    if ns and ns[-1] == pid and os.readlink(entry / "ns/pid") == pidns:
                        return int(entry.name)
                except OSError:
                    continue
        raise LookupError(f"{self.name}: no process {pid}")

    def run_as_part_of(self, pid: int, argv: list[str], uid: int | None = None, gid: int | None = None,
                       timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the cgroup and mount namespace of the container's process ``pid`` (a
        service's main process), as ``uid``/``gid`` or root: what the unit's cgroup (DevicePolicy) and
        mounts (ProtectSystem, ProtectHome, PrivateTmp) allow a process of that service."""
        host = self.host_pid(pid)
        line = next(entry for entry in Path(f"/proc/{host}/cgroup").read_text().splitlines()
                    if entry.startswith("0::"))
        cgroup = _unified_root() / line[3:].lstrip("/")
        ids = [] if uid is None else ["-S", str(uid), "-G", str(gid)]
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return subprocess.run(["/bin/sh", "-c", script, str(cgroup), "nsenter", "-t", str(host), "-m", *ids,
                               *argv], capture_output=True, text=True, timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """Power off cleanly; SIGKILL its PID 1 (all of the container) if that takes longer than ``timeout``."""
        if self.alive() and self.leader:
            try:
                os.kill(self.leader, signal.SIGRTMIN + 4)  # systemd's "poweroff" signal
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if self.leader:
                try:
                    os.kill(self.leader, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self in _RUNNING:
            _RUNNING.remove(self)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _ns_pids(pid: int) -> list[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    except OSError:
        pass
    return []


def _unified_root() -> Path:
    """Where the host mounts cgroup v2: /sys/fs/cgroup itself, or /sys/fs/cgroup/unified (hybrid)."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] == "cgroup2":
            return Path(fields[1])
    raise LookupError("no cgroup2 mount on this host")


def _find_leader(nspawn_pid: int) -> int:
    """The container's PID 1 seen from the host: a descendant of nspawn whose innermost pid is 1."""
    todo, seen = [nspawn_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        ns = _ns_pids(pid)
        if len(ns) > 1 and ns[-1] == 1:
            return pid
        todo.extend(_children(pid))
    return 0


def boot(tree: Path, name: str, console: Path, timeout: float = 60, private_network: bool = True) -> Container:
    """Boot ``tree`` and wait until its systemd has finished starting up (running or degraded).

    ``console`` receives the container's console (the boot messages, the first-boot unit's output).
    ``private_network=False`` shares the host's network namespace: how a test reaches an sshd inside
    (configured to listen on 127.0.0.1 only) without setting up a veth pair.
    """
    Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
    nspawn = ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit", "--system-call-filter=bpf",
              f"--machine={name}", "-D", str(tree)] + (["--private-network"] if private_network else [])
    script = 'mount -t tmpfs tmpfs /run/systemd/nspawn && exec "$@"'
    env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
    log = open(console, "ab")
    process = subprocess.Popen(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh",
                                *nspawn], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    container = Container(tree, name, process, console)
    _RUNNING.append(container)
    deadline = time.monotonic() + timeout
    try:
        while not container.leader:
            if not container.alive():
                raise RuntimeError(f"systemd-nspawn exited {process.returncode}: {console.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no container PID 1 within {timeout:.0f} s: {console.read_text()[-2000:]}")
            container.leader = _find_leader(process.pid)
            time.sleep(0.05)
        while True:
            state = container.run("systemctl", "is-system-running", timeout=10).stdout.strip()
            if state in ("running", "degraded"):
                break
            if not container.alive():
                raise RuntimeError(f"the container stopped while booting: {console.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: system {state!r} after {timeout:.0f} s: "
                                   f"{container.systemctl('list-jobs').stdout[-2000:]}")
            time.sleep(0.1)
    except BaseException:
        container.stop(timeout=5)
        raise
    return container
