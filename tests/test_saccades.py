"""Eyes that move like eyes: main-sequence saccades, a dead band, smooth pursuit, idle glances, gain."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from edge.config import GazeConfig
from edge.saccades import EyeController, min_jerk


def eyes(**kw) -> EyeController:
    args = dict(dead_band_deg=2.5, saccade_base_ms=21.0, saccade_ms_per_deg=2.2, min_fixation_s=0.2,
                pursuit_deg_s=45.0, idle_glance_interval_s=4.0, idle_glance_deg=12.0, idle_glance_hold_s=0.8,
                limits=(-30.0, 30.0))
    args.update(kw)
    return EyeController(**args)


def test_a_saccade_follows_the_main_sequence():
    for amplitude, expected_ms in ((10.0, 43.0), (20.0, 65.0)):
        e = eyes()
        e.update(0.0, 0.0)
        t, path = 0.001, []
        e.update(amplitude, t, new_target=True)
        while e.mode == "saccade":
            path.append((t, e.angle))
            t += 0.001
            e.update(amplitude, t)
        duration = path[-1][0] + 0.001 - path[0][0]
        assert duration * 1000 == pytest.approx(expected_ms, abs=1.5)
        assert e.angle == amplitude and e.saccades == 1
        speeds = [(b - a) / 0.001 for (_, a), (_, b) in zip(path, path[1:])]
        # bell-shaped: peak 1.875x the mean speed (minimum jerk), 10 deg: about 440 deg/s
        assert max(speeds) == pytest.approx(1.875 * amplitude / duration, rel=0.05)
        assert all(s >= 0 for s in speeds)
    assert min_jerk(0.0) == 0.0 and min_jerk(1.0) == 1.0 and min_jerk(0.5) == pytest.approx(0.5)


def test_a_saccade_at_camera_rate_lands_within_two_frames():
    e = eyes()
    e.update(-25.0, 0.0)
    e.update(25.0, 1 / 15, new_target=True)  # 50 deg: 131 ms
    angles = [e.update(25.0, k / 15) for k in range(2, 6)]
    assert angles[1] == 25.0 and -25.0 < angles[0] < 25.0


def test_jitter_within_the_dead_band_never_moves_the_eyes():
    rng = random.Random(1)
    e = eyes()
    e.update(10.0, 0.0, new_target=True)
    t = 0.0
    for _ in range(60):  # land on 10 deg
        t += 1 / 30
        e.update(10.0, t)
    held = e.angle
    for _ in range(30 * 60):  # a minute of +-2 deg jitter (beyond a frame step), never the dead band
        t += 1 / 30
        assert e.update(10.0 + rng.uniform(-2.0, 2.0), t) == held
    assert e.mode == "fixate"


def test_smooth_pursuit_of_a_walker_and_a_catch_up_saccade_for_a_jump():
    e = eyes()
    e.update(-20.0, 0.0, new_target=True)
    t = 0.0
    for _ in range(10):
        t += 1 / 30
        e.update(-20.0, t)
    starts = e.saccades
    lags = []
    for k in range(60):  # 20 deg/s for 2 s
        t += 1 / 30
        target = -20.0 + 20.0 * (k + 1) / 30
        e.update(target, t)
        lags.append(target - e.angle)
    assert e.saccades == starts  # pursued, not jumped
    assert max(lags) < 3.0 and e.mode == "pursuit"
    t += 1 / 30
    e.update(e.angle + 15.0, t)  # the target jumps: a catch-up saccade
    assert e.mode == "saccade" and e.saccades == starts + 1


def test_idle_returns_to_centre_then_glances_aside_and_back():
    e = eyes()
    e.update(20.0, 0.0, new_target=True)
    t = 0.0
    while t < 0.5:
        t += 1 / 30
        e.update(20.0, t)
    assert e.angle == 20.0
    t += 1 / 30
    e.update(None, t)
    assert e.mode == "saccade" and e.idle
    glances, away_since, log = [], None, []
    while t < 600.0:
        t += 1 / 30
        a = e.update(None, t)
        log.append(a)
        if away_since is None and abs(a) > 1.0 and e.mode != "saccade":
            away_since = t
            glances.append(t)
        elif away_since is not None and a == 0.0:
            away_since = None
    gaps = [b - a for a, b in zip(glances, glances[1:])]
    assert len(glances) > 60  # about every 4.8 s (4 s interval + hold)
    assert min(gaps) >= 1.0 and 3.0 < sum(gaps) / len(gaps) < 7.0
    assert max(abs(a) for a in log) <= 12.0 and min(log) < -5.0 < 5.0 < max(log)  # both sides
    assert sum(a == 0.0 for a in log) > 0.6 * len(log)  # mostly looking ahead
    # deterministic: the same inputs give the same eyes
    f = eyes()
    f.update(20.0, 0.0, new_target=True)
    assert f.saccades == 1


def test_gain_scales_the_deflection():
    import test_gaze as g

    def settle(gain: float) -> float:
        tr = g.GazeTracker(replace(GazeConfig(), gain=gain), g.N, (g.W, g.H))
        t = g.arrive(tr, -700.0, 2000.0, 0.0)
        for _ in range(60):
            tr.update([g.room_face(-700.0 + g.sway(t), 2000.0)], t)
            t += 1 / g.FPS
        return tr.eye_deg

    full, half = settle(1.0), settle(0.5)
    expected = math.degrees(math.atan2(-700.0, 2000.0))
    assert full == pytest.approx(expected, abs=2.5)  # within the dead band
    assert half == pytest.approx(expected / 2, abs=2.5) and abs(half) < abs(full)
