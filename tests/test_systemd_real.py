"""The real unit under a real systemd: a Debian container (Bookworm and Trixie) booted by systemd-nspawn.

What the plain-process supervisor of ``test_provision_real`` cannot show, shown here with systemd as PID 1:
``Type=notify`` (the start job ends at READY, and the portrait is on screen by then), ``ExecReload`` as a
SIGHUP that keeps the process and never blanks the screen, the watchdog killing a hung loop and systemd
restarting it, the sandbox really enforced (``ProtectSystem=strict``, ``DevicePolicy=closed``, the service
user with only its groups, no capabilities, seccomp), and ``systemd-analyze security`` of the loaded unit.

How the frame gets into the container is the project's own path for an offline Pi: provisioning writes
the SD-card install (``provisioning.sdcard.write_card``) into the container's root tree, with a boot
folder standing in for the card's FAT partition, and at boot the real ``mona-edge-firstboot.service``
runs ``edge/install.py firstboot``: a venv from the container's ``/usr/bin/python3`` seeing Debian's own
numpy, the carried wheels installed offline, ``useradd``, ``systemctl enable/restart`` of the real
``mona-edge.service``, READY awaited through the installed ``mona-edge status``.

The bench, honestly stated: the container is x86_64 Debian, not Raspberry Pi OS on a Pi. The wheelhouse
carries the versions the lock has for the Pi (its ``aarch64`` markers read as this machine's), with the
container's own numpy pinned, as ``mona-edge wheelhouse`` does for a Pi. The camera is the bundled clip as
a looping real-time video, the screen a framebuffer-layout file. This kernel has none of the device types
``DeviceAllow=`` names (drm, video4linux, media, dma_heap, fb, vchiq), so the allow rules cannot be
exercised; the closed policy can (``/dev/net/tun``, which nspawn provides, is refused inside the service).

Needs root and the host packages ``systemd-container debootstrap`` (skips saying so otherwise); the root
trees are cached under ``/var/cache/mona-edge-tests`` (``MONA_EDGE_NSPAWN_CACHE``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nspawn
import pytest

from provisioning import sdcard
from provisioning.plan import REPO, Artifacts, Blob, build_wheel, load_pack, load_software, load_unit
from provisioning.wheelhouse import build_wheelhouse

REASON = nspawn.unusable_reason()
pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

TEST_PACK = REPO / "assets/packs/test"
SCREEN = (192, 256)  # the test pack's canvas
SCREEN_FILE = "var/lib/mona-edge/state/screen.fb"  # the unit's StateDirectory
SERVICE = "mona-edge.service"
CONFIG = f"""\
[camera]
source = "video"
path = "/opt/mona-edge/current/share/mona-edge/clips/viewer-walk.mp4"
loop = true
realtime = true

[detector]
range = "short"

[display]
sink = "file"
output = "/{SCREEN_FILE}"
width = {SCREEN[0]}
height = {SCREEN[1]}
"""
#: glibc of each suite: the newest manylinux tag its pip accepts.
GLIBC = {"bookworm": 36, "trixie": 41}


def readme_security_score() -> float:
    """The exposure level the README promises for the unit."""
    match = re.search(r"scores it \*\*([0-9.]+) \(", (REPO / "README.md").read_text())
    assert match, "README.md no longer states the unit's systemd-analyze security score"
    return float(match.group(1))


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory) -> Path:
    return build_wheel(REPO, tmp_path_factory.mktemp("nspawn-wheel"))


def system_numpy(tree: Path) -> str | None:
    """The numpy version Debian installed in ``tree`` (python3-numpy), read from its metadata."""
    for info in sorted((tree / "usr/lib/python3/dist-packages").glob("numpy-*-info")):
        return info.name.split("-")[1].removesuffix(".egg").removesuffix(".dist")
    return None


def wheelhouse_for(wheel: Path, suite: str, tree: Path, out: Path) -> Path:
    """``mona-edge wheelhouse`` for the container: its Python and glibc, its numpy, the Pi's versions."""
    lock = out / "lock-pi-versions-on-x86_64.txt"
    out.mkdir(parents=True)
    lock.write_text((REPO / "constraints.txt").read_text().replace("'aarch64'", "'x86_64'"))
    platforms = ["manylinux2014_x86_64"] + [f"manylinux_2_{m}_x86_64" for m in range(17, GLIBC[suite] + 1)]
    house = out / "wheelhouse"
    build_wheelhouse(wheel, house, nspawn.SUITES[suite], platforms, system_numpy(tree), lock=lock)
    return house


def screen(tree: Path):
    """The framebuffer file as the container's daemon left it (read from the host side of the tree)."""
    import numpy as np

    data = (tree / SCREEN_FILE).read_bytes()
    return np.frombuffer(data, np.uint8).reshape(SCREEN[1], SCREEN[0], 4)[..., :3]


def lit_fraction(pixels) -> float:
    return float((pixels.max(axis=2) > 16).mean())


@dataclass
class Frame:
    """A booted container with the frame installed by its first boot."""

    suite: str
    box: nspawn.Container
    tree: Path
    firstboot_seconds: float

    def status(self) -> dict:
        import json

        done = self.box.run("/opt/mona-edge/current/bin/mona-edge", "status", "--json", timeout=30)
        return json.loads(done.stdout)

    def prop(self, *names: str) -> dict[str, str]:
        return self.box.show(SERVICE, *names)

    def main_pid(self) -> int:
        return int(self.prop("MainPID")["MainPID"])

    def wait(self, what: str, predicate, timeout: float, interval: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.suite}: not {what} within {timeout:.0f} s; unit: "
                                     f"{self.prop('ActiveState', 'SubState', 'Result', 'NRestarts')}\n"
                                     f"{self.box.journal('-u', SERVICE, '-n', '30')}")
            time.sleep(interval)

    def ready(self) -> dict | None:
        if self.prop("ActiveState")["ActiveState"] != "active":
            return None
        try:
            status = self.status()
        except ValueError:
            return None
        return status if status.get("state") == "READY" else None


@pytest.fixture(scope="module", params=sorted(nspawn.SUITES))
def frame(request, project_wheel, tmp_path_factory):
    """One container per suite: the SD-card install written into its tree, then booted (first boot
    installs and starts the frame). Its journal is kept next to the tree; it is always powered off."""
    suite = request.param
    work = tmp_path_factory.mktemp(f"nspawn-{suite}")
    started = time.monotonic()
    tree = nspawn.unpack(suite, work / "root")
    print(f"\n{suite}: root tree unpacked in {time.monotonic() - started:.1f} s")
    house = wheelhouse_for(project_wheel, suite, tree, work / "software")
    config = work / "config.toml"
    config.write_text(CONFIG)
    artifacts = Artifacts(software=load_software(project_wheel, house), unit=load_unit(None, "/"),
                          pack=load_pack(TEST_PACK), config=Blob(str(config), config.read_bytes()))
    boot = work / "bootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=0-02 rootwait\n")
    (boot / "config.txt").write_text("[all]\n")
    sdcard.write_card(boot, tree, artifacts, ready_timeout=120)
    booted = time.monotonic()
    box = nspawn.boot(tree, f"mona-{suite}", work / "console.log", timeout=420)
    firstboot = time.monotonic() - booted
    print(f"{suite}: booted and first boot finished in {firstboot:.1f} s")
    try:
        # Without a frame every test below would only time out waiting for READY: fail them all at once.
        result = box.show("mona-edge-firstboot.service", "Result")["Result"]
        if result != "success":
            pytest.fail(f"{suite}: first boot {result}:\n{box.journal('-u', 'mona-edge-firstboot')[-3000:]}")
        yield Frame(suite, box, tree, firstboot)
    finally:
        try:
            (work / "journal.txt").write_text(box.journal())
            print(f"{suite}: journal in {work / 'journal.txt'}")
        except Exception as exc:  # the journal is a diagnosis aid; stopping must happen regardless
            print(f"{suite}: no journal: {exc}")
        box.stop()
        shutil.rmtree(tree, ignore_errors=True)  # about 1 GB with its venv; the journal and console stay


def test_first_boot_installs_the_frame_and_the_start_job_ends_at_ready_with_the_portrait_up(frame):
    box = frame.box
    first = box.show("mona-edge-firstboot.service", "Result", "ActiveState", "ExecMainStatus")
    assert first["Result"] == "success", box.journal("-u", "mona-edge-firstboot")
    assert (frame.tree / "opt/mona-edge/firstboot/plan.done.json").is_file()
    assert not (frame.tree / "opt/mona-edge/firstboot/plan.json").exists()  # its condition: it runs once
    assert box.systemctl("is-enabled", SERVICE).stdout.strip() == "enabled"
    venv = frame.tree / "opt/mona-edge/current"
    assert "home = /usr/bin\n" in (venv / "pyvenv.cfg").read_text()
    numpy = box.run("/opt/mona-edge/current/bin/python", "-c", "import numpy; print(numpy.__file__)",
                    check=True).stdout.strip()
    if system_numpy(frame.tree):  # Debian's numpy, kept by the venv (the constraint pins it)
        assert numpy.startswith("/usr/lib/python3/dist-packages/"), numpy
    status = frame.status()
    assert status["state"] == "READY" and status["camera"]["state"] == "ok" and status["frames"] > 0

    # The start job of a Type=notify unit ends at READY=1: with the screen file gone, the portrait must be
    # on it by the time `systemctl restart` returns.
    (frame.tree / SCREEN_FILE).unlink()
    started = time.monotonic()
    done = box.systemctl("restart", SERVICE, timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert lit_fraction(screen(frame.tree)) > 0.5  # the portrait, not a black (zero-filled) frame
    times = frame.prop("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "StatusText")
    to_ready = (int(times["ActiveEnterTimestampMonotonic"]) - int(times["ExecMainStartTimestampMonotonic"])) / 1e6
    print(f"{frame.suite}: restart to READY {to_ready:.2f} s (systemctl restart returned after {took:.2f} s); "
          f"status line {times['StatusText']!r}")
    assert frame.status()["state"] == "READY"


def test_reload_is_a_sighup_that_keeps_the_process_and_never_blanks_the_screen(frame):
    frame.wait("READY", frame.ready, 60)
    pid, before = frame.main_pid(), frame.status()
    darkest: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            darkest.append(lit_fraction(screen(frame.tree)))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = frame.box.systemctl("reload", SERVICE, timeout=60)
        assert done.returncode == 0, done.stderr
        after = frame.wait("reloaded", lambda: (s := frame.status())["reloads"] > before["reloads"] and s, 30)
        time.sleep(0.5)
    finally:
        stop.set()
        watcher.join()
    assert frame.main_pid() == pid and after["pid"] == pid and after["state"] == "READY"
    assert len(darkest) > 20 and min(darkest) > 0.5, f"a dark frame during the reload: {min(darkest):.2f}"
    assert "SIGHUP: reloading config and pack" in frame.box.journal("-u", SERVICE, f"_PID={pid}")


def test_a_hung_loop_is_killed_by_the_watchdog_and_restarted(frame):
    frame.wait("READY", frame.ready, 60)
    pid = frame.main_pid()
    restarts = int(frame.prop("NRestarts")["NRestarts"])
    frame.box.run("kill", "-STOP", str(pid), check=True)  # the loop stops feeding the watchdog
    stopped = time.monotonic()
    frame.wait("restarted", lambda: frame.main_pid() not in (0, pid), 40)
    killed_after = time.monotonic() - stopped
    status = frame.wait("READY again", frame.ready, 60)
    assert status["pid"] != pid
    assert int(frame.prop("NRestarts")["NRestarts"]) == restarts + 1
    log = frame.box.journal("-u", SERVICE)
    assert "Watchdog timeout" in log, log[-2000:]
    print(f"{frame.suite}: watchdog restart {killed_after:.1f} s after the loop hung")
    assert 9 <= killed_after <= 30  # WatchdogSec=10, RestartSec=2


def test_a_crash_is_restarted(frame):
    frame.wait("READY", frame.ready, 60)
    pid = frame.main_pid()
    frame.box.run("kill", "-SEGV", str(pid), check=True)
    frame.wait("restarted", lambda: frame.main_pid() not in (0, pid), 20)
    assert frame.wait("READY again", frame.ready, 60)["pid"] != pid


def _restore(frame: Frame) -> None:
    """The installed config back and the unit out of any failed state, READY again."""
    frame.box.run("cp", "/root/mona-edge-good.toml", "/etc/mona-edge/config.toml", check=True)
    frame.box.systemctl("reset-failed", SERVICE)
    frame.box.systemctl("restart", SERVICE, timeout=120)
    frame.wait("READY", frame.ready, 60)


def test_a_config_whose_pack_cannot_be_loaded_starts_in_safe_mode_not_a_restart_loop(frame):
    """Before safe mode, a pack that could not be loaded made the daemon exit at start: Restart= tried
    StartLimitBurst=5 times within StartLimitIntervalSec and left a failed unit (a dark frame)."""
    frame.wait("READY", frame.ready, 60)
    box = frame.box
    box.run("cp", "/etc/mona-edge/config.toml", "/root/mona-edge-good.toml", check=True)
    try:
        box.sh('printf \'\n[pack]\npath = "/var/lib/mona-edge/packs/no-such-pack"\n\' >> /etc/mona-edge/config.toml',
               check=True)
        box.systemctl("restart", SERVICE, timeout=120)
        time.sleep(8)  # long enough for a restart loop to show: RestartSec=2
        unit = frame.prop("ActiveState", "SubState", "NRestarts", "StatusText")
        # A manual restart zeroes NRestarts: any count now is the daemon dying and systemd restarting it.
        assert unit["ActiveState"] == "active" and unit["NRestarts"] == "0", (
            f"{unit}\n{box.journal('-u', SERVICE, '-n', '20')}")
        status = frame.status()
        assert status["state"] == "DEGRADED" and status.get("safe_mode"), status
        assert "no-such-pack" in status["safe_mode"]["reason"], status["safe_mode"]
        assert lit_fraction(screen(frame.tree)) > 0.5  # the bundled portrait, not a black screen
    finally:
        _restore(frame)


def test_repeated_crashes_end_in_safe_mode_rather_than_a_failed_unit(frame):
    frame.wait("READY", frame.ready, 60)
    box = frame.box
    box.run("cp", "/etc/mona-edge/config.toml", "/root/mona-edge-good.toml", check=True)
    box.systemctl("reset-failed", SERVICE)  # earlier tests' restarts count towards the start limit
    try:
        for _crash in range(6):
            pid = frame.main_pid()
            if pid == 0:
                break
            box.run("kill", "-SEGV", str(pid))
            frame.wait("restarted or failed", lambda pid=pid: frame.main_pid() != pid or
                       frame.prop("ActiveState")["ActiveState"] == "failed", 30)
            frame.wait("settled", lambda: frame.prop("ActiveState")["ActiveState"] in ("active", "failed"), 30)
        unit = frame.prop("ActiveState", "Result")
        assert unit["ActiveState"] == "active", unit
        assert frame.status().get("safe_mode")
    finally:
        _restore(frame)


def _proc_status(frame: Frame, pid: int) -> dict[str, str]:
    text = frame.box.run("cat", f"/proc/{pid}/status", check=True).stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_the_service_runs_as_its_own_user_with_only_its_groups_and_no_privileges(frame):
    frame.wait("READY", frame.ready, 60)
    pid = frame.main_pid()
    box = frame.box
    user = box.run("getent", "passwd", "mona-edge", check=True).stdout.strip().split(":")
    assert user[5:] == ["/var/lib/mona-edge", "/usr/sbin/nologin"] and int(user[2]) < 1000  # a system user
    gid = {name: box.run("getent", "group", name, check=True).stdout.split(":")[2]
           for name in ("mona-edge", "video", "render")}
    proc = _proc_status(frame, pid)
    assert proc["Uid"].split() == [user[2]] * 4 and proc["Gid"].split() == [gid["mona-edge"]] * 4
    # Its own group (systemd lists the primary group too) and the unit's SupplementaryGroups, nothing else.
    assert sorted(proc["Groups"].split()) == sorted(gid.values())
    assert proc["NoNewPrivs"] == "1" and proc["Seccomp"] == "2"
    assert int(proc["CapEff"], 16) == int(proc["CapBnd"], 16) == int(proc["CapPrm"], 16) == 0


def _in_service(frame: Frame, pid: int, python: str, as_user: bool) -> str:
    """Run ``python`` with the container's python3 in the running service's cgroup and mount namespace
    (as its user, or as root); return what it printed."""
    ids = _proc_status(frame, pid)
    uid, gid = (int(ids["Uid"].split()[0]), int(ids["Gid"].split()[0])) if as_user else (None, None)
    done = frame.box.run_as_part_of(pid, ["/usr/bin/python3", "-c", python], uid, gid)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


TRY_OPEN = """
import os
def attempt(path, flags):
    try:
        os.close(os.open(path, flags, 0o600))
        return "ok"
    except OSError as exc:
        return exc.strerror or repr(exc)
print(*(attempt(path, flags) for path, flags in {cases}), sep="|")
"""
WRITE, RDWR = os.O_WRONLY | os.O_CREAT, os.O_RDWR


def test_protect_system_and_the_closed_device_policy_hold_inside_the_service(frame):
    frame.wait("READY", frame.ready, 60)
    pid = frame.main_pid()
    cases = [("/etc/mona-edge/written-by-the-service", WRITE), ("/usr/lib/written-by-the-service", WRITE),
             ("/var/lib/mona-edge/state/written-by-the-service", WRITE), ("/dev/null", RDWR), ("/dev/net/tun", RDWR)]
    code = TRY_OPEN.format(cases=cases)
    # As the service user, in its namespace and cgroup: /etc and /usr read-only, its state directory
    # writable, /dev/null allowed, /dev/net/tun refused by the device policy.
    as_service = _in_service(frame, pid, code, as_user=True).split("|")
    assert as_service == ["Read-only file system", "Read-only file system", "ok", "ok", "Operation not permitted"]
    # Even root, there, cannot write /etc (a read-only mount) nor open the device (the cgroup's BPF program).
    as_root = _in_service(frame, pid, code, as_user=False).split("|")
    assert as_root[:2] == ["Read-only file system", "Read-only file system"]
    assert as_root[4] == "Operation not permitted"
    # Outside the service the same device opens: the refusal is the unit's DevicePolicy, not the container's.
    outside = frame.box.run("/usr/bin/python3", "-c", TRY_OPEN.format(cases=[("/dev/net/tun", RDWR)]), check=True)
    assert outside.stdout.strip() == "ok"
    assert not (frame.tree / "etc/mona-edge/written-by-the-service").exists()


def test_systemd_analyze_security_of_the_loaded_unit_agrees_with_the_readme(frame):
    done = frame.box.run("systemd-analyze", "security", "--no-pager", SERVICE, timeout=60)
    match = re.search(r"Overall exposure level for mona-edge\.service: ([0-9.]+)", done.stdout + done.stderr)
    assert match, (done.stdout + done.stderr)[-1500:]
    print(f"{frame.suite}: systemd-analyze security: {match.group(1)}")
    assert float(match.group(1)) == readme_security_score()


def test_stop_is_a_clean_exit_within_the_stop_timeout(frame):
    frame.wait("READY", frame.ready, 60)
    started = time.monotonic()
    done = frame.box.systemctl("stop", SERVICE, timeout=30)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    after = frame.prop("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert after["ActiveState"] == "inactive" and after["Result"] == "success", after
    assert took < 5, f"stop took {took:.1f} s (TimeoutStopSec=5)"
    assert frame.box.run("test", "-e", "/run/mona-edge/status.sock").returncode == 1  # removed on the way out
    frame.box.systemctl("start", SERVICE, timeout=120)
    frame.wait("READY", frame.ready, 60)


# ------------------------------------------------------------------------ provisioning over SSH, for real

UPDATE_PACK = REPO / "assets/packs/default"
LOGIN = "pi"


def _pack_name(folder: Path) -> str:
    import json

    return json.loads((folder / "manifest.json").read_text())["name"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshFrame:
    """A booted container reached as ``pi@127.0.0.1:port``: a sudo-capable login, as on Raspberry Pi OS."""

    suite: str
    box: nspawn.Container
    tree: Path
    port: int
    known_hosts: Path
    identity: Path
    wheel: Path
    wheelhouse: Path
    config: Path

    def cli(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """The workstation's real ``mona-edge`` command line against the container."""
        command, rest = argv[0], list(argv[1:])
        args = [sys.executable, "-m", "edge.cli", command, f"{LOGIN}@127.0.0.1:{self.port}",
                "--known-hosts", str(self.known_hosts), "-i", str(self.identity), *rest]
        return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=timeout)

    def provision(self, *extra: str, pack: Path = TEST_PACK) -> subprocess.CompletedProcess:
        return self.cli("provision", "--wheel", str(self.wheel), "--wheelhouse", str(self.wheelhouse),
                        "--pack", str(pack), "--config", str(self.config), *extra)

    def status(self) -> dict:
        import json

        done = self.box.run("/opt/mona-edge/current/bin/mona-edge", "status", "--json", timeout=30)
        return json.loads(done.stdout)


def _prepare_login(tree: Path, work: Path, port: int) -> tuple[Path, Path]:
    """An sshd on 127.0.0.1:``port`` only, key login for ``pi`` with passwordless sudo (Raspberry Pi OS's
    010_pi-nopasswd); returns the known_hosts and the client key."""
    (tree / "etc/ssh/sshd_config.d/mona-edge-test.conf").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin no\n")
    subprocess.run(["chroot", str(tree), "useradd", "--create-home", "--shell", "/bin/bash", LOGIN], check=True)
    (tree / "etc/sudoers.d/010_pi-nopasswd").write_text(f"{LOGIN} ALL=(ALL) NOPASSWD: ALL\n")
    (tree / "etc/sudoers.d/010_pi-nopasswd").chmod(0o440)
    identity = work / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(identity)], check=True)
    ssh_dir = tree / "home" / LOGIN / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text((work / "client_ed25519.pub").read_text())
    subprocess.run(["chroot", str(tree), "chown", "-R", f"{LOGIN}:{LOGIN}", f"/home/{LOGIN}/.ssh"], check=True)
    host_key = (tree / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    known_hosts = work / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    return known_hosts, identity


@pytest.fixture(scope="module", params=sorted(nspawn.SUITES))
def ssh_frame(request, project_wheel, tmp_path_factory):
    """A fresh container per suite, nothing of mona-edge on it, its sshd on the host's loopback."""
    import socket

    suite = request.param
    work = tmp_path_factory.mktemp(f"nspawn-ssh-{suite}")
    tree = nspawn.unpack(suite, work / "root")
    house = wheelhouse_for(project_wheel, suite, tree, work / "software")
    config = work / "config.toml"
    config.write_text(CONFIG)
    port = _free_port()
    known_hosts, identity = _prepare_login(tree, work, port)
    box = nspawn.boot(tree, f"mona-ssh-{suite}", work / "console.log", timeout=120, private_network=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{suite}: sshd not listening: {box.journal('-u', 'ssh')[-1500:]}") from None
                time.sleep(0.1)
        yield SshFrame(suite, box, tree, port, known_hosts, identity, project_wheel, house, config)
    finally:
        try:
            (work / "journal.txt").write_text(box.journal())
        except Exception as exc:  # a diagnosis aid; stopping must happen regardless
            print(f"{suite}: no journal: {exc}")
        box.stop()
        shutil.rmtree(tree, ignore_errors=True)


def test_provision_over_ssh_as_a_sudo_login_installs_and_starts_the_real_unit_and_a_rerun_changes_nothing(ssh_frame):
    started = time.monotonic()
    done = ssh_frame.provision("--ready-timeout", "120")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    print(f"\n{ssh_frame.suite}: first provision over SSH {took:.1f} s")
    box = ssh_frame.box
    assert box.run("id", "-u", LOGIN, check=True).stdout.strip() != "0"
    # The login is not root: everything privileged went through sudo -n, and sudo logged it.
    assert re.search(rf"sudo\[\d+\]: +{LOGIN} : .*COMMAND=/usr/bin/sh -c|sudo\[\d+\]: +{LOGIN} : .*COMMAND=/bin/sh -c",
                     box.journal("_COMM=sudo")), box.journal("_COMM=sudo")[-1500:]
    assert box.run("getent", "passwd", "mona-edge").returncode == 0  # useradd, by install.py
    assert box.systemctl("is-enabled", "mona-edge.service").stdout.strip() == "enabled"
    assert box.systemctl("is-active", "mona-edge.service").stdout.strip() == "active"
    status = ssh_frame.status()
    assert status["state"] == "READY" and status["pack"] == _pack_name(TEST_PACK)
    assert int(box.show(SERVICE, "MainPID")["MainPID"]) == status["pid"]  # systemd's own service, no stand-in
    # The deployment store stays root's (the service could otherwise rewrite the units a rollback installs as
    # root, and the login's unprivileged probe could not read it); only the StateDirectory is the service's.
    owners = box.run("stat", "-c", "%U %a %n", "/var/lib/mona-edge", "/var/lib/mona-edge/deploy.json",
                     "/var/lib/mona-edge/units", "/var/lib/mona-edge/state", check=True).stdout.split("\n")
    assert [line.split()[0] for line in owners if line] == ["root", "root", "root", "mona-edge"], owners

    again = ssh_frame.provision()
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing sent, nothing restarted" in again.stdout + again.stderr
    assert ssh_frame.status()["pid"] == status["pid"]


def test_update_failed_update_rolled_back_rollback_and_logs_over_ssh(ssh_frame, tmp_path):
    before = ssh_frame.status()
    update = ssh_frame.provision(pack=UPDATE_PACK)
    assert update.returncode == 0, update.stderr[-2000:]
    updated = ssh_frame.status()
    assert updated["pack"] == _pack_name(UPDATE_PACK) and updated["pid"] != before["pid"]

    # A screen the service may not write (ProtectSystem=strict makes /etc read-only for it): the daemon
    # cannot open its display, never gets READY, and the target switches back by itself.
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.replace(f'output = "/{SCREEN_FILE}"', 'output = "/etc/mona-edge/screen.fb"'))
    failed = ssh_frame.cli("provision", "--wheel", str(ssh_frame.wheel), "--wheelhouse", str(ssh_frame.wheelhouse),
                           "--config", str(broken), "--ready-timeout", "15")
    assert failed.returncode != 0
    assert "switched back to the previous deployment; it is READY" in failed.stderr, failed.stderr[-2000:]
    kept = ssh_frame.status()
    assert kept["state"] == "READY" and kept["pack"] == _pack_name(UPDATE_PACK)
    assert f'output = "/{SCREEN_FILE}"' in ssh_frame.box.run("cat", "/etc/mona-edge/config.toml", check=True).stdout

    rolled = ssh_frame.cli("rollback")
    assert rolled.returncode == 0, rolled.stderr[-2000:]
    back = ssh_frame.status()
    assert back["state"] == "READY" and back["pack"] == _pack_name(TEST_PACK)

    logs = ssh_frame.cli("logs", "-n", "40")
    assert logs.returncode == 0, logs.stderr[-2000:]
    assert f"pack {_pack_name(TEST_PACK)} (9 frames)" in logs.stdout  # the real journal, via journalctl
    assert "systemd[1]" in logs.stdout or "Started mona-edge.service" in logs.stdout
