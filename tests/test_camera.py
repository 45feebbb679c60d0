"""Camera sources: newest-frame semantics, colour order, looping, and retrying with backoff."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import (
    CameraError,
    CameraUnavailable,
    OpenCVSource,
    Picamera2Source,
    RetryingCamera,
    VideoFileSource,
    open_source,
)
from edge.errors import ConfigError, ExitStatus, MonaEdgeError

FPS = 10.0
COUNT = 20


class FakeClock:
    """A clock the test moves by hand; its sleep advances it (so pacing is exact and instant)."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t
        self.slept = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.slept += dt
        self.t += dt


def numbered_frame(i: int) -> np.ndarray:
    """BGR frame whose red channel encodes ``i`` in a big block (survives MJPG), blue 0, green 40."""
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[..., 1] = 40
    bgr[..., 2] = 10 * i + 5
    return bgr


@pytest.fixture(scope="module")
def counting_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "count.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    assert writer.isOpened()
    for i in range(COUNT):
        writer.write(numbered_frame(i))
    writer.release()
    return path


def frame_number(rgb: np.ndarray) -> int:
    return int(round((float(rgb[..., 0].mean()) - 5) / 10))


def test_file_source_reads_every_frame_in_rgb_order_and_loops(counting_clip):
    src = VideoFileSource(counting_clip, realtime=False, loop=True)
    src.open()
    seen, times = [], []
    for _ in range(COUNT + 5):
        rgb, t = src.read()
        assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
        assert abs(float(rgb[..., 2].mean())) < 6 and abs(float(rgb[..., 1].mean()) - 40) < 6  # R,G,B order
        seen.append(frame_number(rgb))
        times.append(t)
    src.close()
    assert seen[:COUNT] == list(range(COUNT))
    assert seen[COUNT:] == [0, 1, 2, 3, 4]  # looped
    assert np.allclose(np.diff(times), 1 / FPS)  # media time keeps rising across the loop
    assert src.state == "closed"


def test_file_source_without_loop_ends_with_camera_error(counting_clip):
    src = VideoFileSource(counting_clip, realtime=False, loop=False)
    src.open()
    for _ in range(COUNT):
        src.read()
    with pytest.raises(CameraError, match="end of video"):
        src.read()


def test_realtime_file_source_gives_the_newest_frame_not_the_next_queued(counting_clip):
    clock = FakeClock()
    src = VideoFileSource(counting_clip, realtime=True, clock=clock, sleep=clock.sleep)
    src.open()
    rgb, t0 = src.read()
    assert frame_number(rgb) == 0
    # A frame read straight after waits for the next frame's time: paced at the file's fps.
    rgb, t1 = src.read()
    assert frame_number(rgb) == 1 and clock.slept == pytest.approx(1 / FPS)
    assert t1 - t0 == pytest.approx(1 / FPS)
    # The consumer was busy for 0.75 s: the stale frames are skipped, we get the one on air now.
    clock.t += 0.75
    rgb, t2 = src.read()
    assert frame_number(rgb) == 8
    # Busy past the end of the clip: it wraps and stays on time.
    clock.t += 1.5
    rgb, _ = src.read()
    assert frame_number(rgb) == (8 + 15) % COUNT


def test_missing_file_and_missing_device_are_camera_errors(tmp_path):
    with pytest.raises(CameraError, match="no such video file") as caught:
        VideoFileSource(tmp_path / "nope.mp4").open()
    # A user's error in the one error model (a one-line CLI message and its own exit status), not an OSError.
    assert isinstance(caught.value, MonaEdgeError) and not isinstance(caught.value, OSError)
    assert caught.value.exit_status == ExitStatus.CAMERA
    with pytest.raises(CameraError, match="no such device"):
        OpenCVSource("/dev/video97").open()


def test_opencv_source_reads_newest_frames(counting_clip):
    # OpenCV opens a file like a device; with the clock showing we were slow, it drops the queued frame.
    clock = FakeClock()
    src = OpenCVSource(str(counting_clip), clock=clock)
    src.open()
    rgb, _ = src.read()
    assert frame_number(rgb) == 0
    rgb, _ = src.read()
    assert frame_number(rgb) == 1  # read in time: nothing dropped
    clock.t += 1.0
    rgb, _ = src.read()
    assert frame_number(rgb) == 3  # busy: the stale frame 2 was grabbed away
    src.close()


# --- picamera2 (a fake module inside the test; the real one only exists on a Pi) -----------------------
class FakePicamera2:
    """Behaves like picamera2 on a VC4 Pi (lores must be YUV420) or a Pi 5 (RGB lores allowed)."""

    pi5 = False
    stride = 0
    configs: list = []

    def __init__(self, num=0):
        self.started = False

    def create_video_configuration(self, main, lores, buffer_count, queue, controls):
        return {"main": main, "lores": lores, "buffer_count": buffer_count, "queue": queue}

    def configure(self, config):
        if config["lores"]["format"] != "YUV420" and not self.pi5:
            raise RuntimeError("lores stream must be YUV")
        FakePicamera2.configs.append(config)
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, stream):
        assert stream == "lores" and self.started
        w, h = self.config["lores"]["size"]
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[:, : w // 2] = (200, 30, 30)
        rgb[:, w // 2:] = (30, 30, 200)
        if self.config["lores"]["format"] == "BGR888":
            return rgb  # R,G,B bytes in memory
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        if not self.stride:
            return yuv
        # libcamera pads each row to the stride; the chroma planes follow with half the stride.
        padded = np.zeros((yuv.shape[0], self.stride), np.uint8)
        y, u, v = yuv[:h], yuv[h:h + h // 4].reshape(h // 2, w // 2), yuv[h + h // 4:].reshape(h // 2, w // 2)
        padded[:h, :w] = y
        chroma = padded[h:].reshape(-1)
        half = self.stride // 2
        uplane = np.zeros((h // 2, half), np.uint8)
        uplane[:, : w // 2] = u
        vplane = np.zeros((h // 2, half), np.uint8)
        vplane[:, : w // 2] = v
        chroma[: uplane.size] = uplane.reshape(-1)
        chroma[uplane.size: uplane.size + vplane.size] = vplane.reshape(-1)
        return padded

    def set_controls(self, controls):
        if not self.started:
            raise RuntimeError("camera not started")
        self.controls = getattr(self, "controls", []) + [dict(controls)]

    def stop(self):
        self.started = False

    def close(self):
        pass


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.configs = []
    FakePicamera2.pi5 = False
    FakePicamera2.stride = 0
    return FakePicamera2


def _check_halves(rgb):
    left, right = rgb[:, :70].reshape(-1, 3).mean(0), rgb[:, -70:].reshape(-1, 3).mean(0)
    assert left[0] > 170 and left[2] < 60, left
    assert right[2] > 170 and right[0] < 60, right


@pytest.mark.parametrize("pi5,stride", [(False, 0), (False, 384), (True, 0)])
def test_picamera2_lores_becomes_rgb_and_never_queues(fake_picamera2, pi5, stride):
    fake_picamera2.pi5, fake_picamera2.stride = pi5, stride
    src = Picamera2Source(size=(320, 240))
    src.open()
    rgb, _ = src.read()
    assert rgb.shape == (240, 320, 3)
    _check_halves(rgb)
    config = fake_picamera2.configs[-1]
    assert config["queue"] is False and config["buffer_count"] == 2
    assert config["lores"]["format"] == ("BGR888" if pi5 else "YUV420")
    again, _ = src.read()
    assert again is rgb  # one buffer reused: no per-frame allocation
    src.close()


def test_picamera2_gives_its_y_plane_before_conversion_and_slows_down_through_frame_duration_limits(
        fake_picamera2):
    fake_picamera2.stride = 384
    cam = RetryingCamera(Picamera2Source(size=(320, 240), fps=30.0))
    cam.open()
    rgb, _ = cam.read()
    # The Y plane, cropped to the width (the stride pads it), is what motion gating reads: the luma of
    # the frame the RGB was converted from (compared with OpenCV's grey of that RGB: the two luma
    # definitions differ by a few levels, the chroma rounding at the halves' edge by more).
    luma = cam.luma
    assert luma is not None and luma.shape == (240, 320)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(luma.astype(int)[:, 4:-4] - grey[:, 4:-4]).mean() < 20
    assert cam.waited >= 0.0
    # Idle: 5 fps asked of the sensor itself; back to the configured 30 fps when something happens.
    assert cam.set_frame_rate(5.0) and cam.set_frame_rate(None)
    assert cam.source._cam.controls == [{"FrameDurationLimits": (200000, 200000)},
                                        {"FrameDurationLimits": (33333, 33333)}]
    cam.close()
    assert not cam.set_frame_rate(5.0)  # a closed camera has no rate to change


def test_a_paced_file_reads_less_often_at_the_idle_rate_and_says_how_long_it_waited(counting_clip):
    clock = FakeClock()
    src = VideoFileSource(counting_clip, realtime=True, clock=clock, sleep=clock.sleep)
    src.open()
    rgb, _ = src.read()
    assert frame_number(rgb) == 0 and src.waited == 0.0
    rgb, _ = src.read()
    assert frame_number(rgb) == 1 and src.waited == pytest.approx(1 / FPS)  # paced: waiting, not work
    assert src.set_frame_rate(5.0)
    rgb, _ = src.read()  # a fifth of a second later: the frames in between are skipped, not converted
    assert src.waited == pytest.approx(0.2) and frame_number(rgb) == 1 + round(0.2 * FPS)
    assert src.set_frame_rate(None)
    before = frame_number(rgb)
    rgb, _ = src.read()
    assert frame_number(rgb) == before + 1 and src.waited == pytest.approx(1 / FPS)
    assert src.set_frame_rate(5.0)
    src.close()
    src.open()  # reopened (a camera retried): at its own rate, as a camera opens at its configured one
    src.read()
    src.read()
    assert src.waited == pytest.approx(1 / FPS)
    src.close()
    # A file decoded as fast as it goes (benchmarks, tests) has no rate to lower.
    assert not VideoFileSource(counting_clip, realtime=False).set_frame_rate(5.0)


def test_a_usb_camera_reads_less_often_when_slowed(counting_clip):
    clock = FakeClock()
    src = OpenCVSource(str(counting_clip), clock=clock, sleep=clock.sleep)
    src.open()
    src.read()
    assert src.set_frame_rate(2.0)
    slept = clock.slept
    src.read()
    assert clock.slept - slept == pytest.approx(0.5) and src.waited >= 0.5
    src.close()


def test_picamera2_missing_is_unavailable_and_retrying_gives_up(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as on a non-Pi machine
    with pytest.raises(CameraUnavailable, match="python3-picamera2"):
        Picamera2Source().open()
    cam = RetryingCamera(Picamera2Source())
    cam.open()
    assert cam.state == "failed" and cam.read() is None and "picamera2" in cam.last_error


# --- retrying ------------------------------------------------------------------------------------------
class FlakySource:
    """A test source that fails to open ``open_failures`` times, then dies after ``dies_after`` frames."""

    name = "flaky"
    state = "closed"

    def __init__(self, open_failures=0, dies_after=None):
        self.open_failures = open_failures
        self.dies_after = dies_after
        self.opens = self.reads = 0
        self.frame = np.zeros((4, 4, 3), np.uint8)

    def open(self):
        self.opens += 1
        if self.open_failures > 0:
            self.open_failures -= 1
            raise CameraError("unplugged")

    def read(self):
        self.reads += 1
        if self.dies_after is not None and self.reads > self.dies_after:
            self.dies_after = None
            raise CameraError("device vanished")
        return self.frame, float(self.reads)

    def close(self):
        pass


def test_retrying_camera_backs_off_exponentially_and_recovers():
    clock = FakeClock(0.0)
    src = FlakySource(open_failures=4)
    cam = RetryingCamera(src, initial=0.5, maximum=2.0, clock=clock)
    cam.open()
    assert cam.state == "retrying" and cam.read() is None
    attempts = []
    while cam.state != "ok" and clock.t < 20:
        before = src.opens
        cam.read()
        if src.opens != before:
            attempts.append(clock.t)
        clock.t += 0.05
    # opened at t=0 (fail), then retried after 0.5, 1, 2, 2 (capped): ok on the 5th open
    assert np.allclose(np.diff([0.0] + attempts), [0.5, 1.0, 2.0, 2.0], atol=0.06)
    assert cam.state == "ok" and cam.failures == 4 and cam.recoveries == 1
    assert cam.read() is not None


def test_retrying_camera_survives_a_source_dying_mid_run():
    clock = FakeClock(0.0)
    src = FlakySource(dies_after=3)
    cam = RetryingCamera(src, initial=1.0, maximum=8.0, clock=clock)
    cam.open()
    assert all(cam.read() is not None for _ in range(3))
    assert cam.read() is None and cam.state == "retrying" and cam.last_error == "device vanished"
    assert cam.read() is None  # still waiting: no busy reopen
    clock.t += 1.01
    assert cam.read() is not None and cam.state == "ok" and src.opens == 2
    assert cam.failures == 1 and cam.consecutive_failures == 0


def test_retrying_camera_gives_up_after_max_failures():
    clock = FakeClock(0.0)
    cam = RetryingCamera(FlakySource(open_failures=99), initial=0.1, maximum=0.1, max_failures=3, clock=clock)
    cam.open()
    for _ in range(10):
        clock.t += 0.2
        cam.read()
    assert cam.state == "failed" and cam.failures == 3


def test_open_source_names_the_allowed_kinds():
    with pytest.raises(ConfigError, match="'picamera2', 'opencv', 'file'"):
        open_source("gopro")
    with pytest.raises(ConfigError, match="camera.path"):
        open_source("file")
    assert isinstance(open_source("opencv", device="/dev/video0"), OpenCVSource)


def test_flips_for_a_camera_mounted_mirrored_or_upside_down(tmp_path):
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[:24, :32] = (0, 0, 250)  # red block top-left
    path = tmp_path / "corner.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    writer.write(bgr)
    writer.release()
    for hflip, vflip, corner in [(False, False, (slice(0, 24), slice(0, 32))),
                                 (True, False, (slice(0, 24), slice(32, 64))),
                                 (False, True, (slice(24, 48), slice(0, 32))),
                                 (True, True, (slice(24, 48), slice(32, 64)))]:
        src = VideoFileSource(path, realtime=False, hflip=hflip, vflip=vflip)
        src.open()
        rgb = src.read()[0]
        src.close()
        assert rgb[corner][..., 0].mean() > 200, (hflip, vflip)
        assert rgb[..., 0].mean() == pytest.approx(250 / 4, abs=8)  # only that quarter is red


def test_a_named_pipe_is_a_video_stream(tmp_path):
    import os

    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    assert VideoFileSource(fifo).path == fifo  # accepted (opening it waits for a writer, like a live feed)
    with pytest.raises(CameraError, match="no such video file"):
        VideoFileSource(tmp_path).open()  # a folder is not
