"""The two wheels setup.py builds, the metadata they carry, and the lock they are installed with.

* The Pi's wheel (``MONA_EDGE_WHEEL=pi``, what ``provisioning.plan.build_wheel`` builds for every Pi
  deployment): ``edge`` only, no workstation entry point; installed on its own in a fresh venv, its
  ``mona-edge`` offers the Pi's commands and nothing of the workstation's.
* The full wheel, and the editable install the tests run from: ``edge`` and ``provisioning``, with the
  workstation's commands declared with their extra, as importlib.metadata reads them back.
* One version (edge/__init__.py), the SPDX licence, and a lock (constraints.txt) that pins every
  requirement of pyproject for the platforms the project runs on.
"""

from __future__ import annotations

import email
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import PathDistribution, distribution
from pathlib import Path

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import edge
from edge.errors import ProvisioningError
from provisioning.plan import build_wheel, check_pi_wheel, load_software, wheel_entry_points
from provisioning.wheelhouse import constraints_for, target_environment

# builds and installs the Pi's wheel in fresh venvs
pytestmark = [pytest.mark.slow]

WORKSTATION_COMMANDS = {"quantize", "build-pack", "provision", "rollback", "logs", "wheelhouse"}
PI_COMMANDS = {"run", "status", "snapshot", "calibrate", "doctor", "detect", "demo"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheels")
    return {variant: build_wheel(REPO, root / variant, variant) for variant in ("pi", "full")}


def members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(zf.read(name))


def test_pi_wheel_holds_edge_only_and_no_workstation_entry_point(wheels):
    names = members(wheels["pi"])
    assert not [n for n in names if n.startswith("provisioning/")]
    assert {"edge/__init__.py", "edge/cli.py", "edge/install.py", "edge/service.py"} <= set(names)
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    with zipfile.ZipFile(wheels["pi"]) as zf:
        assert zf.read(top_level).decode().split() == ["edge"]
    assert wheel_entry_points(wheels["pi"]) == {"console_scripts": ["mona-edge = edge.cli:main"]}
    # what the Pi needs besides code: the int8 models, the units, the bundled packs and clip
    data = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n]
    for wanted in ("share/mona-edge/models/face_detection_short_range_int8.tflite",
                   "share/mona-edge/systemd/mona-edge.service", "share/mona-edge/packs/default/manifest.json",
                   "share/mona-edge/clips/viewer-walk.mp4"):
        assert wanted in data
    check_pi_wheel(wheels["pi"])  # what provisioning accepts


def test_full_wheel_declares_the_workstation_commands_with_their_extra(wheels, tmp_path):
    names = members(wheels["full"])
    assert "provisioning/plan.py" in names and "provisioning/fomm/__init__.py" in names
    assert "edge/cli.py" in names
    # importlib.metadata, reading the wheel's own dist-info, returns each command's extra
    with zipfile.ZipFile(wheels["full"]) as zf:
        zf.extractall(tmp_path)
    dist = PathDistribution(next(tmp_path.glob("mona_edge-*.dist-info")))
    commands = {ep.name: ep for ep in dist.entry_points if ep.group == "mona_edge.commands"}
    assert set(commands) == WORKSTATION_COMMANDS
    assert all(ep.extras == ["workstation"] and ep.module.startswith("provisioning.") for ep in commands.values())
    assert [ep.value for ep in dist.entry_points if ep.group == "console_scripts"] == ["edge.cli:main"]
    with pytest.raises(ProvisioningError, match=r"a full mona-edge wheel .*provisioning/ files, 6 workstation "
                                                r"commands.*MONA_EDGE_WHEEL=pi"):
        load_software(wheels["full"])


def test_the_editable_install_is_the_full_project():
    """What the tests (and a workstation's ``pip install -e '.[workstation]'``) run from."""
    dist = distribution("mona-edge")
    commands = {ep.name: ep.extras for ep in dist.entry_points if ep.group == "mona_edge.commands"}
    assert commands == {name: ["workstation"] for name in WORKSTATION_COMMANDS}
    import provisioning.plan
    assert Path(provisioning.plan.__file__).resolve().is_relative_to(REPO)


def test_one_version_and_the_spdx_licence(wheels):
    for wheel in wheels.values():
        meta = metadata(wheel)
        assert meta["Version"] == edge.__version__ == distribution("mona-edge").version
        assert wheel.name == f"mona_edge-{edge.__version__}-py3-none-any.whl"
        assert meta["License-Expression"] == "Apache-2.0" and meta["License"] is None
        assert sorted(meta.get_all("License-File")) == ["LICENSE", "NOTICE"]
        assert meta["Requires-Python"] == ">=3.11"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


def test_the_pi_wheel_alone_offers_the_pi_commands_and_none_of_the_workstations(wheels, tmp_path):
    """A venv with the Pi's wheel and its ``[pi]`` dependencies at the lock's versions, as a Pi gets it."""
    venv = tmp_path / "pi-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-c", str(REPO / "constraints.txt"), f"{wheels['pi']}[pi]"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    help_text = subprocess.run([str(venv / "bin/mona-edge"), "--help"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=120)
    assert help_text.returncode == 0, help_text.stderr
    listed = {line.split()[0] for line in help_text.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert PI_COMMANDS <= listed and not listed & WORKSTATION_COMMANDS, help_text.stdout
    probe = subprocess.run([str(venv / "bin/python"), "-c",
                            "import importlib.metadata as m, importlib.util as u; "
                            "print(len(m.entry_points(group='mona_edge.commands')), u.find_spec('provisioning'))"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.split() == ["0", "None"], probe.stdout + probe.stderr
    refused = subprocess.run([str(venv / "bin/mona-edge"), "provision", "--help"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    assert refused.returncode != 0 and "provision" in refused.stderr


# ------------------------------------------------------------------------------------------------ lock

#: The environments the lock must cover: this project's machines and CI, and Raspberry Pi OS Bookworm and
#: Trixie on a Pi (whose own numpy the frame's venv keeps).
ENVIRONMENTS = {"x86_64 3.11": ("3.11", "x86_64"), "x86_64 3.13": ("3.13", "x86_64"),
                "pi bookworm": ("3.11", "aarch64"), "pi trixie": ("3.13", "aarch64")}
OS_NUMPY = {"pi bookworm": "1.24.2", "pi trixie": "2.2.4"}


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = list(project["project"]["dependencies"]) + list(project["build-system"]["requires"])
    for extra in project["project"]["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_lock_pins_every_requirement_of_pyproject(name):
    """constraints.txt is refreshed with pyproject: each requirement has a pin that satisfies it."""
    lock = (REPO / "constraints.txt").read_text()
    assert lock.startswith("# This file was autogenerated by uv via the following command:\n"
                           "#    uv pip compile --universal --all-extras pyproject.toml constraints.in "
                           "-o constraints.txt\n")
    pins = constraints_for(lock, target_environment(*ENVIRONMENTS[name]))
    for req in project_requirements():
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req} has no pin in constraints.txt for {name}"
        locked = next(iter(Requirement(pin).specifier)).version
        assert req.specifier.contains(locked), f"{req}: the lock has {pin} for {name}"
    if name in OS_NUMPY:
        assert pins["numpy"] == f"numpy=={OS_NUMPY[name]}"
    assert pins["torch"] == "torch==2.13.0" and pins["setuptools"].startswith("setuptools==")
