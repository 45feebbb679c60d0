"""``mona-edge wheelhouse``: a Raspberry Pi OS 64-bit wheelhouse resolves, with the OS's numpy pinned."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

from provisioning.wheelhouse import PI_PLATFORMS, download_argv


def test_pi64_wheelhouse_resolves_every_dependency_as_aarch64_wheels(tmp_path):
    out = tmp_path / "wh"
    done = subprocess.run([sys.executable, "-m", "edge.cli", "wheelhouse", "--out", str(out), "--numpy", "1.24.2"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in out.glob("*.whl"))
    assert any(n.startswith("mona_edge-") for n in names)
    for package in ("numpy-1.24.2-", "opencv_python_headless-", "pillow-", "ai_edge_litert-", "pygame-"):
        wheel = next((n for n in names if n.lower().startswith(package)), None)
        assert wheel is not None, f"{package} missing from {names}"
        assert "aarch64" in wheel, wheel
    assert not any("x86_64" in n for n in names)
    assert not any(n.startswith("torch") or n.startswith("scikit") for n in names)  # workstation-only


def test_download_command_asks_for_binaries_for_the_target_not_this_machine(tmp_path):
    argv = download_argv(tmp_path / "mona_edge-0.1.0-py3-none-any.whl", tmp_path, "3.11", PI_PLATFORMS)
    assert "--only-binary=:all:" in argv and argv[argv.index("--python-version") + 1] == "3.11"
    assert "manylinux_2_36_aarch64" in argv and "manylinux_2_37_aarch64" not in argv  # Bookworm's glibc 2.36
