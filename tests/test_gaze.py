"""Gaze: viewers in a simulated room (pinhole camera, 640x480) and on real photographs through the detector."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest

from edge.config import GazeConfig, Offset
from edge.faces import Face
from edge.gaze import (
    FaceTracks,
    FrameStepper,
    GazeTracker,
    GeometryMapping,
    LinearMapping,
    OneEuroFilter,
    focal_length_px,
    viewer_angle_deg,
)

W, H = 640, 480
N = 33
CENTRE = 16
FOCAL = focal_length_px(W, 62.2)
FPS = 30.0


def face_at(u: float, v: float, ipd_px: float, width: float | None = None, score: float = 0.9) -> Face:
    """A frontal face with its eye midpoint at image (u, v); eyes level, ``ipd_px`` apart."""
    width = width if width is not None else ipd_px * 2.4
    kp = np.array([[u - ipd_px / 2, v], [u + ipd_px / 2, v], [u, v + 0.3 * width], [u, v + 0.55 * width],
                   [u - width / 2, v + 0.1 * width], [u + width / 2, v + 0.1 * width]], dtype=np.float32)
    box = np.array([u - width / 2, v - 0.35 * width, u + width / 2, v + 0.75 * width], dtype=np.float32)
    return Face(box=box, keypoints=kp, score=score)


def room_face(x_mm: float, z_mm: float, offset_x: float = 0.0, mirror: bool = False, ipd_mm: float = 63.0,
              jitter_px: float = 0.0, rng: random.Random | None = None, size_scale: float = 1.0) -> Face:
    """How the camera sees a viewer at room position (x, z) relative to the *portrait's eyes*."""
    x_cam = x_mm - offset_x                                  # relative to the camera
    u = W / 2 + (1 if mirror else -1) * FOCAL * x_cam / z_mm  # unmirrored: the room's left is the image's right
    ipd = FOCAL * ipd_mm / z_mm
    if rng is not None and jitter_px:
        u += rng.gauss(0.0, jitter_px)
        ipd += rng.gauss(0.0, jitter_px / 3)
    return face_at(u, H / 2 - 40, ipd, width=ipd * 2.4 * size_scale)


def cfg(**kw) -> GazeConfig:
    return replace(GazeConfig(), **kw)


def ideal_index(angle: float, span=(-30.0, 30.0)) -> int:
    step = (span[1] - span[0]) / (N - 1)
    return int(min(N - 1, max(0, math.floor((angle - span[0]) / step + 0.5))))


# --- geometry ---------------------------------------------------------------------------------------------
def test_hand_computed_camera_offset_example():
    # Camera 200 mm to the viewer's right of the painted eyes; viewer 2 m away straight in front of the eyes.
    # The camera sees him atan(200/2000) = 5.71 deg to the room's left, i.e. RIGHT of its image centre...
    ipd_px = FOCAL * 63.0 / 2000.0
    u = W / 2 + FOCAL * 200.0 / 2000.0
    assert math.degrees(math.atan((u - W / 2) / FOCAL)) == pytest.approx(5.7106, abs=1e-3)
    # ...yet from the portrait's eyes he is straight ahead: angle 0.
    assert viewer_angle_deg(u, ipd_px, W, 62.2, 63.0, camera_offset_x_mm=200.0) == pytest.approx(0.0, abs=1e-9)
    # Ignoring the offset would put him 5.71 deg to the viewer's left.
    assert viewer_angle_deg(u, ipd_px, W, 62.2, 63.0) == pytest.approx(-5.7106, abs=1e-3)
    # A viewer 1 m to the right of the eyes at 2 m: 800 mm right of the camera (image left), angle atan(0.5).
    u2 = W / 2 - FOCAL * 800.0 / 2000.0
    assert viewer_angle_deg(u2, ipd_px, W, 62.2, 63.0, 200.0) == pytest.approx(26.5651, abs=1e-3)
    # mirrored images: the same viewer seen on the other side of the image gives the same angle
    u3 = W / 2 + FOCAL * 800.0 / 2000.0
    assert viewer_angle_deg(u3, ipd_px, W, 62.2, 63.0, 200.0, mirror=True) == pytest.approx(26.5651, abs=1e-3)
    # the focal length behind it: Pi camera v2 at 640 px is 530.5 px
    assert FOCAL == pytest.approx(320.0 / math.tan(math.radians(31.1)), rel=1e-12)
    assert FOCAL == pytest.approx(530.5, abs=0.1)


def test_geometry_mapping_reports_distance_and_elevation():
    m = GeometryMapping((W, H), 62.2, 63.0, camera_offset_mm=(200.0, 300.0))
    ipd_px = FOCAL * 63.0 / 2000.0
    # eyes at the image centre row: level with the camera, which is 300 mm above the painted eyes
    face = face_at(W / 2 + FOCAL * 0.1, H / 2, ipd_px)
    assert m(face) == pytest.approx(0.0, abs=1e-4)
    assert m.distance_mm == pytest.approx(2000.0, rel=1e-5)
    assert m.elevation_deg == pytest.approx(math.degrees(math.atan2(-300.0, 2000.0)), abs=1e-3)
    assert m(face_at(100, 100, 0.5)) is None  # no usable inter-pupil distance


def test_viewer_straight_in_front_of_the_eyes_gets_the_centre_frame_only_with_the_offset():
    rng = random.Random(1)

    def run(offset_cfg: float) -> int:
        tr = GazeTracker(cfg(camera_offset_mm=Offset(offset_cfg, 0.0)), N, (W, H))
        index = None
        for i in range(90):
            index = tr.update([room_face(0.0, 2000.0, offset_x=200.0, jitter_px=1.0, rng=rng)], i / FPS)
        return index

    assert run(200.0) == CENTRE
    assert run(0.0) == ideal_index(-5.71) == 13


def test_linear_mapping_with_and_without_calibration():
    span = (-30.0, 30.0)
    plain = LinearMapping((W, H), span)
    assert plain(face_at(0.9 * W, 200, 20)) == pytest.approx(-30.0 + 0.1 * 60.0)  # image right = viewer's left
    assert LinearMapping((W, H), span, mirror=True)(face_at(0.9 * W, 200, 20)) == pytest.approx(24.0)
    cal = LinearMapping((W, H), span, calibration=(0.8, 0.5, 0.2))
    assert cal(face_at(0.8 * W, 200, 20)) == pytest.approx(-30.0)
    assert cal(face_at(0.5 * W, 200, 20)) == pytest.approx(0.0)
    assert cal(face_at(0.2 * W, 200, 20)) == pytest.approx(30.0)
    assert cal(face_at(0.65 * W, 200, 20)) == pytest.approx(-15.0)
    assert cal(face_at(0.3 * W, 200, 20)) == pytest.approx(20.0)
    # an asymmetric calibration: the two halves get their own scale
    asym = LinearMapping((W, H), span, calibration=(0.1, 0.4, 0.9))
    assert asym(face_at(0.25 * W, 200, 20)) == pytest.approx(-15.0)
    assert asym(face_at(0.65 * W, 200, 20)) == pytest.approx(15.0)
    with pytest.raises(ValueError):
        LinearMapping((W, H), span, calibration=(0.1, 0.9, 0.5))
    tr = GazeTracker(cfg(mapping="linear", calibration_left_x=0.8, calibration_centre_x=0.5,
                         calibration_right_x=0.2), N, (W, H))
    for i in range(60):
        index = tr.update([face_at(0.8 * W + (i % 3), 200, 20)], i / FPS)
    assert index == 0


# --- following a viewer -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mirror", [False, True])
def test_index_follows_a_viewer_walking_left_to_right_monotonically(mirror):
    rng = random.Random(7)
    tr = GazeTracker(cfg(mirror=mirror), N, (W, H))
    t = 0.0
    # stand at the viewer's left (swaying a little) until the eyes have arrived
    for i in range(60):
        tr.update([room_face(-1500.0 + 20 * math.sin(i / 5), 2000.0, mirror=mirror, jitter_px=1.5, rng=rng)], t)
        t += 1 / FPS
    assert tr.index == 0 and tr.viewer_present and tr.angle_deg < -30
    # walk to the right at 0.75 m/s
    indices, lags = [], []
    for i in range(int(4 * FPS) + 1):
        x = -1500.0 + 3000.0 * i / (4 * FPS)
        indices.append(tr.update([room_face(x, 2000.0, mirror=mirror, jitter_px=1.5, rng=rng)], t))
        lags.append(ideal_index(math.degrees(math.atan2(x, 2000.0))) - indices[-1])
        t += 1 / FPS
    assert all(b >= a for a, b in zip(indices, indices[1:])), indices
    assert indices[-1] == N - 1
    assert len(set(indices)) == N  # every frame shown on the way: no skipped frames, no jumps
    assert max(lags) <= 3 and min(lags) >= -1, lags  # follows within a few frames of the true angle


def test_returns_to_centre_after_idle_seconds_at_the_speed_limit():
    rng = random.Random(3)
    c = cfg(idle_seconds=2.0, max_speed_fps=20.0)
    tr = GazeTracker(c, N, (W, H))
    t = 0.0
    for i in range(60):
        tr.update([room_face(-1600.0 + 10 * math.sin(i), 2000.0, jitter_px=1.0, rng=rng)], t)
        t += 1 / FPS
    assert tr.index == 0
    left_at = t
    history = []
    while t < left_at + 4.0:
        history.append((t - left_at, tr.update([], t)))
        t += 1 / FPS
    waiting = [i for dt, i in history if dt < 2.0 - 1e-9]
    assert set(waiting) == {0}  # held while the viewer may come back
    assert not tr.viewer_present and tr.viewer is None and tr.angle_deg is None
    returning = [(dt, i) for dt, i in history if dt >= 2.0 - 1e-9]
    arrived = next(dt for dt, i in returning if i == CENTRE)
    assert arrived == pytest.approx(2.0 + CENTRE / 20.0, abs=2 / FPS)
    assert returning[-1][1] == CENTRE
    assert all(b >= a for (_, a), (_, b) in zip(returning, returning[1:]))  # a smooth drift, one way


def test_reset_puts_the_eyes_at_centre_and_forgets_the_viewer():
    tr = GazeTracker(cfg(), N, (W, H))
    for i in range(60):
        tr.update([room_face(1500.0 + 5 * i, 2000.0)], i / FPS)
    assert tr.index == N - 1
    tr.reset()
    assert tr.index == CENTRE and tr.viewer is None and not tr.viewer_present and tr.angle_deg is None
    # a clock that starts over (camera reopened) does not break anything
    assert tr.update([room_face(-1500.0, 2000.0)], 0.0) == CENTRE
    assert tr.update([room_face(-1499.0, 2000.0)], 0.5) < CENTRE


def test_two_viewers_of_similar_size_do_not_cause_flicker_and_a_clearly_closer_one_takes_over():
    rng = random.Random(11)
    tr = GazeTracker(cfg(sticky_margin=0.3, sticky_seconds=1.0), N, (W, H))
    t = 0.0
    indices = []
    for _i in range(int(8 * FPS)):
        # A stands at the viewer's left, B at the right, same distance; their detected sizes wobble by 10 %
        # so each is "the largest" on about half the frames; the detector's order is arbitrary too.
        a = room_face(-800.0, 2000.0, jitter_px=1.0, rng=rng, size_scale=1 + rng.uniform(-0.1, 0.1))
        b = room_face(800.0, 2000.0, jitter_px=1.0, rng=rng, size_scale=1 + rng.uniform(-0.1, 0.1))
        faces = [a, b] if rng.random() < 0.5 else [b, a]
        indices.append(tr.update(faces, t))
        t += 1 / FPS
    settled = indices[int(2 * FPS):]
    assert len(set(settled)) == 1, settled  # one viewer, one steady frame
    first_side = settled[0] < CENTRE
    # B (or A) steps much closer: half the distance, twice the size, and stays there
    closer_x = 800.0 if first_side else -800.0
    switch_t = t
    moved_at = None
    for _i in range(int(4 * FPS)):
        far = room_face(-closer_x, 2000.0, jitter_px=1.0, rng=rng)
        near = room_face(closer_x / 2, 1000.0, jitter_px=1.0, rng=rng)
        index = tr.update([far, near], t)
        if moved_at is None and index != settled[0]:
            moved_at = t - switch_t
        t += 1 / FPS
    assert moved_at is not None and moved_at >= 1.0 - 1e-9  # only after sticky_seconds
    assert (index > CENTRE) == first_side
    assert index == ideal_index(math.degrees(math.atan2(closer_x / 2, 1000.0)))


def test_dropouts_of_the_viewer_do_not_hand_the_eyes_to_someone_else():
    rng = random.Random(5)
    tr = GazeTracker(cfg(), N, (W, H))
    t, chosen, index0 = 0.0, None, None
    for i in range(int(6 * FPS)):
        a = room_face(-900.0, 2000.0, jitter_px=1.0, rng=rng)
        b = room_face(900.0, 2100.0, jitter_px=1.0, rng=rng)
        # the detector misses A on one frame in seven and B on another: whoever is followed drops out
        faces = [b] if i % 7 == 3 else ([a] if i % 7 == 5 else [a, b])
        index = tr.update(faces, t)
        t += 1 / FPS
        if i == int(FPS):
            chosen, index0 = tr.selector.current_id, index
            assert index0 in (ideal_index(math.degrees(math.atan2(-900.0, 2000.0))),
                              ideal_index(math.degrees(math.atan2(900.0, 2100.0))))
        elif chosen is not None:
            assert tr.selector.current_id == chosen and index == index0, (i, index)


# --- static faces (paintings, posters) -----------------------------------------------------------------------
def test_a_static_face_is_ignored_while_a_moving_viewer_is_followed():
    rng = random.Random(2)
    c = cfg(static_seconds=3.0, static_px=3.0, idle_seconds=1.0)
    tr = GazeTracker(c, N, (W, H))
    t = 0.0

    def painting() -> Face:  # a portrait on the opposite wall: never moves, detector jitter of +-2 px
        return face_at(180.0 + rng.uniform(-2, 2), 150.0 + rng.uniform(-2, 2), 20.0 + rng.uniform(-0.5, 0.5))

    log = []
    while t < 6.0:
        log.append((t, tr.update([painting()], t), tr.viewer_present))
        t += 1 / FPS
    early = [i for tt, i, _ in log if 1.5 < tt < 2.9]
    assert min(early) > CENTRE  # before it is known to be static, it is taken for a viewer (at image left)
    assert not any(p for tt, _, p in log if tt > 3.1)  # after static_seconds: nobody there
    assert log[-1][1] == CENTRE  # and after idle_seconds the eyes are back at centre

    # a real viewer at the viewer's left, swaying a little, while the painting stays on the wall
    viewer_index = ideal_index(math.degrees(math.atan2(-900.0, 2500.0)))
    for i in range(int(8 * FPS)):
        x = -900.0 + 40.0 * math.sin(i / 10)
        index = tr.update([painting(), room_face(x, 2500.0, jitter_px=1.0, rng=rng)], t)
        t += 1 / FPS
    assert tr.viewer_present and abs(index - viewer_index) <= 1
    # the viewer leaves; the painting does not get the eyes back, even long after static_seconds
    for _ in range(int(3 * FPS)):
        index = tr.update([painting()], t)
        t += 1 / FPS
    assert index == CENTRE and not tr.viewer_present


def test_a_static_face_that_moves_again_counts_again_and_a_passer_by_does_not_wake_it():
    tracks = FaceTracks(static_seconds=2.0, static_px=3.0)
    t = 0.0
    for i in range(int(3 * FPS)):
        (tr,) = tracks.update([face_at(300.0 + (i % 3), 200.0, 25.0)], t)
        t += 1 / FPS
    assert tracks.is_static(tr, t)
    static_id = tr.id
    # someone much closer walks through the same spot: a different track; the painting stays static
    for i in range(10):
        (p,) = tracks.update([face_at(250.0 + 10 * i, 205.0, 60.0)], t)
        assert p.id != static_id
        t += 1 / FPS
    (tr,) = tracks.update([face_at(301.0, 200.0, 25.0)], t)
    assert tr.id == static_id and tracks.is_static(tr, t)
    # now the face itself moves (a photo picked up and carried): it is no longer static
    for i in range(int(1.5 * FPS)):
        (tr,) = tracks.update([face_at(301.0 + 4 * i, 200.0, 25.0)], t)
        t += 1 / FPS
    assert tr.id == static_id and not tracks.is_static(tr, t)


def test_a_still_viewer_within_static_px_of_jitter_is_not_static_before_static_seconds():
    tracks = FaceTracks(static_seconds=5.0, static_px=3.0)
    rng = random.Random(4)
    for i in range(int(4.9 * FPS)):
        (tr,) = tracks.update([face_at(320 + rng.gauss(0, 4), 200 + rng.gauss(0, 4), 20.0)], i / FPS)
        assert not tracks.is_static(tr, i / FPS)
    # jitter of 4 px (one sigma) on the raw keypoints still counts as still: the test uses the smoothed midpoint
    for i in range(int(4.9 * FPS), int(8 * FPS)):
        (tr,) = tracks.update([face_at(320 + rng.gauss(0, 4), 200 + rng.gauss(0, 4), 20.0)], i / FPS)
    assert tracks.is_static(tr, 8.0)


# --- filters ----------------------------------------------------------------------------------------------------
def test_one_euro_reduces_jitter_of_a_noisy_constant_and_follows_a_step():
    rng = random.Random(0)
    f = OneEuroFilter(min_cutoff=0.8, beta=0.05, d_cutoff=1.0)
    raw, out = [], []
    for i in range(int(6 * FPS)):
        x = 10.0 + rng.gauss(0.0, 0.5)  # half a degree of noise: a far viewer at 640x480
        raw.append(x)
        out.append(f.update(x, i / FPS))
    raw_sd, out_sd = float(np.std(raw[60:])), float(np.std(out[60:]))
    # ratio 0.31 on average over 30 seeds, 0.40 at worst: the noise's own speed lifts the cutoff a little
    assert out_sd < 0.45 * raw_sd, (raw_sd, out_sd)
    calm = OneEuroFilter(min_cutoff=0.8, beta=0.0)
    calm_sd = float(np.std([calm.update(x, i / FPS) for i, x in enumerate(raw)][60:]))
    assert calm_sd < 0.36 * raw_sd, (raw_sd, calm_sd)  # EMA theory at 0.8 Hz, 30 fps: 0.28
    assert abs(float(np.mean(out[60:])) - 10.0) < 0.2
    # a step of 20: followed within half a second to within 1, without overshoot
    t0 = 6.0
    step = [f.update(30.0, t0 + i / FPS) for i in range(int(FPS))]
    assert abs(step[int(0.5 * FPS)] - 30.0) < 1.0 and max(step) <= 30.0 + 1e-9
    # speed raises the cutoff: with beta the step is followed faster than without
    g = OneEuroFilter(min_cutoff=0.8, beta=0.0)
    g.update(10.0, 0.0)
    slow = [g.update(30.0, i / FPS) for i in range(1, 8)]
    h = OneEuroFilter(min_cutoff=0.8, beta=0.05)
    h.update(10.0, 0.0)
    fast = [h.update(30.0, i / FPS) for i in range(1, 8)]
    assert all(b > a for a, b in zip(slow, fast))
    # same timestamp twice changes nothing; reset takes the next value as it is
    v = h.update(5.0, 7 / FPS)
    assert v == fast[-1]
    h.reset()
    assert h.update(-3.0, 1.0) == -3.0 and h.value == -3.0
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0.0)


def test_hysteresis_keeps_the_index_constant_near_a_bin_edge():
    rng = random.Random(9)

    def changes(hysteresis: float) -> int:
        s = FrameStepper(N, (-30.0, 30.0), hysteresis, max_speed_fps=1000.0)
        s.aim_index(20)
        s.advance(1.0)
        edge = -30.0 + 20.5 * s.step  # the boundary between frames 20 and 21
        last, n = s.index, 0
        for _ in range(300):
            s.aim(edge + rng.uniform(-0.25, 0.25) * s.step)
            index = s.advance(1 / FPS)
            n += index != last
            last = index
        return n

    assert changes(0.3) == 0
    assert changes(0.0) > 20  # without it the same input flickers between the neighbours
    s = FrameStepper(N, (-30.0, 30.0), 0.3, max_speed_fps=1000.0)
    s.aim_index(20)
    s.advance(1.0)
    assert s.aim(-30.0 + 20.75 * s.step) == 20  # past the edge, but not by 0.3 of a step
    assert s.aim(-30.0 + 20.85 * s.step) == 21  # far enough past: the next frame
    assert s.aim(100.0) == N - 1 and s.aim(-100.0) == 0


def test_speed_limit_is_respected():
    s = FrameStepper(N, (-30.0, 30.0), 0.3, max_speed_fps=20.0)
    s.aim_index(0)
    s.advance(10.0)
    assert s.index == 0
    s.aim(30.0)
    t, history = 0.0, [0]
    while s.index != N - 1:
        t += 1 / FPS
        history.append(s.advance(1 / FPS))
    assert t >= (N - 1) / 20.0 - 1e-9
    assert t == pytest.approx((N - 1) / 20.0, abs=1.5 / FPS)
    assert max(b - a for a, b in zip(history, history[1:])) == 1
    # over any half second, at most speed * 0.5 + 1 frames of change
    per_frame = [b - a for a, b in zip(history, history[1:])]
    window = int(0.5 * FPS)
    assert max(sum(per_frame[i:i + window]) for i in range(len(per_frame) - window)) <= 20 * 0.5 + 1

    # through the tracker: a viewer jumping from far left to far right
    tr = GazeTracker(cfg(max_speed_fps=12.0), N, (W, H))
    for i in range(int(3 * FPS)):
        tr.update([room_face(-1800.0 + (i % 2), 2000.0)], i / FPS)
    assert tr.index == 0
    t0 = 3.0
    idx = [0]
    for i in range(int(4 * FPS)):
        idx.append(tr.update([room_face(1800.0 + (i % 2), 2000.0)], t0 + i / FPS))
    steps = [b - a for a, b in zip(idx, idx[1:])]
    assert max(steps) == 1 and min(steps) >= 0
    first_full = idx.index(N - 1)
    assert (first_full - 1) / FPS >= (N - 1) / 12.0 - 1e-9


def test_constructor_checks_and_single_frame_packs():
    with pytest.raises(ValueError, match="frame_count"):
        GazeTracker(cfg(), 0, (W, H))
    with pytest.raises(ValueError, match="span_deg"):
        GazeTracker(cfg(), N, (W, H), span_deg=(10.0, -10.0))
    with pytest.raises(ValueError, match="frame_size"):
        GazeTracker(cfg(), N, (0, H))
    one = GazeTracker(cfg(), 1, (W, H))
    assert one.update([room_face(-1000.0, 2000.0)], 0.0) == 0
    assert one.update([room_face(-999.0, 2000.0)], 0.1) == 0
    even = GazeTracker(cfg(), 8, (W, H), span_deg=(-20.0, 20.0))
    assert even.index == even.centre_index == 3


def test_steady_state_does_not_grow_memory():
    import tracemalloc

    rng = random.Random(8)
    tr = GazeTracker(cfg(), N, (W, H))
    faces = [[room_face(-700.0 + 30 * math.sin(i / 9), 2000.0, jitter_px=1.0, rng=rng),
              room_face(600.0, 2400.0, jitter_px=1.0, rng=rng)] for i in range(64)]
    for i in range(300):
        tr.update(faces[i % 64], i / FPS)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(300, 3300):
        tr.update(faces[i % 64], i / FPS)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if "gaze" in str(s.traceback))
    assert grown < 4096, grown
    assert len(tr.tracks.tracks) <= 4


# --- the real path: photographs through the detector -------------------------------------------------------------
def test_real_detections_of_a_photographed_face_move_the_eyes_monotonically(astronaut):
    from conftest import place_astronaut

    from edge.detector import FaceDetector

    detector = FaceDetector(None, "short", threads=2)
    # she walks across the camera's view from image right (the viewer's left) to image left
    xs = np.linspace(500.0, 140.0, 10)
    detections = []
    for x in xs:
        frame, eyes = place_astronaut(astronaut, 130.0, float(x), 200.0)
        faces = detector.detect(frame)
        assert len(faces) == 1
        assert abs(float(faces[0].eye_midpoint[0]) - float(eyes[:, 0].mean())) < 6.0
        detections.append(faces[0])
    tr = GazeTracker(cfg(), N, (W, H))
    t, settled = 0.0, []
    for face in detections:
        for _ in range(int(1.5 * FPS)):  # each position held 1.5 s: the eyes arrive
            index = tr.update([face], t)
            t += 1 / FPS
        angle = viewer_angle_deg(float(face.eye_midpoint[0]), face.eye_distance, W, 62.2)
        # the nearest frame, or its neighbour when hysteresis holds it (never beyond bin + margin)
        assert abs(index - ideal_index(angle)) <= 1
        assert abs(angle - (-30.0 + index * 60.0 / (N - 1))) <= (0.5 + tr.cfg.hysteresis) * 60.0 / (N - 1)
        settled.append(index)
    assert all(b > a for a, b in zip(settled, settled[1:])), settled
    assert settled[0] < CENTRE < settled[-1]
