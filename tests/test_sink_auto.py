"""``sink = "auto"``: KMS/DRM where SDL has kmsdrm and a screen is connected, else the framebuffer.

Three layers. The connector choice is pure logic over a fake ``/sys/class/drm`` tree (a Pi 5 keeps its
HDMI on card1). The SDL driver listing is real: the venv's pygame (PyPI's x86 wheel, whose bundled SDL has
no kmsdrm, so ``auto`` falls back to the framebuffer) and Debian's own pygame under ``/usr/bin/python3``
(linked to Debian's libsdl2, which has kmsdrm; tests/run installs python3-pygame).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from edge.display import SinkChoice, choice_of, choose_sink, open_auto
from edge.drm_outputs import Connector, connected_card, list_connectors
from edge.errors import DisplayError
from edge.framebuffer import FramebufferSink
from edge.sdl_drivers import SdlVideo, compiled_video_drivers, mapped_sdl_library, sdl_video

OS_PYTHON = Path("/usr/bin/python3")
WITH_KMSDRM = SdlVideo("/usr/lib/libSDL2-2.0.so.0", "2.26.5", "2.1.2", ("x11", "wayland", "kmsdrm", "dummy"))
WITHOUT_KMSDRM = SdlVideo("/venv/pygame.libs/libSDL2-2-1667c208.0.so.0", "2.28.4", "2.6.1",
                          ("x11", "wayland", "offscreen", "dummy", "evdev"))
CONSOLE: dict[str, str] = {}  # the service's environment: no desktop session, no SDL_VIDEODRIVER


def drm_tree(root: Path, connectors: dict[str, str]) -> Path:
    """A /sys/class/drm look-alike: ``{"card1-HDMI-A-1": "connected", ...}`` plus what else lives there."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("card0", "card1", "renderD128"):
        (root / name).mkdir(exist_ok=True)
    (root / "version").write_text("drm 1.1.0 20060810\n")
    for name, status in connectors.items():
        (root / name).mkdir()
        (root / name / "status").write_text(status + "\n")
    return root


def fake_sdl(video: SdlVideo):
    return lambda: video


# --- connectors -------------------------------------------------------------------------------------------
def test_a_pi5_drives_the_card_whose_hdmi_is_connected(tmp_path):
    # Pi 5: card0 is the V3D GPU (no connectors), the display controller with both HDMI ports is card1
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "disconnected", "card1-HDMI-A-2": "connected",
                                       "card1-Writeback-1": "unknown"})
    card, seen = connected_card(root)
    assert card == 1
    assert seen == [Connector(1, "HDMI-A-1", "disconnected"), Connector(1, "HDMI-A-2", "connected"),
                    Connector(1, "Writeback-1", "unknown")]
    choice = choose_sink(drm_root=root, sdl=fake_sdl(WITH_KMSDRM), environ=CONSOLE)
    assert choice == SinkChoice("pygame", "SDL 2.26.5 has kmsdrm and card1 has a connected output (HDMI-A-2)",
                                driver="kmsdrm", drm_card=1)
    assert str(choice).startswith("pygame (kmsdrm, /dev/dri/card1): ")


def test_the_lowest_card_with_a_connected_output_wins_and_unknown_is_not_connected(tmp_path):
    root = drm_tree(tmp_path / "drm", {"card0-Composite-1": "unknown", "card2-DSI-1": "connected",
                                       "card3-HDMI-A-1": "connected"})
    assert connected_card(root)[0] == 2


def test_no_drm_folder_means_no_connectors(tmp_path):
    assert list_connectors(tmp_path / "absent") == []
    assert connected_card(tmp_path / "absent") == (None, [])


# --- the choice --------------------------------------------------------------------------------------------
def test_kmsdrm_with_nothing_connected_falls_back_to_the_framebuffer_and_says_why(tmp_path):
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "disconnected"})
    fb = tmp_path / "fb0"
    fb.touch()
    choice = choose_sink(device=str(fb), drm_root=root, sdl=fake_sdl(WITH_KMSDRM), environ=CONSOLE)
    assert choice.sink == "fbdev" and choice.device == str(fb)
    assert str(choice) == (f"framebuffer {fb}: SDL 2.26.5 has kmsdrm but no DRM output is connected "
                           f"(card1-HDMI-A-1 disconnected in {root})")


def test_an_sdl_without_kmsdrm_takes_the_framebuffer_even_with_a_screen_connected(tmp_path):
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "connected"})
    fb = tmp_path / "fb0"
    fb.touch()
    choice = choose_sink(device=str(fb), drm_root=root, sdl=fake_sdl(WITHOUT_KMSDRM), environ=CONSOLE)
    assert choice.sink == "fbdev"
    assert "pygame 2.6.1's SDL 2.28.4 has no kmsdrm (its drivers: x11, wayland, offscreen, dummy, evdev)" in choice.reason


def test_nothing_to_drive_is_one_error_naming_everything_tried(tmp_path):
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "disconnected"})
    with pytest.raises(DisplayError) as info:
        choose_sink(device=str(tmp_path / "fb9"), drm_root=root, sdl=fake_sdl(WITH_KMSDRM), environ=CONSOLE)
    message = str(info.value)
    assert "\n" not in message and message.startswith("display 'auto': no screen to drive: ")
    assert "no DRM output is connected (card1-HDMI-A-1 disconnected" in message
    assert f"{tmp_path / 'fb9'}: no such framebuffer" in message


def test_no_pygame_is_named_with_the_apt_package(tmp_path):
    def missing() -> SdlVideo:
        raise DisplayError("pygame is not installed (on a Pi: sudo apt install python3-pygame ...)")

    with pytest.raises(DisplayError, match=r"pygame is not installed \(on a Pi: sudo apt install python3-pygame"):
        choose_sink(device=str(tmp_path / "fb0"), drm_root=tmp_path, sdl=missing, environ=CONSOLE)


def test_a_configured_card_is_used_as_given(tmp_path):
    choice = choose_sink(drm_card=0, drm_root=tmp_path / "absent", sdl=fake_sdl(WITH_KMSDRM), environ=CONSOLE)
    assert (choice.driver, choice.drm_card) == ("kmsdrm", 0)
    assert choice.reason == "SDL 2.26.5 has kmsdrm; [display] drm_card = 0"


def test_a_desktop_session_gets_a_window_and_sdl_videodriver_is_obeyed(tmp_path):
    wayland = choose_sink(drm_root=tmp_path, sdl=fake_sdl(WITH_KMSDRM), environ={"WAYLAND_DISPLAY": "wayland-0"})
    assert wayland.sink == "pygame" and wayland.driver is None and "WAYLAND_DISPLAY=wayland-0" in wayland.reason
    dummy = choose_sink(drm_root=tmp_path, sdl=fake_sdl(WITH_KMSDRM), environ={"SDL_VIDEODRIVER": "dummy"})
    assert dummy == SinkChoice("pygame", "SDL_VIDEODRIVER=dummy in the environment", driver="dummy")
    # a driver SDL does not have is passed over, and said so
    with pytest.raises(DisplayError, match="SDL_VIDEODRIVER=directfb is not one of SDL 2.26.5's drivers"):
        choose_sink(device=str(tmp_path / "fb0"), drm_root=tmp_path, sdl=fake_sdl(WITH_KMSDRM),
                    environ={"SDL_VIDEODRIVER": "directfb"})


# --- the real SDL of the venv's pygame (PyPI's wheel) ------------------------------------------------------
def _pypi_pygame() -> SdlVideo:
    video = sdl_video()
    if "pygame.libs" not in video.library:
        pytest.skip(f"the venv's pygame uses {video.library}, not a PyPI wheel's bundled SDL")
    return video


def test_pypi_pygames_sdl_is_found_where_pygame_loaded_it_and_has_no_kmsdrm():
    video = _pypi_pygame()
    assert mapped_sdl_library() == video.library and Path(video.library).is_file()
    drivers = compiled_video_drivers()
    assert {"x11", "wayland", "offscreen", "dummy"} <= set(drivers), drivers
    assert "kmsdrm" not in drivers, drivers
    assert video.version.startswith("2.")


def test_with_pypi_pygame_auto_picks_the_framebuffer_else_the_error(tmp_path):
    video = _pypi_pygame()
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "connected"})
    fb = tmp_path / "fb0"
    fb.touch()
    choice = choose_sink(device=str(fb), drm_root=root, environ=CONSOLE)  # the real SDL listing
    assert choice.sink == "fbdev" and choice.device == str(fb)
    assert f"pygame {video.pygame}'s SDL {video.version} has no kmsdrm" in choice.reason
    with pytest.raises(DisplayError, match=f"has no kmsdrm .*; {tmp_path / 'fb1'}: no such framebuffer"):
        choose_sink(device=str(tmp_path / "fb1"), drm_root=root, environ=CONSOLE)


def fake_framebuffer(tmp_path: Path, w: int = 64, h: int = 48) -> tuple[Path, Path]:
    """A file laid out like a 32 bpp framebuffer and the sysfs folder that describes it."""
    sysfs = tmp_path / "graphics-fb0"
    sysfs.mkdir()
    (sysfs / "virtual_size").write_text(f"{w},{h}\n")
    (sysfs / "bits_per_pixel").write_text("32\n")
    (sysfs / "stride").write_text(f"{w * 4}\n")
    fb = tmp_path / "fb0"
    fb.write_bytes(bytes(w * h * 4))
    return fb, sysfs


def test_open_auto_draws_on_the_framebuffer_and_logs_why(tmp_path, monkeypatch, caplog):
    _pypi_pygame()
    for variable in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    fb, sysfs = fake_framebuffer(tmp_path)
    with caplog.at_level(logging.INFO, logger="edge.display"):
        sink = open_auto(device=str(fb), drm_root=tmp_path / "drm-absent", fb_sysfs=sysfs)
    try:
        assert isinstance(sink, FramebufferSink) and sink.size == (64, 48)
        choice = choice_of(sink)
        assert choice is not None and choice.sink == "fbdev" and "has no kmsdrm" in choice.reason
        assert [r.getMessage() for r in caplog.records if r.name == "edge.display"] == [f"display: {choice}"]
        sink.show_full(np.full((48, 64, 3), (10, 20, 30), np.uint8))
        assert np.frombuffer(fb.read_bytes(), np.uint8)[:3].tolist() == [30, 20, 10]  # XRGB8888: B, G, R, X
    finally:
        sink.close()


def test_a_kmsdrm_screen_that_fails_to_open_falls_back_to_the_framebuffer(tmp_path, monkeypatch, caplog):
    """SDL claims kmsdrm and HDMI is connected, but the real SDL here cannot open it (PyPI's has no
    kmsdrm, and this machine has no /dev/dri): the portrait goes to the framebuffer, the reason is kept."""
    _pypi_pygame()
    for variable in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY", "SDL_KMSDRM_DEVICE_INDEX"):
        monkeypatch.setenv(variable, "")  # recorded, so what PygameSink sets is undone after the test
        monkeypatch.delenv(variable)
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "connected"})
    fb, sysfs = fake_framebuffer(tmp_path)
    with caplog.at_level(logging.INFO, logger="edge.display"):
        sink = open_auto(device=str(fb), drm_root=root, fb_sysfs=sysfs, sdl=fake_sdl(WITH_KMSDRM))
    try:
        choice = choice_of(sink)
        assert isinstance(sink, FramebufferSink) and choice is not None and choice.device == str(fb)
        assert choice.reason.startswith("pygame (kmsdrm, /dev/dri/card1) failed to open: display 'pygame' ")
        assert any(r.levelno == logging.WARNING and "falling back to" in r.getMessage() for r in caplog.records)
    finally:
        sink.close()
    with pytest.raises(DisplayError, match=r"display 'auto' chose pygame \(kmsdrm, /dev/dri/card1\).*which failed: .*"
                                           r"no such framebuffer to fall back to"):
        open_auto(device=str(tmp_path / "fb-absent"), drm_root=root, sdl=fake_sdl(WITH_KMSDRM))


# --- Debian's own pygame, linked to Debian's libsdl2 -------------------------------------------------------
def os_python_sdl() -> dict:
    has = subprocess.run([str(OS_PYTHON), "-c", "import pygame"], capture_output=True, text=True,
                         env=dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1")) if OS_PYTHON.exists() else None
    if has is None or has.returncode != 0:
        pytest.skip(f"{OS_PYTHON} has no pygame (apt-get install python3-pygame; tests/run does)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([str(OS_PYTHON), "-m", "edge.sdl_drivers"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_debians_pygame_uses_the_os_sdl_which_has_kmsdrm():
    video = os_python_sdl()
    assert video["library"].startswith("/usr/lib/") and "/libSDL2-2.0.so" in video["library"], video
    assert "kmsdrm" in video["drivers"], video
    assert "dummy" in video["drivers"]


def test_with_debians_pygame_auto_picks_kms_drm_on_the_connected_card(tmp_path):
    os_python_sdl()  # skips without it
    root = drm_tree(tmp_path / "drm", {"card1-HDMI-A-1": "connected"})
    program = ("import sys; from pathlib import Path; from edge.display import choose_sink; "
               "c = choose_sink(drm_root=Path(sys.argv[1]), environ={}); print(c.sink, c.driver, c.drm_card)")
    done = subprocess.run([str(OS_PYTHON), "-c", program, str(root)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pygame", "kmsdrm", "1"]
