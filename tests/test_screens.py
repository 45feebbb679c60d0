"""Screens are places too (edge.pictures): a face that moves about inside a box for ``screen_seconds``
without ever going anywhere is on a TV; it is not followed, nor is the next shot's face there, and the
motion gate stops counting the screen's change as the room's. People who walk, stand or leave it stay
people."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from test_gaze import face_at as gaze_face_at

from edge.config import GazeConfig
from edge.faces import Face
from edge.gaze import GazeTracker
from edge.motion import GateSettings, MotionGate
from edge.motion import luma_thumbnail as thumb
from edge.pictures import PERSON, SCREEN, FaceTracks

W, H = 640, 480
N = 33
CENTRE = 16
FPS = 15.0
#: the room bench's TV (tests/rooms.py TV_SET): a 50 px face panning +-48 px in 7 s inside a 170 px screen
TV_X, TV_Y, TV_W = 125.0, 304.0, 50.0


def face_at(u: float, v: float, width: float) -> Face:
    """A frontal face of ``width`` px with its eye midpoint at (u, v) (test_gaze's, sized by width)."""
    return gaze_face_at(u, v, width / 2.4, width)


def tv_face(t: float, phase: float = 0.0) -> Face:
    return face_at(TV_X + 48.0 * math.sin(2 * math.pi * (t + phase) / 7.0),
                   TV_Y + 6.0 * math.sin(2 * math.pi * t / 3.1), TV_W)


def tracker(**kw) -> GazeTracker:
    return GazeTracker(replace(GazeConfig(), **kw), N, (W, H))


def test_a_tv_face_is_followed_at_first_then_known_for_a_screen_and_let_go():
    tr = tracker(screen_seconds=8.0)
    t, followed, screen_at = 0.0, [], None
    while t < 30.0:
        tr.update([tv_face(t)], t)
        followed.append(tr.viewer is not None)
        if screen_at is None and tr.tracks.screens:
            screen_at = t
        t += 1 / FPS
    # with nobody else there the moving face is followed at first (it moves: a person, for all it knows)
    assert any(followed[: int(2 * FPS)])
    # ... until it has moved about for screen_seconds in all without going anywhere: a screen (the pan
    # stands still at its turns, so that takes longer than 8 s)
    assert screen_at is not None and 8.0 <= screen_at <= 16.0, screen_at
    late = followed[int((screen_at + 0.2) * FPS):]
    assert late and not any(late)
    assert tr.idle and tr.viewer is None  # back at the centre, idling
    (screen,) = tr.tracks.screens
    assert screen.holds(TV_X - 48.0, TV_Y) and screen.holds(TV_X + 48.0, TV_Y)
    assert not screen.holds(TV_X + 48.0 + 2 * TV_W, TV_Y)
    # the trace and the demo count it with the faces not followed
    assert len(tr.pictures) == 1


def test_the_next_shot_on_a_known_screen_is_a_screen_at_once_and_a_walker_past_it_is_followed():
    tr = tracker(screen_seconds=8.0)
    t = 0.0
    while not tr.tracks.screens:
        tr.update([tv_face(t)], t)
        t += 1 / FPS
    # a cut: the screen shows nobody for 4 s (the track is dropped), then another face somewhere else on it
    for _ in range(int(4 * FPS)):
        tr.update([], t)
        t += 1 / FPS
    (shot,) = tr.tracks.update([tv_face(t, phase=3.0)], t)
    assert shot.kind == SCREEN
    # someone walks past in front of the room, across the frame: followed, the screen never
    start = t
    while t - start < 4.0:
        x = -60.0 + 190.0 * (t - start)
        tr.update([tv_face(t, phase=3.0), face_at(x, 220.0, 90.0)], t)
        if 0.5 < t - start < 3.5:
            assert tr.viewer is not None and abs(float(tr.viewer.box[2] - tr.viewer.box[0]) - 90.0) < 1.0
        t += 1 / FPS
    # they have gone; the TV plays on: the eyes are back at the centre within 2 s and stay there
    gone = t
    while t - gone < 5.0:
        tr.update([tv_face(t, phase=3.0)], t)
        if t - gone > 2.0:
            assert tr.viewer is None and not tr.viewer_present
        t += 1 / FPS


def test_walkers_and_a_still_viewer_are_never_screens():
    # a person pacing across the room for 40 s: always moving, but they go somewhere (travelled)
    tracks = FaceTracks(2.5, 4.0, 0.2, 1800.0, screen_seconds=8.0)
    t = 0.0
    while t < 40.0:
        (p,) = tracks.update([face_at(320.0 + 200.0 * math.sin(2 * math.pi * t / 10.0), 220.0, 70.0)], t)
        t += 1 / FPS
    assert p.kind == PERSON and not tracks.screens
    # someone who walks up and stands for a minute, swaying a few millimetres: still, not moving about
    tracks = FaceTracks(2.5, 4.0, 0.2, 1800.0, screen_seconds=8.0)
    t = 0.0
    while t < 62.0:
        x = 200.0 + min(t, 2.0) * 60.0 + (1.5 * math.sin(2 * math.pi * 0.23 * t) if t > 2.0 else 0.0)
        (p,) = tracks.update([face_at(x, 220.0, 80.0)], t)
        t += 1 / FPS
    assert p.kind == PERSON and not tracks.screens


def test_a_screen_face_that_walks_out_of_the_box_is_a_person_and_the_box_is_forgotten():
    # someone fidgeting in one spot long enough to be taken for a screen steps out of it
    tracks = FaceTracks(2.5, 4.0, 0.2, 1800.0, screen_seconds=8.0)
    t = 0.0
    while not tracks.screens:
        (f,) = tracks.update([tv_face(t)], t)
        t += 1 / FPS
        assert t < 30.0
    assert f.kind == SCREEN
    x = TV_X
    while f.kind == SCREEN and x < 400.0:
        x += 8.0
        (f,) = tracks.update([face_at(x, TV_Y, TV_W)], t)
        t += 1 / FPS
    assert f.kind == PERSON and x < TV_X + 48.0 + 3 * TV_W and not tracks.screens


def test_screens_off_and_forgotten():
    tracks = FaceTracks(2.5, 4.0, 0.2, 600.0, screen_seconds=0.0)
    t = 0.0
    while t < 40.0:
        (f,) = tracks.update([tv_face(t)], t)
        t += 1 / FPS
    assert f.kind == PERSON and not tracks.screens  # screen_seconds = 0: never
    tracks = FaceTracks(2.5, 4.0, 0.2, 600.0, screen_seconds=8.0)
    t = 0.0
    while not tracks.screens:
        tracks.update([tv_face(t)], t)
        t += 1 / FPS
    tracks.reset()  # a new clock: the room's screens are kept, as its pictures are
    (f,) = tracks.update([tv_face(0.0)], 0.0)
    assert f.kind == SCREEN
    tracks.update([], 601.0)  # nothing seen there for place_forget_s: forgotten
    assert not tracks.screens and not tracks.screen_areas()


def test_the_motion_gate_does_not_count_change_inside_a_screen():
    gate = MotionGate(GateSettings(scan_s=0.4, settle_s=2.0, idle_scan_s=30.0))
    room = np.full((480, 640), 90, np.uint8)
    playing = room.copy()
    playing[260:360, 50:200] = 200  # the TV's picture changes
    walker = playing.copy()
    walker[100:400, 400:440] = 30  # someone in the room

    gate.decide(thumb(room), 0.0, tracked=False)
    gate.detected(thumb(room), 0.0)
    assert gate.decide(thumb(playing), 0.1, tracked=False) == "changed"
    gate.ignore([(40, 250, 210, 370)])
    assert gate.decide(thumb(playing), 0.2, tracked=False) == "gated" and gate.changed_share == 0.0
    assert gate.moving_regions() == []
    assert gate.decide(thumb(walker), 0.3, tracked=False) == "changed"  # the room's own change still counts
    (region,) = gate.moving_regions()
    assert region[0] >= 400 // 8 - 1  # the walker, not the TV
    gate.ignore([])
    assert gate.decide(thumb(playing), 0.35, tracked=False) == "changed"


def test_a_walker_takes_over_at_once_from_a_tv_face_the_detector_missed_for_a_moment():
    # nobody else there: the TV face is followed (not yet known for a screen)
    tr = tracker()
    t = 0.0
    for _ in range(int(3 * FPS)):
        tr.update([tv_face(t)], t)
        t += 1 / FPS
    tv_id = tr.selector.current_id
    assert tv_id is not None
    # someone walks in from the frame's side at 1.4 m (a 55 px face, 3.5 face widths a second); the
    # whole-frame search misses the TV face from their first frame on, as the room bench's did
    start, taken = t, None
    while t - start < 1.0:
        tr.update([face_at(20.0 + 190.0 * (t - start), 220.0, 55.0)], t)
        if taken is None and tr.selector.current_id not in (None, tv_id):
            taken = t - start
        t += 1 / FPS
    # followed on the frame they are a person (seen three times, half a face width on), not after the
    # TV's grace (0.4 s) has run out
    assert taken is not None and taken <= 3 / FPS + 1e-6, taken
