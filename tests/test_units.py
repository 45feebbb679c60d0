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


@needs_analyze
def test_service_sandbox_exposure_is_at_most_3():
    done = subprocess.run([ANALYZE, "security", "--offline=yes", str(UNITS / "mona-edge.service")],
                          capture_output=True, text=True)
    match = re.search(r"Overall exposure level for mona-edge\.service: ([0-9.]+)", done.stdout + done.stderr)
    assert match, done.stdout[-500:] + done.stderr[-500:]
    assert float(match.group(1)) <= 3.0


def test_service_unit_has_the_contract_the_daemon_and_provisioning_rely_on():
    unit = settings(UNITS / "mona-edge.service")
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and one["WatchdogSec"] == "10"
    assert one["Restart"] == "on-failure" and "StartLimitBurst" in one and "StartLimitIntervalSec" in one
    assert one["ExecStart"] == "/opt/mona-edge/current/bin/mona-edge run --config /etc/mona-edge/config.toml"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["User"] == "mona-edge" and one["SupplementaryGroups"].split() == ["video", "render"]
    assert one["RuntimeDirectory"] == "mona-edge" and one["StateDirectory"] == "mona-edge"
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


def test_prefixed_unit_moves_only_the_install_paths():
    text = (UNITS / "mona-edge.service").read_text()
    moved = render_unit(text, "/srv/target/").decode()
    assert "ExecStart=/srv/target/opt/mona-edge/current/bin/mona-edge run --config /srv/target/etc/mona-edge/config.toml" in moved
    assert render_unit(text, "/").decode() == text
    assert moved.replace("/srv/target", "") == text
