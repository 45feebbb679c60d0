"""Operating over SSH: status, snapshot, calibrate and doctor against a real running loop."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_service import FPS, config_toml, walk

from edge import commands
from edge.errors import ExitStatus
from edge.viewerclip import Person, eye_height, write_clip

NOT_RUNNING = ExitStatus.NOT_RUNNING


@pytest.fixture(scope="module")
def photo():
    from edge.viewerclip import astronaut_photo

    return astronaut_photo()


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="me-", dir="/tmp"))  # short: AF_UNIX paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


class RunningDaemon:
    """The real loop on a thread, as ``mona-edge run`` would run it (minus signals)."""

    def __init__(self, folder: Path, clip: Path, camera=None) -> None:
        from edge.config import load_config
        from edge.service import EdgeService

        self.socket = folder / "status.sock"
        self.config_path = folder / "config.toml"
        self.config_path.write_text(config_toml(clip=clip, fb=folder / "fb", socket_path=self.socket,
                                                realtime=True, loop=True))
        self.service = EdgeService(load_config(self.config_path), self.config_path, camera=camera)
        self.thread = threading.Thread(target=self.service.run, daemon=True)

    def __enter__(self) -> RunningDaemon:
        self.thread.start()
        import time

        end = time.monotonic() + 10
        while time.monotonic() < end and not (self.socket.exists() and self.service.frames > 3):
            time.sleep(0.05)
        assert self.service.frames > 3, "the loop did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.service.stop()
        self.thread.join(5)


@pytest.fixture
def clip(folder, photo):
    path = folder / "viewer.avi"
    write_clip(path, walk(2.0, 130, 130, 150, 500, sway=5), FPS, photo=photo)
    return path


def run(argv, capsys):
    code = commands.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_snapshot_and_calibrate_when_not_running_exit_not_running(folder, capsys):
    code, out, err = run(["status", "--socket", str(folder / "none.sock")], capsys)
    assert code == NOT_RUNNING and "not running" in err
    code, out, _ = run(["status", "--json", "--socket", str(folder / "none.sock")], capsys)
    assert code == NOT_RUNNING and json.loads(out)["state"] == "NOT_RUNNING"
    # The others: the CLI's one error line, the same exit status, nothing written.
    code, _, err = run(["snapshot", str(folder / "s.png"), "--socket", str(folder / "none.sock")], capsys)
    assert code == NOT_RUNNING and not (folder / "s.png").exists()
    assert err.splitlines() == [f"mona-edge snapshot: error: {folder / 'none.sock'}: no status socket "
                                "(is mona-edge running? systemctl status mona-edge)"]
    code, _, err = run(["calibrate", "--config", str(folder / "c.toml"), "--socket", str(folder / "none.sock")],
                       capsys)
    assert code == NOT_RUNNING and err.strip().endswith("start it first: sudo systemctl start mona-edge")
    assert not (folder / "c.toml").exists()


def test_status_snapshot_against_the_running_loop(folder, clip, capsys):
    with RunningDaemon(folder, clip) as daemon:
        code, out, _ = run(["status", "--socket", str(daemon.socket)], capsys)
        assert code == 0
        assert "READY" in out and "camera    file:viewer.avi ok" in out and "fps" in out and "pack" in out
        code, out, _ = run(["status", "--json", "--config", str(daemon.config_path)], capsys)  # socket from config
        status = json.loads(out)
        assert code == 0 and status["state"] == "READY" and status["frames"] > 0
        assert set(status) >= {"fps", "detect_ms", "viewer_present", "index", "camera", "pack", "uptime_s",
                                "errors", "last_error"}

        shot = folder / "screen.png"
        code, out, _ = run(["snapshot", str(shot), "--socket", str(daemon.socket)], capsys)
        assert code == 0 and "screen (frame" in out
        image = np.asarray(Image.open(shot).convert("RGB"))
        pack = daemon.service.pack
        assert any(np.array_equal(image, pack.frame_image(i)) for i in range(pack.frame_count))

        cam = folder / "camera.png"
        code, out, _ = run(["snapshot", "--camera", str(cam), "--socket", str(daemon.socket)], capsys)
        assert code == 0 and "debug capture" in out
        frame = np.asarray(Image.open(cam))
        assert frame.shape == (480, 640, 3) and frame.std() > 10
    # Only the file asked for was written: the daemon keeps no camera frames on disk.
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".png") == ["camera.png", "screen.png"]


class PositionCamera:
    """A test camera showing the visitor wherever the test says she stands (real rendered frames). She
    walks there, as a person does (a face that appears and never moves is taken for a picture), in a few
    frames, from the room's edge at first."""

    name = "position"
    state = "ok"

    def __init__(self, photo, positions):
        from edge.viewerclip import compose, cutout, room

        self._bg, self._sprite, self._compose = room(), cutout(photo), compose
        self.positions = positions
        self.where = next(iter(positions))
        self._x = 20.0  # she comes in from the edge
        self._cache = {}
        self.n = 0

    def _frame(self, x):
        key = int(round(x))
        if key not in self._cache:
            self._cache[key] = self._compose(self._bg, self._sprite, [Person(130, key, eye_height(130))])
        return self._cache[key]

    def open(self):
        pass

    def read(self):
        import time

        time.sleep(1 / 30)
        self.n += 1
        target = self.positions[self.where]
        step = max(abs(target - self._x) / 2, 40.0)  # a quick walk, then standing (with +-3 px sway)
        self._x = target if abs(target - self._x) <= step else self._x + step * np.sign(target - self._x)
        return self._frame(self._x + (-3, 0, 3)[self.n % 3]), time.monotonic()

    def close(self):
        pass


def test_calibrate_guides_left_centre_right_and_writes_config(folder, clip, photo, capsys, monkeypatch):
    from edge.config import load_config

    positions = {"left": 120, "centre": 330, "right": 530}
    camera = PositionCamera(photo, positions)
    with RunningDaemon(folder, clip, camera=camera) as daemon:
        answers = iter(positions)

        class Stdin:
            def readline(self):
                camera.where = next(answers)  # the visitor walks there, then presses Enter
                import time

                time.sleep(0.6)
                return "\n"

        import argparse

        parser = argparse.ArgumentParser()
        commands.register(parser.add_subparsers())
        ns = parser.parse_args(["calibrate", "--config", str(daemon.config_path), "--socket", str(daemon.socket),
                                "--seconds", "0.5"])
        code = commands.cmd_calibrate(ns, stdin=Stdin())
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.count("Stand") == 3 and "systemctl reload" in out
    config = load_config(daemon.config_path)
    measured = commands.read_calibration(config)
    for got, want in zip(measured, positions.values()):
        assert got * 640 == pytest.approx(want, abs=10)
    assert config.gaze.mapping == "linear"


def test_calibrate_non_interactive_and_refusals(folder, clip, capsys):
    from edge.config import load_config

    cfg = folder / "config.toml"
    cfg.write_text(config_toml(clip=clip, fb=folder / "fb"))
    code, out, _ = run(["calibrate", "--config", str(cfg), "--non-interactive", "100", "320", "540",
                        "--frame-width", "640"], capsys)
    assert code == 0 and "calibration_left_x = 0.1562" in out
    expected = (100 / 640, 320 / 640, 540 / 640)
    assert commands.read_calibration(load_config(cfg)) == pytest.approx(expected, abs=1e-4)
    code, _, err = run(["calibrate", "--config", str(cfg), "--non-interactive", "0.1", "0.9", "0.8"], capsys)
    assert code == ExitStatus.CONFIG
    assert err.splitlines() == ["mona-edge calibrate: error: calibration: left 0.1, centre 0.9, right 0.8 are not "
                                "in order; stand clearly apart at each position"]
    assert commands.read_calibration(load_config(cfg)) == pytest.approx(expected, abs=1e-4)  # unchanged


def test_doctor_reports_each_check_with_a_fix(folder, clip, capsys):
    cfg = folder / "config.toml"
    cfg.write_text(config_toml(clip=clip, fb=folder / "fb", socket_path=folder / "status.sock"))
    code, out, _ = run(["doctor", "--config", str(cfg)], capsys)
    assert code == 1  # the daemon is not running
    lines = {line.split()[1]: line.split()[0] for line in out.splitlines() if line[:4] in ("OK  ", "FAIL")}
    assert lines["daemon"] == "FAIL" and "fix: sudo systemctl enable --now mona-edge" in out
    for name in ("config", "model", "pack", "camera", "display", "socket"):
        assert lines[name] == "OK", out
    # A broken pack and a missing camera file are named, with fixes.
    cfg.write_text(config_toml(clip=folder / "gone.avi", pack=folder / "nopack", fb=folder / "fb"))
    code, out, _ = run(["doctor", "--json", "--config", str(cfg)], capsys)
    checks = {c["check"]: c for c in json.loads(out)}
    assert code == 1
    assert not checks["pack"]["ok"] and "nopack" in checks["pack"]["detail"] and checks["pack"]["fix"]
    assert not checks["camera"]["ok"] and "gone.avi" in checks["camera"]["detail"]
    # With the daemon up, the camera check asks it instead of opening the device.
    cfg.write_text(config_toml(clip=clip, fb=folder / "fb", socket_path=folder / "status.sock"))
    with RunningDaemon(folder, clip):
        code, out, _ = run(["doctor", "--config", str(folder / "config.toml")], capsys)
        assert "in use by the daemon" in out and out.splitlines()[1].startswith("OK")


def test_format_status_reads_like_a_dashboard():
    text = commands.format_status({
        "version": "0.1.0", "state": "DEGRADED", "uptime_s": 3725, "pid": 42, "fps": 14.9,
        "detect_ms": {"p50": 4.1, "p95": 6.3}, "stage_ms": {"capture": 1.0, "detect": 4.2, "gaze": 0.1, "draw": None},
        "viewer_present": False, "index": 16, "frame_count": 33, "pack": "mona",
        "camera": {"name": "picamera2:0", "state": "retrying", "failures": 3, "recoveries": 1, "retry_in_s": 4.0},
        "errors": {"detector": 0, "camera": 3}, "last_error": "picamera2:0: capture failed"})
    assert "DEGRADED, up 1h 2m" in text and "retrying (next try in 4 s)" in text
    assert "detection p50 4.1 ms p95 6.3 ms" in text and "draw -" in text
    assert "frame 16 of 0..32, pack mona" in text and "last      picamera2:0: capture failed" in text


def test_doctor_checks_the_framebuffer_for_a_framebuffer_config(folder, clip, capsys):
    """The config stores sink "framebuffer" as "fbdev": the doctor must still look at the device."""
    cfg = folder / "config.toml"
    for sink in ("framebuffer", "fbdev"):
        cfg.write_text(config_toml(clip=clip, display=sink, extra="").replace(
            "[pack]", f'device = "{folder / "fb-missing"}"\n\n[pack]'))
        _code, out, _ = run(["doctor", "--json", "--config", str(cfg)], capsys)
        display = {c["check"]: c for c in json.loads(out)}["display"]
        assert not display["ok"] and display["detail"] == f"{folder / 'fb-missing'}: no such framebuffer"
        assert "dtoverlay" in display["fix"]
    (folder / "fb0").write_bytes(bytes(192 * 256 * 4))  # a writable stand-in for /dev/fb0
    cfg.write_text(cfg.read_text().replace("fb-missing", "fb0"))
    _code, out, _ = run(["doctor", "--json", "--config", str(cfg)], capsys)
    display = {c["check"]: c for c in json.loads(out)}["display"]
    assert display["ok"] and display["detail"] == f"{folder / 'fb0'} writable"


def test_status_with_an_unusable_config_says_so_instead_of_asking_the_default_socket(folder, capsys):
    from edge.cli import main as cli_main

    missing = folder / "nowhere.toml"
    assert cli_main(["status", "--json", "--config", str(missing)]) == ExitStatus.CONFIG
    assert f"mona-edge status: error: {missing}: no such config file" in capsys.readouterr().err


def test_doctor_lists_sdls_video_drivers_and_says_which_sink_auto_uses_and_why(folder, clip, capsys, monkeypatch):
    """The driver list is SDL's own (the library pygame loaded here); auto's choice is judged as the
    service sees the machine (no desktop session), without opening the screen."""
    from edge.sdl_drivers import sdl_video

    video = sdl_video()
    for variable in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DISPLAY", ":0")  # the doctor's shell may have a desktop; the service has not
    fb0 = folder / "fb0"
    fb0.write_bytes(bytes(192 * 256 * 4))  # a writable stand-in for /dev/fb0
    cfg = folder / "config.toml"
    cfg.write_text(config_toml(clip=clip, display="auto", extra="").replace("[pack]", f'device = "{fb0}"\n\n[pack]'))
    _code, out, _ = run(["doctor", "--json", "--config", str(cfg)], capsys)
    checks = {c["check"]: c for c in json.loads(out)}
    drivers = ", ".join(video.drivers)
    assert checks["sdl"]["ok"] and checks["sdl"]["detail"].startswith(
        f"pygame {video.pygame}, SDL {video.version} ({video.library}): video drivers {drivers}")
    display = checks["display"]
    assert display["ok"] and display["detail"].startswith(f"auto will use framebuffer {fb0}: "), display
    assert display["detail"].endswith(f"({fb0} writable)")
    if "kmsdrm" not in video.drivers:  # PyPI's wheel
        assert f"pygame {video.pygame}'s SDL {video.version} has no kmsdrm (its drivers: {drivers})" in display["detail"]
    # the same in the plain listing, one line each
    _code, out, _ = run(["doctor", "--config", str(cfg)], capsys)
    assert f"OK    sdl        pygame {video.pygame}, SDL {video.version}" in out
    assert f"OK    display    auto will use framebuffer {fb0}: " in out
    # nothing to drive: one FAIL naming what was tried, with the apt package as the fix
    fb0.unlink()
    _code, out, _ = run(["doctor", "--json", "--config", str(cfg)], capsys)
    display = {c["check"]: c for c in json.loads(out)}["display"]
    assert not display["ok"] and display["detail"].startswith("display 'auto': no screen to drive: ")
    assert f"{fb0}: no such framebuffer" in display["detail"] and "sudo apt install python3-pygame" in display["fix"]


def test_doctor_fails_a_pygame_sink_whose_sdl_has_no_kmsdrm(folder, clip, capsys, monkeypatch):
    from edge.sdl_drivers import sdl_video

    video = sdl_video()
    if "kmsdrm" in video.drivers:
        pytest.skip(f"this pygame's SDL ({video.library}) has kmsdrm")
    for variable in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    cfg = folder / "config.toml"
    cfg.write_text(config_toml(clip=clip, display="pygame", extra=""))
    _code, out, _ = run(["doctor", "--json", "--config", str(cfg)], capsys)
    sdl = {c["check"]: c for c in json.loads(out)}["sdl"]
    assert not sdl["ok"] and sdl["detail"].endswith("(no kmsdrm: cannot drive a console screen)")
    assert sdl["fix"].startswith("sudo apt install python3-pygame")


def test_doctor_shows_the_running_daemons_own_choice_when_it_reports_one():
    from edge.config import Config

    said = "framebuffer /dev/fb0: pygame 2.6.1's SDL 2.28.4 has no kmsdrm (its drivers: x11, wayland)"
    checks = commands._check_display(Config(), {"display": said})  # the default config: sink = "auto"
    assert [c.name for c in checks] == ["sdl", "display"]
    assert checks[1].ok and checks[1].detail == f"{said} (in use by the daemon)"
