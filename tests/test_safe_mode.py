"""Safe mode at boot: a config, pack or model that cannot be used at start is replaced by its default, the
daemon says so (journal, STATUS=, status socket, doctor) and keeps serving until a good reload.

The end-to-end tests run ``mona-edge run --config X`` as systemd would (a notify socket, a framebuffer file
as the screen) and look at what the screen shows; before safe mode each of these daemons exited at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from edge.assets import default_pack_path
from edge.errors import StatusError
from edge.pack import load_pack
from edge.status import query_status
from edge.viewerclip import write_clip

REPO = Path(__file__).resolve().parent.parent
TEST_PACK = REPO / "assets" / "packs" / "test"
MODELS = REPO / "assets" / "models"
SHORT = "face_detection_short_range_int8"
SIZE = (192, 256)
FPS = 15.0
DAEMON = [sys.executable, "-m", "edge.commands", "run", "--config"]
DOCTOR = [sys.executable, "-m", "edge.commands", "doctor", "--config"]


def config_text(folder: Path, *, pack: object = TEST_PACK, model: Path | None = None, extra: str = "") -> str:
    """A daemon config for a looping empty clip, the short-range model and a framebuffer file."""
    model_line = f'model = "{model}"\n' if model is not None else ""
    pack_value = json.dumps(str(pack)) if isinstance(pack, Path) else pack
    return (f'[camera]\nsource = "video"\npath = "{folder / "clip.avi"}"\nrealtime = true\nloop = true\n'
            f'retry_initial_s = 0.05\nretry_max_s = 0.2\n\n'
            f'[detector]\nrange = "short"\nthreads = 1\n{model_line}\n'
            f'[display]\nsink = "file"\nwidth = {SIZE[0]}\nheight = {SIZE[1]}\noutput = "{folder / "fb"}"\n\n'
            f"[pack]\npath = {pack_value}\n\n"
            f'[service]\nstatus_socket = "{folder / "status.sock"}"\nready_timeout = 5\n' + extra)


def screen(folder: Path) -> np.ndarray:
    """What the framebuffer file shows (XRGB8888 -> RGB)."""
    raw = np.fromfile(folder / "fb", np.uint8)[: SIZE[0] * SIZE[1] * 4].reshape(SIZE[1], SIZE[0], 4)
    return raw[..., 2::-1]


def centre_frame(pack_path: Path) -> np.ndarray:
    pack = load_pack(pack_path, screen_size=SIZE)
    return pack.frame_image(pack.centre_index)


class Daemon:
    """``mona-edge run --config cfg`` under a notify socket, as the unit runs it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(folder / "notify"))
        self.notify.settimeout(0.2)
        self.messages: list[str] = []
        env = dict(os.environ, NOTIFY_SOCKET=str(folder / "notify"), PYTHONPATH=str(REPO))
        env.pop("WATCHDOG_USEC", None)
        self.proc = subprocess.Popen(DAEMON + [str(folder / "config.toml")], env=env, cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = ""

    def received(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.notify.recv(65536).decode())
            except TimeoutError:
                return self.messages

    def status_when(self, predicate, timeout: float = 20.0) -> dict:
        """The status socket's answer once ``predicate(status)`` holds (the daemon must stay up meanwhile)."""
        end = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.finish()
            try:
                last = query_status(self.folder / "status.sock")
            except StatusError:  # not serving yet
                time.sleep(0.1)
                continue
            if predicate(last):
                return last
            time.sleep(0.1)
        raise AssertionError(f"status never matched: {last}")

    def finish(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
        self.notify.close()
        return self.output


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="me-", dir="/tmp"))  # AF_UNIX paths must stay short
    write_clip(path / "clip.avi", [[] for _ in range(15)], FPS, photo=np.zeros((512, 512, 3), np.uint8))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def doctor(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(DOCTOR + [str(folder / "config.toml")], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))


def assert_safe_then_fixed(folder: Path, daemon: Daemon, reason_starts: str, shown: Path, fixed: str) -> dict:
    """The daemon runs DEGRADED in safe mode with ``reason_starts`` showing ``shown``'s portrait, says so
    everywhere, and a SIGHUP after writing ``fixed`` as the config leaves safe mode (READY)."""
    status = daemon.status_when(lambda s: s["state"] == "DEGRADED" and s["frames"] > 3)
    safe = status["safe_mode"]
    assert safe is not None and safe["reason"].startswith(reason_starts), safe
    assert time.time() - 60 < time.mktime(time.strptime(safe["since"][:19], "%Y-%m-%dT%H:%M:%S")) <= time.time()
    assert status["reasons"] == [safe["reason"]] and status["last_error"] == f"safe mode: {safe['reason']}"
    np.testing.assert_array_equal(screen(folder), centre_frame(shown))  # a portrait, never a black screen
    messages = daemon.received()
    assert "READY=1" in messages  # systemd sees it started: no restart loop, no failed unit
    assert any(m.startswith("STATUS=degraded") and safe["reason"] in m for m in messages), messages
    checked = doctor(folder)
    lines = checked.stdout.splitlines()
    if reason_starts == "config: ":  # doctor reads the same file: its first line names what is wrong in it
        config_error = safe["reason"].split("; built-in defaults")[0].removeprefix("config: ")
        assert lines[0] == f"FAIL  config     {config_error}" and "fix: edit the file" in lines[1], lines
    else:
        at = next(i for i, line in enumerate(lines) if line.startswith("FAIL  safe mode"))
        assert safe["reason"] in lines[at] and "fix: " in lines[at + 1]
        assert "systemctl reload mona-edge" in lines[at + 1]
    assert checked.returncode == 1
    # Fixed and reloaded: safe mode ends, and the configured portrait is on screen.
    (folder / "config.toml").write_text(fixed)
    daemon.proc.send_signal(signal.SIGHUP)
    status = daemon.status_when(lambda s: s["reloads"] == 1 and s["state"] == "READY")
    assert status["safe_mode"] is None and status["reasons"] == [] and status["last_error"] is None
    assert status["pack"] == load_pack(TEST_PACK).name
    np.testing.assert_array_equal(screen(folder), centre_frame(TEST_PACK))
    time.sleep(0.3)
    assert any(m.startswith("STATUS=ready") for m in daemon.received()[-5:])
    out = daemon.finish()
    assert daemon.proc.returncode == 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith("ERROR edge.service: safe mode: " + reason_starts), out
    assert "safe mode ended" in out
    return status


def test_a_broken_pack_at_start_shows_the_default_pack_until_a_good_reload(folder):
    broken = folder / "broken-pack"
    shutil.copytree(TEST_PACK, broken)
    data = bytearray((broken / "base.png").read_bytes())
    data[len(data) // 2] ^= 0x01
    (broken / "base.png").write_bytes(bytes(data))
    (folder / "config.toml").write_text(config_text(folder, pack=broken))
    daemon = Daemon(folder)
    try:
        status = daemon.status_when(lambda s: s["state"] == "DEGRADED")
        assert status["pack"] == load_pack(default_pack_path()).name
        assert "base.png" in status["safe_mode"]["reason"]
        assert status["safe_mode"]["reason"].endswith("; showing the bundled default pack")
        assert_safe_then_fixed(folder, daemon, f"pack: {broken}", default_pack_path(), config_text(folder))
    finally:
        daemon.finish()


@pytest.mark.skipif(Path("/var/lib/mona-edge/packs/current").exists(), reason="the default pack path is installed")
def test_a_broken_config_at_start_runs_on_what_of_it_can_be_used_until_a_good_reload(folder):
    # [pack] is unusable: its defaults (a pack path not provisioned here) -> the bundled default pack; the
    # other sections are valid on their own and kept: the same framebuffer file and status socket.
    (folder / "config.toml").write_text(config_text(folder, pack="42"))
    daemon = Daemon(folder)
    try:
        status = daemon.status_when(lambda s: s["state"] == "DEGRADED")
        reason = status["safe_mode"]["reason"]
        assert reason.startswith(f"config: {folder / 'config.toml'}: [pack] path = 42: expected a file path")
        assert "; built-in defaults for [pack]; pack: /var/lib/mona-edge/packs/current" in reason
        assert status["config"] == str(folder / "config.toml")  # still the file a reload re-reads
        assert_safe_then_fixed(folder, daemon, "config: ", default_pack_path(), config_text(folder))
    finally:
        daemon.finish()


def test_a_damaged_model_at_start_runs_the_bundled_model_until_a_good_reload(folder):
    model = folder / f"{SHORT}.tflite"
    data = bytearray((MODELS / f"{SHORT}.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    shutil.copy(MODELS / f"{SHORT}.json", folder / f"{SHORT}.json")
    (folder / "config.toml").write_text(config_text(folder, model=model))
    daemon = Daemon(folder)
    try:
        status = daemon.status_when(lambda s: s["state"] == "DEGRADED" and s["frames"] > 3)
        reason = status["safe_mode"]["reason"]
        assert f"but its record {SHORT}.json expects" in reason
        assert reason.endswith(f"; running the bundled model {MODELS / SHORT}.tflite")
        assert status["detect_ms"]["p50"] is not None  # the bundled model detects meanwhile
        assert_safe_then_fixed(folder, daemon, f"model: {model}: sha256 ", TEST_PACK, config_text(folder))
    finally:
        daemon.finish()


def test_a_reload_that_still_fails_keeps_safe_mode(folder):
    (folder / "config.toml").write_text(config_text(folder, pack=folder / "nowhere"))
    daemon = Daemon(folder)
    try:
        daemon.status_when(lambda s: s["state"] == "DEGRADED")
        daemon.proc.send_signal(signal.SIGHUP)  # nothing fixed
        status = daemon.status_when(lambda s: s["errors"]["reload"] == 1)
        assert status["state"] == "DEGRADED" and status["safe_mode"]["reason"].startswith(f"pack: {folder / 'nowhere'}")
        assert status["reloads"] == 0
        np.testing.assert_array_equal(screen(folder), centre_frame(default_pack_path()))
    finally:
        out = daemon.finish()
    assert daemon.proc.returncode == 0 and "Traceback" not in out, out


# --- in-process: what the boundary decides -----------------------------------------------------------------
def test_load_config_safely_keeps_the_valid_sections_and_defaults_the_rest(tmp_path):
    from edge.config import Config
    from edge.service import load_config_safely

    path = tmp_path / "config.toml"
    path.write_text('[display]\nrotation = 90\n\n[gaze]\nhysterisis = 0.2\n\n[pack]\npath = "/srv/p"\n')
    config, reason = load_config_safely(path)
    assert reason == (f'config: {path}: [gaze] unknown key "hysterisis" (did you mean "hysteresis"?): expected '
                      "one of " + reason.split("expected one of ")[1].split(";")[0]
                      + "; built-in defaults for [gaze]")
    assert config.display.rotation == 90 and str(config.pack.path) == "/srv/p" and config.gaze == Config().gaze
    assert config.path == path
    path.write_text("[display\nrotation = 90\n")  # not TOML at all: every section defaulted
    config, reason = load_config_safely(path)
    assert reason.startswith(f"config: {path}: not valid TOML") and reason.endswith("built-in defaults for the whole file")
    assert config == Config() and config.path == path
    config, reason = load_config_safely(tmp_path / "gone.toml")  # a --config that is not there (yet)
    assert reason.startswith(f"config: {tmp_path / 'gone.toml'}: no such config file") and config == Config()
    path.write_text("[display]\nrotation = 180\n")
    assert load_config_safely(path) == (load_config_safely(path)[0], None)


def test_no_usable_model_at_all_stops_detection_but_shows_the_portrait(tmp_path, monkeypatch):
    import edge.service
    from edge.camera import VideoFileSource
    from edge.config import config_from_dict
    from edge.display import HeadlessSink
    from edge.errors import ModelError
    from edge.pipeline import NoDetector
    from edge.service import EdgeService

    def no_bundled_model(config):
        raise ModelError(f"{SHORT}.tflite: bundled model not found")

    monkeypatch.setattr(edge.service, "make_bundled_detector", no_bundled_model)
    write_clip(tmp_path / "clip.avi", [[] for _ in range(5)], FPS, photo=np.zeros((512, 512, 3), np.uint8))
    config = config_from_dict({"detector": {"range": "short", "model": str(tmp_path / "gone.tflite")},
                               "pack": {"path": str(TEST_PACK)}})
    display = HeadlessSink(SIZE)
    service = EdgeService(config, None, display=display, serve_status=False,
                          camera=VideoFileSource(tmp_path / "clip.avi", realtime=False, loop=True))
    service.start()
    try:
        assert isinstance(service.parts.detector, NoDetector)
        assert service.safe_mode == (f"model: {tmp_path / 'gone.tflite'}: model file not found; the bundled model "
                                     f"cannot be used either ({SHORT}.tflite: bundled model not found); detection "
                                     "stopped, eyes at centre")
        for _ in range(10):
            result = service.step()
        assert result.error is None and result.index == service.pack.centre_index
        assert service.status()["state"] == "DEGRADED"
        np.testing.assert_array_equal(display.snapshot(), centre_frame(TEST_PACK))
    finally:
        service.shutdown()
