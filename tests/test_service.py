"""The daemon: status socket, rolling statistics, health, and (further down) the whole loop end to end."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import tempfile
import threading

import numpy as np
import pytest

from edge.errors import ModelError, StatusError
from edge.status import StatusServer, StatusUnavailable, query_status
from edge.status_api import RollingStats


# --- rolling statistics --------------------------------------------------------------------------------
def test_rolling_stats_keep_the_last_window():
    stats = RollingStats(size=10)
    assert stats.percentile(50) is None and stats.mean() is None
    for v in range(100):
        stats.add(float(v))
    assert stats.count == 100
    assert sorted(stats.samples()) == list(range(90, 100))
    assert stats.percentile(50) == pytest.approx(94.5)
    assert stats.percentile(95) == pytest.approx(np.percentile(np.arange(90, 100), 95))


# --- health: READY, DEGRADED, WATCHDOG ------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_waits_for_the_camera_then_degraded_after_the_timeout(notify_socket, monkeypatch, caplog):
    from edge.health import DEGRADED, READY, STARTING, Health

    notifier, received = notify_socket
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    clock = Clock()
    health = Health(notifier, ready_timeout=5.0, watchdog=True, clock=clock)
    health.begin()
    assert health.watchdog_every == 0.5
    health.tick(False, lambda: "line")
    assert health.state == STARTING and not health.ready_sent
    assert not any("READY=1" in m for m in received())
    clock.now += 4.9
    health.tick(False, lambda: "line")
    assert health.state == STARTING and not any("READY=1" in m for m in received())
    clock.now += 0.2  # no camera after ready_timeout: READY anyway, reported DEGRADED, said once in the log
    with caplog.at_level("ERROR", logger="edge.health"):
        health.tick(False, lambda: "degraded line")
    assert health.state == DEGRADED and health.ready_sent
    messages = received()
    assert messages.count("READY=1") == 1 and "STATUS=degraded line" in messages
    assert "camera not up after 5 s" in caplog.text
    clock.now += 0.1
    health.tick(True, lambda: "ready line")  # the camera came: READY, and no second READY=1
    assert health.state == READY
    messages = received()
    assert "READY=1" not in messages and "STATUS=ready line" in messages  # a state change refreshes STATUS


def test_a_reason_to_degrade_is_reported_ready_once_and_in_status_until_cleared(notify_socket):
    from edge.health import DEGRADED, DETECTOR, READY, SAFE_MODE, Health

    notifier, received = notify_socket
    clock = Clock()
    health = Health(notifier, ready_timeout=5.0, watchdog=False, clock=clock, wall_clock=lambda: 1_800_000_000.0)
    health.begin()
    health.degrade(SAFE_MODE, "pack: gone; showing the bundled default pack")
    health.tick(True, lambda: "line 1")
    # The portrait is up and the camera too: READY=1 (systemd must not restart it), but DEGRADED, and why.
    assert health.state == DEGRADED and health.ready_sent
    assert received() == ["READY=1", "STATUS=line 1"]
    assert health.reason(SAFE_MODE) == ("pack: gone; showing the bundled default pack", 1_800_000_000.0)
    health.degrade(DETECTOR, "detector failed")
    clock.now += 0.1
    health.tick(True, lambda: "line 2")  # a new reason refreshes STATUS= at once
    assert received() == ["STATUS=line 2"] and health.reasons == ("pack: gone; showing the bundled default pack",
                                                                   "detector failed")
    health.degrade(SAFE_MODE, None)
    health.degrade(DETECTOR, None)
    clock.now += 0.1
    health.tick(True, lambda: "line 3")
    assert health.state == READY and received() == ["STATUS=line 3"] and health.reasons == ()


def test_watchdog_is_fed_only_by_ticks_at_half_the_interval(notify_socket, monkeypatch):
    from edge.health import Health

    notifier, received = notify_socket
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    clock = Clock()
    health = Health(notifier, ready_timeout=5.0, watchdog=True, clock=clock)
    health.begin()
    pings = 0
    for _ in range(20):  # 2 s of a loop at 10 Hz
        clock.now += 0.1
        health.tick(True, lambda: "line")
        pings += received().count("WATCHDOG=1")
    assert pings == 10  # every 0.2 s
    clock.now += 10.0  # the loop hangs: nothing ticks, nothing is sent
    assert received() == []
    quiet = Health(notifier, ready_timeout=5.0, watchdog=False, clock=clock)  # [service] watchdog = false
    quiet.begin()
    quiet.tick(True, lambda: "line")
    assert quiet.watchdog_every is None and "WATCHDOG=1" not in received()


# --- status socket -------------------------------------------------------------------------------------
@pytest.fixture
def sock_path(tmp_path):
    # AF_UNIX paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    import tempfile

    folder = tempfile.mkdtemp(prefix="me-", dir="/tmp")
    yield os.path.join(folder, "run", "status.sock")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def test_status_socket_answers_json_with_mode_0660(sock_path):
    seen = []

    def handler(request):
        seen.append(request)
        if request.get("command") == "boom":
            raise RuntimeError("exploded")
        return {"state": "READY", "echo": request}

    server = StatusServer(sock_path, handler)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660
        assert query_status(sock_path) == {"state": "READY", "echo": {"command": "status"}}
        assert query_status(sock_path, request={"command": "x", "n": 2})["echo"] == {"command": "x", "n": 2}
        with pytest.raises(StatusError, match="RuntimeError: exploded"):
            query_status(sock_path, request={"command": "boom"})
        # A client that sends nothing and just shuts its side down gets the status too.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock_path)
            s.shutdown(socket.SHUT_WR)
            reply = json.loads(s.makefile().read())
        assert reply["state"] == "READY"
        # Garbage is answered with an error, and the server keeps serving.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock_path)
            s.sendall(b"not json\n")
            assert "bad request" in json.loads(s.makefile().read())["error"]
        assert query_status(sock_path)["state"] == "READY"
        assert server.served == 6
    finally:
        server.stop()
    assert not os.path.exists(sock_path)
    with pytest.raises(StatusUnavailable, match="is mona-edge running"):
        query_status(sock_path)


def test_stale_socket_is_replaced_but_a_live_one_is_not(sock_path):
    os.makedirs(os.path.dirname(sock_path))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)
    stale.close()  # a file left by a daemon that died
    with pytest.raises(StatusUnavailable, match="nobody answers"):
        query_status(sock_path, timeout=0.5)
    first = StatusServer(sock_path, lambda r: {"who": "first"})
    first.start()
    try:
        with pytest.raises(StatusError, match="another mona-edge daemon"):
            StatusServer(sock_path, lambda r: {"who": "second"}).start()
        assert query_status(sock_path) == {"who": "first"}
    finally:
        first.stop()


def test_a_regular_file_in_the_way_is_not_deleted(sock_path):
    os.makedirs(os.path.dirname(sock_path))
    with open(sock_path, "w") as f:
        f.write("precious")
    with pytest.raises(StatusError, match="not a socket"):
        StatusServer(sock_path, lambda r: {}).start()
    assert open(sock_path).read() == "precious"


def test_a_slow_client_does_not_block_the_next(sock_path):
    server = StatusServer(sock_path, lambda r: {"ok": True}, client_timeout=0.3)
    server.start()
    try:
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(sock_path)  # connects, sends nothing, never closes
        result = {}
        t = threading.Thread(target=lambda: result.update(query_status(sock_path, timeout=2.0)))
        t.start()
        t.join(3.0)
        assert result == {"ok": True}
        idle.close()
    finally:
        server.stop()


# --- the whole loop -------------------------------------------------------------------------------------
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from edge.viewerclip import Person, eye_height, write_clip  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEST_PACK = REPO / "assets" / "packs" / "test"
FPS = 15.0


def walk(seconds, w0, w1, x0, x1, sway=0.0):
    n = int(round(seconds * FPS))
    out = []
    for i in range(n):
        u = i / max(1, n - 1)
        w = w0 + (w1 - w0) * u
        t = i / FPS
        out.append([Person(w, x0 + (x1 - x0) * u + sway * np.sin(2 * np.pi * 0.5 * t),
                           eye_height(w) + 2 * np.sin(2 * np.pi * 1.7 * t))])
    return out


def empty(seconds):
    return [[] for _ in range(int(round(seconds * FPS)))]


def config_toml(*, clip, pack=TEST_PACK, socket_path=None, display="file", fb=None, size=(192, 256),
                rotation=0, realtime=False, loop=False, extra: str = "") -> str:
    """A real config file for a video-file camera, the short-range model and a framebuffer file."""
    lines = ["[camera]", 'source = "video"', f'path = "{clip}"', f"realtime = {str(realtime).lower()}",
             f"loop = {str(loop).lower()}", "retry_initial_s = 0.05", "retry_max_s = 0.2", "",
             "[detector]", 'range = "short"', "threads = 1", "",
             "[display]", f'sink = "{display}"', f"width = {size[0]}", f"height = {size[1]}",
             f"rotation = {rotation}"]
    if fb is not None:
        lines.append(f'output = "{fb}"')
    lines += ["", "[pack]", f'path = "{pack}"', "", "[service]"]
    if socket_path is not None:
        lines.append(f'status_socket = "{socket_path}"')
    lines.append("ready_timeout = 5")
    return "\n".join(lines) + "\n" + extra


@pytest.fixture(scope="module")
def photo():
    from edge.viewerclip import astronaut_photo

    return astronaut_photo()


@pytest.fixture(scope="module")
def detector():
    from edge.detector import FaceDetector

    return FaceDetector(None, "short", threads=1)


def make_service(tmp_path, clip, *, rotation=0, size=(192, 256), extra="", detector=None, socket_path=None,
                 notifier=None):
    from edge.config import load_config
    from edge.service import EdgeService

    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(config_toml(clip=clip, fb=tmp_path / "fb", size=size, rotation=rotation,
                                    socket_path=socket_path, extra=extra))
    config = load_config(cfg_path)
    return EdgeService(config, cfg_path, detector=detector, serve_status=socket_path is not None,
                       notifier=notifier)


def run_clip(service, frames):
    """Step until ``frames`` camera frames went through; the on-screen index after each, and whether a
    viewer was followed, as each step's result says."""
    indices, present = [], []
    while service.stats.frames_read < frames:
        result = service.step()
        if result.frame is not None:
            assert result.index == service.pipeline.index
            indices.append(result.index)
            present.append(result.viewer_present)
    return indices, present


def read_fb_xrgb(path, size):
    raw = np.fromfile(path, np.uint8)[: size[0] * size[1] * 4].reshape(size[1], size[0], 4)
    return raw[..., 2::-1]


def test_eyes_follow_the_viewer_across_the_room_into_the_framebuffer(tmp_path, photo, detector):
    script = empty(0.5) + walk(6.0, 120, 120, 40, 600)
    clip = tmp_path / "walk.avi"
    write_clip(clip, script, FPS, photo=photo)
    service = make_service(tmp_path, clip, rotation=90, size=(256, 192), detector=detector)
    service.start()
    try:
        indices, present = run_clip(service, len(script))
        seen = [i for i, p in zip(indices, present) if p]
        assert len(seen) > 0.8 * len(script[8:])
        # She appears at the room's right (camera image left): the eyes first catch up from the centre
        # at their limited speed, then follow her steadily the other way.
        catch_up = int(0.5 * FPS)
        # (within a frame of the end: the fixation's dead band, edge/saccades.py, rests the eyes there)
        assert seen[catch_up] >= service.pack.frame_count - 2, seen[:catch_up + 1]
        seen = seen[catch_up:]
        steps = np.diff(seen)
        # monotonic: every change goes the same way, and the walk sweeps most of the pack
        assert (steps >= 0).all() or (steps <= 0).all(), seen
        assert abs(seen[-1] - seen[0]) >= service.pack.frame_count - 3
        # What the framebuffer file holds is the pack's frame, turned for a screen mounted at 90 degrees.
        from edge.pack import load_pack

        upright = load_pack(TEST_PACK).frame_image(service.pipeline.index)
        expected = np.rot90(upright, 1)
        assert expected.shape == (192, 256, 3)
        np.testing.assert_array_equal(read_fb_xrgb(tmp_path / "fb", (256, 192)), expected)
    finally:
        service.shutdown()


def test_with_nobody_in_view_the_eyes_return_to_centre(tmp_path, photo, detector):
    script = walk(2.0, 130, 130, 80, 110, sway=10) + empty(6.0)
    clip = tmp_path / "leave.avi"
    write_clip(clip, script, FPS, photo=photo)
    service = make_service(tmp_path, clip, detector=detector)
    service.start()
    try:
        indices, present = run_clip(service, len(script))
        centre = service.pack.centre_index
        assert any(i != centre for i in indices[: int(2 * FPS)])  # she pulled the eyes away from centre
        assert not any(present[-int(4 * FPS):])
        assert indices[-1] == centre
        np.testing.assert_array_equal(service.parts.display.snapshot(), service.pack.frame_image(centre))
    finally:
        service.shutdown()


def test_two_viewers_do_not_make_the_eyes_flicker(tmp_path, photo, detector):
    n = int(6 * FPS)
    script = [[Person(140, 150 + 8 * np.sin(i / 5), eye_height(140) + 2 * np.sin(i / 3)),
               Person(125, 480 + 8 * np.sin(i / 4 + 1), eye_height(125) + 2 * np.sin(i / 3 + 2), mirror=True)]
              for i in range(n)]
    clip = tmp_path / "two.avi"
    write_clip(clip, script, FPS, photo=photo)
    service = make_service(tmp_path, clip, detector=detector)
    service.start()
    try:
        indices, _ = run_clip(service, n)
        settled = indices[int(1.5 * FPS):]
        changes = int(np.count_nonzero(np.diff(settled)))
        assert changes <= 2, settled
        assert max(settled) - min(settled) <= 1
    finally:
        service.shutdown()


def _is_pack_frame(image, pack):
    return any(np.array_equal(image, pack.frame_image(i)) for i in range(pack.frame_count))


def test_camera_dies_mid_run_and_comes_back_while_the_portrait_stays(tmp_path, photo, detector):
    script = walk(1.5, 130, 130, 70, 250, sway=8)  # walking: a person, not a picture
    clip = tmp_path / "cam.avi"
    write_clip(clip, script, FPS, photo=photo)
    service = make_service(tmp_path, clip, detector=detector)
    service.start()
    try:
        run_clip(service, len(script))
        away = service.pipeline.index
        assert away != service.pack.centre_index
        clip.rename(tmp_path / "unplugged.avi")  # the device vanishes: the file ends and cannot reopen
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            result = service.step()
            assert result.frame is None and result.camera_down and result.index == service.pack.centre_index
            assert _is_pack_frame(service.parts.display.snapshot(), service.pack)  # never black, never torn
        status = service.status()
        assert status["camera"]["state"] == "retrying" and status["state"] != "READY"
        assert status["camera"]["failures"] >= 2 and "unplugged" not in str(status["camera"]["last_error"])
        assert status["index"] == service.pack.centre_index  # eyes at centre while the camera is away
        (tmp_path / "unplugged.avi").rename(clip)  # plugged back in
        frames = service.stats.frames_read
        deadline = time.monotonic() + 2.0
        while service.stats.frames_read < frames + 10 and time.monotonic() < deadline:
            service.step()
        status = service.status()
        assert status["camera"]["state"] == "ok" and status["state"] == "READY"
        assert status["camera"]["recoveries"] >= 1 and service.stats.frames_read >= frames + 10
    finally:
        service.shutdown()


def test_a_corrupt_pack_or_a_bad_config_on_reload_changes_nothing(tmp_path, photo, detector, caplog):
    import shutil

    from edge.reload import REFUSED

    pack_dir = tmp_path / "pack"
    shutil.copytree(TEST_PACK, pack_dir)
    clip = tmp_path / "c.avi"
    write_clip(clip, walk(1.0, 130, 130, 300, 320), FPS, photo=photo)
    cfg = tmp_path / "config.toml"
    good = config_toml(clip=clip, pack=pack_dir, fb=tmp_path / "fb")
    cfg.write_text(good)
    from edge.config import load_config
    from edge.service import EdgeService

    service = EdgeService(load_config(cfg), cfg, detector=detector, serve_status=False)
    service.start()
    try:
        run_clip(service, 5)
        old_parts, old_config = service.parts, service.config
        screen = service.parts.display.snapshot()
        frame = pack_dir / "frames" / "03.png"
        data = bytearray(frame.read_bytes())
        data[len(data) // 2] ^= 0xFF
        frame.write_bytes(bytes(data))
        with caplog.at_level("WARNING", logger="edge.reload"):
            assert service.reload() is False
        assert service.parts is old_parts and service.config is old_config
        assert service.stats.last_error.startswith(REFUSED) and "03.png" in service.stats.last_error
        # The user's fault is one warning line, no traceback.
        refusals = [r for r in caplog.records if r.name == "edge.reload"]
        assert len(refusals) == 1 and refusals[0].levelname == "WARNING" and refusals[0].exc_info is None
        np.testing.assert_array_equal(service.parts.display.snapshot(), screen)
        cfg.write_text(good.replace("[service]", "[service]\nno_such_key = 1"))
        assert service.reload() is False and "no_such_key" in service.stats.last_error
        assert service.stats.errors["reload"] == 2 and service.parts is old_parts
        # A good pack at a new path, and other gaze settings: switched in one full draw, the loop goes on.
        fresh = tmp_path / "fresh"
        shutil.copytree(TEST_PACK, fresh)
        cfg.write_text(config_toml(clip=clip, pack=fresh, fb=tmp_path / "fb", extra="[gaze]\nmapping = \"linear\"\n"))
        assert service.reload() is True and service.stats.reloads == 1
        assert service.pack is not old_parts.pack and service.config.gaze.mapping == "linear"
        # Unchanged settings keep their parts: the same model and the same open camera.
        assert service.parts.detector is old_parts.detector and service.parts.camera is old_parts.camera
        assert service.pipeline.index == service.pack.centre_index
        np.testing.assert_array_equal(service.parts.display.snapshot(), service.pack.frame_image(service.pipeline.index))
        result = service.step()
        assert result.frame is not None and result.times is not None  # the loop runs on the new parts
    finally:
        service.shutdown()


def test_a_bug_while_reloading_is_logged_with_its_traceback_and_changes_nothing(tmp_path, photo, detector,
                                                                                caplog, monkeypatch):
    """Not the user's fault: log.error with the traceback, the reload refused, the running state untouched."""
    import edge.reload

    clip = tmp_path / "c.avi"
    write_clip(clip, walk(0.5, 130, 130, 300, 320), FPS, photo=photo)
    service = make_service(tmp_path, clip, detector=detector)
    service.start()
    try:
        run_clip(service, 3)
        old_parts, old_config, index = service.parts, service.config, service.pipeline.index

        def broken(config, screen_size):
            raise KeyError("a defect")

        monkeypatch.setattr(edge.reload, "make_pack", broken)
        with caplog.at_level("ERROR", logger="edge.reload"):
            assert service.reload() is False
        errors = [r for r in caplog.records if r.name == "edge.reload" and r.levelname == "ERROR"]
        assert len(errors) == 1 and errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError
        assert service.parts is old_parts and service.config is old_config and service.pipeline.index == index
        assert service.stats.errors["reload"] == 1 and service.stats.reloads == 0
        assert "KeyError" in service.stats.last_error
        assert service.step().times is not None
    finally:
        service.shutdown()


def test_sighup_loads_the_candidate_beside_the_loop_which_keeps_going(tmp_path, photo, detector, monkeypatch,
                                                                      notify_socket):
    """A slow pack (a big one on a Pi) must not freeze the eyes or starve the watchdog while it verifies."""
    import shutil

    import edge.reload

    notifier, received = notify_socket
    clip = tmp_path / "c.avi"
    write_clip(clip, walk(2.0, 130, 130, 100, 540), FPS, photo=photo)
    fresh = tmp_path / "fresh"
    shutil.copytree(TEST_PACK, fresh)
    service = make_service(tmp_path, clip, detector=detector, notifier=notifier)
    service.start()
    real_make_pack = edge.reload.make_pack
    loading = threading.Event()

    def slow_make_pack(config, screen_size):
        loading.set()
        time.sleep(0.5)
        return real_make_pack(config, screen_size)

    monkeypatch.setattr(edge.reload, "make_pack", slow_make_pack)
    try:
        run_clip(service, 3)
        assert service.health.ready_sent
        old_pack = service.pack
        (tmp_path / "config.toml").write_text(config_toml(clip=clip, pack=fresh, fb=tmp_path / "fb"))
        received()
        service.request_reload()
        during = []
        deadline = time.monotonic() + 5.0
        while service.stats.reloads == 0 and time.monotonic() < deadline:
            result = service.step()
            if loading.is_set() and service.stats.reloads == 0:
                during.append(result)
        assert service.stats.reloads == 1 and service.pack is not old_pack
        assert len([r for r in during if r.times is not None]) >= 3  # frames went through while it loaded
        messages = received()
        reloading = [i for i, m in enumerate(messages) if m.startswith("RELOADING=1")]
        ready = [i for i, m in enumerate(messages) if m.startswith("READY=1")]
        assert len(reloading) == 1 and len(ready) == 1 and reloading[0] < ready[0]
    finally:
        service.shutdown()


def test_bad_config_key_and_missing_model_are_clear_errors_and_a_missing_model_at_start_is_safe_mode(tmp_path):
    from edge.config import ConfigError, load_config
    from edge.pack import load_pack
    from edge.pipeline import make_detector
    from edge.service import EdgeService

    clip = tmp_path / "c.avi"
    write_clip(clip, empty(0.2), FPS, photo=np.zeros((512, 512, 3), np.uint8))
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_toml(clip=clip, fb=tmp_path / "fb").replace("[camera]", "[camera]\nspeed = 3"))
    with pytest.raises(ConfigError, match="speed"):
        load_config(cfg)
    cfg.write_text(config_toml(clip=clip, fb=tmp_path / "fb").replace(
        'range = "short"', f'range = "short"\nmodel = "{tmp_path / "gone.tflite"}"'))
    service = EdgeService(load_config(cfg), cfg, serve_status=False)
    with pytest.raises(ModelError, match="gone.tflite"):
        make_detector(service.config)
    # At start a missing model is safe mode (tests/test_safe_mode.py): the bundled model of the range runs.
    service.start()
    try:
        assert service.safe_mode == (f"model: {tmp_path / 'gone.tflite'}: model file not found; running the "
                                     f"bundled model {REPO / 'assets/models/face_detection_short_range_int8.tflite'}")
        assert service.status()["safe_mode"]["reason"] == service.safe_mode
        # The portrait is up: the screen is not black.
        pack = load_pack(TEST_PACK, screen_size=(192, 256))
        np.testing.assert_array_equal(read_fb_xrgb(tmp_path / "fb", (192, 256)), pack.frame_image(pack.centre_index))
    finally:
        service.shutdown()


#: What mona-edge status/snapshot/calibrate/doctor (edge/commands.py) read: the socket's answer keeps them.
STATUS_FIELDS = {"state", "version", "pid", "uptime_s", "fps", "frames", "detect_ms", "stage_ms", "viewer_present",
                 "viewer_x", "frame_width", "angle_deg", "index", "frame_count", "pack", "camera", "errors",
                 "last_error", "reloads", "config", "safe_mode", "reasons", "screen", "display", "model"}


def test_status_socket_answers_from_the_loop_and_refuses_what_it_cannot_do(tmp_path, photo, detector):
    folder = Path(tempfile.mkdtemp(prefix="me-", dir="/tmp"))
    clip = tmp_path / "s.avi"
    write_clip(clip, walk(1.0, 130, 130, 80, 300), FPS, photo=photo)  # she walks in: a person, not a picture
    sock_path = folder / "status.sock"
    service = make_service(tmp_path, clip, detector=detector, socket_path=sock_path)
    service.start()
    try:
        before = query_status(sock_path)
        assert set(before) == STATUS_FIELDS and set(before["camera"]) == {
            "name", "state", "failures", "recoveries", "last_error", "retry_in_s"}
        assert before["frames"] == 0 and before["frame_width"] is None and before["viewer_present"] is False
        assert before["index"] == service.pack.centre_index and before["pack"] == service.pack.name
        assert before["safe_mode"] is None and before["reasons"] == []
        assert before["display"] is None  # sink = "file" is configured by name: nothing was chosen
        assert before["screen"]["state"] == "on" and before["screen"]["why"] is None  # the socket's JSON
        assert before["camera"] == {"name": "file:s.avi", "state": "ok", "failures": 0, "recoveries": 0,
                                    "last_error": None, "retry_in_s": 0.0}
        with pytest.raises(StatusError, match="unknown command 'dance'"):
            query_status(sock_path, request={"command": "dance"})
        with pytest.raises(StatusError, match="snapshot source 'disk'"):
            query_status(sock_path, request={"command": "snapshot", "source": "disk"})
        results = []
        for _ in range(200):  # bounded: a viewer never taken for one must fail, not hang
            results.append(service.step())
            if len([r for r in results if r.viewer_present]) >= 5:
                break
        assert len([r for r in results if r.viewer_present]) >= 5
        status = query_status(sock_path)
        last = results[-1]
        assert status["frames"] == len(results) == service.stats.frames and status["frame_width"] == 640
        assert status["viewer_present"] is True and status["viewer_x"] == pytest.approx(last.viewer_x, abs=0.01)
        assert status["index"] == last.index and status["state"] == "READY"
        assert status["detect_ms"]["p50"] > 0 and status["stage_ms"]["frame"] >= status["stage_ms"]["detect"]
        # A snapshot is taken by the loop's thread, between two steps.
        answer = {}
        asking = threading.Thread(target=lambda: answer.update(
            query_status(sock_path, request={"command": "snapshot", "source": "camera"})))
        asking.start()
        deadline = time.monotonic() + 3
        while asking.is_alive() and time.monotonic() < deadline:
            service.step()
        asking.join()
        import base64
        import io

        from PIL import Image

        shot = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["png_base64"]))))
        assert answer["source"] == "camera" and shot.shape == (480, 640, 3)
        service.stop()  # stopping: a snapshot is refused at once instead of waiting for a loop that ends
        with pytest.raises(StatusError, match="the daemon is stopping"):
            query_status(sock_path, request={"command": "snapshot"})
    finally:
        service.shutdown()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    assert not sock_path.exists()


# --- the daemon as systemd runs it ---------------------------------------------------------------------
DAEMON = [sys.executable, "-m", "edge.commands", "run", "--config"]


def _short_dir():
    return tempfile.mkdtemp(prefix="me-", dir="/tmp")  # AF_UNIX paths must stay short


def test_daemon_notifies_systemd_answers_status_reloads_and_stops_within_a_second(tmp_path, photo):
    import shutil

    folder = Path(_short_dir())
    try:
        clip = folder / "loop.avi"
        write_clip(clip, walk(2.0, 130, 130, 100, 540, sway=5), FPS, photo=photo)
        sock_path = folder / "status.sock"
        cfg = folder / "config.toml"
        cfg.write_text(config_toml(clip=clip, fb=folder / "fb", socket_path=sock_path, realtime=True, loop=True))
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(folder / "notify"))
        notify.settimeout(10)
        env = dict(os.environ, NOTIFY_SOCKET=str(folder / "notify"), WATCHDOG_USEC="400000",
                   PYTHONPATH=str(REPO))
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen(DAEMON + [str(cfg)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            messages = []

            def until(key, timeout=15.0):
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    msg = notify.recv(4096).decode()
                    messages.append(msg)
                    if key in msg.split("\n"):
                        return msg
                raise AssertionError(f"no {key} in {messages}")

            until("READY=1")
            assert any(m.startswith("STATUS=") for m in messages)
            until("WATCHDOG=1", timeout=2.0)
            watchdogs = 0
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                watchdogs += "WATCHDOG=1" in notify.recv(4096).decode()
            assert watchdogs >= 3  # every 0.2 s while the loop runs
            first = query_status(sock_path)
            time.sleep(0.5)
            second = query_status(sock_path)
            assert second["state"] == "READY" and second["frames"] > first["frames"]
            assert second["fps"] > 5 and second["camera"]["state"] == "ok"
            assert second["detect_ms"]["p50"] > 0 and second["pack"]
            assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660
            # SIGHUP: reloads in place (RELOADING=1 then READY=1), same process, still serving.
            proc.send_signal(signal.SIGHUP)
            until("RELOADING=1", timeout=5.0)
            until("READY=1", timeout=5.0)
            assert query_status(sock_path)["reloads"] == 1 and proc.poll() is None
            # SIGTERM: STOPPING=1 and gone within a second.
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=5)
            took = time.monotonic() - started
            assert code == 0 and took < 1.0, (code, took)
            until("STOPPING=1", timeout=1.0)
            assert not sock_path.exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out = proc.stdout.read().decode(errors="replace")
            notify.close()
        assert "Traceback" not in out, out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_sigterm_ends_the_daemon_within_a_second_even_when_the_camera_hangs(photo):
    import shutil

    folder = Path(_short_dir())
    try:
        fifo = folder / "camera"
        os.mkfifo(fifo)  # opening it for reading blocks inside OpenCV, like a wedged driver
        cfg = folder / "config.toml"
        text = config_toml(clip=fifo, fb=folder / "fb", socket_path=folder / "status.sock")
        cfg.write_text(text)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(folder / "notify"))
        notify.settimeout(10)
        env = dict(os.environ, NOTIFY_SOCKET=str(folder / "notify"), PYTHONPATH=str(REPO))
        proc = subprocess.Popen(DAEMON + [str(cfg)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            while "starting: camera" not in notify.recv(4096).decode():
                pass
            time.sleep(0.3)
            assert proc.poll() is None  # stuck opening the camera, portrait already on screen
            assert query_status(folder / "status.sock")["state"] == "STARTING"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=5)
            took = time.monotonic() - started
            assert code == 0 and took < 1.0, (code, took)
            assert "STOPPING=1" in notify.recv(4096).decode()
            assert not (folder / "status.sock").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            notify.close()
        out = proc.stdout.read().decode(errors="replace")
        assert "did not stop within" in out and "Traceback" not in out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_empty_room_blanks_the_screen_and_a_viewer_wakes_it_with_the_portrait(tmp_path, photo, detector,
                                                                                 caplog):
    """Screen power in the daemon's loop, on a framebuffer file: the real FBIOBLANK answers ENOTTY there,
    which is one warning while blanking and waking go on; the status socket's answer reports the state."""
    from edge.config import load_config
    from edge.service import EdgeService

    script = empty(5.0) + walk(3.0, 130, 130, 200, 420)
    clip = tmp_path / "empty-then-visitor.avi"
    write_clip(clip, script, FPS, photo=photo)
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(config_toml(clip=clip, fb=tmp_path / "fb", extra="[screen]\nidle_minutes = 0.05\n"))
    clock = Clock()
    service = EdgeService(load_config(cfg_path), cfg_path, detector=detector, serve_status=False, clock=clock)
    service.start()
    states = []
    try:
        with caplog.at_level(logging.INFO, logger="edge.screen_power"):
            while service.stats.frames_read < len(script):
                result = service.step()
                if result.frame is not None:
                    clock.now += 1 / FPS
                    states.append(service.status()["screen"]["state"])
                    if len(states) == int(4.5 * FPS):  # the room still empty
                        screen_then = service.status()["screen"]
                        line_then = service.running.api.status_line()
        assert screen_then["state"] == "blanked" and screen_then["why"] == "nobody seen for 0.05 min"
        assert "screen blanked (nobody seen for 0.05 min)" in line_then
        # nobody for 3 s (0.05 min): blanked; the visitor walks in: awake again, and it stays awake
        first_blank = states.index("blanked")
        assert 3.0 * FPS - 2 <= first_blank <= 3.0 * FPS + 2, first_blank
        woke = first_blank + states[first_blank:].index("on")
        assert int(5.0 * FPS) <= woke <= int(5.0 * FPS) + 10, woke
        assert all(s == "on" for s in states[woke:])
        screen = service.status()["screen"]
        assert screen["by"] == [f"FBIOBLANK {tmp_path / 'fb'}"] and "ENOTTY" in screen["errors"][0]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "edge.screen_power"]
        assert len(warnings) == 1 and "ENOTTY" in warnings[0].getMessage()
        assert "screen: blanking (nobody seen for 0.05 min)" in caplog.text
        assert "screen: waking (someone appeared)" in caplog.text
        # The wake redrew the portrait at the current gaze: the framebuffer holds exactly that pack frame.
        np.testing.assert_array_equal(read_fb_xrgb(tmp_path / "fb", (192, 256)),
                                      service.pack.frame_image(service.pipeline.index))
    finally:
        service.shutdown()


#: What ``mona-edge run`` has no use for: other commands' modules, the workstation's, and what only they
#: pull in (PIL: the pack writer and snapshots; importlib.metadata: the workstation's entry points;
#: hashlib: OpenSSL's libcrypto, 3.5 MiB of RSS, where CPython's own SHA-256 does, see edge/digest.py).
NOT_FOR_RUN = ("provisioning", "edge.demo", "edge.detect_cli", "edge.viewerclip", "edge.install", "edge.images",
               "PIL", "importlib.metadata", "email", "zipfile", "csv", "hashlib", "_hashlib")


def test_mona_edge_run_imports_only_what_the_daemon_uses(photo):
    """The real command line (edge.cli.main, as the console script runs it), run until a camera frame has
    gone through the pipeline, then SIGTERM; the modules it had loaded are written at exit."""
    import shutil

    folder = Path(_short_dir())
    try:
        clip = folder / "room.avi"
        write_clip(clip, empty(1.0), FPS, photo=photo)
        cfg = folder / "config.toml"
        sock_path = folder / "status.sock"
        cfg.write_text(config_toml(clip=clip, fb=folder / "fb", socket_path=sock_path, loop=True))
        dump = folder / "modules.json"
        code = ("import atexit, json, sys\n"
                f"atexit.register(lambda: json.dump(sorted(sys.modules), open({str(dump)!r}, 'w')))\n"
                "from edge.cli import main\n"
                "sys.exit(main(['run', '--config', sys.argv[1]]))\n")
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        proc = subprocess.Popen([sys.executable, "-c", code, str(cfg)], env=dict(env, PYTHONPATH=str(REPO)),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if query_status(sock_path)["frames"] > 0:
                        break
                except StatusUnavailable:
                    pass
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
                time.sleep(0.05)
            else:
                raise AssertionError("no frame through the pipeline within 60 s")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        modules = set(json.loads(dump.read_text()))
        assert {"edge.service", "edge.pipeline", "edge.detector", "edge.framebuffer"} <= modules  # it did run
        unused = sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_FOR_RUN))
        assert unused == [], unused
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_status_says_what_sink_auto_chose_and_why(tmp_path, photo, detector):
    """`mona-edge status` (and doctor, through it) names the screen `auto` took: here SDL's dummy driver,
    which the environment names (tests/conftest.py), as a desktop's or a Pi console's would be named."""
    clip = tmp_path / "a.avi"
    write_clip(clip, walk(0.5, 130, 130, 80, 300), FPS, photo=photo)
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(config_toml(clip=clip, display="auto"))
    from edge.config import load_config
    from edge.service import EdgeService

    service = EdgeService(load_config(cfg_path), cfg_path, detector=detector, serve_status=False)
    service.start()
    try:
        status = service.status()
        assert status["display"].startswith("pygame (dummy"), status["display"]
        assert "SDL_VIDEODRIVER" in status["display"]  # the reason: what made it choose
    finally:
        service.stop()
