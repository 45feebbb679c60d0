"""Config: defaults, one-line errors that name the key and what is allowed, and faithful writes."""

from __future__ import annotations

import json
import os
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    Offset,
    calibration_keys,
    config_from_dict,
    dump_default_config,
    load_config,
    write_config_values,
)
from edge.errors import ExitStatus, MonaEdgeError


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{p}: "), message
    return message


# --- defaults -----------------------------------------------------------------------------------------
def test_empty_file_gives_defaults(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert cfg == Config()
    assert cfg.path == tmp_path / "config.toml"
    assert cfg.camera.source == "picamera2" and cfg.camera.size == (640, 480)
    assert cfg.camera.retry_initial == 1.0 and cfg.camera.retry_max == 30.0
    assert cfg.detector.range == "full" and cfg.detector.model is None and cfg.detector.min_score is None
    assert cfg.gaze.mapping == "geometry" and cfg.gaze.fov_deg == pytest.approx(62.2)
    assert cfg.gaze.camera_offset_mm == Offset(0.0, 0.0) and cfg.gaze.ipd_mm == 63.0
    assert cfg.gaze.calibration is None
    assert cfg.display.kind == "auto" and cfg.display.size is None and cfg.display.device is None
    assert cfg.pack.path == Path("/var/lib/mona-edge/packs/current")
    assert cfg.service.status_socket == Path("/run/mona-edge/status.sock")
    assert cfg.service.socket_mode == 0o660 and cfg.service.log_level == "info"


def test_missing_default_file_gives_defaults_but_a_named_file_must_exist(tmp_path, monkeypatch):
    import edge.config as config

    monkeypatch.setattr(config, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert config.load_config(None) == Config()
    assert config.load_config(tmp_path / "absent.toml") == Config()
    with pytest.raises(ConfigError, match=r"typo\.toml: no such config file") as caught:
        config.load_config(tmp_path / "typo.toml")
    # The user's error, in the one error model: not a ValueError, and the CLI's exit status for a config.
    assert isinstance(caught.value, MonaEdgeError) and not isinstance(caught.value, ValueError)
    assert caught.value.exit_status == ExitStatus.CONFIG
    assert DEFAULT_CONFIG_PATH == Path("/etc/mona-edge/config.toml")


def test_values_are_read_and_typed(tmp_path):
    cfg = load_config(write(tmp_path, """
[camera]
source = "video"
path = "/srv/clip.mp4"
width = 320
height = 240
fps = 15
realtime = false

[detector]
range = "short"
threads = 4
min_score = 0.6

[gaze]
mapping = "linear"
fov_deg = 66
camera_offset_mm = { x = 200, y = -150.5 }
mirror = true

[display]
sink = "framebuffer"
device = "/dev/fb1"
rotation = 270

[service]
socket_mode = "0640"
log_level = "debug"
"""))
    assert cfg.camera.source == "file" and cfg.camera.path == Path("/srv/clip.mp4")
    assert cfg.camera.size == (320, 240) and cfg.camera.fps == 15.0 and isinstance(cfg.camera.fps, float)
    assert cfg.camera.realtime is False
    assert (cfg.detector.range, cfg.detector.threads, cfg.detector.min_score) == ("short", 4, 0.6)
    assert cfg.gaze.camera_offset_mm == Offset(200.0, -150.5) and cfg.gaze.mirror is True
    assert cfg.display.kind == "fbdev" and cfg.display.device == "/dev/fb1" and cfg.display.rotation == 270
    assert cfg.service.socket_mode == 0o640 and cfg.service.log_level == "debug"


def test_dump_default_config_is_commented_and_loads_as_the_defaults(tmp_path):
    text = dump_default_config()
    assert load_config(write(tmp_path, text)) == Config()
    data = tomllib.loads(text)
    assert set(data) == {"camera", "detector", "motion", "gaze", "display", "screen", "pack", "service"}
    # every key is documented: a comment line right above each key line
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), line
    # optional keys appear as commented examples that are themselves valid
    examples = "\n".join(ln[2:] for ln in lines if ln.startswith("# ") and " = " in ln and "[" not in ln.split("=")[0])
    assert "# min_score = 0.6" in text and "# calibration_left_x = 0.82" in text
    assert "calibration_right_x = 0.18" in examples


# --- errors: one line, key, value and what is allowed -------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ('[camera]\nsource = "webcam"',
     '[camera] source = "webcam": expected one of "picamera2", "opencv", "video", "file"'),
    ("[camera]\nwidth = 320.5", "[camera] width = 320.5: expected an integer in 64..4096"),
    ('[camera]\ndevice = "video0"',
     '[camera] device = "video0": expected a camera number (integer >= 0) or a device path such as "/dev/video0"'),
    ('[camera]\nloop = "yes"', '[camera] loop = "yes": expected true or false'),
    ("[camera]\nretry_initial_s = 0", "[camera] retry_initial_s = 0: expected a number in 0.05..600"),
    ('[detector]\nrange = "long"', '[detector] range = "long": expected one of "short", "full"'),
    ("[detector]\nthreads = 8", "[detector] threads = 8: expected an integer in 1..4"),
    ("[detector]\nmin_score = 1.5", "[detector] min_score = 1.5: expected a number in 0.01..0.99"),
    ('[detector]\nmodel = ""', '[detector] model = "": expected a file path (a non-empty string)'),
    ('[gaze]\nfov_deg = "wide"', '[gaze] fov_deg = "wide": expected a number in 20..170'),
    ("[gaze]\nfov_deg = true", "[gaze] fov_deg = true: expected a number in 20..170"),
    ('[gaze]\nmapping = "cubic"', '[gaze] mapping = "cubic": expected one of "geometry", "linear"'),
    ("[gaze]\nhysteresis = 1.5", "[gaze] hysteresis = 1.5: expected a number in 0..1"),
    ("[gaze]\ncamera_offset_mm = 200", "[gaze] camera_offset_mm = 200: expected a table such as { x = 0.0, y = 0.0 }"),
    ('[gaze]\ncamera_offset_mm = { x = "left" }', '[gaze] camera_offset_mm.x = "left": expected a number in -5000..5000'),
    ("[gaze]\ncalibration_left_x = 2", "[gaze] calibration_left_x = 2: expected a number in 0..1"),
    ("[gaze]\nmax_speed_fps = inf", "[gaze] max_speed_fps = inf: expected a number in 1..1000"),
    ('[display]\nsink = "x11"',
     '[display] sink = "x11": expected one of "auto", "pygame", "framebuffer", "fbdev", "file", "headless"'),
    ("[display]\nrotation = 45", "[display] rotation = 45: expected one of 0, 90, 180, 270"),
    ('[display]\ndevice = "fb0"', '[display] device = "fb0": expected a device path such as "/dev/fb0"'),
    ("[display]\ndrm_card = -1", "[display] drm_card = -1: expected an integer in 0..15"),
    ("[pack]\npath = 3", "[pack] path = 3: expected a file path (a non-empty string)"),
    ('[service]\nlog_level = "loud"', '[service] log_level = "loud": expected one of "debug", "info", "warning", "error"'),
    ("[service]\nsocket_mode = 0o1777",
     "[service] socket_mode = 0o1777: expected a permission mode with read-write for the owner and nothing for "
     "others, such as 0o660 (the default: the service's group may ask) or 0o600 (the service user only); "
     'a TOML octal integer or a string such as "0660"'),
    ("[service]\nwatchdog = 1", "[service] watchdog = 1: expected true or false"),
])
def test_bad_value_is_one_line_naming_key_and_allowed_values(tmp_path, text, expected):
    message = error_of(tmp_path, text)
    assert message == f"{tmp_path / 'config.toml'}: {expected}"


def test_unknown_keys_and_sections_are_refused(tmp_path):
    message = error_of(tmp_path, "[gaze]\nfov = 62")
    assert '[gaze] unknown key "fov" (did you mean "fov_deg"?)' in message
    assert "expected one of mapping, fov_deg, camera_offset_mm," in message
    message = error_of(tmp_path, "[gaze]\ncamera_offset_mm = { x = 1, z = 2 }")
    assert '[gaze] unknown key "camera_offset_mm.z"' in message and "camera_offset_mm.x, camera_offset_mm.y" in message
    message = error_of(tmp_path, "[gazes]\nmirror = true")
    assert "unknown section [gazes] (did you mean [gaze]?)" in message and "[camera], [detector]" in message
    message = error_of(tmp_path, "mirror = true")
    assert 'key "mirror" outside any section' in message
    message = error_of(tmp_path, "camera = 3")
    assert message.endswith("camera = 3: expected a [camera] table")


def test_syntax_and_encoding_errors_are_one_line(tmp_path):
    message = error_of(tmp_path, "[gaze\nfov_deg = 1")
    assert "not valid TOML" in message and "line 1" in message
    p = tmp_path / "config.toml"
    p.write_bytes(b"[gaze]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


@pytest.mark.parametrize("text, expected", [
    ('[camera]\nsource = "video"', '[camera] path: required when source = "video"'),
    ('[camera]\npath = "/x.mp4"', '[camera] path = "/x.mp4": only used when source = "video" (source is "picamera2")'),
    ('[camera]\nsource = "picamera2"\ndevice = "/dev/video0"',
     '[camera] device = "/dev/video0": expected a camera number (integer >= 0) for source = "picamera2"'),
    ("[camera]\nretry_initial_s = 10\nretry_max_s = 5", "[camera] retry_max_s = 5.0: expected a number >= retry_initial_s"),
    ('[display]\nsink = "headless"', '[display] width: required (with height) when sink = "headless"'),
    ('[display]\nsink = "file"\nwidth = 64\nheight = 48', '[display] output: required when sink = "file"'),
    ("[display]\nwidth = 64", "[display] height: required when width is set"),
    ('[display]\nsink = "pygame"\ndevice = "/dev/fb0"',
     '[display] device = "/dev/fb0": only used when sink = "framebuffer" or "auto" (sink is "pygame")'),
    ('[display]\nsink = "framebuffer"\ndrm_card = 1', '[display] drm_card = 1: only used when sink = "pygame" or "auto"'),
    ('[display]\nsink = "file"\noutput = "/tmp/x.fb"\nwidth = 64\nheight = 48\ndrm_card = 1',
     '[display] drm_card = 1: only used when sink = "pygame" or "auto" (sink is "file")'),
    ("[gaze]\ncalibration_left_x = 0.8", "[gaze] calibration_centre_x: required with calibration_left_x"),
    ("[gaze]\ncalibration_left_x = 0.8\ncalibration_centre_x = 0.9\ncalibration_right_x = 0.1",
     "[gaze] calibration_centre_x = 0.9: expected a value strictly between calibration_left_x (0.8)"),
])
def test_rules_between_keys_name_the_key(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_config_from_dict_and_equality_drives_reload():
    a = config_from_dict({"detector": {"threads": 1}})
    b = config_from_dict({"detector": {"threads": 1}, "gaze": {"mirror": True}})
    assert a.detector == b.detector and a.gaze != b.gaze
    with pytest.raises(ConfigError, match=r"^<config>: \[detector\] threads = 0"):
        config_from_dict({"detector": {"threads": 0}})


# --- writing --------------------------------------------------------------------------------------------
USER_FILE = """\
# my frame in the hall
[camera]
source = "opencv"   # the USB one
device = 1

[gaze]
# the camera sits 12 cm right of her eyes
camera_offset_mm = { x = 120, y = 0 }
mapping = "geometry"
idle_seconds = 6

# display below
[display]
rotation = 90
"""


def test_write_config_values_keeps_comments_and_other_content_and_makes_a_backup(tmp_path):
    p = write(tmp_path, USER_FILE)
    os.chmod(p, 0o640)
    values = calibration_keys(0.8, 0.5, 0.2)
    cfg = write_config_values(p, "gaze", values)
    text = p.read_text()
    assert cfg.gaze.calibration == (0.8, 0.5, 0.2) and cfg.gaze.mapping == "linear"
    assert load_config(p) == cfg
    # the user's comments and unrelated lines are untouched; only mapping's line changed
    for line in USER_FILE.splitlines():
        if line != 'mapping = "geometry"':
            assert line in text.splitlines(), line
    assert 'mapping = "linear"' in text
    assert text.index("calibration_left_x") < text.index("# display below")
    assert cfg.camera.source == "opencv" and cfg.camera.device == 1 and cfg.display.rotation == 90
    assert cfg.gaze.camera_offset_mm == Offset(120.0, 0.0) and cfg.gaze.idle_seconds == 6.0
    # the previous file is kept, byte for byte; permissions carried over; no temp files left
    assert (tmp_path / "config.toml.bak").read_text() == USER_FILE
    assert p.stat().st_mode & 0o777 == 0o640
    assert sorted(x.name for x in tmp_path.iterdir()) == ["config.toml", "config.toml.bak"]
    # writing again updates in place rather than adding duplicates
    write_config_values(p, "gaze", calibration_keys(0.7, 0.45, 0.3))
    again = p.read_text()
    assert again.count("calibration_left_x") == 1 and load_config(p).gaze.calibration == (0.7, 0.45, 0.3)
    assert (tmp_path / "config.toml.bak").read_text() == text


def test_write_config_values_adds_a_missing_section_and_creates_a_missing_file(tmp_path):
    p = write(tmp_path, '[camera]\nsource = "opencv"\n')
    write_config_values(p, "service", {"log_level": "debug"})
    assert p.read_text() == '[camera]\nsource = "opencv"\n\n[service]\nlog_level = "debug"\n'
    fresh = tmp_path / "sub" / "config.toml"
    cfg = write_config_values(fresh, "gaze", {"mirror": True, "camera_offset_mm": {"x": -50.0, "y": 10.0}})
    assert cfg.gaze.mirror is True and cfg.gaze.camera_offset_mm == Offset(-50.0, 10.0)
    assert load_config(fresh) == cfg and not (tmp_path / "sub" / "config.toml.bak").exists()


def test_write_config_values_falls_back_to_reemitting_when_lines_cannot_be_edited(tmp_path):
    # the offset lives in its own [gaze.camera_offset_mm] table, which the line editor cannot merge a new
    # camera_offset_mm line into: the result must still be exact
    p = write(tmp_path, '[gaze]\nmapping = """linear"""\n[gaze.camera_offset_mm]\nx = 5\ny = 6\n')
    write_config_values(p, "gaze", {"fov_deg": 66.0, "camera_offset_mm": {"x": 7.0, "y": 8.0}})
    cfg = load_config(p)
    assert cfg.gaze.mapping == "linear" and cfg.gaze.fov_deg == 66.0
    assert cfg.gaze.camera_offset_mm == Offset(7.0, 8.0)


def test_write_config_values_refuses_bad_values_and_leaves_the_file_alone(tmp_path):
    p = write(tmp_path, USER_FILE)
    with pytest.raises(ConfigError, match=r"\[gaze\] calibration_left_x = 1.7: expected a number in 0..1"):
        write_config_values(p, "gaze", calibration_keys(1.7, 0.5, 0.2))
    with pytest.raises(ConfigError, match=r'unknown key "fov"'):
        write_config_values(p, "gaze", {"fov": 60})
    with pytest.raises(ConfigError, match=r"unknown section \[gazes\]"):
        write_config_values(p, "gazes", {"mirror": True})
    assert p.read_text() == USER_FILE and not (tmp_path / "config.toml.bak").exists()


def test_calibration_keys_from_pixels():
    assert calibration_keys(512, 320, 128, frame_width=640) == {
        "mapping": "linear", "calibration_left_x": 0.8, "calibration_centre_x": 0.5, "calibration_right_x": 0.2}
    with pytest.raises(ConfigError, match="frame width"):
        calibration_keys(1, 2, 3, frame_width=0)


def test_a_config_that_cannot_be_read_or_written_is_a_config_error_naming_it(tmp_path):
    """OSErrors at the user's file are wrapped where the file is opened: one line naming the path."""
    folder = tmp_path / "conf.d"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"conf\.d: not a file"):
        load_config(folder)
    blocker = tmp_path / "etc"
    blocker.write_text("a file where the config's folder should be")
    target = blocker / "config.toml"
    with pytest.raises(ConfigError, match=r"etc/config\.toml: cannot write: .*; the config is unchanged"):
        write_config_values(target, "gaze", {"mirror": True})
    assert blocker.read_text() == "a file where the config's folder should be"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="changing a file's owner needs root")
def test_write_config_values_keeps_owner_and_group_when_run_as_root(tmp_path):
    # sudo mona-edge calibrate must leave a config the service user can still read
    p = write(tmp_path, USER_FILE)
    os.chown(p, 4321, 4322)
    os.chmod(p, 0o640)
    write_config_values(p, "gaze", {"mirror": True})
    for f in (p, tmp_path / "config.toml.bak"):
        st = f.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4321, 4322, 0o640)


# --- inputs that used to escape as tracebacks (issue 11) -------------------------------------------------
DEEP = 3000  # far past the few hundred levels at which tomllib runs out of recursion


@pytest.mark.parametrize("text, expected", [
    # math.isfinite(10**400) raised OverflowError
    ("[gaze]\nfov_deg = " + "1" * 400, "[gaze] fov_deg = <an integer of 400 digits>: expected a number in 20..170"),
    ("[gaze]\nfov_deg = 0x" + "f" * 4000,
     "[gaze] fov_deg = <an integer of about 4817 digits>: expected a number in 20..170"),
    ("[camera]\nwidth = -" + "9" * 400, "[camera] width = <an integer of 400 digits>: expected an integer in 64..4096"),
    # tomllib lets int()'s own ValueError through for more than 4300 decimal digits
    ("[gaze]\nfov_deg = " + "1" * 5000, "not valid TOML here: a number too long to read"),
    # RecursionError from tomllib
    ("[gaze]\nfov_deg = " + "[" * DEEP + "]" * DEEP,
     "not valid TOML here: arrays or inline tables nested too deeply (line 2, key fov_deg); "
     "a mona-edge config nests at most 2 levels"),
    ("[gaze]\ncamera_offset_mm = " + "{ x = " * DEEP + "1" + " }" * DEEP,
     "not valid TOML here: arrays or inline tables nested too deeply (line 2, key camera_offset_mm)"),
    # deep enough to be odd, shallow enough to parse: quoted briefly
    ("[gaze]\nfov_deg = " + "[" * 200 + "]" * 200, "[gaze] fov_deg = [[[...]]]: expected a number in 20..170"),
    # TOML dates have no TOML writer here: quoting one in the message raised TypeError
    ("[gaze]\nidle_seconds = 1979-05-27T07:32:00Z",
     "[gaze] idle_seconds = 1979-05-27T07:32:00+00:00: expected a number in 0..3600"),
    ("[detector]\nrange = 07:32:00", '[detector] range = 07:32:00: expected one of "short", "full"'),
    # a message is one line whatever the key or value holds
    ('[gaze]\n"fov\\u2028deg" = 1', '[gaze] unknown key "fov\\u2028deg"'),
    ('["cam\\nera"]\nx = 1', 'unknown section ["cam\\nera"]'),
    ('[display]\nsink = "' + "x" * 100_000 + '"', '[display] sink = "xxxxxxxx'),
])
def test_extreme_values_are_one_line_naming_file_and_key(tmp_path, text, expected):
    message = error_of(tmp_path, text)
    # bounded whatever the value holds; the file's path (pytest's, of any length on another machine) aside
    quoted = message.removeprefix(f"{tmp_path / 'config.toml'}: ")
    assert expected in message and len(quoted) < 600, message


@pytest.mark.parametrize("mode", ["0o777", "0o666", "0o664", "0o662", "0o661", "0o007", '"0666"', '"777"'])
def test_a_world_accessible_socket_mode_is_refused(tmp_path, mode):
    message = error_of(tmp_path, f"[service]\nsocket_mode = {mode}")
    assert "[service] socket_mode = " in message
    assert "expected a permission mode with read-write for the owner and nothing for others" in message
    assert "0o660" in message and "0o600" in message


@pytest.mark.parametrize("mode, value", [("0o660", 0o660), ("0o600", 0o600), ("0o640", 0o640), ('"0660"', 0o660),
                                         ("0o700", 0o700)])
def test_socket_modes_without_others_are_accepted(tmp_path, mode, value):
    assert load_config(write(tmp_path, f"[service]\nsocket_mode = {mode}")).service.socket_mode == value


def test_socket_mode_without_owner_read_write_is_refused(tmp_path):
    # connecting needs write; a daemon that cannot probe its own socket would take it for a stale one
    assert "socket_mode = 0o060: expected" in error_of(tmp_path, "[service]\nsocket_mode = 0o060")
    assert "socket_mode = 0o400: expected" in error_of(tmp_path, "[service]\nsocket_mode = 0o400")


def test_a_file_too_big_to_be_a_config_is_refused_before_parsing(tmp_path):
    from edge.config import MAX_CONFIG_BYTES

    message = error_of(tmp_path, "# " + "x" * MAX_CONFIG_BYTES + "\n")
    assert message.endswith("larger than 1024 KiB: not a mona-edge config (the commented default is about 10 KiB)")


BAD_AT_START = {
    "overflow": "[gaze]\nfov_deg = " + "1" * 400 + "\n",
    "deep-arrays": "[gaze]\nfov_deg = " + "[" * DEEP + "]" * DEEP + "\n",
    "deep-tables": "[gaze]\ncamera_offset_mm = " + "{ x = " * DEEP + "1" + " }" * DEEP + "\n",
    "world-socket": "[service]\nsocket_mode = 0o666\n",
}


@pytest.mark.parametrize("name", sorted(BAD_AT_START))
def test_a_command_reading_a_bad_config_prints_one_error_line_and_exits_with_the_config_status(tmp_path, name):
    """At start these printed a traceback: one line naming the file and key, exit status 3."""
    import subprocess
    import sys

    cfg = write(tmp_path, BAD_AT_START[name])
    proc = subprocess.run([sys.executable, "-m", "edge.commands", "status", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitStatus.CONFIG, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"mona-edge status: error: {cfg}: ")
    assert ("socket_mode" if name == "world-socket" else "fov_deg" if name != "deep-tables" else "camera_offset_mm") \
        in lines[0]


@pytest.mark.parametrize("name", ["overflow", "deep-arrays", "deep-tables"])
def test_the_daemon_started_on_a_bad_config_says_so_in_one_line_without_a_traceback(tmp_path, name):
    """``mona-edge run`` on these printed a traceback. The daemon starts in safe mode instead of exiting
    (edge.service); whatever it does, the config's fault is one line naming the file, never a traceback.
    The rest of the file is a working headless frame, so that the daemon can come up here."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    repo = Path(__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="me-", dir="/tmp"))
    sock = folder / "status.sock"
    cfg = write(tmp_path, BAD_AT_START[name] + (
        f'[camera]\nsource = "video"\npath = "{repo / "assets" / "clips" / "viewer-walk.mp4"}"\n'
        '[detector]\nrange = "short"\nthreads = 1\n[display]\nsink = "headless"\nwidth = 96\nheight = 128\n'
        f'[pack]\npath = "{repo / "assets" / "packs" / "test"}"\n[service]\nstatus_socket = "{sock}"\n'))
    log = tmp_path / "stderr"
    with log.open("w") as stderr:  # a file, not a pipe: a long traceback must not block the daemon
        proc = subprocess.Popen([sys.executable, "-m", "edge.commands", "run", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None:
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        err = log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    assert "Traceback" not in err and proc.returncode != ExitStatus.BUG, err
    if name == "overflow":  # the rest of the file is kept: the daemon ran, in safe mode, and said why once
        about_config = [line for line in err.splitlines() if str(cfg) in line]
        assert len(about_config) == 1 and "[gaze] fov_deg = <an integer of 400 digits>" in about_config[0], err
    # Too deep to parse at all: nothing of the file can be kept, and the built-in defaults' screen (KMS/DRM)
    # does not open here, so the daemon ends with that one line instead (on a Pi: safe mode on the defaults).


# --- fuzzed: any mutation of the default config is a Config or one ConfigError line -----------------------
_BARE = "abcdefghijklmnopqrstuvwxyz_-0123456789"
_NAMES = ["camera", "detector", "gaze", "display", "pack", "service", "source", "fov_deg", "socket_mode", "x",
          "camera_offset_mm", "path", "width", "rotation", "log_level", "calibration_left_x"]


def _keys() -> st.SearchStrategy[str]:
    """Keys as TOML spells them: known names, bare names, dotted, and quoted with anything inside."""
    return st.one_of(st.sampled_from(_NAMES), st.text(_BARE, min_size=1, max_size=12),
                     st.lists(st.sampled_from(_NAMES), min_size=2, max_size=3).map(".".join),
                     st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)))


def _scalars() -> st.SearchStrategy[str]:
    """TOML scalar values as text, the extremes included."""
    return st.one_of(
        st.integers().map(str),
        st.integers(-(10 ** 500), 10 ** 500).map(str),
        st.integers(1, 6000).map(lambda n: "1" * n),
        st.integers(1, 5000).map(lambda n: "0x" + "f" * n),
        st.floats().map(lambda f: "nan" if f != f else ("inf" if f == float("inf") else ("-inf" if f == float("-inf")
                                                                                          else repr(f)))),
        st.sampled_from(["1e400", "-1e400", "0o777", "0o1777", "0b101", "+0.0", "1_000", "true", "false",
                         "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "1979-05-27 07:32:00.999999"]),
        st.text(max_size=30).map(lambda s: json.dumps(s, ensure_ascii=False)),
        st.text(max_size=30).map(lambda s: json.dumps(s)),  # \uXXXX escapes, surrogates included
        st.text(max_size=20).map(lambda s: "'" + s.replace("'", "").replace("\n", "") + "'"),
        st.sampled_from(['"picamera2"', '"video"', '"/dev/video0"', '"/tmp/x.mp4"', '"headless"', '"file"',
                         '"short"', '"linear"', '"0660"', '"debug"']),
    )


def _values() -> st.SearchStrategy[str]:
    """Any TOML value as text: scalars, arrays and inline tables of them, and nesting thousands deep."""
    nested = st.recursive(
        _scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(lambda vs: "[" + ", ".join(vs) + "]"),
            st.lists(st.tuples(_keys(), inner), max_size=4).map(
                lambda kvs: "{ " + ", ".join(f"{k} = {v}" for k, v in kvs) + " }")),
        max_leaves=8)
    deep = st.integers(1, 5000)
    return st.one_of(nested,
                     deep.map(lambda n: "[" * n + "]" * n),
                     deep.map(lambda n: "{ x = " * n + "1" + " }" * n),
                     deep.map(lambda n: "[{ a = " * n + "1" + " }]" * n),
                     st.text(max_size=30))  # anything at all where a value should be


@st.composite
def mutated_default_config(draw) -> str:
    """The commented default config with a few lines changed: a value replaced, a key renamed, added,
    duplicated or removed, a header renamed or added, an example uncommented, nesting added."""
    lines = dump_default_config().splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        kind = draw(st.sampled_from(["value", "key", "add", "duplicate", "delete", "header", "uncomment", "raw"]))
        key, sep, _value = line.partition(" = ")
        if kind == "value" and sep and not line.startswith("#"):
            lines[i] = f"{key} = {draw(_values())}"
        elif kind == "key" and sep and not line.startswith("#"):
            lines[i] = f"{draw(_keys())} = {_value}"
        elif kind == "add":
            lines.insert(i, f"{draw(_keys())} = {draw(_values())}")
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "delete":
            del lines[i]
        elif kind == "header":
            header = draw(st.one_of(_keys().map(lambda k: f"[{k}]"), _keys().map(lambda k: f"[[{k}]]")))
            lines.insert(i, header)
        elif kind == "uncomment" and line.startswith("# ") and " = " in line:
            lines[i] = line[2:]
        elif kind == "raw":
            lines.insert(i, draw(st.text(max_size=40)))
    return "\n".join(lines) + "\n"


@settings(max_examples=300, derandomize=True, deadline=timedelta(seconds=5),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=mutated_default_config())
def test_any_mutation_of_the_default_config_is_a_config_or_one_config_error_line(text):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        p = Path(folder) / "config.toml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cfg = load_config(p)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith(f"{p}: ") and len(message.splitlines()) == 1, message
            assert len(message) < 1000, message
        else:
            assert isinstance(cfg, Config) and cfg.path == p
