"""The README's workstation commands, typed as a newcomer types them, in a venv made as the README says.

A copy of the checkout gets ``python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e
'.[workstation]'``, read from README.md itself, run by bash: the venv's own pip (23.2 from CPython 3.11's
ensurepip) and setuptools (65.5, no ``wheel``), which could not build the project's wheel before
provisioning built it in an isolated environment. Then, with that venv's ``bin`` first on PATH (what the
README's ``. .venv/bin/activate`` does), these README lines run word for word, with only the Pi's
address (``pi@frame.local``) and the SD card's mount points replaced by the test's own:

* ``mona-edge provision pi@frame.local ... --dry-run`` against a real sshd on loopback: the plan, nothing sent;
* ``mona-edge wheelhouse --out wh``: the Pi's wheel and its aarch64 dependencies at the lock's versions;
* ``mona-edge provision pi@frame.local --wheelhouse wh ...``: this x86_64 target cannot install aarch64
  wheels, which must stop the run before anything is sent, in one line;
* ``mona-edge provision --sd ...`` onto a card-shaped pair of folders;
* ``mona-edge rollback pi@frame.local`` on a target with nothing to roll back to: one line, its exit status.

The README's plain ``provision`` and ``logs -f`` are not run here: a real install needs a camera and screen
configuration the newcomer's line does not have, and ``-f`` follows forever (tests/test_provision_real.py
runs both paths for real). The test needs PyPI (the README's venv and the Pi's aarch64 wheels come from
it) and is skipped, saying so, where PyPI cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from sshd_fixture import sshd  # noqa: F401  (the fixture)

import edge.install
from edge.errors import ExitStatus

# fresh venvs from the package index, as a newcomer's
pytestmark = [pytest.mark.slow, pytest.mark.network]

SETUP = "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[workstation]' && . .venv/bin/activate"
DRY_RUN = "mona-edge provision pi@frame.local --pack assets/packs/default --config my-config.toml --dry-run"
WHEELHOUSE = "mona-edge wheelhouse --out wh"
OFFLINE = "mona-edge provision pi@frame.local --wheelhouse wh --pack assets/packs/default"
SD_CARD = "mona-edge provision --sd /media/$USER/bootfs /media/$USER/rootfs --pack assets/packs/default"
ROLLBACK = "mona-edge rollback pi@frame.local"


def readme_commands() -> list[str]:
    """Every line of the README's ``sh`` blocks, trailing comments dropped."""
    text = (REPO / "README.md").read_text()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=15).close()
        return True
    except OSError:
        return False


#: What a checkout holds that a clean clone does not (.gitignore's), for a checkout without git.
NOT_IN_A_CLONE = (".git", ".venv", ".venv-*", ".emulated-pi", "__pycache__", "*.pyc", "*.egg-info", "build",
                  "dist", ".pytest_cache", "out", "demo-out")


def copy_checkout(dest: Path) -> Path:
    """The checkout's files as git knows them (tracked, and untracked but not ignored): a clean clone."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # no git here, or not a git checkout
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
        return dest
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """The checkout copy with the README's venv in it, and how to run a line there as typed."""
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable: the README's venv and the Pi's wheels come from it")
    checkout = copy_checkout(tmp_path_factory.mktemp("readme") / "mona-edge")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(["bash", "-c", SETUP], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    venv_bin = checkout / ".venv/bin"
    env.update(VIRTUAL_ENV=str(checkout / ".venv"), PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}")

    def run(line: str, replace: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        for old, new in (replace or {}).items():
            assert old in line, (old, line)
            line = line.replace(old, new)
        return subprocess.run(["bash", "-c", line], cwd=checkout, env=env, capture_output=True, text=True,
                              timeout=timeout)

    return checkout, run


def test_the_readme_types_these_commands():
    lines = readme_commands()
    for command in (SETUP, DRY_RUN, WHEELHOUSE, OFFLINE, SD_CARD, ROLLBACK):
        assert command in lines, f"README.md no longer says: {command}"
    # and the two opening commands (the demo's set-up and the tests) are still the README's first
    assert lines[:2] == ["python3 -m venv .venv && .venv/bin/pip install -q -e '.[pi]' && "
                         ".venv/bin/mona-edge demo --out demo-out", "bash tests/run"]


def test_readme_venv_is_what_a_newcomer_gets(newcomer):
    checkout, run = newcomer
    versions = run(".venv/bin/python -c 'import importlib.metadata as m; "
                   "print(m.version(\"pip\"), m.version(\"numpy\"), m.version(\"mona-edge\"))'")
    pip, numpy, project = versions.stdout.split()
    locked = (checkout / "constraints.txt").read_text()
    assert f"\nnumpy=={numpy} " in locked or f"\nnumpy=={numpy}\n" in locked  # the lock's, not the newest
    assert project == "0.1.0"
    listed = run("mona-edge --help")
    assert listed.returncode == 0 and all(c in listed.stdout for c in ("provision", "wheelhouse", "quantize"))


def test_readme_provisioning_commands_as_typed(newcomer, sshd, tmp_path):  # noqa: F811
    checkout, run = newcomer
    prefix = tmp_path / "target"
    prefix.mkdir()
    pi = (f"{sshd.destination} --known-hosts {sshd.known_hosts} -i {sshd.identity} --prefix {prefix} "
          f"--service-manager process")
    (checkout / "my-config.toml").write_text("[detector]\nrange = \"short\"\n")
    try:
        dry = run(DRY_RUN, {"pi@frame.local": pi})
        assert dry.returncode == 0, dry.stderr[-3000:]
        assert f"plan for {sshd.user}@127.0.0.1:{sshd.port}:" in dry.stdout
        assert "change: software" in dry.stdout and "change: pack" in dry.stdout and "change: config" in dry.stdout
        assert "sent 0 file(s), 0 bytes" in dry.stdout
        assert not (prefix / "opt").exists()  # a dry run changes nothing

        wheelhouse = run(WHEELHOUSE)
        assert wheelhouse.returncode == 0, wheelhouse.stderr[-3000:]
        wh = checkout / "wh"
        names = sorted(p.name for p in wh.glob("*.whl"))
        assert re.fullmatch(r"wh: \d+ wheels, \d+ MB, for Python 3\.11 \(pi64\)\n", wheelhouse.stdout)
        assert any(n.startswith("numpy-1.24.2-") and "aarch64" in n for n in names), names  # Bookworm's numpy
        project = next(wh / n for n in names if n.startswith("mona_edge-"))
        assert not [m for m in zipfile.ZipFile(project).namelist() if m.startswith("provisioning/")]
        assert (wh / "mona-edge-constraints.txt").is_file()

        offline = run(OFFLINE, {"pi@frame.local": pi})
        assert offline.returncode == ExitStatus.PROVISIONING, offline.stdout + offline.stderr
        refusal = offline.stderr.strip().splitlines()
        assert len(refusal) == 1 and refusal[0].startswith("mona-edge provision: error: ")
        assert "not installable on the target (x86_64" in refusal[0] and "(nothing was sent)" in refusal[0]
        assert not (prefix / "opt").exists()

        rollback = run(ROLLBACK, {"pi@frame.local": pi})
        assert rollback.returncode == ExitStatus.PROVISIONING, rollback.stdout + rollback.stderr
        assert len(rollback.stderr.strip().splitlines()) == 1 and "no previous deployment" in rollback.stderr
    finally:
        edge.install.stop({"prefix": str(prefix), "service_manager": "process"})


def test_readme_sd_card_command_as_typed(newcomer, tmp_path):
    checkout, run = newcomer
    boot, root = tmp_path / "bootfs", tmp_path / "rootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text("console=tty1 root=PARTUUID=6c586e13-02 rootfstype=ext4 rootwait\n")
    (boot / "config.txt").write_text("camera_auto_detect=1\n")
    for folder in ("etc/systemd/system", "usr/bin"):
        (root / folder).mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\nVERSION_CODENAME=bookworm\n")
    card = run(SD_CARD, {"/media/$USER/bootfs": str(boot), "/media/$USER/rootfs": str(root)})
    assert card.returncode == 0, card.stderr[-3000:]
    assert card.stdout.strip().splitlines()[-1].startswith("card ready")
    plan = json.loads((root / "opt/mona-edge/firstboot/plan.json").read_text())
    staged = root / "opt/mona-edge/versions" / f".staging-{plan['software']['hash']}"
    wheel = staged / plan["software"]["project_wheel"]
    assert not [m for m in zipfile.ZipFile(wheel).namelist() if m.startswith("provisioning/")]  # the Pi's wheel
    assert (staged / "mona-edge-constraints.txt").read_bytes() == (checkout / "constraints.txt").read_bytes()
    assert sorted(plan["software"]["wheels"]) == sorted(p.name for p in staged.iterdir())
