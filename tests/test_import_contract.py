"""The Pi carries no workstation code: ``edge`` never imports ``provisioning``.

The contract is import-linter's (``[tool.importlinter]`` in pyproject.toml), which reads every import
statement, those inside functions too. It is checked on this checkout, and shown to fail on a copy in
which one ``edge`` module imports ``provisioning`` lazily, as the old CLI once did by entry point.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # The packages are found on PYTHONPATH=root, ahead of the editable install's finder.
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
                          capture_output=True, text=True, cwd=root, env=env, timeout=120)


def copy_of_checkout(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("edge", "provisioning"):
        shutil.copytree(REPO / package, dest / package, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_edge_never_imports_provisioning():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "edge (the Pi) never imports provisioning (the workstation) KEPT" in done.stdout
    assert "1 kept, 0 broken" in done.stdout


def test_the_contract_breaks_when_edge_imports_provisioning_even_lazily(tmp_path):
    root = copy_of_checkout(tmp_path / "checkout")
    assert lint_imports(root).returncode == 0  # the copy itself is clean
    gaze = root / "edge/gaze.py"
    gaze.write_text(gaze.read_text() + "\n\ndef _sneak():\n    from provisioning import plan\n\n    return plan\n")
    done = lint_imports(root)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout and "0 kept, 1 broken" in done.stdout
    assert "edge.gaze -> provisioning.plan" in done.stdout
