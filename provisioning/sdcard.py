"""Write a mona-edge install onto a freshly flashed Raspberry Pi OS card mounted on the workstation.

The card gets exactly what an SSH install would have staged (wheels, pack, config, unit, the target-side
``install.py``) plus a plan file and a one-shot first-boot unit; on the Pi's first power-up that unit runs
the same ``activate`` an SSH install runs, so both paths build one layout with one piece of code. Only
the things the Pi itself must do (a venv for its Python, its service user) wait for first boot.
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
    added = add_kernel_args(boot / "cmdline.txt", ["consoleblank=0"])
    report.boot_changes.append(f"{boot / 'cmdline.txt'}: " + (f"added {' '.join(added)}" if added
                                                              else "console blanking already off"))
    return report
