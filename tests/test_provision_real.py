"""``mona-edge provision`` of the REAL thing over a real loopback sshd: no stand-ins anywhere on the path.

What goes over the wire is what a maker's workstation sends to an offline Pi: the project wheel built from
this checkout, a wheelhouse of its Pi dependencies (numpy, pillow, opencv-python-headless, ai-edge-litert,
pygame and what they pull) downloaded once per session for the target's Python, a real gaze pack
(``assets/packs/test``, then ``assets/packs/default`` as the update) and a real config. The target builds
its venv from its own ``python3`` with ``--system-site-packages``, installs offline (``--no-index
--find-links``), and the plain-process supervisor starts the unit's real ExecStart (``mona-edge run
--config ...``, moved under the prefix by the provisioning code). Readiness is the default check: the
installed venv's ``mona-edge status --json`` against the provisioned config.

The bench, honestly stated: the target is this machine (x86_64, not a Pi), the service manager is the
plain supervisor (no systemd as PID 1 here), the camera is the bundled clip as a looping real-time video
file and the screen is a framebuffer-layout file inside the prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshd_fixture import sshd  # noqa: F401  (the fixture)

import edge.install
from provisioning import flash
from provisioning.plan import (
    REPO,
    Artifacts,
    build_wheel,
    check_target,
    load_config,
    load_pack,
    load_software,
    load_unit,
)
from provisioning.remote import RemoteError, SshTarget
from provisioning.wheelhouse import build_wheelhouse

# real venvs built and installed over a real sshd
pytestmark = [pytest.mark.slow]

TEST_PACK = REPO / "assets/packs/test"
UPDATE_PACK = REPO / "assets/packs/default"
SCREEN = (192, 256)  # the test pack's canvas: nothing to rescale


def _pack_name(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["name"]


def _ssh(server) -> SshTarget:
    return SshTarget(server.user, server.host, server.port, known_hosts=server.known_hosts,
                     identity=server.identity)


@pytest.fixture(scope="module")
def software(sshd, tmp_path_factory):  # noqa: F811
    """The project wheel and a wheelhouse of its ``[pi]`` dependencies for the target's own Python."""
    root = tmp_path_factory.mktemp("real-software")
    wheel = build_wheel(REPO, root / "project")
    with _ssh(sshd) as target:  # the interpreter the target-side installer will build the venv from
        probe = target.helper("probe", {"prefix": str(root / "unused")})
    python = ".".join(probe["python"].split(".")[:2])
    wheelhouse = root / "wheelhouse"
    started = time.monotonic()
    # `mona-edge wheelhouse --platform native`: this machine is the target here
    wheels = build_wheelhouse(wheel, wheelhouse, python, platforms=None, numpy_pin=probe["system_numpy"])
    print(f"wheelhouse for Python {python}: {len(wheels)} wheels, {time.monotonic() - started:.1f} s")
    software = load_software(wheel, wheelhouse)
    assert software.offline and not software.no_deps
    return software


class RealTarget:
    """One unprivileged prefix on the loopback sshd, provisioned through ``flash.provision`` as the CLI does."""

    def __init__(self, server, software, prefix: Path, clip: Path = None, service_extra: str = ""):
        self.server, self.software, self.prefix = server, software, prefix
        self.config_file = prefix.parent / "frame.toml"
        self.screen = prefix / "var/lib/mona-edge/screen.fb"
        self.socket = prefix / "run/mona-edge/status.sock"
        # default: the installed copy of the bundled clip
        clip = clip or prefix / "opt/mona-edge/current/share/mona-edge/clips/viewer-walk.mp4"
        self.config_file.write_text(f"""\
[camera]
source = "video"
path = "{clip}"
loop = true
realtime = true

[detector]
range = "short"

[display]
sink = "file"
output = "{self.screen}"
width = {SCREEN[0]}
height = {SCREEN[1]}

[pack]
path = "{prefix / 'var/lib/mona-edge/packs/current'}"

[service]
status_socket = "{self.socket}"
{service_extra}""")

    def artifacts(self, pack: Path) -> Artifacts:
        return Artifacts(software=self.software, unit=load_unit(None, str(self.prefix)), pack=load_pack(pack),
                         config=load_config(self.config_file))

    def deploy(self, pack: Path, messages: list = None):
        options = flash.ProvisionOptions(prefix=str(self.prefix), service_manager="process", ready_timeout=60)
        with _ssh(self.server) as target:
            return flash.provision(target, self.artifacts(pack), options,
                                   say=messages.append if messages is not None else lambda _m: None)

    def status(self) -> dict:
        """What the installed venv's own ``mona-edge status --json`` says, given the provisioned config."""
        done = subprocess.run([str(self.prefix / "opt/mona-edge/current/bin/mona-edge"), "status", "--json",
                               "--config", str(self.prefix / "etc/mona-edge/config.toml")],
                              capture_output=True, text=True, timeout=30, cwd=self.prefix)
        return json.loads(done.stdout)

    def cli(self, *argv: str) -> subprocess.CompletedProcess:
        """The workstation's real ``mona-edge`` command line."""
        args = [sys.executable, "-m", "edge.cli", *argv, f"{self.server.destination}",
                "--known-hosts", str(self.server.known_hosts), "-i", str(self.server.identity),
                "--prefix", str(self.prefix), "--service-manager", "process"]
        return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def installed(sshd, software, tmp_path_factory):  # noqa: F811
    """A fresh real install (the expensive part, done once for the module); stopped at the end."""
    prefix = tmp_path_factory.mktemp("real-target") / "root"
    prefix.mkdir()
    target = RealTarget(sshd, software, prefix)
    started = time.monotonic()
    report = target.deploy(TEST_PACK)
    print(f"fresh real install: {time.monotonic() - started:.1f} s")
    yield target, report
    edge.install.stop({"prefix": str(prefix), "service_manager": "process"})


def test_fresh_real_install_is_ready_and_a_second_run_changes_nothing(installed):
    target, first = installed
    assert sorted(first.changed) == ["config", "pack", "software", "unit"] and first.restarted
    sent = [Path(name).name for name, _ in first.transfer.files]
    assert any(n.startswith("mona_edge-") for n in sent) and any(n.startswith("numpy-") for n in sent)
    assert any(n.startswith("opencv_python_headless-") for n in sent) and "base.png" in sent
    # The default ready check answered: the real daemon, through the installed venv's status command.
    assert first.status["state"] == "READY"
    assert first.status["pack"] == _pack_name(TEST_PACK)
    assert first.status["camera"]["state"] == "ok"
    assert first.status["config"] == str(target.prefix / "etc/mona-edge/config.toml")

    venv = target.prefix / "opt/mona-edge/versions" / target.software.hash
    unit = (target.prefix / "etc/systemd/system/mona-edge.service").read_text()
    assert (f"ExecStart={target.prefix}/opt/mona-edge/current/bin/mona-edge run "
            f"--config {target.prefix}/etc/mona-edge/config.toml") in unit
    if Path("/usr/bin/python3").exists():  # the OS's interpreter, not whatever python3 the login PATH has
        assert "home = /usr/bin\n" in (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    imported = subprocess.run([str(venv / "bin/python"), "-c", "import edge, cv2, numpy, PIL, ai_edge_litert; "
                               "print(edge.__file__); print(numpy.__file__, numpy.__version__)"],
                              capture_output=True, text=True, cwd=target.prefix)
    assert imported.returncode == 0, imported.stderr
    edge_file, numpy_line = imported.stdout.splitlines()
    assert edge_file.startswith(str(venv))  # the installed wheel, not this checkout
    carried_numpy = next(name.split("-")[1] for name in target.software.files if name.startswith("numpy-"))
    assert numpy_line.endswith(" " + carried_numpy)  # from the wheelhouse (equal to the OS's when it has one)
    # The target's pip installed under the lock that travelled along, the OS's own packages excepted.
    pins = (venv / "constraints.txt").read_text().splitlines()
    assert "ai-edge-litert==2.3.0" in pins and any(p.startswith("opencv-python-headless==") for p in pins)
    system_numpy = subprocess.run(["/usr/bin/python3", "-c", "import numpy; print(numpy.__version__)"],
                                  capture_output=True, text=True).stdout.strip()
    assert [p for p in pins if p.startswith("numpy")] == ([f"numpy=={system_numpy}"] if system_numpy else [])

    status = target.status()
    assert status["state"] == "READY" and status["camera"]["state"] == "ok" and status["frames"] > 0
    cmdline = Path(f"/proc/{status['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
    assert cmdline[0].startswith(str(venv)) and cmdline[1:] == [  # the unit's ExecStart, nothing else
        f"{target.prefix}/opt/mona-edge/current/bin/mona-edge", "run", "--config",
        f"{target.prefix}/etc/mona-edge/config.toml"]
    assert target.screen.stat().st_size == SCREEN[0] * SCREEN[1] * 4  # the daemon draws into the prefix

    messages = []
    second = target.deploy(TEST_PACK, messages)
    assert second.transfer.files == [] and second.transfer.bytes == 0
    assert not second.restarted and second.plan.nothing_to_do
    assert any("nothing sent, nothing restarted" in m for m in messages)
    assert target.status()["pid"] == status["pid"]  # the same daemon: nothing restarted


def test_a_venv_that_cannot_run_the_daemon_fails_its_import_check_and_the_frame_keeps_running(installed, tmp_path):
    """Without the ``pi`` extra and its wheel there is no TFLite runtime: pip is content, the daemon would not be."""
    target, _first = installed
    before = target.status()
    short = tmp_path / "short-wheelhouse"
    short.mkdir()
    for name, path in target.software.files.items():
        if not name.startswith(("ai_edge_litert-", "mona_edge-")):
            os.link(path, short / name)
    project = target.software.files[target.software.project_wheel]
    target.software, full = load_software(project, short, extras=()), target.software
    try:
        with pytest.raises(RemoteError, match=r"import check failed: the new venv .* cannot run the daemon: "
                                              r"edge\.errors\.ModelError: no TFLite runtime could be imported"):
            target.deploy(TEST_PACK)
    finally:
        target.software = full
    after = target.status()
    assert after["state"] == "READY" and after["pid"] == before["pid"]  # never switched, never restarted
    assert os.readlink(target.prefix / "opt/mona-edge/current") == f"versions/{full.hash}"


def test_a_frame_whose_camera_fails_keeps_the_new_portrait_and_says_so(sshd, software, tmp_path):  # noqa: F811
    """No camera (here: a clip that is not there) is not a reason to roll back and blank the screen: the
    daemon reports DEGRADED, the deployment stays, and provisioning warns about the camera."""
    prefix = tmp_path / "root"
    prefix.mkdir()
    target = RealTarget(sshd, software, prefix, clip=tmp_path / "no-such-camera.mp4", service_extra="ready_timeout = 2\n")
    messages = []
    try:
        target.deploy(TEST_PACK, messages)
        status = target.status()
        assert status["state"] == "DEGRADED" and status["camera"] != "ok"
        assert any("camera is not working" in m for m in messages), messages
        assert (prefix / "var/lib/mona-edge/packs/current").resolve().name  # the pack stays switched in
    finally:
        edge.install.stop({"prefix": str(prefix), "service_manager": "process"})


def test_real_pack_update_then_rollback_then_stop(installed):
    target, _first = installed
    before = target.status()
    update = target.deploy(UPDATE_PACK)
    assert update.changed == ["pack"] and update.restarted
    assert all("/packs/" in name for name, _ in update.transfer.files)  # no wheel travels again
    after = target.status()
    assert after["pack"] == _pack_name(UPDATE_PACK) and after["camera"]["state"] == "ok"
    assert after["pid"] != before["pid"]

    rolled = target.cli("rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert "rolled back (pack)" in rolled.stdout
    back = target.status()
    assert back["state"] == "READY" and back["pack"] == _pack_name(TEST_PACK)
    assert os.readlink(target.prefix / "var/lib/mona-edge/packs/current") == load_pack(TEST_PACK).sha
    logs = target.cli("logs", "-n", "20")
    assert logs.returncode == 0, logs.stderr
    since_restart = logs.stdout.rsplit("SIGTERM: stopping", 1)[-1]  # the rolled-back daemon's own log
    assert f"pack {_pack_name(TEST_PACK)} (9 frames)" in since_restart

    pid = back["pid"]
    with _ssh(target.server) as ssh:  # the target-side stop, as a maker's workstation would run it
        result = ssh.helper("stop", {"prefix": str(target.prefix), "service_manager": "process"})
    assert result["state"] == "inactive"
    assert edge.install.Supervisor._start_time(pid) is None  # gone (or a zombie), not just forgotten
    assert not target.socket.exists()  # the daemon removed its socket on the way out
    assert target.status()["state"] == "NOT_RUNNING"


def test_a_wheelhouse_numpy_the_target_os_would_refuse_stops_the_run_before_sending(sshd, software, tmp_path):  # noqa: F811
    with _ssh(sshd) as target:  # the real target's probe (its Python: 3.11 on bookworm, 3.13 on trixie)
        real = target.helper("probe", {"prefix": str(tmp_path / "unused")})
    carried = next(n.split("-")[1] for n in software.files if n.startswith("numpy-"))
    # an OS numpy other than the carried one (this host's own is carried when it has one: python3-pygame brings it)
    os_numpy = "1.24.2" if carried != "1.24.2" else "2.2.4"
    probe = dict(real, system_numpy=os_numpy, software_installed=False, pack_installed=False)
    artifacts = Artifacts(software=software, unit=load_unit(None, "/"))
    errors, _warnings = check_target(probe, artifacts)
    assert errors == [f"wheelhouse numpy {carried}: the target's OS has numpy {os_numpy}, which its venv keeps; "
                      f"download the wheelhouse with the constraint numpy=={os_numpy} (and packages that accept it)"]
    assert check_target(dict(probe, system_numpy=carried), artifacts)[0] == []
    assert check_target(dict(probe, system_numpy=None), artifacts)[0] == []
