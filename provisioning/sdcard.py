"""Write a mona-edge install onto a freshly flashed Raspberry Pi OS card mounted on the workstation.

The card gets exactly what an SSH install would have staged (wheels, pack, config, unit, the target-side
``install.py``) plus a plan file and a one-shot first-boot unit; on the Pi's first power-up that unit runs
the same ``activate`` an SSH install runs, so both paths build one layout with one piece of code. Only
the things the Pi itself must do (a venv for its Python, its service user) wait for first boot.

The first-boot unit works on every release (it is systemd's). What the boot partition says differs:
Bookworm's first boot reads an empty ``ssh`` file to turn sshd on; Trixie's (Raspberry Pi Imager 2.x)
is customised by cloud-init from ``user-data`` / ``meta-data`` / ``network-config`` on the boot
partition. On a Trixie card (the root partition's ``/etc/os-release`` says so) the user-data the Imager
wrote is kept and merged with what the frame needs (sshd enabled and started), never replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import edge.install
from edge.errors import ProvisioningError
from edge.install import Layout, atomic_write
from provisioning.plan import REPO, Artifacts, Blob, import_checks, software_spec

FIRSTBOOT_UNIT = "mona-edge-firstboot.service"
#: Releases whose first boot is customised by cloud-init from the boot partition (Imager 2.x), by
#: VERSION_CODENAME; older ones (bookworm) by the Imager's firstrun script and the ``ssh`` file.
CLOUD_INIT_RELEASES = ("trixie", "forky")
USER_DATA, META_DATA = "user-data", "meta-data"
#: What a Trixie card's user-data gets: sshd enabled and started on first boot (what the ``ssh`` file
#: does on Bookworm), for later ``mona-edge provision`` runs. A ``runcmd`` entry, the one way upstream
#: cloud-init's schema has to start a service (``ssh_pwauth`` only sets password logins, which stay
#: the Imager's choice).
SSH_ON = ["systemctl", "enable", "--now", "ssh"]
#: NoCloud needs a meta-data beside user-data; the Imager writes one, a bare card may have none.
DEFAULT_META_DATA = "instance-id: mona-edge-firstboot\n"


@dataclass
class SdReport:
    written: list[str] = field(default_factory=list)
    boot_changes: list[str] = field(default_factory=list)


def check_card(boot: Path, root: Path) -> None:
    """Refuse anything that does not look like a Raspberry Pi OS boot and root partition."""
    for path in (boot / "cmdline.txt", boot / "config.txt"):
        if not path.is_file():
            raise ProvisioningError(f"--sd boot partition {boot}: no {path.name}; is it the Raspberry Pi OS boot (FAT) "
                                    "partition?")
    for path in (root / "etc/os-release", root / "etc/systemd/system", root / "usr"):
        if not path.exists():
            raise ProvisioningError(f"--sd root partition {root}: no {path.relative_to(root)}; is it the Raspberry Pi "
                                    "OS root partition?")


def card_release(root: Path) -> str | None:
    """The card's VERSION_CODENAME (``bookworm``, ``trixie``) from its ``/etc/os-release``, or None."""
    try:
        text = (root / "etc/os-release").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME":
            return value.strip().strip("'\"") or None
    return None


def merge_user_data(text: str | None, where: Path) -> str | None:
    """The cloud-init user-data ``text`` (None: there is none) with :data:`SSH_ON` in its ``runcmd``; None
    when it already has it. The Imager's file is kept as it is where it has no ``runcmd`` (ours is
    appended); otherwise it is rewritten from its parsed content with ours added to its list. Anything
    that is not a ``#cloud-config`` mapping is refused in one line naming ``where``: merging into a file
    cloud-init would read differently could lose what the user asked the Imager for."""
    import yaml

    ours = {"runcmd": [SSH_ON]}
    if text is None or not text.strip():
        return "#cloud-config\n" + yaml.safe_dump(ours, default_flow_style=None, sort_keys=False)
    first = text.lstrip().splitlines()[0].strip()
    if first != "#cloud-config":
        raise ProvisioningError(f"--sd {where}: not a #cloud-config user-data (it starts {first[:40]!r}); "
                                "mona-edge can merge only into #cloud-config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProvisioningError(f"--sd {where}: not valid YAML ({problem}{at}); fix or remove it") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProvisioningError(f"--sd {where}: a #cloud-config must be a mapping of keys, this is a "
                                f"{type(data).__name__}")
    runcmd = data.get("runcmd")
    if runcmd is None:
        return text + ("" if text.endswith("\n") else "\n") + yaml.safe_dump(
            ours, default_flow_style=None, sort_keys=False)
    if not isinstance(runcmd, list):
        raise ProvisioningError(f"--sd {where}: runcmd is a {type(runcmd).__name__}; cloud-init wants a list")
    if SSH_ON in runcmd or " ".join(SSH_ON) in runcmd:
        return None
    merged = dict(data, runcmd=[*runcmd, SSH_ON])
    return ("#cloud-config\n# merged by mona-edge provision --sd (runcmd: sshd on), from the Imager's\n"
            + yaml.safe_dump(merged, default_flow_style=None, sort_keys=False))


def planned_user_data(boot: Path) -> tuple[str | None, str | None]:
    """The boot partition's user-data as it is (None: none) and as :func:`merge_user_data` would leave
    it; raises before anything is written when it cannot be merged."""
    path = boot / USER_DATA
    try:
        text = path.read_text() if path.exists() else None
    except UnicodeDecodeError:
        raise ProvisioningError(f"--sd {path}: not UTF-8 text, so not a cloud-init user-data") from None
    return text, merge_user_data(text, path)


def write_cloud_init(boot: Path) -> list[str]:
    """Merge :data:`SSH_ON` into the boot partition's cloud-init user-data (and give it a meta-data if
    it has none); the report lines."""
    path = boot / USER_DATA
    text, merged = planned_user_data(boot)
    lines = []
    if merged is None:
        lines.append(f"{path}: sshd already enabled at first boot (cloud-init runcmd)")
    else:
        atomic_write(path, merged.encode())
        lines.append(f"{path}: {'merged' if text else 'written'}: cloud-init enables and starts sshd at first boot")
    if not (boot / META_DATA).exists():
        atomic_write(boot / META_DATA, DEFAULT_META_DATA.encode())
        lines.append(f"{boot / META_DATA}: written (cloud-init's NoCloud needs one beside user-data)")
    return lines


def add_kernel_args(cmdline: Path, args: list[str]) -> list[str]:
    """cmdline.txt is one line; arguments are appended to it, each only once."""
    words = cmdline.read_text().split()
    added = [a for a in args if a not in words and not any(w.startswith(a.split("=")[0] + "=") for w in words)]
    if added:
        atomic_write(cmdline, (" ".join(words + added) + "\n").encode())
    return added


def _firstboot_unit() -> Blob:
    for candidate in (REPO / "systemd" / FIRSTBOOT_UNIT,):
        if candidate.is_file():
            return Blob(str(candidate), candidate.read_bytes())
    raise ProvisioningError(f"{FIRSTBOOT_UNIT}: not found in the repository's systemd/")


def writable_paths(unit: bytes) -> list[str]:
    """The folders a unit's ``ReadWritePaths=`` name (a leading ``-``, "ignore if missing", dropped)."""
    found = []
    for line in unit.decode().splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "ReadWritePaths":
            found += [p.lstrip("-+") for p in value.split()]
    return found


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def write_card(boot: Path, root: Path, artifacts: Artifacts, ready_timeout: float = 180.0) -> SdReport:
    """Stage everything on the card and arm the first-boot unit; the card's OS is otherwise untouched.

    ``artifacts.unit`` must be rendered for prefix / (it runs on the Pi, not under the mount point).
    """
    check_card(boot, root)
    if artifacts.pack is None:
        raise ProvisioningError("--sd needs --pack DIR: a fresh card has no gaze pack to keep")
    if card_release(root) in CLOUD_INIT_RELEASES:
        planned_user_data(boot)  # a user-data that cannot be merged is refused before anything is written
    try:
        return _write_card(boot, root, artifacts, ready_timeout)
    except OSError as exc:  # a full or read-only card: every step is repeatable, so fixing it and rerunning works
        raise ProvisioningError(f"--sd: writing {exc.filename or root} failed: {exc.strerror or exc}; "
                                "fix it and run again") from exc


def _write_card(boot: Path, root: Path, artifacts: Artifacts, ready_timeout: float) -> SdReport:
    assert artifacts.pack is not None  # checked by write_card
    report = SdReport()
    layout = Layout(str(root))
    sw = artifacts.software
    for name, path in sorted(sw.files.items()):
        _copy(path, layout.software_staging(sw.hash) / name)
    report.written.append(f"{layout.software_staging(sw.hash)}: {len(sw.files)} wheel(s)")
    for rel in sorted(artifacts.pack.files):
        _copy(artifacts.pack.root / rel, layout.pack_staging(artifacts.pack.sha) / rel)
    report.written.append(f"{layout.pack_staging(artifacts.pack.sha)}: {len(artifacts.pack.files)} files")
    config = artifacts.config or Blob("(empty: every setting at its default)", b"")
    plan = {
        "prefix": "/", "service_manager": "systemd", "ready_timeout": ready_timeout,
        "software": software_spec(sw, import_checks(sw)),
        "pack": {"sha": artifacts.pack.sha, "files": artifacts.pack.files},
        "config": config.spec(),
        "unit": artifacts.unit.spec(),
    }
    _copy(Path(edge.install.__file__), layout.firstboot / "install.py")
    atomic_write(layout.firstboot / "plan.json", json.dumps(plan, indent=1).encode())
    report.written.append(f"{layout.firstboot}: install.py and plan.json")
    unit_dir = root / "etc/systemd/system"
    firstboot_unit = _firstboot_unit().data
    # The first-boot unit may write only where its ReadWritePaths= say, and one that names a missing
    # folder fails before it starts (226/NAMESPACE), on every boot: each is made here, whatever this
    # card carries.
    for folder in writable_paths(firstboot_unit):
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    atomic_write(unit_dir / FIRSTBOOT_UNIT, firstboot_unit)
    wants = unit_dir / "multi-user.target.wants" / FIRSTBOOT_UNIT
    wants.parent.mkdir(parents=True, exist_ok=True)
    if not wants.is_symlink():
        os.symlink(f"/etc/systemd/system/{FIRSTBOOT_UNIT}", wants)
    report.written.append(f"{unit_dir / FIRSTBOOT_UNIT}, enabled")
    # An empty file named ssh on the boot partition turns sshd on at first boot (Raspberry Pi OS).
    (boot / "ssh").touch()
    report.boot_changes.append(f"{boot / 'ssh'}: sshd enabled for later `mona-edge provision` runs")
    if card_release(root) in CLOUD_INIT_RELEASES:  # Trixie: first boot is cloud-init's
        report.boot_changes += write_cloud_init(boot)
    added = add_kernel_args(boot / "cmdline.txt", ["consoleblank=0"])
    report.boot_changes.append(f"{boot / 'cmdline.txt'}: " + (f"added {' '.join(added)}" if added
                                                              else "console blanking already off"))
    return report
