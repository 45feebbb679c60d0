"""Screen power: the policy, and each mechanism's real call through its recorded boundary (ioctl, command).

The DRM path is checked against a small model of the kernel's DRM master rules (one master; the first
opener without one becomes it; property changes need it): there is no DRM device here. FBIOBLANK and
the DRM queries also go through the real fcntl.ioctl on a real file, and cec-ctl is the real tool where
it is installed (no CEC adapter here: its failure must become one warning).
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import logging
import os
import shutil
import subprocess

import numpy as np
import pytest

from edge import screen_power as sp
from edge.config import ScreenConfig, config_from_dict
from edge.display import HeadlessSink


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def noon() -> datetime.time:
    return datetime.time(12, 0)


class Recorder:
    """A mechanism that records its calls (for the policy tests)."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def off(self) -> None:
        self.calls.append("off")

    def on(self) -> None:
        self.calls.append("on")


def controller(settings: ScreenConfig, mechanisms, clock, *, local=noon, redraws=None):
    redraws = [] if redraws is None else redraws
    return sp.ScreenPower(settings, mechanisms, lambda: redraws.append(clock()), clock=clock,
                          wall_clock=lambda: 1_800_000_000.0, local_time=local)


# --- the kernel's numbers --------------------------------------------------------------------------------
def test_ioctl_numbers_are_the_kernel_headers():
    # <drm/drm.h>: the structs' sizes are part of the request number, so a wrong layout shows here.
    assert sp.DRM_IOCTL_MODE_GETRESOURCES == 0xC04064A0
    assert sp.DRM_IOCTL_MODE_GETCONNECTOR == 0xC05064A7
    assert sp.DRM_IOCTL_MODE_GETPROPERTY == 0xC04064AA
    assert sp.DRM_IOCTL_MODE_OBJ_SETPROPERTY == 0xC01864BA
    assert (sp.DRM_IOCTL_SET_MASTER, sp.DRM_IOCTL_DROP_MASTER) == (0x641E, 0x641F)
    assert (sp.FBIOBLANK, sp.FB_BLANK_POWERDOWN, sp.FB_BLANK_UNBLANK) == (0x4611, 4, 0)


# --- the policy ------------------------------------------------------------------------------------------
def test_nobody_for_n_minutes_blanks_and_a_viewer_wakes_and_redraws():
    clock, rec, redraws = Clock(), Recorder(), []
    power = controller(ScreenConfig(idle_minutes=10), [rec], clock, redraws=redraws)
    power.observe(True)
    clock.now += 599
    power.observe(False)
    assert power.state == "on" and rec.calls == []
    clock.now += 2
    power.observe(False)
    assert rec.calls == ["off"]
    status = power.status()
    assert status["state"] == "blanked" and status["why"] == "nobody seen for 10 min"
    assert status["since"] == datetime.datetime.fromtimestamp(1_800_000_000).astimezone().isoformat(timespec="seconds")
    power.observe(False)
    assert rec.calls == ["off"]  # a state, not a per-frame call
    clock.now += 1
    power.observe(True)
    assert rec.calls == ["off", "on"] and power.state == "on" and power.status()["why"] is None
    assert redraws == [clock.now]  # waking redraws the portrait


def test_a_room_that_cannot_be_seen_never_blanks_and_wakes_a_blanked_screen():
    clock, rec = Clock(), Recorder()
    power = controller(ScreenConfig(idle_minutes=1), [rec], clock)
    clock.now += 61
    power.observe(False)
    assert power.state == "blanked"
    clock.now += 1
    power.observe(True)  # what the service passes for a camera that is down
    assert power.state == "on"
    for _ in range(5):
        clock.now += 60
        power.observe(True)
    assert rec.calls == ["off", "on"]


def test_night_schedule_over_midnight_blanks_a_minute_after_the_last_viewer_and_ends_in_the_morning():
    clock, rec = Clock(), Recorder()
    now = [datetime.time(22, 59)]
    power = controller(ScreenConfig(idle_minutes=0, night="23:00-07:00"), [rec], clock, local=lambda: now[0])
    power.observe(True)
    clock.now += 120
    power.observe(False)
    assert power.state == "on"  # 22:59: day, and idle_minutes = 0 never blanks for absence
    now[0] = datetime.time(23, 0)
    power.observe(False)
    assert power.state == "blanked" and power.why == "night schedule"
    now[0] = datetime.time(3, 0)
    power.observe(True)  # someone at 3 am: the portrait for them
    assert power.state == "on"
    clock.now += sp.NIGHT_LINGER - 1
    power.observe(False)
    assert power.state == "on"
    clock.now += 2
    power.observe(False)
    assert power.state == "blanked"
    now[0] = datetime.time(7, 0)
    power.observe(False)  # morning: on again
    assert power.state == "on" and rec.calls == ["off", "on", "off", "on"]


def test_night_blank_becomes_an_idle_blank_when_the_morning_comes_to_an_empty_room(caplog):
    clock, rec = Clock(), Recorder()
    now = [datetime.time(6, 0)]
    power = controller(ScreenConfig(idle_minutes=30, night="23:00-07:00"), [rec], clock, local=lambda: now[0])
    clock.now += 3600
    power.observe(False)
    assert power.why == "night schedule"
    now[0] = datetime.time(7, 30)
    with caplog.at_level(logging.INFO, logger="edge.screen_power"):
        power.observe(False)
    assert power.state == "blanked" and power.why == "nobody seen for 30 min" and rec.calls == ["off"]
    assert "still blanked, now because nobody seen for 30 min" in caplog.text


def test_a_reload_changes_the_settings_and_keeps_when_someone_was_last_seen():
    clock, rec = Clock(), Recorder()
    power = controller(ScreenConfig(idle_minutes=0), [rec], clock)
    clock.now += 300
    power.observe(False)
    assert power.state == "on"
    power.configure(ScreenConfig(idle_minutes=5))
    power.observe(False)
    assert power.state == "blanked"


def test_screen_config_keys_are_checked():
    assert config_from_dict({"screen": {"night": " 23:00-07:00 "}}).screen.night == "23:00-07:00"
    assert sp.in_window((23 * 60, 7 * 60), datetime.time(0, 30))
    assert not sp.in_window((23 * 60, 7 * 60), datetime.time(7, 0))
    assert sp.in_window((9 * 60, 17 * 60), datetime.time(9, 0))
    from edge.errors import ConfigError

    for key, value, words in (("night", "23:00-23:00", "HH:MM-HH:MM"), ("night", "24:00-07:00", "HH:MM"),
                              ("night", 2300, "HH:MM"), ("idle_minutes", -1, "0..1440"),
                              ("panel", "dpms", '"auto", "none"'), ("cec_device", "cec0", "device path")):
        with pytest.raises(ConfigError, match=rf"\[screen\] {key} = .*expected .*{words}"):
            config_from_dict({"screen": {key: value}})


# --- FBIOBLANK -------------------------------------------------------------------------------------------
def test_fbioblank_goes_to_the_device_with_powerdown_then_unblank(tmp_path):
    device = tmp_path / "fb0"
    device.write_bytes(b"")
    calls = []

    def ioctl(fd, request, arg):
        calls.append((os.readlink(f"/proc/self/fd/{fd}"), request, arg))

    clock = Clock()
    power = controller(ScreenConfig(idle_minutes=1), [sp.FbBlank(str(device), ioctl=ioctl)], clock)
    clock.now += 60
    power.observe(False)
    power.observe(True)
    assert calls == [(str(device), sp.FBIOBLANK, sp.FB_BLANK_POWERDOWN), (str(device), sp.FBIOBLANK, sp.FB_BLANK_UNBLANK)]


def test_fbioblank_on_a_plain_file_is_one_warning_and_the_frame_keeps_running(tmp_path, caplog):
    """The real fcntl.ioctl: a file laid out like a framebuffer answers ENOTTY."""
    from edge.framebuffer import FramebufferSink

    sink = FramebufferSink(tmp_path / "fb", width=32, height=16, bpp=32)
    picture = np.full((16, 32, 3), 77, np.uint8)
    clock = Clock()

    def redraw():
        sink.show_full(picture)

    power = sp.ScreenPower(ScreenConfig(idle_minutes=1), [sp.FbBlank(str(tmp_path / "fb"))], redraw, clock=clock)
    with caplog.at_level(logging.WARNING, logger="edge.screen_power"):
        for _ in range(3):
            clock.now += 61
            power.observe(False)
            power.observe(True)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "FBIOBLANK" in warnings[0].getMessage() and "ENOTTY" in warnings[0].getMessage()
    assert power.state == "on" and power.changes == 6
    assert "ENOTTY" in power.status()["errors"][0]
    np.testing.assert_array_equal(sink.snapshot(), picture)  # the wake redrew it
    sink.close()


# --- DPMS over DRM ---------------------------------------------------------------------------------------
class FakeDrm:
    """The kernel's DRM side as screen power meets it: two connectors (31 connected, with EDID and DPMS
    properties; 40 not connected), one master at a time, the first opener without a master becomes it,
    and property changes need master. SDL (the display) holds master while it is open."""

    PROPS = {1: b"EDID", 2: b"DPMS"}

    def __init__(self, tmp_path) -> None:
        self.card = str(tmp_path / "card0")
        open(self.card, "wb").close()
        self.master: object | None = None  # "sdl", an fd, or None
        self.dpms: dict[int, int] = {31: 0}
        self.calls: list[str] = []
        self.fail_set: int | None = None

    def open_fd(self, path: str) -> int:
        fd = os.open(path, os.O_RDWR)
        if self.master is None:
            self.master = fd
        self.calls.append("open" + (" (master)" if self.master == fd else ""))
        return fd

    def ioctl(self, fd, request, arg):
        if request == sp.DRM_IOCTL_MODE_GETRESOURCES:
            self.calls.append("GETRESOURCES")
            if arg.count_connectors >= 2 and arg.connector_id_ptr:
                (ctypes.c_uint32 * 2).from_address(arg.connector_id_ptr)[:] = [31, 40]
            arg.count_connectors = 2
        elif request == sp.DRM_IOCTL_MODE_GETCONNECTOR:
            self.calls.append(f"GETCONNECTOR {arg.connector_id}")
            props = [1, 2] if arg.connector_id == 31 else [1]
            if arg.count_props >= len(props) and arg.props_ptr:
                (ctypes.c_uint32 * len(props)).from_address(arg.props_ptr)[:] = props
                (ctypes.c_uint64 * len(props)).from_address(arg.prop_values_ptr)[:] = [0] * len(props)
            arg.count_props = len(props)
            arg.connection = 1 if arg.connector_id == 31 else 2
        elif request == sp.DRM_IOCTL_MODE_GETPROPERTY:
            arg.name = self.PROPS[arg.prop_id]
        elif request == sp.DRM_IOCTL_MODE_OBJ_SETPROPERTY:
            assert arg.obj_type == sp.DRM_MODE_OBJECT_CONNECTOR
            self.calls.append(f"SETPROPERTY {arg.obj_id} {arg.prop_id}={arg.value}")
            if fd != self.master:
                raise OSError(errno.EACCES, "Permission denied")
            if self.fail_set is not None:
                raise OSError(self.fail_set, os.strerror(self.fail_set))
            self.dpms[arg.obj_id] = arg.value
        elif request == sp.DRM_IOCTL_DROP_MASTER:
            self.calls.append("DROP_MASTER")
            if fd != self.master:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.master = None
        else:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")


class SdlScreen(HeadlessSink):
    """What pygame's KMS/DRM display does to DRM master: takes it on open (fails without), drops on close."""

    def __init__(self, drm: FakeDrm, size=(40, 30)) -> None:
        if drm.master is not None:
            raise OSError(errno.EBUSY, "SDL: could not become DRM master")
        super().__init__(size)
        self.drm = drm
        drm.master = "sdl"
        drm.calls.append("SDL open")

    def close(self) -> None:
        if self.drm.master == "sdl":
            self.drm.master = None
        self.drm.calls.append("SDL close")


def drm_setup(tmp_path):
    drm = FakeDrm(tmp_path)
    display = sp.ReleasableDisplay(SdlScreen(drm), lambda: SdlScreen(drm))
    portrait = np.full((30, 40, 3), 200, np.uint8)
    display.show_full(portrait)
    clock = Clock()

    def redraw():
        display.reacquire()
        display.show_full(portrait)

    dpms = sp.DrmDpms(display, [drm.card], ioctl=drm.ioctl, open_fd=drm.open_fd)
    power = sp.ScreenPower(ScreenConfig(idle_minutes=1), [dpms], redraw, clock=clock)
    return drm, display, portrait, clock, power


def test_dpms_takes_master_from_sdl_powers_down_and_gives_it_back_on_wake(tmp_path):
    drm, display, portrait, clock, power = drm_setup(tmp_path)
    fds = len(os.listdir("/proc/self/fd"))
    clock.now += 60
    power.observe(False)
    assert power.state == "blanked" and display.released and drm.dpms[31] == sp.DPMS_OFF
    assert drm.calls == ["SDL open", "open", "GETRESOURCES", "GETRESOURCES", "GETCONNECTOR 31", "GETCONNECTOR 31",
                         "GETCONNECTOR 40", "GETCONNECTOR 40", "SDL close", "open (master)", "SETPROPERTY 31 2=3"]
    display.update((0, 0, 4, 4), np.zeros((4, 4, 3), np.uint8))  # the loop draws on: dropped while dark
    assert not display.snapshot().any()  # the panel is off
    drm.calls.clear()
    power.observe(True)
    assert power.state == "on" and not display.released and drm.dpms[31] == sp.DPMS_ON and drm.master == "sdl"
    assert drm.calls == ["SETPROPERTY 31 2=0", "DROP_MASTER", "SDL open"]
    np.testing.assert_array_equal(display.snapshot(), portrait)  # never a black screen after a wake
    assert len(os.listdir("/proc/self/fd")) == fds  # both of our card fds closed again


def test_dpms_that_cannot_be_set_gives_the_screen_back_at_once(tmp_path, caplog):
    drm, display, portrait, clock, power = drm_setup(tmp_path)
    drm.fail_set = errno.EINVAL
    fds = len(os.listdir("/proc/self/fd"))
    with caplog.at_level(logging.WARNING, logger="edge.screen_power"):
        clock.now += 60
        power.observe(False)
    assert not display.released and drm.master == "sdl"  # the portrait stays up
    np.testing.assert_array_equal(display.snapshot(), portrait)
    assert "DPMS" in caplog.text and "EINVAL" in caplog.text and power.status()["errors"]
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_screen_that_does_not_come_back_is_retried_until_it_does(tmp_path, caplog):
    drm, display, portrait, clock, power = drm_setup(tmp_path)
    clock.now += 60
    power.observe(False)
    drm.master = "stuck"  # another program took the screen meanwhile
    with caplog.at_level(logging.WARNING, logger="edge.screen_power"):
        power.observe(True)
    assert display.released and "retrying" in caplog.text and power.state == "on"
    drm.master = None
    clock.now += 1
    power.observe(True)
    assert display.released  # not before the retry interval
    clock.now += sp.REOPEN_RETRY
    power.observe(True)
    assert not display.released
    np.testing.assert_array_equal(display.snapshot(), portrait)


def test_drm_queries_through_the_real_ioctl_on_a_file_fail_clearly_and_release_nothing(tmp_path, caplog):
    drm = FakeDrm(tmp_path)
    display = sp.ReleasableDisplay(SdlScreen(drm), lambda: SdlScreen(drm))
    power = sp.ScreenPower(ScreenConfig(idle_minutes=1), [sp.DrmDpms(display, [drm.card, str(tmp_path / "card1")])],
                           lambda: None, clock=(clock := Clock()))
    with caplog.at_level(logging.WARNING, logger="edge.screen_power"):
        clock.now += 60
        power.observe(False)
    assert not display.released
    message = power.status()["errors"][0]
    assert "no KMS/DRM output" in message and f"{drm.card}: Inappropriate ioctl for device (ENOTTY)" in message
    assert "card1: No such file or directory (ENOENT)" in message


# --- HDMI-CEC --------------------------------------------------------------------------------------------
def test_cec_standby_and_wake_are_cec_ctl_commands():
    argvs = []

    def run(argv, **kw):
        argvs.append(argv)
        assert kw["timeout"] == sp.CEC_TIMEOUT and kw["capture_output"]
        return subprocess.CompletedProcess(argv, 0, "", "")

    clock = Clock()
    power = controller(ScreenConfig(idle_minutes=1, panel="none", cec_device="/dev/cec0"),
                       sp.mechanisms_for(ScreenConfig(panel="none", cec_device="/dev/cec0"), HeadlessSink((4, 4)),
                                         run=run), clock)
    clock.now += 60
    power.observe(False)
    power.observe(True)
    assert argvs == [["cec-ctl", "--device", "/dev/cec0", "--playback", "--to", "0", "--standby"],
                     ["cec-ctl", "--device", "/dev/cec0", "--playback", "--to", "0", "--image-view-on"]]


@pytest.mark.skipif(shutil.which("cec-ctl") is None, reason="cec-ctl (v4l-utils) is not installed")
def test_the_real_cec_ctl_without_an_adapter_is_one_clear_warning(tmp_path, caplog):
    clock = Clock()
    missing = str(tmp_path / "cec9")
    power = controller(ScreenConfig(idle_minutes=1), [sp.CecPower(missing)], clock)
    with caplog.at_level(logging.WARNING, logger="edge.screen_power"):
        clock.now += 60
        power.observe(False)
        power.observe(True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"cec-ctl --device {missing} --playback --to 0 --standby: exit status" in warnings[0]
    assert "No such file or directory" in warnings[0]  # cec-ctl's own last line
    assert power.state == "on"


def test_a_missing_cec_ctl_says_what_to_install():
    mech = sp.CecPower("/dev/cec0", tool="/nonexistent/cec-ctl")
    with pytest.raises(OSError, match=r"not found \(apt install v4l-utils\)"):
        mech.off()


def test_which_mechanisms_each_display_gets(tmp_path):
    from edge.framebuffer import FramebufferSink

    auto = ScreenConfig()
    names = lambda ms: [type(m).__name__ for m in ms]  # noqa: E731
    releasable = sp.ReleasableDisplay(HeadlessSink((4, 4)), lambda: HeadlessSink((4, 4)), ["/dev/dri/card1"])
    [dpms] = sp.mechanisms_for(auto, releasable)
    assert isinstance(dpms, sp.DrmDpms) and dpms.name == "DPMS /dev/dri/card1"
    with FramebufferSink(tmp_path / "fb", width=8, height=8, bpp=16) as fb:
        [blank] = sp.mechanisms_for(auto, fb)
        assert isinstance(blank, sp.FbBlank) and blank.device == str(tmp_path / "fb") and not blank.is_device
        assert names(sp.mechanisms_for(ScreenConfig(panel="none", cec_device="/dev/cec1"), fb)) == ["CecPower"]
    assert sp.mechanisms_for(auto, HeadlessSink((4, 4))) == []
    assert sp.drm_cards(3) == ["/dev/dri/card3"]
    power = controller(ScreenConfig(idle_minutes=1), [], Clock())
    assert not power.enabled  # nothing can blank a headless screen: it stays "on"


def test_only_a_kmsdrm_pygame_display_is_released_for_dpms(monkeypatch):
    """SDL's dummy driver (as a desktop window) has no DRM master to hand over: left as it is."""
    pytest.importorskip("pygame")
    from edge.display import PygameSink

    sink = PygameSink((64, 48), driver="dummy", fullscreen=False)
    try:
        assert sp.kms_cards(sink) is None and sp.releasable(sink, lambda: None) is sink
        assert sp.kms_cards(HeadlessSink((4, 4))) is None
    finally:
        sink.close()


def test_doctor_says_when_the_screen_blanks_and_fails_a_cec_adapter_it_cannot_reach(tmp_path, monkeypatch):
    from edge import commands

    check = commands._check_screen_power(config_from_dict({"screen": {"night": "23:00-07:00"}}), None)
    assert check.ok and check.detail == "blanks after 10 min with nobody seen and at night (23:00-07:00)"
    running = {"screen": {"state": "blanked", "why": "night schedule", "by": ["FBIOBLANK /dev/fb0"], "errors": []}}
    check = commands._check_screen_power(config_from_dict({"screen": {"idle_minutes": 0}}), running)
    assert check.ok and check.detail == ("never blanks ([screen] idle_minutes = 0, no night); now blanked "
                                         "(night schedule), by FBIOBLANK /dev/fb0")
    failing = {"screen": dict(running["screen"], errors=["FBIOBLANK /dev/fb0: off: Permission denied (EACCES)"])}
    check = commands._check_screen_power(config_from_dict({}), failing)
    assert not check.ok and check.detail.endswith("FBIOBLANK /dev/fb0: off: Permission denied (EACCES)")
    cec = config_from_dict({"screen": {"cec_device": str(tmp_path / "cec0")}})
    monkeypatch.setenv("PATH", str(tmp_path))  # no cec-ctl on it
    check = commands._check_screen_power(cec, None)
    assert not check.ok and "cec-ctl is not installed" in check.detail and check.fix == "sudo apt install v4l-utils"
    if shutil.which("cec-ctl", path="/usr/bin:/bin") is not None:
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        check = commands._check_screen_power(cec, None)
        assert not check.ok and f"{tmp_path / 'cec0'}: no such CEC adapter" in check.detail


@pytest.mark.emulated_pi
@pytest.mark.slow
def test_the_drm_structs_and_ioctl_numbers_are_the_same_on_the_pis_aarch64_python():
    """The ctypes layouts on the Pi's own Python (aarch64 under qemu-user, tests/pi/): the sizes encoded in
    the request numbers are the kernel's there too, and a connector's properties come back through them."""
    import json
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    root = Path(os.environ.get("MONA_EDGE_PI_ROOT", repo / ".emulated-pi"))
    if not (root / "bookworm" / "sysroot" / "usr" / "bin" / "python3").exists():
        pytest.skip(f"no emulated Pi at {root} (tests/pi/setup builds it)")
    code = """
import ctypes, json, platform
import edge.screen_power as sp
def ioctl(fd, request, arg):
    if request == sp.DRM_IOCTL_MODE_GETCONNECTOR:
        if arg.count_props >= 2:
            (ctypes.c_uint32 * 2).from_address(arg.props_ptr)[:] = [7, 9]
            (ctypes.c_uint64 * 2).from_address(arg.prop_values_ptr)[:] = [1 << 40, 3]
        arg.count_props, arg.connection = 2, 1
print(json.dumps({"machine": platform.machine(), "connector": list(sp.DrmDevice(0, ioctl).connector(31)[1].items()),
                  "numbers": [sp.DRM_IOCTL_MODE_GETRESOURCES, sp.DRM_IOCTL_MODE_GETCONNECTOR,
                              sp.DRM_IOCTL_MODE_GETPROPERTY, sp.DRM_IOCTL_MODE_OBJ_SETPROPERTY]}))
"""
    env = dict(os.environ, PYTHONPATH=str(repo))
    done = subprocess.run([str(repo / "tests" / "pi" / "python"), "pi4", "litert", "-c", code], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["machine"] == "aarch64" and sys.platform == "linux"
    assert result["numbers"] == [0xC04064A0, 0xC05064A7, 0xC04064AA, 0xC01864BA]
    assert result["connector"] == [[7, 1 << 40], [9, 3]]
