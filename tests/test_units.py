"""The systemd units: systemd's own verifier accepts them, and the service's sandbox scores as exposed little.

``systemd-analyze verify`` insists that ExecStart's binary exists, so the service unit is verified as
``provision`` installs it under a prefix where a venv's ``bin/mona-edge`` exists (only the paths move).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from provisioning.plan import REPO, render_unit

UNITS = REPO / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")


def settings(path: Path) -> dict:
    """Every ``Key=value`` of a unit, values of repeated keys in order."""
    found: dict = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@needs_analyze
def test_service_unit_passes_systemd_analyze_verify(tmp_path):
    prefix = tmp_path / "root"
    exe = prefix / "opt/mona-edge/current/bin/mona-edge"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "mona-edge.service"
    unit.write_bytes(render_unit((UNITS / "mona-edge.service").read_text(), str(prefix)))
    done = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


@needs_analyze
def test_firstboot_unit_passes_systemd_analyze_verify():
    done = subprocess.run([ANALYZE, "verify", str(UNITS / "mona-edge-firstboot.service")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def exposure(unit: Path) -> float:
    """The overall exposure level ``systemd-analyze security --offline=yes`` gives ``unit`` (0 safe .. 10)."""
    done = subprocess.run([ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True, text=True)
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+)", done.stdout + done.stderr)
    assert match, done.stdout[-500:] + done.stderr[-500:]
    return float(match.group(1))


@needs_analyze
def test_service_sandbox_exposure_is_at_most_3():
    assert exposure(UNITS / "mona-edge.service") <= 3.0


#: The first-boot unit's exposure once hardened (it was 9.6 UNSAFE with no sandbox at all). What keeps it
#: above the service's 0.6 is its job: root (useradd, systemctl, /etc), the network (pip without a
#: wheelhouse), DAC override (the service user's status socket), chown (useradd).
FIRSTBOOT_EXPOSURE = 2.1


@needs_analyze
def test_firstboot_sandbox_exposure_stays_at_its_hardened_level():
    assert exposure(UNITS / "mona-edge-firstboot.service") <= FIRSTBOOT_EXPOSURE


def test_service_unit_has_the_contract_the_daemon_and_provisioning_rely_on():
    unit = settings(UNITS / "mona-edge.service")
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and one["WatchdogSec"] == "10"
    assert one["Restart"] == "on-failure" and "StartLimitBurst" in one and "StartLimitIntervalSec" in one
    assert one["ExecStart"] == "/opt/mona-edge/current/bin/mona-edge run --config /etc/mona-edge/config.toml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["User"] == "mona-edge" and one["SupplementaryGroups"].split() == ["video", "render"]
    assert one["RuntimeDirectory"] == "mona-edge" and one["StateDirectory"] == "mona-edge/state"
    # The camera and the screen must stay reachable: devices by ACL, never PrivateDevices.
    assert "PrivateDevices" not in unit and one["DevicePolicy"] == "closed"
    allowed = {v.split()[0] for v in unit["DeviceAllow"]}
    assert {"char-drm", "char-video4linux", "char-media", "char-dma_heap", "char-fb"} <= allowed
    assert one["RestrictAddressFamilies"] == "AF_UNIX" and one["CapabilityBoundingSet"] == ""
    assert one["ProtectSystem"] == "strict" and one["ProtectHome"] == "yes" and one["NoNewPrivileges"] == "yes"
    assert unit["SystemCallFilter"][0] == "@system-service" and "ReadWritePaths" not in unit


def test_firstboot_unit_runs_once_from_the_carried_installer():
    unit = {key: values[-1] for key, values in settings(UNITS / "mona-edge-firstboot.service").items()}
    assert unit["Type"] == "oneshot"
    assert unit["ConditionPathExists"] == "/opt/mona-edge/firstboot/plan.json"
    assert unit["ExecStart"] == "/usr/bin/python3 /opt/mona-edge/firstboot/install.py firstboot"
    assert unit["WantedBy"] == "multi-user.target"


def test_firstboot_sandbox_leaves_the_install_what_it_needs():
    """The hardening must not take away what edge/install.py's first boot does (the unit's comments say
    why each is needed); tests/test_systemd_real.py runs it under a real systemd."""
    unit = settings(UNITS / "mona-edge-firstboot.service")
    one = {key: values[-1] for key, values in unit.items()}
    assert "User" not in unit and "DynamicUser" not in unit and "PrivateUsers" not in unit  # root: useradd
    assert one["ProtectSystem"] == "strict"
    assert set(one["ReadWritePaths"].split()) == {"/opt/mona-edge", "/var/lib/mona-edge", "/etc"}
    assert one["UMask"] == "0022"  # the service user reads the venv, the pack and the config
    assert "PrivateNetwork" not in unit and "IPAddressDeny" not in unit  # pip without a wheelhouse
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(one["RestrictAddressFamilies"].split())
    assert "ProcSubset" not in unit  # /proc/device-tree/model: is it a Pi?
    assert set(one["CapabilityBoundingSet"].split()) == {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
                                                          "CAP_FOWNER"}
    assert unit["SystemCallFilter"][0] == "@system-service"
    assert not any("@privileged" in v or "@chown" in v for v in unit["SystemCallFilter"])  # useradd chowns


def test_every_folder_the_firstboot_unit_may_write_exists_on_a_written_card(tmp_path):
    """ReadWritePaths= naming a missing folder fails the unit before it starts (226/NAMESPACE), on every boot."""
    from edge.install import file_sha256
    from provisioning.plan import Artifacts, Software, load_pack, load_unit
    from provisioning.sdcard import write_card

    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=0-02 rootwait\n")
    (boot / "config.txt").write_text("[all]\n")
    for folder in ("etc/systemd/system", "usr/bin"):
        (root / folder).mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    wheel = tmp_path / "mona_edge-0.1.0-py3-none-any.whl"  # only copied onto the card here
    wheel.write_bytes(b"PK")
    software = Software(project_wheel=wheel.name, files={wheel.name: wheel}, sums={wheel.name: file_sha256(wheel)},
                        hash="0" * 32, no_deps=True, offline=False, extras=())
    write_card(boot, root, Artifacts(software=software, unit=load_unit(None, "/"),
                                     pack=load_pack(REPO / "assets/packs/test")))
    written = settings(root / "etc/systemd/system/mona-edge-firstboot.service")
    for path in written["ReadWritePaths"][-1].split():
        assert (root / path.lstrip("-/")).is_dir(), path


def test_prefixed_unit_moves_only_the_install_paths():
    text = (UNITS / "mona-edge.service").read_text()
    moved = render_unit(text, "/srv/target/").decode()
    assert "ExecStart=/srv/target/opt/mona-edge/current/bin/mona-edge run --config /srv/target/etc/mona-edge/config.toml" in moved
    assert render_unit(text, "/").decode() == text
    assert moved.replace("/srv/target", "") == text
