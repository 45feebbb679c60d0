"""The target half of ``mona-edge provision``: runs on the Pi, from the standard library only.

Why a self-contained script inside ``edge``: the workstation pipes this very file into the target's
``python3`` over SSH before any mona-edge software exists there, and the SD-card writer copies it onto
the card for the first-boot unit. So it imports nothing but the standard library (Python >= 3.9, as on
Raspberry Pi OS Bullseye) and nothing from ``provisioning``.

    python3 install.py ACTION [BASE64-JSON-ARGUMENTS]
    ACTION: probe | activate | rollback | stop | logs | firstboot

Every action but ``logs`` prints one JSON object on stdout. The layout it keeps (under a root prefix, so
an unprivileged test target or a mounted SD card work the same way)::

    opt/mona-edge/versions/<software-hash>/   a venv (--system-site-packages), ``.installed`` written last
    opt/mona-edge/current -> versions/<hash>  switched by symlink-to-temp + rename, never edited in place
    var/lib/mona-edge/packs/<sha>/             a gaze pack, ``.sha256sums.json`` records its checksums
    var/lib/mona-edge/packs/current -> <sha>
    var/lib/mona-edge/configs/<sha>.toml       every config kept by content, for rollback
    var/lib/mona-edge/deploy.json              the current and previous deployment (hashes of everything)
    etc/mona-edge/config.toml, etc/systemd/system/mona-edge.service
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

SERVICE = "mona-edge.service"
SERVICE_USER = "mona-edge"
INSTALLED_MARKER = ".installed"
PACK_SUMS = ".sha256sums.json"
#: Components of one deployment; a rollback restores all of them together.
COMPONENTS = ("software", "pack", "config", "unit")


class StepError(Exception):
    """A named step of an install failed; ``step`` tells the workstation which one.

    Not an :class:`edge.errors.ProvisioningError`: this script runs on the target from the standard
    library alone, before any mona-edge is installed there, so it cannot import :mod:`edge.errors`. It
    never crosses to the workstation as an exception either: :func:`main` turns it into the JSON result,
    and the workstation raises its own ProvisioningError (``provisioning.remote.RemoteError``) from that."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


# ---------------------------------------------------------------------------------------------- hashing

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(sums: dict[str, str]) -> str:
    """One name for a set of files: the sha256 of its sorted ``path\\0sha`` lines.

    The workstation and the target compute it with this same function, so a pack's folder name is
    its content and a second upload of the same pack is recognised without sending a byte.
    """
    digest = hashlib.sha256()
    for rel in sorted(sums):
        digest.update(f"{rel}\0{sums[rel]}\n".encode())
    return digest.hexdigest()


def tree_sums(root: Path, skip: tuple = ()) -> dict[str, str]:
    sums: dict[str, str] = {}
    if not root.is_dir():
        return sums
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if rel not in skip:
                sums[rel] = file_sha256(path)
    return sums


# ----------------------------------------------------------------------------------------------- layout

class Layout:
    """Every path the install touches, under one root prefix."""

    def __init__(self, prefix: str = "/"):
        self.root = Path(prefix)
        self.opt = self.root / "opt/mona-edge"
        self.versions = self.opt / "versions"
        self.current = self.opt / "current"
        self.firstboot = self.opt / "firstboot"
        self.lib = self.root / "var/lib/mona-edge"
        self.packs = self.lib / "packs"
        self.pack_current = self.packs / "current"
        self.configs = self.lib / "configs"
        self.deploy_file = self.lib / "deploy.json"
        self.config = self.root / "etc/mona-edge/config.toml"
        self.unit = self.root / "etc/systemd/system" / SERVICE
        self.run_dir = self.root / "run/mona-edge-supervisor"
        self.log_file = self.root / "var/log/mona-edge/mona-edge.log"

    def version_dir(self, software: str) -> Path:
        return self.versions / software

    def software_staging(self, software: str) -> Path:
        return self.versions / f".staging-{software}"

    def pack_dir(self, sha: str) -> Path:
        return self.packs / sha

    def pack_staging(self, sha: str) -> Path:
        return self.packs / f".staging-{sha}"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Readers see the old file or the new one, never half of either (write temp, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def switch_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically: a new symlink under a temp name renamed over the old."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def link_name(link: Path) -> str | None:
    """The folder name a ``current`` link points at, or None when there is none."""
    return Path(os.readlink(link)).name if link.is_symlink() else None


def read_deploy(layout: Layout) -> dict:
    try:
        return json.loads(layout.deploy_file.read_text())
    except FileNotFoundError:
        return {"current": None, "previous": None}


# ------------------------------------------------------------------------------------- service managers

def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            return fh.read().decode(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []


class Systemd:
    """The real thing: the unit file is in /etc/systemd/system and systemd is PID 1."""

    name = "systemd"

    def __init__(self, layout: Layout):
        if layout.root.resolve() != Path("/"):
            raise StepError("service", f"systemd manages units only under /, not prefix {layout.root}; "
                                       "use --service-manager process for a prefixed install")
        self.layout = layout

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["systemctl", *args], capture_output=True, text=True)

    def _must(self, *args: str) -> None:
        done = self._systemctl(*args)
        if done.returncode != 0:
            raise StepError("service", f"systemctl {' '.join(args)}: {done.stderr.strip() or done.returncode}")

    def installed(self) -> None:
        self._must("daemon-reload")
        self._must("enable", SERVICE)

    def restart(self) -> None:
        # A deliberate (re)start by the operator is a fresh start: reset-failed clears the start-limit
        # count that a failed update's crash restarts ran up, or the switch back (and a rollback right
        # after it) would be refused with "start-limit-hit". Crash loops stay bounded by the daemon's
        # own safe mode (edge/crashes.py), which counts across these resets.
        self._systemctl("reset-failed", SERVICE)
        # --no-block: readiness is judged by ``mona-edge status``, and the first-boot oneshot must not
        # wait on a job queued behind itself.
        self._must("restart", "--no-block", SERVICE)

    def stop(self) -> None:
        self._systemctl("stop", SERVICE)

    def state(self) -> str:
        return self._systemctl("is-active", SERVICE).stdout.strip() or "unknown"

    def dead(self) -> bool:
        return self.state() == "failed"

    def recent_log(self, lines: int = 15) -> list[str]:
        out = subprocess.run(["journalctl", "-u", SERVICE, "-n", str(lines), "--no-pager", "-q"],
                             capture_output=True, text=True).stdout
        return out.splitlines()

    def logs_argv(self, lines: int, follow: bool) -> list[str]:
        return ["journalctl", "-u", SERVICE, "-n", str(lines), "--no-pager"] + (["-f"] if follow else [])


class Supervisor:
    """For targets without systemd as PID 1 (containers, test machines): a plain detached process.

    It runs the unit's own ExecStart (so what runs is what systemd would run), records pid and start
    time in a pidfile (so a recycled pid is never signalled), and stops with SIGTERM, then SIGKILL
    after ``stop_timeout`` seconds. It runs as the login user; the unit's sandboxing does not apply.
    """

    name = "process"
    stop_timeout = 10.0

    def __init__(self, layout: Layout):
        self.layout = layout
        self.pidfile = layout.run_dir / "mona-edge.pid"

    def exec_start(self) -> list[str]:
        try:
            text = self.layout.unit.read_text()
        except FileNotFoundError:
            raise StepError("service", f"{self.layout.unit}: no unit file to take ExecStart from") from None
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() == "ExecStart" and value.strip():
                argv = shlex.split(value.strip())
                argv[0] = argv[0].lstrip("-@:+!")
                return argv
        raise StepError("service", f"{self.layout.unit}: no ExecStart= line")

    @staticmethod
    def _start_time(pid: int) -> str | None:
        """Field 22 of /proc/PID/stat, or None when the process is gone or a zombie."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()
        return None if fields[0] in ("Z", "X") else fields[19]

    def _running_pid(self) -> int | None:
        try:
            pid_text, started = self.pidfile.read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        pid = int(pid_text)
        return pid if self._start_time(pid) == started else None

    def installed(self) -> None:
        self.exec_start()  # a unit without ExecStart fails here, before anything is switched

    def restart(self) -> None:
        self.stop()
        argv = self.exec_start()
        self.layout.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.log_file, "ab") as log:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, close_fds=True, cwd="/")
            except OSError as exc:
                raise StepError("service", f"cannot start {argv[0]}: {exc.strerror}") from None
        started = None
        for _ in range(100):
            started = self._start_time(proc.pid)
            if started is not None:
                break
            time.sleep(0.01)
        atomic_write(self.pidfile, f"{proc.pid} {started or 0}\n".encode())

    def stop(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            if self._start_time(pid) is None:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def state(self) -> str:
        return "active" if self._running_pid() is not None else "inactive"

    def dead(self) -> bool:
        return self._running_pid() is None

    def recent_log(self, lines: int = 15) -> list[str]:
        return _tail(self.layout.log_file, lines)

    def logs_argv(self, lines: int, follow: bool) -> list[str]:
        return ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(self.layout.log_file)]


def service_manager(layout: Layout, choice: str = "auto"):
    """``auto`` picks systemd when it is PID 1 (it creates /run/systemd/system) and the prefix is /."""
    if choice == "auto":
        choice = "systemd" if Path("/run/systemd/system").is_dir() and layout.root.resolve() == Path("/") \
            else "process"
    if choice == "systemd":
        return Systemd(layout)
    if choice == "process":
        return Supervisor(layout)
    raise StepError("service", f"service manager {choice!r}: allowed are auto, systemd, process")


# ------------------------------------------------------------------------------------------------ probe

def _os_release() -> dict[str, str]:
    info = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                info[key] = value.strip().strip('"')
    except FileNotFoundError:
        pass
    return info


def _pi_model() -> str | None:
    try:
        model = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        return None
    return model if "Raspberry Pi" in model else None


@functools.cache
def _system_version(dist: str) -> str | None:
    """The version the target's own Python sees (the OS's packages, when run by the system python3)."""
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: A requirement line's distribution name (PEP 508), enough to tell whose pin a line is without
#: ``packaging``, which a stock OS Python may lack.
_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def target_constraints(lock_text: str, system_version: Callable[[str], str | None]) -> tuple[list[str], list[str]]:
    """The lines the target's pip installs with, and what was decided, from the lock that travelled along.

    The lock's pins hold except where the OS already has the package: numpy is pinned to the OS's own
    (picamera2, simplejpeg and the OS's pygame are compiled against it, so a different numpy over it
    breaks them), and any other package the OS provides loses its pin, so the OS's copy (seen through
    system site-packages) is used where it meets the requirement: Raspberry Pi OS's python3-pygame is
    linked to an SDL with KMS/DRM, PyPI's is not. ``system_version(name)`` is the OS's version or None.
    """
    lines: list[str] = []
    kept_os: set[str] = set()
    for raw in lock_text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _REQUIREMENT_NAME.match(line)
        if match is None:
            continue
        name = _canonical(match.group(1))
        if system_version(name):
            kept_os.add(name)
            continue
        lines.append(line)
    notes = []
    if lock_text:
        notes.append(f"constraints: {len(lines)} pin(s) from the lock")
    numpy = system_version("numpy")
    if numpy:
        lines.append(f"numpy=={numpy}")
        notes.append(f"numpy pinned to the OS's {numpy}")
    own = sorted(kept_os - {"numpy"})
    if own:
        notes.append(f"the OS's own {', '.join(own)} kept (their lock pins dropped)")
    return lines, notes


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def pack_verified(layout: Layout, sha: str) -> bool:
    """An installed pack counts only while every file still matches the checksums it arrived with."""
    folder = layout.pack_dir(sha)
    try:
        recorded = json.loads((folder / PACK_SUMS).read_text())
    except (FileNotFoundError, ValueError):
        return False
    return tree_digest(recorded) == sha and tree_sums(folder, skip=(PACK_SUMS,)) == recorded


def probe(args: dict) -> dict:
    """What the target is and holds. Run first as the login user: a store it cannot read (an install from
    before the store was handed back to root, below) is reported as ``store_locked``, not an error; the
    workstation then probes again with sudo, and :func:`activate` hands the store back."""
    try:
        return _probe(args)
    except PermissionError as exc:
        if os.geteuid() == 0:
            raise
        out = _probe(args, store=False)
        out["store_locked"] = f"{exc.filename}: {exc.strerror}"
        return out


def _probe(args: dict, store: bool = True) -> dict:
    layout = Layout(args.get("prefix", "/"))
    software: str = args.get("software") or ""  # the hashes the workstation asks about, if any
    pack: str = args.get("pack") or ""
    try:
        manager = service_manager(layout, args.get("service_manager", "auto"))
        manager_name, state = manager.name, manager.state()
    except StepError as exc:
        manager_name, state = f"unusable: {exc}", "unknown"
    return {
        "machine": platform.machine(),
        "os_release": {k: v for k, v in _os_release().items() if k in ("ID", "ID_LIKE", "VERSION_ID",
                                                                         "VERSION_CODENAME", "PRETTY_NAME")},
        "python": platform.python_version(),
        "pi_model": _pi_model(),
        "systemd_pid1": Path("/run/systemd/system").is_dir(),
        "service_manager": manager_name,
        "service_state": state,
        "uid": os.geteuid(),
        "free_bytes": {"opt": _free_bytes(layout.opt), "lib": _free_bytes(layout.lib)},
        "camera": sorted(str(p) for p in Path("/dev").glob("video*")) + sorted(
            str(p) for p in Path("/dev").glob("media*")),
        "display": sorted(str(p) for p in Path("/dev/dri").glob("card*")) + (
            ["/dev/fb0"] if Path("/dev/fb0").exists() else []),
        "system_numpy": _system_version("numpy"),
        "system_picamera2": _system_version("picamera2"),
        "system_pygame": _system_version("pygame"),  # the OS's python3-pygame: its SDL has KMS/DRM
        "system_pip": _system_version("pip"),
        "deployed": read_deploy(layout).get("current") if store else None,
        "software_installed": bool(software) and (layout.version_dir(software) / INSTALLED_MARKER).is_file(),
        "pack_installed": store and bool(pack) and pack_verified(layout, pack),
        "staged": {
            "software": tree_sums(layout.software_staging(software)) if software else {},
            "pack": tree_sums(layout.pack_staging(pack)) if pack and store else {},
        },
        "config_sha": file_sha256(layout.config) if layout.config.is_file() else None,
        "unit_sha": file_sha256(layout.unit) if layout.unit.is_file() else None,
    }


# ---------------------------------------------------------------------------------------------- install

def _run_step(step: str, argv: list[str], timeout: float = 1800, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise StepError(step, f"{argv[0]}: not found on the target") from None
    except subprocess.TimeoutExpired:
        raise StepError(step, f"{' '.join(argv[:4])}... took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise StepError(step, f"{' '.join(argv[:4])}... exited {done.returncode}: {tail}")
    return done.stdout


def _offline_pip_env() -> dict[str, str]:
    """The environment for an offline install: the carried wheelhouse and nothing else.

    ``--no-index`` alone still honours the target's pip.conf and ``PIP_*`` variables (a ``find-links``,
    a global ``constraint``), so what got installed could quietly come from elsewhere, or be refused by a
    constraint nobody carried. pip loads no configuration file at all when PIP_CONFIG_FILE is os.devnull.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def install_software(layout: Layout, spec: dict, log: list[str]) -> None:
    """Build ``versions/<hash>`` as a venv that sees the OS's packages (picamera2, its numpy).

    pip runs with a constraints file pinning numpy to the OS's version, so nothing compiled against
    the OS's numpy (picamera2, simplejpeg) is broken by a different numpy pulled in over it. The venv's
    base is the interpreter running this script: the workstation and the first-boot unit both start it
    with ``/usr/bin/python3`` (the OS's) when the target has one, so "system site-packages" and "the OS's
    numpy" mean the OS's, not those of a pyenv or conda on the login PATH.
    """
    software = spec["hash"]
    target = layout.version_dir(software)
    if (target / INSTALLED_MARKER).is_file():
        return
    staging = layout.software_staging(software)
    missing = [w for w in spec["wheels"] if not (staging / w).is_file()]
    if missing:
        raise StepError("install software", f"{staging}: missing {', '.join(missing)} (upload incomplete)")
    for name, sha in spec.get("sums", {}).items():
        got = file_sha256(staging / name)
        if got != sha:
            raise StepError("install software", f"{staging / name}: checksum mismatch (expected {sha[:12]}, "
                                                f"got {got[:12]}); refusing it")
    if target.exists():
        shutil.rmtree(target)  # a venv left half-built by an earlier, interrupted run
    layout.versions.mkdir(parents=True, exist_ok=True)
    # With the OS's pip visible through system site-packages the venv needs no pip of its own.
    venv_argv = [sys.executable, "-m", "venv", "--system-site-packages"]
    if _system_version("pip"):
        venv_argv.append("--without-pip")
    _run_step("create venv", venv_argv + [str(target)])
    python = str(target / "bin/python")
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--find-links", str(staging)]
    if spec.get("offline"):
        pip.append("--no-index")
    if spec.get("no_deps"):
        pip.append("--no-deps")
    travelling = staging / spec["constraints"] if spec.get("constraints") else None
    lines, notes = target_constraints(travelling.read_text() if travelling else "", _system_version)
    if lines:
        constraints = target / "constraints.txt"
        constraints.write_text("\n".join(lines) + "\n")
        pip += ["--constraint", str(constraints)]
    log.extend(notes)
    extras = spec.get("extras") or []
    pip.append(str(staging / spec["project_wheel"]) + (f"[{','.join(extras)}]" if extras else ""))
    _run_step("pip install", pip, env=_offline_pip_env() if spec.get("offline") else None)
    imports = list(spec.get("check_imports", ["import edge"]))
    if spec.get("check_pi_camera") and _pi_model():  # picamera2 and numpy must import together on a Pi
        imports.append("import picamera2, numpy")
    for statement in imports:
        done = subprocess.run([python, "-c", statement], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:  # the exception's own line says what is missing; the traceback does not
            last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise StepError("import check", f"the new venv {target} cannot run the daemon: {last} "
                                            f"(checked: {statement})")
        log.append(f"checked: {statement}")
    for name in spec["wheels"]:  # kept with the version: a rollback or a rebuild needs no upload
        shutil.copy2(staging / name, target / name)
    atomic_write(target / INSTALLED_MARKER, json.dumps({"hash": software, "wheels": spec["wheels"]}).encode())
    shutil.rmtree(staging, ignore_errors=True)
    log.append(f"installed software {software[:12]}")


def install_pack(layout: Layout, spec: dict, log: list[str]) -> None:
    sha, files = spec["sha"], spec["files"]
    if tree_digest(files) != sha:
        raise StepError("verify pack", f"pack {sha[:12]}: its file list does not hash to its name")
    if pack_verified(layout, sha):
        return
    staging = layout.pack_staging(sha)
    for rel, want in sorted(files.items()):
        path = staging / rel
        if not path.is_file():
            raise StepError("verify pack", f"{path}: missing (upload incomplete)")
        got = file_sha256(path)
        if got != want:
            raise StepError("verify pack", f"{path}: checksum mismatch (expected {want[:12]}, got {got[:12]}); "
                                           "refusing the pack")
    extra = set(tree_sums(staging)) - set(files)
    for rel in extra:
        (staging / rel).unlink()
    atomic_write(staging / PACK_SUMS, json.dumps(files, sort_keys=True).encode())
    final = layout.pack_dir(sha)
    if final.exists():
        shutil.rmtree(final)  # present but no longer matching its checksums
    os.replace(staging, final)
    log.append(f"installed pack {sha[:12]} ({len(files)} files)")


def _apply(layout: Layout, deployment: dict) -> None:
    """Make ``deployment`` the live one: links, config and unit file; every write atomic."""
    switch_link(layout.current, f"versions/{deployment['software']}")
    switch_link(layout.pack_current, deployment["pack"])
    stored = layout.configs / f"{deployment['config']}.toml"
    atomic_write(layout.config, stored.read_bytes())
    atomic_write(layout.unit, (layout.lib / "units" / f"{deployment['unit']}.service").read_bytes())


def _ensure_user(layout: Layout, manager, log: list[str]) -> None:
    if manager.name != "systemd":
        return
    import pwd
    try:
        pwd.getpwnam(SERVICE_USER)
        return
    except KeyError:
        pass
    _run_step("service user", ["useradd", "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/var/lib/mona-edge", "--shell", "/usr/sbin/nologin", SERVICE_USER])
    log.append(f"created system user {SERVICE_USER}")


def _status_argv(layout: Layout, ready_command: list[str] | None) -> list[str]:
    """The installed venv's own ``mona-edge status --json``, told which config (and so which status
    socket) this install uses: under a prefix that is not ``/etc/mona-edge/config.toml``."""
    return ready_command or [str(layout.current / "bin/mona-edge"), "status", "--json",
                             "--config", str(layout.config)]


def _running_pid(layout: Layout, ready_command: list[str] | None) -> int | None:
    """The pid of the daemon answering the status command now, if one does."""
    try:
        done = subprocess.run(_status_argv(layout, ready_command), capture_output=True, text=True, timeout=10)
        pid = json.loads(done.stdout).get("pid") if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


def restart_and_wait(layout: Layout, manager, args: dict) -> dict:
    """Restart the service and wait until its NEW process is up: systemd runs the restart as a queued
    job (``--no-block``), and until the job reaches it the old daemon still answers READY, which a
    rollback or switch back would otherwise take for the new one's."""
    ready_command = args.get("ready_command")
    before = _running_pid(layout, ready_command)
    manager.restart()
    return wait_ready(layout, manager, ready_command, float(args.get("ready_timeout", 60)), not_pid=before)


def wait_ready(layout: Layout, manager, ready_command: list[str] | None, timeout: float,
               not_pid: int | None = None) -> dict:
    """Poll the status command until the daemon is up; fail early when the service has died.

    Up is READY, or DEGRADED: the daemon shows the portrait but its camera is not delivering (no camera,
    a wrong setting). Rolling back would not mend a camera and on a first install would blank the screen,
    so that deployment stays, and the caller says loudly what is wrong. A status from process
    ``not_pid`` (the one a restart is replacing) does not count.
    """
    argv = _status_argv(layout, ready_command)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            if done.returncode == 0:
                status = json.loads(done.stdout)
                if not_pid is not None and status.get("pid") == not_pid:
                    last = f"the previous process {not_pid} still answers"
                elif status.get("state") in ("READY", "DEGRADED"):
                    return status
                else:
                    last = f"state {status.get('state')!r}"
            else:  # ``status --json`` of a daemon not (yet) running says why on stdout, exit 3
                why = (done.stderr.strip() or done.stdout.strip())[-300:]
                last = f"{argv[0]} exited {done.returncode}: {why}"
        except FileNotFoundError:
            last = f"{argv[0]}: not found"
        except (subprocess.TimeoutExpired, ValueError) as exc:
            last = f"{argv[0]}: {exc}"
        if manager.dead():
            log = "\n".join(manager.recent_log())
            raise StepError("wait for READY", f"the service stopped before it was READY ({last}); log:\n{log}")
        if time.monotonic() >= deadline:
            raise StepError("wait for READY", f"not READY within {timeout:.0f} s ({last})")
        time.sleep(0.1)


def _garbage_collect(layout: Layout, keep: list[dict]) -> None:
    """Keep only what the current and previous deployments use: a Pi's card is small.

    Runs after a successful switch only, so it also drops the staging folders of uploads that broke off
    earlier: they are kept until then so that a retry of the same version resumes instead of resending,
    and once a deployment has succeeded nobody is retrying them any more.
    """
    wanted = {c: {d[c] for d in keep if d} for c in COMPONENTS}
    for folder in layout.versions.iterdir() if layout.versions.is_dir() else []:
        if folder.name.startswith(".staging-") or (not folder.name.startswith(".") and folder.name not in wanted["software"]):
            shutil.rmtree(folder, ignore_errors=True)
    for folder in layout.packs.iterdir() if layout.packs.is_dir() else []:
        if folder.name.startswith(".staging-") or (not folder.name.startswith(".") and folder.name != "current"
                                                   and folder.name not in wanted["pack"]):
            shutil.rmtree(folder, ignore_errors=True)
    for kind, store, suffix in (("config", layout.configs, ".toml"), ("unit", layout.lib / "units", ".service")):
        for path in store.glob(f"*{suffix}") if store.is_dir() else []:
            if path.name[:-len(suffix)] not in wanted[kind]:
                path.unlink()


def _switch(layout: Layout, manager, old: dict | None, new: dict, args: dict, log: list[str]) -> dict:
    """Switch to ``new`` and wait for READY; on failure put ``old`` back and raise."""
    try:
        _apply(layout, new)
        manager.installed()
        _ensure_user(layout, manager, log)
        status = restart_and_wait(layout, manager, args)
        log.append(f"{status.get('state')}: {json.dumps(status, sort_keys=True)}")
        if status.get("state") == "DEGRADED":
            log.append("WARNING: the frame shows the portrait, but its camera is not working "
                       f"(camera: {status.get('camera')!r}); run `mona-edge doctor` on the frame")
        return status
    except StepError as exc:
        if old:
            _apply(layout, old)
            manager.installed()
            try:
                restart_and_wait(layout, manager, args)
                exc.args = (f"{exc.args[0]}\nswitched back to the previous deployment; it is READY",)
            except StepError as again:
                exc.args = (f"{exc.args[0]}\nswitched back to the previous deployment, but it is not READY "
                            f"either: {again}",)
        else:
            manager.stop()
            exc.args = (f"{exc.args[0]}\nno previous deployment to switch back to; the service is stopped",)
        raise


def reclaim_store(layout: Layout, log: list[str]) -> None:
    """Hand ``/var/lib/mona-edge`` back to root where an earlier unit's ``StateDirectory=mona-edge`` had
    systemd give all of it to the service user (0750): that locked the login user's probe out (every later
    ``mona-edge provision`` failed) and let the service rewrite what root installs. The service's own
    ``state`` folder stays the service's (systemd keeps it so)."""
    lib = layout.lib
    if os.geteuid() != 0 or not lib.is_dir() or lib.stat().st_uid == 0:
        return
    state = lib / "state"
    for folder, dirs, files in os.walk(lib):
        here = Path(folder)
        if here == lib:
            dirs[:] = [d for d in dirs if here / d != state]
        for path in [here, *(here / f for f in files)]:
            if path.is_symlink():
                os.lchown(path, 0, 0)
                continue
            os.chown(path, 0, 0)
            mode = path.stat().st_mode
            os.chmod(path, mode | (0o755 if path.is_dir() else 0o444))
    log.append(f"{lib}: handed back to root (an earlier unit's StateDirectory had given it to the service)")


def activate(args: dict) -> dict:
    layout = Layout(args.get("prefix", "/"))
    log: list[str] = []
    reclaim_store(layout, log)
    manager = service_manager(layout, args.get("service_manager", "auto"))
    state = read_deploy(layout)
    old = state.get("current")
    new = dict(old or {})
    if args.get("software"):
        install_software(layout, args["software"], log)
        new["software"] = args["software"]["hash"]
    if args.get("pack"):
        install_pack(layout, args["pack"], log)
        new["pack"] = args["pack"]["sha"]
    for kind, store, suffix in (("config", layout.configs, ".toml"), ("unit", layout.lib / "units", ".service")):
        spec = args.get(kind)
        if spec:
            data = base64.b64decode(spec["data"])
            if hashlib.sha256(data).hexdigest() != spec["sha"]:
                raise StepError(f"store {kind}", f"{kind} does not match its checksum {spec['sha'][:12]}")
            atomic_write(store / f"{spec['sha']}{suffix}", data)
            new[kind] = spec["sha"]
    missing = [c for c in COMPONENTS if not new.get(c)]
    if missing:
        raise StepError("plan", f"the target has no {', '.join(missing)} yet and none was given")
    if new == old and manager.state() == "active":
        return {"ok": True, "changed": [], "restarted": False, "log": log + ["nothing changed"]}
    changed = [c for c in COMPONENTS if not old or old.get(c) != new[c]]
    status = _switch(layout, manager, old, new, args, log)
    previous = old if old and old != new else state.get("previous")
    atomic_write(layout.deploy_file, json.dumps({"current": new, "previous": previous}, indent=1).encode())
    _garbage_collect(layout, [new, previous] if previous else [new])
    return {"ok": True, "changed": changed, "restarted": True, "status": status, "log": log}


def rollback(args: dict) -> dict:
    layout = Layout(args.get("prefix", "/"))
    manager = service_manager(layout, args.get("service_manager", "auto"))
    log: list[str] = []
    reclaim_store(layout, log)
    state = read_deploy(layout)
    if not state.get("previous"):
        raise StepError("rollback", f"{layout.deploy_file}: no previous deployment to roll back to")
    status = _switch(layout, manager, state["current"], state["previous"], args, log)
    atomic_write(layout.deploy_file, json.dumps({"current": state["previous"], "previous": state["current"]},
                                                indent=1).encode())
    return {"ok": True, "changed": [c for c in COMPONENTS if state["current"][c] != state["previous"][c]],
            "restarted": True, "status": status, "log": log, "current": state["previous"]}


def stop(args: dict) -> dict:
    layout = Layout(args.get("prefix", "/"))
    manager = service_manager(layout, args.get("service_manager", "auto"))
    manager.stop()
    return {"ok": True, "state": manager.state()}


def logs(args: dict) -> int:
    layout = Layout(args.get("prefix", "/"))
    manager = service_manager(layout, args.get("service_manager", "auto"))
    argv = manager.logs_argv(int(args.get("lines", 50)), bool(args.get("follow")))
    if manager.name == "process" and not layout.log_file.exists():
        print(f"{layout.log_file}: no log yet", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached: exec replaces this process


def firstboot(args: dict) -> dict:
    """Finish an install the SD-card writer staged: the plan it left is an ``activate`` argument."""
    layout = Layout(args.get("prefix", "/"))
    plan_file = layout.firstboot / "plan.json"
    plan = json.loads(plan_file.read_text())
    plan["prefix"] = args.get("prefix", "/")
    for key in ("service_manager", "ready_command", "ready_timeout"):  # overrides, for a test bench
        if key in args:
            plan[key] = args[key]
    result = activate(plan)
    os.replace(plan_file, layout.firstboot / "plan.done.json")  # the unit's condition: run once
    return result


ACTIONS = {"probe": probe, "activate": activate, "rollback": rollback, "stop": stop, "firstboot": firstboot}


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ACTIONS and argv[0] != "logs":
        print(f"usage: install.py {{{'|'.join(list(ACTIONS) + ['logs'])}}} [BASE64-JSON]", file=sys.stderr)
        return 2
    args = json.loads(base64.b64decode(argv[1])) if len(argv) > 1 else {}
    if argv[0] == "logs":
        return logs(args)
    try:
        result = ACTIONS[argv[0]](args)
    except StepError as exc:
        result = {"ok": False, "step": exc.step, "error": str(exc)}
    except OSError as exc:
        result = {"ok": False, "step": argv[0], "error": f"{exc.filename or ''}: {exc.strerror or exc}"}
    print(json.dumps(result))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
