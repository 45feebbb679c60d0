"""``mona-edge provision --sd`` writes first boot in the form each Raspberry Pi OS reads.

Bookworm: the ``ssh`` file on the boot partition (and the first-boot unit on the root partition, as on
every release). Trixie (Raspberry Pi Imager 2.x): cloud-init from the boot partition's ``user-data``,
merged with whatever the Imager wrote there, never replacing it, and checked with cloud-init's own schema
check: Debian trixie's cloud-init 25.1, in the emulated Trixie Pi of tests/pi (``tests/pi/setup`` unpacks
it there, so the host's own boot is untouched: installing cloud-init on a CI host would arm its boot-time
services).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from edge.errors import ProvisioningError
from provisioning.plan import Artifacts, build_wheel, load_pack, load_software, load_unit
from provisioning.sdcard import SSH_ON, card_release, merge_user_data, write_card

LAUNCHER = REPO / "tests" / "pi" / "python"
PACK = REPO / "assets" / "packs" / "test"
#: User-data in the form Raspberry Pi Imager 2.x writes for a Trixie card (user, password hash, SSH with
#: passwords, locale), with only keys upstream cloud-init's schema knows.
IMAGER_USER_DATA = """#cloud-config
# written by the Imager
hostname: frame
manage_etc_hosts: true
packages:
- avahi-daemon
timezone: Europe/London
users:
- name: pi
  groups: users,adm,dialout,audio,netdev,video,plugdev,input,gpio,spi,i2c,render,sudo
  shell: /bin/bash
  lock_passwd: false
  passwd: $5$Kq2l5ydHYj$2bR1ZhuAbSo2Iu0j4.CFzYyZbxPzyJUcYp7aMtMjpC/
ssh_pwauth: true
"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Artifacts:
    wheel = build_wheel(REPO, tmp_path_factory.mktemp("wheel"))
    return Artifacts(software=load_software(wheel, no_deps=True), unit=load_unit(None, "/"), pack=load_pack(PACK))


def card(tmp_path: Path, codename: str, user_data: str | None = None) -> tuple[Path, Path]:
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 root=PARTUUID=6c586e13-02 rootwait\n")
    (boot / "config.txt").write_text("dtoverlay=vc4-kms-v3d\n")
    if user_data is not None:
        (boot / "user-data").write_text(user_data)
        (boot / "meta-data").write_text("instance-id: rpi-imager-1764633600\n")
    for folder in ("etc/systemd/system", "usr/bin"):
        (root / folder).mkdir(parents=True)
    (root / "etc/os-release").write_text(f'PRETTY_NAME="Debian GNU/Linux"\nID=debian\nVERSION_CODENAME={codename}\n')
    return boot, root


def schema_check(path: Path) -> subprocess.CompletedProcess:
    """``cloud-init schema --config-file PATH`` by Debian trixie's cloud-init on the emulated Trixie Pi."""
    root = os.environ.get("MONA_EDGE_PI_ROOT")
    if not root or not (Path(root) / "trixie/sysroot/usr/lib/python3/dist-packages/cloudinit").is_dir():
        pytest.skip("no emulated Trixie Pi with cloud-init (tests/run builds it with tests/pi/setup)")
    return subprocess.run([str(LAUNCHER), "trixie", "pi5", "litert", "-m", "cloudinit.cmd.main", "schema",
                           "--config-file", str(path)], capture_output=True, text=True, timeout=300)


def test_the_release_is_read_from_the_cards_os_release(tmp_path):
    _, root = card(tmp_path, "trixie")
    assert card_release(root) == "trixie"
    (root / "etc/os-release").write_text('VERSION_CODENAME="bookworm"\n')
    assert card_release(root) == "bookworm"
    (root / "etc/os-release").write_text("ID=debian\n")
    assert card_release(root) is None


def test_a_bookworm_card_gets_the_ssh_file_and_no_cloud_init(tmp_path, artifacts):
    boot, root = card(tmp_path, "bookworm")
    report = write_card(boot, root, artifacts)
    assert (boot / "ssh").exists() and not (boot / "user-data").exists() and not (boot / "meta-data").exists()
    assert not any("user-data" in line for line in report.boot_changes)
    assert (root / "etc/systemd/system/multi-user.target.wants/mona-edge-firstboot.service").is_symlink()


@pytest.mark.emulated_pi
@pytest.mark.root
def test_a_bare_trixie_card_gets_a_user_data_that_turns_sshd_on_and_cloud_init_accepts(tmp_path, artifacts):
    boot, root = card(tmp_path, "trixie")
    report = write_card(boot, root, artifacts)
    text = (boot / "user-data").read_text()
    assert text.startswith("#cloud-config\n") and yaml.safe_load(text) == {"runcmd": [SSH_ON]}
    assert (boot / "meta-data").read_text().startswith("instance-id: ")
    assert f"{boot / 'user-data'}: written: cloud-init enables and starts sshd at first boot" in report.boot_changes
    # the first-boot unit and the ssh file, as on Bookworm
    assert (root / "etc/systemd/system/multi-user.target.wants/mona-edge-firstboot.service").is_symlink()
    assert (boot / "ssh").exists()
    done = schema_check(boot / "user-data")
    assert done.returncode == 0 and "Valid schema" in done.stdout, done.stdout + done.stderr


@pytest.mark.emulated_pi
@pytest.mark.root
def test_the_imagers_user_data_is_merged_not_replaced_and_cloud_init_accepts_the_result(tmp_path, artifacts):
    imager_runcmd = IMAGER_USER_DATA + "runcmd:\n- localectl set-x11-keymap \"gb\" pc105\n- setupcon -k --force || true\n"
    for name, given in (("no-runcmd", IMAGER_USER_DATA), ("runcmd", imager_runcmd)):
        boot, root = card(tmp_path / name, "trixie", given)
        write_card(boot, root, artifacts)
        text = (boot / "user-data").read_text()
        merged, theirs = yaml.safe_load(text), yaml.safe_load(given)
        assert {k: v for k, v in merged.items() if k != "runcmd"} == {k: v for k, v in theirs.items() if k != "runcmd"}
        assert merged["runcmd"] == [*theirs.get("runcmd", []), SSH_ON]
        if name == "no-runcmd":
            assert text.startswith(given)  # the Imager's own text, comments and all, then ours
        assert (boot / "meta-data").read_text() == "instance-id: rpi-imager-1764633600\n"  # the Imager's
        report = write_card(boot, root, artifacts)  # again: nothing more
        assert (boot / "user-data").read_text() == text
        assert f"{boot / 'user-data'}: sshd already enabled at first boot (cloud-init runcmd)" in report.boot_changes
        done = schema_check(boot / "user-data")
        assert done.returncode == 0 and "Valid schema" in done.stdout, (name, done.stdout + done.stderr)


def test_the_schema_check_used_above_does_refuse_a_bad_user_data(tmp_path):
    """So that a pass above means something: cloud-init's check refuses a key of the wrong type."""
    bad = tmp_path / "user-data"
    bad.write_text("#cloud-config\nruncmd: 3\n")
    done = schema_check(bad)
    assert done.returncode != 0 and "runcmd" in done.stdout + done.stderr


@pytest.mark.parametrize("given,says", [
    ("#cloud-config\nhostname: [frame\n", r"user-data: not valid YAML \(.*at line \d+\); fix or remove it$"),
    ("#!/bin/sh\necho hi\n", r"user-data: not a #cloud-config user-data \(it starts '#!/bin/sh'\)"),
    ("#cloud-config\n- a\n- b\n", r"user-data: a #cloud-config must be a mapping of keys, this is a list$"),
    ("#cloud-config\nruncmd: reboot\n", r"user-data: runcmd is a str; cloud-init wants a list$"),
])
def test_a_user_data_that_cannot_be_merged_is_one_line_and_nothing_is_written(tmp_path, artifacts, given, says):
    boot, root = card(tmp_path, "trixie", given)
    with pytest.raises(ProvisioningError, match=says) as caught:
        write_card(boot, root, artifacts)
    assert "\n" not in str(caught.value) and str(boot / "user-data") in str(caught.value)
    assert (boot / "user-data").read_text() == given
    assert not (root / "opt").exists() and not (root / "etc/systemd/system/mona-edge-firstboot.service").exists()
    assert not (boot / "ssh").exists()


def test_merging_an_empty_or_comment_only_user_data_gives_ours():
    for given in (None, "", "#cloud-config\n# nothing yet\n"):
        merged = merge_user_data(given, Path("user-data"))
        assert merged is not None and yaml.safe_load(merged) == {"runcmd": [SSH_ON]}
