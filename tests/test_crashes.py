"""A crash loop ends in safe mode, not in a failed unit: the daemon counts its own unclean starts
(edge/crashes.py) in the unit's StateDirectory and, at SAFE_AFTER in a row, starts on the bundled pack and
model with the default config, keeping [display], [camera] and [service]."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
from test_safe_mode import TEST_PACK, Daemon, centre_frame, config_text, folder, screen  # noqa: F401 (fixture)

from edge import crashes
from edge.assets import default_pack_path
from edge.crashes import SAFE_AFTER, CrashCounter


def test_the_count_rises_with_each_start_and_falls_to_zero_on_a_clean_stop(tmp_path, monkeypatch):
    monkeypatch.setattr(crashes, "STEADY_AFTER", 3600.0)
    counts = []
    for _ in range(SAFE_AFTER + 1):
        counter = CrashCounter(tmp_path)
        counts.append(counter.started())  # and then the process dies: no stopped_cleanly()
    assert counts == list(range(1, SAFE_AFTER + 2))
    assert [CrashCounter.in_a_loop(c) for c in counts] == [c >= SAFE_AFTER for c in counts]
    counter.stopped_cleanly()
    assert json.loads((tmp_path / crashes.FILE_NAME).read_text())["unclean_starts"] == 0
    assert CrashCounter(tmp_path).started() == 1


def test_running_steadily_resets_the_count_and_a_bad_file_counts_as_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(crashes, "STEADY_AFTER", 0.05)
    (tmp_path / crashes.FILE_NAME).write_text("{not json")
    counter = CrashCounter(tmp_path)
    assert counter.started() == 1
    assert counter._timer is not None
    counter._timer.join(2)  # the steady timer fired
    assert json.loads((tmp_path / crashes.FILE_NAME).read_text())["unclean_starts"] == 0
    assert CrashCounter(None).started() == 1 and not (tmp_path / "None").exists()  # no state dir: no count


def test_new_inputs_start_a_fresh_count(tmp_path, monkeypatch):
    """A deployment that crashed (an update) must not send the next one (its rollback) into safe mode."""
    monkeypatch.setattr(crashes, "STEADY_AFTER", 3600.0)
    assert [CrashCounter(tmp_path).started("update") for _ in range(3)] == [1, 2, 3]
    assert CrashCounter(tmp_path).started("rolled back") == 1


def test_from_a_shell_nothing_is_counted(monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert CrashCounter.from_environment().path is None


def test_after_unclean_starts_in_a_row_the_daemon_starts_in_safe_mode_then_a_clean_stop_clears_it(folder):  # noqa: F811
    state = folder / "state"
    state.mkdir()
    (state / crashes.FILE_NAME).write_text(json.dumps({"unclean_starts": SAFE_AFTER - 1}))
    (folder / "config.toml").write_text(config_text(folder))  # a good config: the crashes came from elsewhere
    os.environ["STATE_DIRECTORY"] = str(state)
    try:
        daemon = Daemon(folder)
    finally:
        del os.environ["STATE_DIRECTORY"]
    try:
        status = daemon.status_when(lambda s: s["state"] == "DEGRADED" and s["safe_mode"])
        assert f"ended uncleanly {SAFE_AFTER - 1} times in a row" in status["safe_mode"]["reason"]
        assert np.array_equal(screen(folder), centre_frame(default_pack_path()))  # the bundled pack
        assert status["config"] == str(folder / "config.toml")
        # a reload of the (good) config file leaves safe mode, as for any other safe mode
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.status_when(lambda s: s["state"] == "READY" and not s["safe_mode"])
        assert np.array_equal(screen(folder), centre_frame(TEST_PACK))
    finally:
        output = daemon.finish()
    assert daemon.proc.returncode == 0, output
    assert json.loads((state / crashes.FILE_NAME).read_text())["unclean_starts"] == 0
