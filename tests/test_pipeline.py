"""The frame loop as one pipeline: real parts (the bundled int8 detector on the bundled clip, the headless
display, the test pack); a camera, detector or display that fails only where a test needs the failure."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.camera import VideoFileSource
from edge.config import config_from_dict, load_config
from edge.detector import FaceDetector
from edge.display import HeadlessSink
from edge.errors import CameraError, DisplayError, ModelError
from edge.pack import load_pack
from edge.pipeline import IDLE_WAIT, STAGES, Parts, Pipeline, build_parts, gaze_tracker
from edge.search import FaceSearch
from edge.status_api import LoopStats
from edge.viewerclip import demo_walk

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "assets" / "clips" / "viewer-walk.mp4"
TEST_PACK = REPO / "assets" / "packs" / "test"
SCREEN = (192, 256)
FPS = 15.0
#: Backoff short enough for a test to see a camera come back.
FAST_RETRY = {"camera": {"retry_initial_s": 0.05, "retry_max_s": 0.1}}


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(None, "short", threads=1)


@pytest.fixture(scope="module")
def script():
    return demo_walk(FPS)  # who is where in each frame of the bundled clip


def clip_camera():
    return VideoFileSource(CLIP, realtime=False, loop=False)


def pack():
    return load_pack(TEST_PACK, screen_size=SCREEN)


def make_pipeline(detector, *, camera=None, display=None, config=None, make_tracker=None, wait=time.sleep,
                  **options):
    parts = build_parts(config or load_config(None), camera=camera or clip_camera(), detector=detector,
                        pack=pack(), display=display or HeadlessSink(SCREEN), make_tracker=make_tracker)
    pipeline = Pipeline(parts, wait=wait, **options)
    pipeline.open()
    return pipeline


def frames(pipeline, n):
    """The results of the next ``n`` steps that read a frame."""
    out = []
    while len(out) < n:
        result = pipeline.step()
        if result.frame is not None:
            out.append(result)
    return out


class Unpluggable:
    """The bundled clip as a camera the test can unplug (reads and reopening fail) and plug back in."""

    name = "unpluggable"

    def __init__(self) -> None:
        self.inner = clip_camera()
        self.plugged = True

    @property
    def state(self):
        return self.inner.state

    def open(self):
        if not self.plugged:
            raise CameraError("unplugged")
        self.inner.open()

    def read(self):
        if not self.plugged:
            raise CameraError("unplugged")
        return self.inner.read()

    def close(self):
        self.inner.close()


# --- the step on real parts -------------------------------------------------------------------------------
def test_step_follows_the_viewer_and_redraws_only_when_the_index_changes(detector, script):
    pipeline = make_pipeline(detector)
    screen = pipeline.parts.display
    centre = pipeline.parts.pack.centre_index
    assert pipeline.index == centre
    np.testing.assert_array_equal(screen.snapshot(), pipeline.parts.pack.frame_image(centre))  # from build_parts
    previous = centre
    results = []
    for n, people in enumerate(script[:120]):
        result = frames(pipeline, 1)[0]
        results.append(result)
        assert result.frame.shape == (480, 640, 3) and result.frame_size == (640, 480)
        assert result.timestamp == pytest.approx(n / FPS)
        assert result.error is None and not result.camera_down and result.index == pipeline.index
        times = result.times
        assert times is not None and min(times.capture, times.detect, times.gaze) >= 0
        assert times.frame >= times.capture + times.detect + times.gaze + (times.draw or 0.0)
        if result.drew:  # the patch went up: the screen shows exactly that pack frame
            assert result.index != previous and times.draw is not None
            np.testing.assert_array_equal(screen.snapshot(), pipeline.parts.pack.frame_image(result.index))
        else:
            assert result.index == previous and times.draw is None
        previous = result.index
        if not people:
            assert result.faces == () and result.viewer is None and result.viewer_x is None
        elif people[0].face_width >= 90 and 60 < people[0].eye_x < 580:
            person = people[0]  # fully in view, near enough for the short-range model
            assert len(result.faces) >= 1
            if result.viewer_present:
                assert result.viewer in result.faces
                assert result.viewer_x == pytest.approx(person.eye_x, abs=0.15 * person.face_width)  # mp4, walking
    seen = [r for r in results if r.viewer_present]
    assert len(seen) > 60
    # She walks across the room: the eyes sweep most of the pack, and the screen changed along the way.
    indices = [r.index for r in seen]
    assert max(indices) - min(indices) >= pipeline.parts.pack.frame_count - 3
    assert sum(r.drew for r in results) >= pipeline.parts.pack.frame_count - 3
    pipeline.close()


def test_a_new_frame_size_gets_a_new_tracker(detector):
    import cv2

    made = []
    base = gaze_tracker(load_config(None).gaze)

    def make_tracker(frame_count, frame_size, span_deg):
        made.append((frame_count, frame_size, span_deg))
        return base(frame_count, frame_size, span_deg)

    class Shrinking:
        """The bundled clip, from its 10th frame at half size (a camera reconfigured mid-stream)."""

        name = "shrinking"

        def __init__(self) -> None:
            self.inner, self.n = clip_camera(), 0
            self.state = "closed"

        def open(self):
            self.inner.open()
            self.state = "ok"

        def read(self):
            rgb, t = self.inner.read()
            self.n += 1
            return (rgb if self.n <= 10 else cv2.resize(rgb, (320, 240))), t

        def close(self):
            self.inner.close()

    pipeline = make_pipeline(detector, camera=Shrinking(), make_tracker=make_tracker)
    results = frames(pipeline, 15)
    p = pipeline.parts.pack
    assert made == [(p.frame_count, (640, 480), p.span_deg), (p.frame_count, (320, 240), p.span_deg)]
    assert [r.frame_size for r in results] == [(640, 480)] * 10 + [(320, 240)] * 5


def test_a_camera_that_dies_puts_the_eyes_at_centre_and_waits_for_it(detector):
    waits = []

    def wait(seconds):
        waits.append(seconds)
        time.sleep(seconds)

    camera = Unpluggable()
    pipeline = make_pipeline(detector, camera=camera, config=config_from_dict(FAST_RETRY), wait=wait)
    pack_ = pipeline.parts.pack
    frames(pipeline, 95)  # she is at the room's far side by now
    assert pipeline.index != pack_.centre_index
    camera.plugged = False
    down = [pipeline.step() for _ in range(8)]
    for result in down:
        assert result.frame is None and result.camera_down and result.camera_state == "retrying"
        assert result.index == pack_.centre_index and result.viewer is None and result.times is None
    assert [r.drew for r in down] == [True] + [False] * 7  # one redraw to centre, then nothing
    np.testing.assert_array_equal(pipeline.parts.display.snapshot(), pack_.frame_image(pack_.centre_index))
    assert len(waits) == 8 and all(0 < w <= IDLE_WAIT for w in waits)
    camera.plugged = True
    deadline = time.monotonic() + 2.0
    back = []
    while len(back) < 5 and time.monotonic() < deadline:
        result = pipeline.step()
        if result.frame is not None:
            back.append(result)
    assert len(back) == 5 and all(r.camera_state == "ok" and r.times is not None for r in back)
    assert pipeline.parts.camera.recoveries == 1


def test_a_detector_error_skips_that_frame_and_is_reported_not_raised(detector):
    class FailsOnce:
        def __init__(self) -> None:
            self.calls = 0

        def detect(self, rgb):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("interpreter hiccup")
            return detector.detect(rgb)

    pipeline = make_pipeline(FailsOnce())
    stats = LoopStats()
    results = frames(pipeline, 5)
    for result in results:
        stats.record(result)
    bad = results[2]
    assert bad.error is not None and bad.error.stage == "detector" and "interpreter hiccup" in bad.error.message
    assert bad.frame is not None and bad.faces == () and bad.times is None and not bad.drew
    assert all(r.error is None and r.times is not None for r in results[:2] + results[3:])
    assert stats.errors["detector"] == 1 and stats.frames_read == 5 and stats.frames == 4
    assert stats.last_error == bad.error.message


def test_a_display_error_is_reported_and_the_screen_keeps_its_frame(detector):
    class FailingUpdates(HeadlessSink):
        failing = True

        def update(self, rect, patch):
            if self.failing:
                raise DisplayError("the screen went away")
            super().update(rect, patch)

    screen = FailingUpdates(SCREEN)
    pipeline = make_pipeline(detector, display=screen)
    centre = pipeline.parts.pack.centre_index
    failed = []
    while not failed:
        result = pipeline.step()
        assert result.index == centre and not result.drew
        if result.error is not None:
            failed.append(result)
    error = failed[0]
    assert error.error.stage == "display" and "the screen went away" in error.error.message
    assert error.times is not None and error.times.draw is None  # the frame was measured, nothing drawn
    np.testing.assert_array_equal(screen.snapshot(), pipeline.parts.pack.frame_image(centre))
    screen.failing = False
    result = pipeline.step()
    assert result.drew and result.index != centre and result.error is None
    np.testing.assert_array_equal(screen.snapshot(), pipeline.parts.pack.frame_image(result.index))


# --- switching parts (reload) -----------------------------------------------------------------------------
def test_switch_to_new_parts_draws_the_new_portrait_and_replaces_the_camera(detector, tmp_path):
    import dataclasses
    import shutil

    pipeline = make_pipeline(detector)
    frames(pipeline, 90)
    old = pipeline.parts
    assert pipeline.index != old.pack.centre_index
    shutil.copytree(TEST_PACK, tmp_path / "pack")
    new_pack = load_pack(tmp_path / "pack", screen_size=SCREEN, rotation=180)  # the picture turned over
    made = []
    base = gaze_tracker(load_config(None).gaze)

    def make_tracker(frame_count, frame_size, span_deg):
        made.append(frame_size)
        return base(frame_count, frame_size, span_deg)

    new_camera = build_parts(load_config(None), camera=clip_camera(), detector=detector, pack=new_pack,
                             display=old.display).camera
    parts = dataclasses.replace(old, pack=new_pack, camera=new_camera, make_tracker=make_tracker)
    pipeline.switch_to(parts)
    assert pipeline.parts is parts and pipeline.index == new_pack.centre_index
    np.testing.assert_array_equal(old.display.snapshot(), new_pack.frame_image(new_pack.centre_index))
    assert old.camera.state != "ok" and old.camera.source.state == "closed"  # the old one let go
    assert new_camera.state == "ok"  # and the new one opened, as the old one was
    result = frames(pipeline, 1)[0]
    assert made == [(640, 480)] and result.timestamp == 0.0  # a new tracker on the new camera's frames


def test_a_switch_whose_draw_fails_keeps_the_old_parts_and_picture(detector):
    import dataclasses

    class BrokenScreen(HeadlessSink):
        def show_full(self, image):
            super().show_full(np.zeros_like(image))  # half-way: the screen is wrong now
            raise DisplayError("mode set failed")

    pipeline = make_pipeline(detector)
    frames(pipeline, 90)
    old, index, before = pipeline.parts, pipeline.index, pipeline.parts.display.snapshot()
    broken = BrokenScreen(SCREEN)
    with pytest.raises(DisplayError, match="mode set failed"):
        pipeline.switch_to(dataclasses.replace(old, display=broken))
    assert pipeline.parts is old and pipeline.index == index
    np.testing.assert_array_equal(old.display.snapshot(), before)
    assert frames(pipeline, 1)[0].times is not None


# --- building -----------------------------------------------------------------------------------------------
def test_build_parts_shows_the_portrait_before_the_model_and_closes_its_own_display_on_failure(tmp_path,
                                                                                               monkeypatch):
    import edge.pipeline

    config = config_from_dict({
        "detector": {"range": "short", "model": str(tmp_path / "gone.tflite")},
        "display": {"sink": "headless", "width": SCREEN[0], "height": SCREEN[1]},
        "pack": {"path": str(TEST_PACK)},
    })
    opened = []

    def open_display(*args, **kwargs):
        class Recording(HeadlessSink):
            closed = False

            def close(self):
                self.closed = True

        sink = Recording(kwargs["size"])
        opened.append(sink)
        return sink

    monkeypatch.setattr(edge.pipeline, "open_display", open_display)
    stages = []
    with pytest.raises(ModelError, match="gone.tflite"):
        build_parts(config, on_stage=stages.append)
    assert stages == ["display", "detector"] and len(opened) == 1
    screen = opened[0]
    expected = pack()
    np.testing.assert_array_equal(screen.snapshot(), expected.frame_image(expected.centre_index))
    assert screen.closed  # ours: closed again
    given = HeadlessSink(SCREEN)
    with pytest.raises(ModelError, match="gone.tflite"):
        build_parts(config, display=given)
    np.testing.assert_array_equal(given.snapshot(), expected.frame_image(expected.centre_index))  # left as it is


def test_build_parts_from_config_alone():
    config = config_from_dict({
        "camera": {"source": "video", "path": str(CLIP), "realtime": False},
        "detector": {"range": "short", "threads": 1},
        "display": {"sink": "headless", "width": 256, "height": 192, "rotation": 90},
        "pack": {"path": str(TEST_PACK)},
    })
    parts = build_parts(config)
    # The configured model searches whole frames; crops around a viewer use the bundled short-range one.
    assert isinstance(parts, Parts) and isinstance(parts.detector, FaceSearch)
    assert isinstance(parts.detector.whole, FaceDetector) and isinstance(parts.detector.crop, FaceDetector)
    assert parts.detector.crop.spec.name == "short" and parts.detector.gate is not None
    assert parts.display.size == (256, 192) and parts.camera.name == "file:viewer-walk.mp4"
    assert parts.camera.frames == 0  # not opened yet: the caller decides when
    # The configured pack, turned for a screen mounted at 90 degrees, is up already.
    upright = load_pack(TEST_PACK)
    np.testing.assert_array_equal(parts.display.snapshot(), np.rot90(upright.frame_image(upright.centre_index), 1))
    pipeline = Pipeline(parts)
    pipeline.open()
    assert [r.frame_size for r in frames(pipeline, 3)] == [(640, 480)] * 3


# --- one step, many drivers ---------------------------------------------------------------------------------
def test_the_service_the_demo_and_the_bench_all_drive_the_same_step(detector, tmp_path, monkeypatch):
    """No second copy of the loop: every driver's frames go through Pipeline.step."""
    from edge.demo import run_demo
    from edge.service import EdgeService

    calls = []
    real_step = Pipeline.step

    def counted(self):
        result = real_step(self)
        calls.append(result)
        return result

    monkeypatch.setattr(Pipeline, "step", counted)

    trace = run_demo(CLIP, TEST_PACK, tmp_path / "demo", max_frames=6, write_video=False, write_gif=False,
                     quiet=True)
    assert len(trace.times) == 6 and len([r for r in calls if r.frame is not None]) == 6
    assert trace.index == [r.index for r in calls if r.frame is not None]

    calls.clear()
    config = config_from_dict({
        "camera": {"source": "video", "path": str(CLIP), "realtime": False},
        "display": {"sink": "headless", "width": SCREEN[0], "height": SCREEN[1]},
        "pack": {"path": str(TEST_PACK)},
    })
    service = EdgeService(config, detector=detector, serve_status=False)
    service.start()
    try:
        results = [service.step() for _ in range(4)]
    finally:
        service.shutdown()
    assert len(calls) == 4 and all(a is b for a, b in zip(results, calls)) and service.stats.frames == 4

    calls.clear()
    spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "tests" / "bench" / "pipeline.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_pipeline", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    measured, wall = bench.measure(make_pipeline(detector), 8, warmup=2)
    assert len(measured) == 8 and wall > 0 and all(a is b for a, b in zip(calls[-8:], measured))
    figures = bench.stage_figures(measured)
    for name in STAGES:
        ms = [getattr(r.times, name) * 1e3 for r in measured if getattr(r.times, name) is not None]
        if ms:
            assert figures[name].count == len(ms) and figures[name].p50 == pytest.approx(np.percentile(ms, 50))
        else:
            assert figures[name] is None


# --- a detector that keeps failing: fallback, stop, bounded log -----------------------------------------------
#: Bit 3 of byte 592 of the bundled full-range model: the runtime loads the copy and fails every invoke.
FULL_MODEL = REPO / "assets" / "models" / "face_detection_full_range_int8.tflite"


def corrupted_full_model(folder: Path) -> Path:
    """A copy of the bundled full-range model with one flipped byte and no record (so it loads unchecked)."""
    data = bytearray(FULL_MODEL.read_bytes())
    data[592] ^= 0x08
    path = folder / FULL_MODEL.name
    path.write_bytes(bytes(data))
    return path


class Breakable:
    """The real detector until ``broken``; then every frame raises, as a model that cannot run does."""

    def __init__(self, inner, broken: bool = False) -> None:
        self.inner, self.broken, self.calls = inner, broken, 0

    def detect(self, rgb):
        self.calls += 1
        if self.broken:
            raise ModelError("broken.tflite: inference failed: Input tensor 215 lacks data")
        return self.inner.detect(rgb)


def short_config():
    return config_from_dict({"detector": {"range": "short", "threads": 1}})


def test_a_detector_failing_every_frame_turns_degraded_and_falls_back_to_the_bundled_model(detector, caplog):
    import logging

    from edge.pipeline import DETECTOR_FAILURES, make_bundled_detector

    caplog.set_level(logging.INFO, logger="edge.pipeline")
    failing = Breakable(detector, broken=True)
    config = short_config()
    made = []

    def fallback():
        made.append(make_bundled_detector(config))  # the bundled short-range model, checked by its record
        return made[-1]

    pipeline = make_pipeline(failing, fallback=fallback)
    results = frames(pipeline, DETECTOR_FAILURES)
    assert all(r.error is not None and r.error.stage == "detector" for r in results)
    assert failing.calls == DETECTOR_FAILURES and len(made) == 1
    fault = pipeline.detector_fault
    assert fault is not None and fault.startswith(f"detector failed {DETECTOR_FAILURES} frames in a row (detector: "
                                                  "broken.tflite: inference failed: Input tensor 215 lacks data)")
    assert "running the bundled model" in fault and "face_detection_short_range_int8.tflite" in fault
    assert pipeline.parts.detector is made[0] and made[0].bundled and pipeline.detector_replaced
    # The bundled model keeps the eyes following: the viewer is found and the screen redrawn.
    followed = []
    while len(followed) < 3:
        result = pipeline.step()
        assert result.error is None
        if result.viewer_present and result.drew:
            followed.append(result)
    screen = pipeline.parts.display
    np.testing.assert_array_equal(screen.snapshot(), pipeline.parts.pack.frame_image(pipeline.index))
    assert failing.calls == DETECTOR_FAILURES and pipeline.detector_fault == fault  # still DEGRADED: a stand-in
    # The log: the first failure, one summary of the repeats when it gave up, one ERROR naming why.
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "edge.pipeline"]
    assert logged[0] == ("WARNING", "detector: broken.tflite: inference failed: Input tensor 215 lacks data")
    assert logged[1][0] == "WARNING" and f"(repeated {DETECTOR_FAILURES - 1} times since" in logged[1][1]
    assert logged[2] == ("ERROR", fault) and len(logged) == 3


def test_when_the_bundled_model_fails_too_detection_stops_with_the_eyes_at_centre(detector):
    from edge.pipeline import DETECTOR_FAILURES, NoDetector

    failing = Breakable(detector)
    also_failing = Breakable(detector, broken=True)
    pipeline = make_pipeline(failing, fallback=lambda: also_failing)
    centre = pipeline.parts.pack.centre_index
    while pipeline.index == centre:  # someone is followed: the eyes are off centre
        pipeline.step()
    failing.broken = True
    frames(pipeline, DETECTOR_FAILURES)
    assert pipeline.parts.detector is also_failing and "running the bundled model" in pipeline.detector_fault
    results = frames(pipeline, DETECTOR_FAILURES)
    assert isinstance(pipeline.parts.detector, NoDetector)
    assert "detection stopped, eyes at centre" in pipeline.detector_fault
    assert results[-1].index == centre == pipeline.index and results[-1].drew  # back to centre at once
    np.testing.assert_array_equal(pipeline.parts.display.snapshot(), pipeline.parts.pack.frame_image(centre))
    calls = also_failing.calls
    for result in frames(pipeline, 20):  # the portrait stays, nothing fails, nobody is followed
        assert result.error is None and result.index == centre and not result.viewer_present
    assert also_failing.calls == calls == DETECTOR_FAILURES


def test_a_fallback_that_cannot_be_loaded_stops_detection_and_a_reload_recovers(detector, caplog):
    import dataclasses
    import logging

    from edge.pipeline import DETECTOR_FAILURES, NoDetector

    caplog.set_level(logging.INFO, logger="edge.pipeline")

    def no_bundled_model():
        raise ModelError("face_detection_short_range_int8.tflite: bundled model not found")

    failing = Breakable(detector, broken=True)
    pipeline = make_pipeline(failing, fallback=no_bundled_model)
    frames(pipeline, DETECTOR_FAILURES)
    assert isinstance(pipeline.parts.detector, NoDetector)
    assert "the bundled model cannot be used either (face_detection_short_range_int8.tflite: bundled model " \
           "not found); detection stopped" in pipeline.detector_fault
    # A reload whose candidate still holds the given-up detector (loaded beside the loop from the parts of
    # before) does not bring it back.
    pipeline.switch_to(dataclasses.replace(pipeline.parts, detector=failing))
    assert isinstance(pipeline.parts.detector, NoDetector) and pipeline.detector_replaced
    # A reload with a working model: no longer a stand-in at once, DEGRADED until its first good frame.
    pipeline.switch_to(dataclasses.replace(pipeline.parts, detector=detector))
    assert not pipeline.detector_replaced and pipeline.detector_fault is not None
    assert frames(pipeline, 1)[0].error is None
    assert pipeline.detector_fault is None
    assert any(r.getMessage().startswith("detector: working again") for r in caplog.records)


def test_a_real_corrupted_model_falls_back_to_the_bundled_one_and_its_log_is_bounded(tmp_path, caplog):
    import logging

    from edge.pipeline import DETECTOR_FAILURES, make_bundled_detector

    caplog.set_level(logging.INFO, logger="edge.pipeline")
    broken = FaceDetector(corrupted_full_model(tmp_path), "full", threads=1)  # loads, fails every invoke
    config = config_from_dict({"detector": {"range": "full", "threads": 1}})
    pipeline = make_pipeline(broken, fallback=lambda: make_bundled_detector(config))
    failed = frames(pipeline, DETECTOR_FAILURES)
    assert {r.error.message for r in failed} == {
        "detector: face_detection_full_range_int8.tflite: inference failed: Input tensor 215 lacks data"}
    assert pipeline.parts.detector is not broken and pipeline.parts.detector.bundled
    assert any(r.viewer_present for r in frames(pipeline, 120))  # the bundled full-range model finds her


def test_a_thousand_failing_frames_log_a_bounded_text_each_line_its_own(tmp_path, caplog):
    """The defect: one WARNING per frame, each holding every earlier message (the runtime's error text is
    never reset), 4.2 GB in 60 s. Now: the first line, then one summary per interval."""
    import logging

    caplog.set_level(logging.INFO, logger="edge.pipeline")
    broken = FaceDetector(corrupted_full_model(tmp_path), "full", threads=1)
    camera = VideoFileSource(CLIP, realtime=False, loop=True)
    interval = 0.5
    pipeline = make_pipeline(broken, camera=camera, max_detector_failures=10**6, log_interval=interval)
    started = time.monotonic()
    results = frames(pipeline, 1000)
    took = time.monotonic() - started
    assert all(r.error is not None for r in results)
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.pipeline"]
    assert 1 <= len(lines) <= 2 + took / interval, (len(lines), took)
    assert sum(len(line) for line in lines) <= 200 * len(lines)
    assert all(line.count("lacks data") == 1 for line in lines)  # no line carries the earlier ones
    assert lines[0] == "detector: face_detection_full_range_int8.tflite: inference failed: Input tensor 215 lacks data"
    assert all(line.startswith(lines[0] + " (repeated ") for line in lines[1:])
    counted = 1 + sum(int(line.split("(repeated ")[1].split(" ")[0]) for line in lines[1:])
    assert counted <= 1000 and (len(lines) == 1 or counted > 1)


# --- honest stage times: the wait for the next frame is not work ---------------------------------------------
class SteppedClock:
    """One clock for the camera and the pipeline's timer: it moves only when something sleeps (the paced
    camera waiting for its next frame), so a step's work takes no time on it and its wait all of it."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_stage_times_of_a_paced_camera_exclude_the_wait_for_the_next_frame(detector):
    clock = SteppedClock()
    camera = VideoFileSource(CLIP, realtime=True, loop=False, clock=clock, sleep=clock.sleep)
    pipeline = make_pipeline(detector, camera=camera, timer=clock)
    results = frames(pipeline, 5)
    # Before: capture (and frame) were the frame interval of a paced camera, 66.7 ms at 15 fps; now the wait
    # is reported apart and the stages hold only what this clock charged them: nothing.
    for r in results[1:]:
        assert r.times is not None and r.times.waited == pytest.approx(1 / FPS)
        assert r.times.capture == pytest.approx(0.0, abs=1e-9) and r.times.frame == pytest.approx(0.0, abs=1e-9)
    # LoopStats (the status socket's figures) takes the stage times as they are: no wait in them.
    stats = LoopStats(clock=clock)
    for r in results:
        stats.record(r)
    assert stats.timing["capture"].percentile(50) == pytest.approx(0.0, abs=1e-9)
    pipeline.close()
