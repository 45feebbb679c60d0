"""SIGHUP on a real daemon (bundled clip as its camera, short-range model, test pack, headless screen):
bad candidates refused in one line with the running state untouched, what a reload applies section by
section, and the deadline on a candidate that takes too long to load."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

import edge.reload
from edge.reload import REFUSED, RESTART

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "assets" / "clips" / "viewer-walk.mp4"
TEST_PACK = REPO / "assets" / "packs" / "test"
DEEP = 3000


def config_text(*, clip=CLIP, pack=TEST_PACK, camera="", detector="", gaze="", display="", service="") -> str:
    if "ready_timeout" not in service:
        service = "ready_timeout = 5\n" + service
    return (f'[camera]\nsource = "video"\npath = "{clip}"\nrealtime = false\nretry_initial_s = 0.05\n'
            f"retry_max_s = 0.2\n{camera}\n"
            f'[detector]\nrange = "short"\nthreads = 1\n{detector}\n'
            f"[gaze]\n{gaze}\n"
            f'[display]\nsink = "headless"\nwidth = 96\nheight = 128\n{display}\n'
            f'[pack]\npath = "{pack}"\n'
            f"[service]\n{service}\n")


@pytest.fixture
def daemon(tmp_path):
    """A started daemon on ``tmp_path/config.toml``; ``make(**kwargs)`` starts it (a notifier, a camera)."""
    from edge.config import load_config
    from edge.service import EdgeService

    started = []

    def make(text: str | None = None, **kwargs):
        cfg = tmp_path / "config.toml"
        cfg.write_text(text or config_text())
        service = EdgeService(load_config(cfg), cfg, serve_status=False, **kwargs)
        service.start()
        started.append(service)
        for _ in range(3):
            service.step()
        return service, cfg

    yield make
    for service in started:
        service.shutdown()


def sighup(service, limit: float = 10.0) -> list:
    """Ask for a reload as SIGHUP does and step the loop until it has finished; the step results meanwhile."""
    before = service.stats.reloads + service.stats.errors["reload"]
    service.request_reload()
    results = []
    deadline = time.monotonic() + limit
    while service.stats.reloads + service.stats.errors["reload"] == before:
        assert time.monotonic() < deadline, "the reload did not finish"
        results.append(service.step())
    return results


# --- bad candidates ---------------------------------------------------------------------------------------
BAD = {
    "overflow": ('gaze', "fov_deg = " + "1" * 400, "[gaze] fov_deg = <an integer of 400 digits>"),
    "huge-decimal": ('gaze', "fov_deg = " + "1" * 5000, "a number too long to read"),
    "deep-arrays": ('gaze', "fov_deg = " + "[" * DEEP + "]" * DEEP, "nested too deeply (line 13, key fov_deg)"),
    "deep-tables": ('gaze', "camera_offset_mm = " + "{ x = " * DEEP + "1" + " }" * DEEP,
                    "nested too deeply (line 13, key camera_offset_mm)"),
    "date": ('gaze', "idle_seconds = 1979-05-27", "[gaze] idle_seconds = 1979-05-27: expected a number"),
    "world-socket": ('service', "socket_mode = 0o666", "[service] socket_mode = 0o666: expected a permission mode"),
}


@pytest.mark.parametrize("how", ["sighup", "reload"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_config_on_reload_is_one_warning_line_and_the_running_state_is_kept(daemon, caplog, name, how):
    """These used to raise OverflowError or RecursionError out of the reload (and kill the daemon; later
    a traceback as "a bug"): the user's fault, one line naming the file and key."""
    service, cfg = daemon()
    old_parts, old_config, old_index = service.parts, service.config, service.pipeline.index
    section, line, expected = BAD[name]
    cfg.write_text(config_text(**{section: line}))
    with caplog.at_level(logging.DEBUG, logger="edge.reload"):
        if how == "sighup":
            sighup(service)
        else:
            assert service.reload() is False
    assert service.parts is old_parts and service.config is old_config and service.pipeline.index == old_index
    assert service.stats.errors["reload"] == 1 and service.stats.reloads == 0
    message = service.stats.last_error
    assert message.startswith(f"{REFUSED}: {cfg}: ") and expected in message and "\n" not in message, message
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert warnings[0].getMessage() == message
    # -v (debug): where it was refused, for whoever chases it; never at the default level
    assert [r.exc_info is not None for r in caplog.records if r.levelno == logging.DEBUG] == [True]
    assert service.step().times is not None  # the loop goes on, on the old parts


def test_systemexit_from_a_library_while_loading_is_refused_as_a_bug_and_the_loop_goes_on(daemon, caplog,
                                                                                        monkeypatch):
    """Whatever the load thread raises stays with the candidate (it used to be re-raised on the loop)."""
    service, cfg = daemon()
    old_parts = service.parts

    def exits(config, screen_size):
        raise SystemExit(3)

    monkeypatch.setattr(edge.reload, "make_pack", exits)
    with caplog.at_level(logging.WARNING, logger="edge.reload"):
        sighup(service)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None and errors[0].exc_info[0] is SystemExit
    assert service.parts is old_parts and service.stats.errors["reload"] == 1
    assert service.stats.last_error.startswith(f"{REFUSED}: internal error loading {cfg}: SystemExit: 3")
    assert service.step().times is not None


# --- what a reload applies ------------------------------------------------------------------------------
def test_service_keys_log_level_applies_at_once_the_others_are_named_as_taking_effect_on_restart(daemon, caplog):
    service, cfg = daemon()
    root = logging.getLogger()
    level = root.level
    running_service = service.config.service
    try:
        cfg.write_text(config_text(gaze='mapping = "linear"',
                                   service='log_level = "debug"\nstatus_socket = "/tmp/elsewhere.sock"\n'
                                           "socket_mode = 0o600\nwatchdog = false\nready_timeout = 60"))
        with caplog.at_level(logging.INFO, logger="edge.reload"):
            sighup(service)
        assert service.stats.reloads == 1 and service.stats.errors["reload"] == 0
        # applied: the rest of the file, and log_level
        assert service.config.gaze.mapping == "linear" and root.level == logging.DEBUG
        assert service.config.service.log_level == "debug"
        # not applied, and the config the daemon reports says what it really runs
        svc = service.config.service
        assert (svc.status_socket, svc.socket_mode, svc.watchdog, svc.ready_timeout) == (
            running_service.status_socket, running_service.socket_mode, running_service.watchdog,
            running_service.ready_timeout)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [f"reload: [service] status_socket, socket_mode, watchdog, ready_timeout: {RESTART}; "
                            "the rest of the reload is applied"]
        assert RESTART == "takes effect on restart (systemctl restart mona-edge)"
        assert any("[service] log_level applied" in r.getMessage() for r in caplog.records)
        # still different from the file: said again at the next reload
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edge.reload"):
            sighup(service)
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == warnings
        # back to what runs: nothing to say
        caplog.clear()
        cfg.write_text(config_text())
        with caplog.at_level(logging.INFO, logger="edge.reload"):
            sighup(service)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING] and service.stats.reloads == 3
        assert root.level == logging.INFO
    finally:
        root.setLevel(level)


def test_display_keys_take_effect_on_restart_and_the_new_pack_fits_the_running_screen(daemon, caplog):
    service, cfg = daemon()
    running_display, old_pack = service.config.display, service.pack
    cfg.write_text(config_text(display="rotation = 90").replace("width = 96", "width = 200"))
    with caplog.at_level(logging.WARNING, logger="edge.reload"):
        sighup(service)
    assert service.stats.reloads == 1 and service.pack is not old_pack
    assert service.config.display == running_display
    assert [r.getMessage() for r in caplog.records] == [
        f"reload: [display] rotation, width: {RESTART}; the rest of the reload is applied"]
    shown = service.parts.display.snapshot()
    assert shown.shape[:2] == (128, 96)
    assert service.pack.frame_image(service.pipeline.index).shape[:2] == (128, 96)


def test_motion_keys_make_a_new_face_search_and_unchanged_ones_keep_it(daemon):
    """[motion] is part of the detector stack (edge/search.py's gate): a reload that changes only it applies
    it at once, with the model kept loaded as it was; a reload that changes neither keeps the very search."""
    service, cfg = daemon()
    old_search = service.parts.detector
    assert old_search.gate is not None and old_search.gate.settings.idle_scan_s == 30.0
    cfg.write_text(config_text(gaze='mapping = "linear"'))
    sighup(service)
    assert service.stats.reloads == 1 and service.parts.detector is old_search
    cfg.write_text(config_text() + "[motion]\nidle_scan_s = 5\n")
    sighup(service)
    assert service.stats.reloads == 2 and service.parts.detector is not old_search
    assert service.parts.detector.gate.settings.idle_scan_s == 5.0
    cfg.write_text(config_text() + "[motion]\nenabled = false\n")
    sighup(service)
    assert service.parts.detector.gate is None  # gating off: every frame searched
    for _ in range(3):
        assert service.step().error is None


def test_camera_keys_make_a_new_camera_and_unchanged_ones_keep_it(daemon, tmp_path):
    service, cfg = daemon()
    old_camera = service.parts.camera
    cfg.write_text(config_text(gaze='mapping = "linear"'))
    sighup(service)
    assert service.parts.camera is old_camera and old_camera.state == "ok"
    other = tmp_path / "other.mp4"
    shutil.copy(CLIP, other)
    cfg.write_text(config_text(clip=other))
    sighup(service)
    assert service.stats.reloads == 2 and service.parts.camera is not old_camera
    assert service.parts.camera.name == "file:other.mp4"
    for _ in range(5):
        service.step()
    assert service.parts.camera.state == "ok" and service.parts.camera.frames > 0


def test_camera_keys_are_not_applied_to_a_camera_the_daemon_was_given(daemon, tmp_path, caplog):
    from edge.camera import open_source

    service, cfg = daemon(camera=open_source("file", path=CLIP, realtime=False))
    given, running_camera = service.parts.camera, service.config.camera
    other = tmp_path / "other.mp4"
    shutil.copy(CLIP, other)
    cfg.write_text(config_text(clip=other))
    with caplog.at_level(logging.WARNING, logger="edge.reload"):
        sighup(service)
    assert service.stats.reloads == 1 and service.parts.camera is given
    assert service.config.camera == running_camera
    assert [r.getMessage() for r in caplog.records] == [
        "reload: [camera] path not applied: this daemon runs a camera it was given; the rest of the reload "
        "is applied"]


# --- the deadline ---------------------------------------------------------------------------------------
def test_a_candidate_past_its_deadline_is_refused_while_the_loop_draws_and_feeds_the_watchdog(
        daemon, notify_socket, monkeypatch, caplog, tmp_path):
    """A pack that takes too long (a stalled mount): refused at the deadline, frames and WATCHDOG=1 go on
    meanwhile, a second SIGHUP while it still loads is refused at once, and when it finally finishes
    its result (and the new camera it made) is dropped. The next reload works."""
    notifier, received = notify_socket
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.setattr(edge.reload, "LOAD_DEADLINE", 0.6)
    service, cfg = daemon(notifier=notifier)
    assert service.health.watchdog_every == pytest.approx(0.1)
    old_parts, old_config = service.parts, service.config
    real_make_pack, real_make_camera = edge.reload.make_pack, edge.reload.make_camera
    release, loading = threading.Event(), threading.Event()
    closed: list = []

    def stalled_make_pack(config, screen_size):
        loading.set()
        release.wait(20)
        return real_make_pack(config, screen_size)

    def spied_make_camera(config):
        camera = real_make_camera(config)
        close = camera.close
        camera.close = lambda: (closed.append(camera), close())  # type: ignore[method-assign]
        return camera

    monkeypatch.setattr(edge.reload, "make_pack", stalled_make_pack)
    monkeypatch.setattr(edge.reload, "make_camera", spied_make_camera)
    other = tmp_path / "other.mp4"
    shutil.copy(CLIP, other)
    cfg.write_text(config_text(clip=other))  # a new camera: built by the stalled candidate too
    received()
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="edge.reload"):
        during = sighup(service)
        took = time.monotonic() - t0
        assert loading.is_set() and 0.6 <= took < 2.0, took
        assert service.parts is old_parts and service.config is old_config and service.stats.reloads == 0
        message = service.stats.last_error
        assert message == (f"{REFUSED}: {cfg}: the new config, pack or model took longer than 0.6 s to load "
                           "(storage too slow, or a camera or file that hangs); it will be dropped when it finishes")
        assert len([r for r in during if r.times is not None]) >= 5  # the loop drew on meanwhile
        messages = received()
        assert messages.count("WATCHDOG=1") >= 4, messages
        assert messages[0].startswith("RELOADING=1") and any(m.startswith("READY=1") for m in messages)
        # another SIGHUP while the late one still loads: refused at once, no second thread behind a hang
        t1 = time.monotonic()
        sighup(service)
        assert time.monotonic() - t1 < 0.3 and service.stats.errors["reload"] == 2
        assert "the previous reload, refused after 0.6 s, is still loading" in service.stats.last_error
        # it finishes at last: dropped, and the camera it made closed
        release.set()
        deadline = time.monotonic() + 10
        while not any("finished loading; dropped" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline
            service.step()
    assert service.parts is old_parts and len(closed) == 1
    refusals = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in refusals] == [logging.WARNING, logging.WARNING]
    assert all(r.exc_info is None for r in refusals)
    # and the next reload, in time, switches
    monkeypatch.setattr(edge.reload, "make_pack", real_make_pack)
    sighup(service)
    assert service.stats.reloads == 1 and service.parts.camera.name == "file:other.mp4"
