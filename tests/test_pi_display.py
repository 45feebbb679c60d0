"""Which screen ``sink = "auto"`` takes on each Raspberry Pi OS, with the OS's own pygame and with PyPI's.

On a Pi console (no desktop) only SDL's ``kmsdrm`` video driver can draw full screen. Debian's (and so
Raspberry Pi OS's) libsdl2 is built with it; the SDL bundled in PyPI's aarch64 pygame wheel is not. Here the
real aarch64 libraries say so themselves: in the emulated Bookworm and Trixie (``tests/pi/setup``), SDL's
compiled driver list is read from the library pygame loaded (:mod:`edge.sdl_drivers`), once with the OS's
python3-pygame and once with PyPI's wheel put first on the path, and ``auto``'s choice
(:func:`edge.display.choose_sink`) is made from it for a Pi whose HDMI is connected on ``card1`` (a Pi 5's
layout; the DRM tree is a directory laid out as /sys/class/drm, since qemu-user has no DRM device).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

LAUNCHER = REPO / "tests" / "pi" / "python"

#: Runs in the emulated Pi's Python: SDL's drivers and auto's choice, as JSON.
CHOOSE = """
import json, sys
from pathlib import Path
import pygame
from edge.display import choose_sink
from edge.sdl_drivers import sdl_video

video = sdl_video()
choice = choose_sink(device=sys.argv[2], drm_root=Path(sys.argv[1]), environ={})
print(json.dumps({"pygame_file": pygame.__file__, "library": video.library, "sdl": video.version,
                  "drivers": list(video.drivers), "sink": choice.sink, "driver": choice.driver,
                  "drm_card": choice.drm_card, "device": choice.device, "reason": choice.reason}))
"""


def _pi_with_hdmi(tmp_path: Path) -> tuple[Path, Path]:
    """A /sys/class/drm with card1's HDMI connected (card0 is the Pi 5's render-only v3d), and a
    framebuffer device path that exists."""
    drm = tmp_path / "drm"
    for name, status in (("card0", None), ("card1", None), ("card1-HDMI-A-1", "connected"),
                         ("card1-HDMI-A-2", "disconnected")):
        (drm / name).mkdir(parents=True)
        if status is not None:
            (drm / name / "status").write_text(status + "\n")
    fb = tmp_path / "fb0"
    fb.write_bytes(b"")
    return drm, fb


def _choose(pi_root: Path, os_name: str, tmp_path: Path, first_on_path: list[Path]) -> dict:
    drm, fb = _pi_with_hdmi(tmp_path)
    path = os.pathsep.join(str(p) for p in [*first_on_path, REPO])
    env = dict(os.environ, MONA_EDGE_PI_ROOT=str(pi_root), PYTHONPATH=path, PYGAME_HIDE_SUPPORT_PROMPT="1")
    env.pop("SDL_VIDEODRIVER", None)  # as under systemd on a console: nothing names a driver
    done = subprocess.run([str(LAUNCHER), os_name, "pi5", "none", "-c", CHOOSE, str(drm), str(fb)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.emulated_pi
@pytest.mark.root
@pytest.mark.parametrize("os_name", ["bookworm", "trixie"])
def test_the_os_pygame_has_kmsdrm_and_auto_takes_the_connected_hdmi(pi_root, tmp_path, os_name):
    seen = _choose(pi_root, os_name, tmp_path, [])
    assert "/usr/lib/python3/dist-packages/pygame/" in seen["pygame_file"]  # the OS's python3-pygame
    assert "/usr/lib/aarch64-linux-gnu/libSDL2-2.0.so" in seen["library"], seen["library"]  # the OS's SDL
    assert "kmsdrm" in seen["drivers"], seen
    assert (seen["sink"], seen["driver"], seen["drm_card"]) == ("pygame", "kmsdrm", 1), seen
    assert "card1 has a connected output (HDMI-A-1)" in seen["reason"]


@pytest.mark.emulated_pi
@pytest.mark.root
@pytest.mark.parametrize("os_name", ["bookworm", "trixie"])
def test_pypis_pygame_has_no_kmsdrm_and_auto_takes_the_framebuffer(pi_root, tmp_path, os_name):
    wheel = pi_root / os_name / "site-pypi-pygame"
    if not wheel.is_dir():
        pytest.fail(f"{wheel} is missing; run tests/pi/setup {os_name}")
    seen = _choose(pi_root, os_name, tmp_path, [wheel])
    assert seen["pygame_file"].startswith(str(wheel)), seen["pygame_file"]  # PyPI's wheel, not the OS's
    assert "pygame.libs" in seen["library"], seen["library"]  # the SDL the wheel bundles
    assert "kmsdrm" not in seen["drivers"] and "dummy" in seen["drivers"], seen
    assert seen["sink"] == "fbdev" and seen["device"] == str(tmp_path / "fb0"), seen
    assert "has no kmsdrm" in seen["reason"], seen["reason"]
