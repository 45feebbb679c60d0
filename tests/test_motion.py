"""Motion gating and crop tracking through the daemon's own Pipeline.step, on rendered room scenes (real
photographs composited into a room with camera noise, tests/rooms.py) and the real int8 detectors, counted
by a wrapper that calls through: behaviour, not time."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rooms
from conftest import place_astronaut
from rooms import FPS, Scenario, ScenarioCamera, Walker, walk

from edge.config import ConfigError, config_from_dict, dump_default_config, load_config
from edge.detector import FaceDetector
from edge.display import HeadlessSink
from edge.faces import Face
from edge.motion import GateSettings, MotionGate, luma_thumbnail
from edge.pack import load_pack
from edge.pipeline import Pipeline, build_parts, face_search, gaze_tracker
from edge.search import MAX_GROWTH, SPEED_GAP_S, CropSettings, FaceSearch, ViewerMotion, crop_rect, to_frame

TEST_PACK = Path(__file__).resolve().parent.parent / "assets" / "packs" / "test"


class Counting:
    """A real detector, counted: how many frames it was asked to look at."""

    def __init__(self, inner: FaceDetector) -> None:
        self.inner = inner
        self.calls = 0
        self.model_path = inner.model_path

    def detect(self, rgb):
        self.calls += 1
        return self.inner.detect(rgb)


@pytest.fixture(scope="module")
def models():
    return FaceDetector(None, "full", threads=1), FaceDetector(None, "short", threads=1)


def play(scenario: Scenario, models, motion: dict | None = None, detector: dict | None = None):
    """Run the pipeline over ``scenario`` with the shipped search (config defaults unless overridden);
    returns (rows of (result, truth, followed after the step), the counted whole and crop detectors, camera)."""
    config = config_from_dict({"detector": {"range": "full", **(detector or {})}, "motion": motion or {}})
    whole, crop = Counting(models[0]), Counting(models[1])
    search = face_search(config, whole)
    search.crop = crop if config.detector.crop else None
    camera = ScenarioCamera(scenario)
    trackers = []
    factory = gaze_tracker(config.gaze)

    def make(*args):
        trackers.append(factory(*args))
        return trackers[-1]

    parts = build_parts(config, camera=camera, detector=search, pack=load_pack(TEST_PACK, screen_size=(96, 96)),
                        display=HeadlessSink((96, 96)), make_tracker=make)
    pipeline = Pipeline(parts)
    pipeline.open()
    rows = []
    while camera.state == "ok":
        result = pipeline.step()
        if result.frame is not None:
            rows.append((result, camera.truth, trackers[-1].followed))
    pipeline.close()
    return rows, whole, crop, camera


def person(truth):
    return next((f for f in truth if f.kind == "person"), None)


def finds(result, face) -> bool:
    """Whether ``result``'s faces include the truth ``face`` (eyes within half a face width)."""
    return any(math.hypot(float(f.eye_midpoint[0]) - face.eye_x, float(f.eye_midpoint[1]) - face.eye_y)
               < 0.5 * face.face_width for f in result.faces)


def empty_room(seconds: float) -> Scenario:
    return replace(rooms.empty_room(), seconds=seconds, tv=None, name="empty")


def enters_and_stops(empty_s: float = 2.0, z_mm: float = 1000.0) -> tuple[Scenario, float]:
    """Nobody for ``empty_s``, then one person walks in from the image's left and stops at the centre
    (``z_mm`` away) for good; also returns when she stops."""
    x0 = -(rooms.half_width_mm(z_mm) + 300.0)
    stop = empty_s + abs(x0) / 1200.0
    points = [(empty_s, x0, z_mm), (stop, 0.0, z_mm), (stop + 60.0, 0.0, z_mm)]
    scenario = Scenario("enters", stop + 2.0, [Walker("A", walk(points), still=rooms.standing(points))],
                        seed=21, description="walks in and stands")
    return scenario, stop


# --- the gate itself -------------------------------------------------------------------------------------
def test_the_thumbnail_is_the_mean_luma_of_each_cell_and_noise_does_not_reach_it():
    rng = np.random.default_rng(3)
    grey = np.full((480, 640), 120, np.uint8)
    thumb = luma_thumbnail(grey)
    assert thumb.shape == (60, 80) and (thumb == 120).all()
    noisy = np.clip(grey + rng.normal(0, 6, grey.shape), 0, 255).astype(np.uint8)
    gate = MotionGate(GateSettings(threshold=10.0, min_changed=0.002))
    assert gate.decide(luma_thumbnail(grey), 0.0, tracked=False) == "changed"  # nothing to compare with yet
    gate.detected(luma_thumbnail(grey), 0.0)
    # Camera noise of 6 grey levels (a dark room) averages out over 8x8 cells: nothing changed.
    assert gate.decide(luma_thumbnail(noisy), 0.1, tracked=False) == "gated" and gate.changed_share == 0.0
    # An RGB frame of that grey gives the same thumbnail (its green channel, sampled)
    rgb = np.dstack([grey] * 3)
    assert np.abs(luma_thumbnail(rgb).astype(int) - thumb).max() <= 1
    # ... and an RGB frame's noise is cut enough too (16 samples a cell)
    noisy_rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
    assert gate.decide(luma_thumbnail(noisy_rgb), 0.15, tracked=False) == "gated"
    # A 24x32 px patch (a face at 4 m) is 12 cells: changed.
    moved = grey.copy()
    moved[200:232, 300:324] = 200
    assert gate.decide(luma_thumbnail(moved), 0.2, tracked=False) == "changed"
    # Followed: always looked at, changed or not.
    assert gate.decide(luma_thumbnail(grey), 0.3, tracked=True) == "tracked"


def test_the_gate_scans_often_after_a_change_then_rarely():
    gate = MotionGate(GateSettings(scan_s=0.4, settle_s=2.0, idle_scan_s=5.0, idle_after_s=1.0))
    room = np.full((60, 80), 90, np.uint8)
    decided = []
    for i in range(int(12 * FPS)):
        t = i / FPS
        decision = gate.decide(room, t, tracked=False)
        if decision != "gated":
            gate.detected(room, t)
        decided.append((round(t, 3), decision))
    looked = [t for t, d in decided if d != "gated"]
    # the first frame, then every 0.4 s (6 frames at 15 fps) for 2 s after that change, then every 5 s
    assert looked[0] == 0.0 and all(0.39 < b - a < 0.41 for a, b in zip(looked, looked[1:5]))
    late = [t for t in looked if t > 2.5]
    assert len(late) == 2 and all(4.9 < b - a < 5.1 for a, b in zip(late, late[1:]))
    # the camera may slow down a second after the last change, periodic scans or not
    assert gate.quiet_since == 0.0 and gate.slow(11.9) and not gate.slow(0.9)
    assert gate.decide(room, 12.0, tracked=True) == "tracked" and not gate.slow(12.0)


# --- through the pipeline ------------------------------------------------------------------------------
def test_an_unchanging_empty_room_is_not_detected_and_the_camera_slows_down(models):
    rows, whole, crop, camera = play(empty_room(6.0), models, motion={"settle_s": 1.0})
    frames = len(rows)
    # the first frame and the scans in the first second after it (then one every 30 s): not one per frame
    assert frames == 90 and whole.calls <= 5 and crop.calls == 0
    assert sum(r.searched == "gated" for r, _, _ in rows) == frames - whole.calls
    assert all(r.viewer is None for r, _, _ in rows)
    # Gated frames keep the last search's faces (the photos on the wall), with no detector time.
    gated = [r for r, _, _ in rows if r.searched == "gated"]
    assert all(r.times is not None and not r.times.detected and r.times.by_stage()["detect"] is None
               for r in gated)
    assert any(r.faces for r in gated)
    last = ()
    for r, _, _ in rows:
        if r.searched == "gated":
            assert r.faces is last
        last = r.faces
    # idle for idle_after_s: the camera was asked for [motion] idle_fps, once
    assert camera.rates == [3.0]


def test_a_reload_that_keeps_the_camera_gives_it_its_full_rate_back(models):
    config = config_from_dict({"motion": {"settle_s": 0.5, "idle_after_s": 0.5}})
    camera = ScenarioCamera(empty_room(3.0))
    parts = build_parts(config, camera=camera, detector=face_search(config, models[0]),
                        pack=load_pack(TEST_PACK, screen_size=(96, 96)), display=HeadlessSink((96, 96)))
    pipeline = Pipeline(parts)
    pipeline.open()
    for _ in range(30):
        pipeline.step()
    assert camera.rates == [3.0]
    # a reload with a new search (a [motion] change) and the same camera: the new gate starts awake
    pipeline.switch_to(replace(parts, detector=face_search(config, models[0])))
    assert camera.rates == [3.0, None]
    pipeline.close()


def test_a_person_walking_in_wakes_the_detector_within_two_frames_and_is_found(models):
    scenario, _stop = enters_and_stops(empty_s=3.0)
    # scans only every minute: whatever wakes the detector is her
    rows, whole, _, camera = play(scenario, models, motion={"settle_s": 0.5, "idle_scan_s": 60.0})
    onset = next(i for i, (_, truth, _) in enumerate(rows)
                 if (p := person(truth)) is not None and p.eye_x + p.face_width > 0)  # first in the frame
    assert all(r.searched == "gated" for r, _, _ in rows[onset - 15:onset])  # idle before she came
    woke = next(i for i in range(onset, len(rows)) if rows[i][0].searched != "gated")
    assert woke - onset <= 2
    # from then on every frame is looked at while she walks in (and once she is followed)
    assert all(r.searched != "gated" for r, _, _ in rows[woke:woke + 10])
    assert camera.rates[-1] is None  # the camera is back at its full rate at once


def test_a_person_who_enters_and_stands_still_is_found_within_half_a_second(models):
    scenario, stop = enters_and_stops(empty_s=2.0)
    for motion in ({}, {"threshold": 255}):  # the shipped gate; a change test that never fires (scans only)
        rows, _, _, _ = play(scenario, models, motion=motion)
        stood = next(i for i, (r, _, _) in enumerate(rows) if r.timestamp >= stop)
        found = next(i for i in range(stood, len(rows)) if finds(rows[i][0], person(rows[i][1])))
        assert rows[found][0].timestamp - rows[stood][0].timestamp <= 0.5, motion
        if motion:  # found by a periodic scan, not a change
            assert rows[found][0].searched == "whole"


def test_nothing_is_gated_while_a_viewer_is_followed(models):
    scenario, stop = enters_and_stops(empty_s=1.0)
    rows, whole, crop, _ = play(replace(scenario, seconds=stop + 4.0), models)
    followed_before = [f is not None for _, _, f in rows]
    assert sum(followed_before) > 3 * FPS  # she is followed for seconds while standing still
    after = [rows[i + 1][0].searched for i in range(len(rows) - 1) if followed_before[i]]
    assert "gated" not in after
    # followed: mostly crops, a whole-frame scan every [detector] full_scan_s
    assert after.count("crop") > 2 * after.count("whole") and crop.calls > whole.calls


def test_gating_off_detects_every_frame(models):
    rows, whole, _, _ = play(empty_room(2.0), models, motion={"enabled": False})
    assert whole.calls == len(rows) and all(r.searched == "whole" for r, _, _ in rows)


# --- crops: a far face found large, in full-frame coordinates ---------------------------------------------
def test_a_crop_detection_maps_back_to_the_full_frame(models, astronaut):
    full, short = models
    frame, _ = place_astronaut(astronaut, 60.0, 420.0, 210.0)
    whole = full.detect(frame)
    assert len(whole) == 1
    search = FaceSearch(full, short)
    first = search.search(frame, 0.0, None)  # nobody followed: the whole frame
    assert first.where == "whole"
    found = search.search(frame, 1 / FPS, whole[0])  # followed: a crop around her
    assert found.where == "crop" and found.crop is not None and found.crop[0] > 0 and found.crop[1] > 0
    assert len(found.faces) == 1
    a, b = found.faces[0], whole[0]
    width = b.width
    # same face, same full-frame pixels (two models: within a tenth of a face width, not float-equal)
    assert np.abs(a.keypoints - b.keypoints)[:2].max() < 0.1 * width
    assert np.abs(a.box - b.box).max() < 0.15 * width
    # the mapping itself is the crop's origin added to boxes and keypoints, nothing else
    x0, y0, x1, y1 = found.crop
    in_crop = short.detect(frame[y0:y1, x0:x1])
    np.testing.assert_allclose(to_frame(in_crop, (x0, y0))[0].keypoints, a.keypoints, atol=1e-3)
    assert to_frame(in_crop, (x0, y0))[0].box == pytest.approx(a.box, abs=1e-3)


def test_a_far_viewer_lost_by_the_whole_frame_is_seen_large_in_a_crop(models, astronaut):
    full, short = models
    # 18 px wide: a face at about 4.5 m in a 640x480 Pi camera v2 frame (tests/rooms.py geometry)
    frame, _ = place_astronaut(astronaut, 18.0, 300.0, 240.0)
    assert full.detect(frame) == []  # beyond the full-range model on the whole frame
    rect = crop_rect((300.0, 241.0), 18.0, (640, 480), 4.0)
    assert rect[2] - rect[0] == 72 and rect[0] <= 300 - 9 and rect[2] >= 300 + 9
    faces = to_frame(short.detect(frame[rect[1]:rect[3], rect[0]:rect[2]]), rect[:2])
    assert len(faces) == 1
    mid = faces[0].eye_midpoint
    assert abs(float(mid[0]) - 300.0) < 3.0 and abs(float(mid[1]) - 240.0) < 3.0


def test_a_far_walker_with_nobody_followed_is_looked_for_where_the_room_moves(models):
    """Nobody followed, a walker across at 4.5 m (17 px face): the whole-frame full-range model finds her
    on few frames; the short-range model at the top of the moving region finds her on more, and nothing
    where nobody is (no face at the body's height, none on the wall photos' places)."""
    z = 4500.0
    x0 = -(rooms.half_width_mm(z) + 300.0)
    points = [(0.0, x0, z), (4.0, x0 + 4.0 * 1200.0, z)]
    scenario = Scenario("far", 4.0, [Walker("A", walk(points))], seed=41)
    shipped, whole, crop, _ = play(scenario, models)
    plain, _, _, _ = play(scenario, models, detector={"crop": False})

    def found(rows, where=("whole", "crop")):
        return sum(finds(r, person(truth)) for r, truth, _ in rows
                   if person(truth) is not None and person(truth).visible and r.searched in where)

    assert crop.calls > 0
    # the motion crops (on whole-frame searches: nobody followed yet) find her first, then the viewer's
    # crop keeps her (here 44 frames of the 55 she is in view, 3 of them whole, against none)
    assert found(shipped, ("whole",)) >= 2 and found(plain) <= 2
    assert found(shipped) >= max(30, 5 * found(plain)), (found(shipped), found(plain))
    walls = [(p.eye_x, p.eye_y) for p in rooms.WALL]
    for r, truth, _ in shipped:
        her = person(truth)
        for f in r.faces:
            x, y = (float(v) for v in f.eye_midpoint)
            on_wall = any(math.hypot(x - px, y - py) < 15 for px, py in walls)
            on_her = her is not None and math.hypot(x - her.eye_x, y - her.eye_y) < her.face_width
            assert on_wall or on_her, (r.timestamp, x, y, f.width)


def test_moving_regions_are_the_changed_cells_grouped_largest_first():
    gate = MotionGate(GateSettings())
    room = np.full((60, 80), 90, np.uint8)
    gate.decide(room, 0.0, tracked=False)
    gate.detected(room, 0.0)
    moved = room.copy()
    moved[10:40, 20:26] = 200  # a tall blob (a walker)
    moved[50:52, 60:62] = 200  # a small one
    assert gate.decide(moved, 0.1, tracked=False) == "changed"
    regions = gate.moving_regions()
    assert regions[0] == (19, 9, 27, 41)  # dilated by one cell each way
    assert regions[1] == (59, 49, 63, 53) and len(regions) == 2
    assert gate.moving_regions(most=1) == regions[:1]


def test_crop_rect_stays_inside_the_frame():
    assert crop_rect((5.0, 5.0), 40.0, (640, 480), 4.0) == (0, 0, 160, 160)
    assert crop_rect((639.0, 479.0), 40.0, (640, 480), 4.0) == (480, 320, 640, 480)
    assert crop_rect((320.0, 240.0), 400.0, (640, 480), 4.0) == (80, 0, 560, 480)  # at most the height
    assert crop_rect((320.0, 240.0), 4.0, (640, 480), 4.0) == (288, 208, 352, 272)  # at least MIN_CROP_SIDE


# --- config ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("section,key,value,expected", [
    ("motion", "threshold", 0, "a number in 1..255"),
    ("motion", "min_changed", 2, "a number in 0..1"),
    ("motion", "enabled", "yes", "true or false"),
    ("motion", "scan_s", 0, "a number in 0.05..3600"),
    ("motion", "idle_fps", -1, "a number in 0..120"),
    ("motion", "idle_after_s", "soon", "a number in 0..3600"),
    ("detector", "crop", 1, "true or false"),
    ("detector", "crop_widths", 1, "a number in 2..12"),
    ("detector", "full_scan_s", 0, "a number in 0.05..60"),
    ("motion", "face_grey", -1, "a number in 0..50"),
    ("motion", "face_seconds", 0, "a number in 0.2..60"),
])
def test_bad_motion_and_crop_values_are_one_line_config_errors(tmp_path, section, key, value, expected):
    shown = f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else value
    path = tmp_path / "config.toml"
    path.write_text(f"[{section}]\n{key} = {shown}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message and f"[{section}] {key} = " in message and f"expected {expected}" in message
    assert str(path) in message


def test_the_motion_keys_are_documented_and_their_defaults_load():
    text = dump_default_config()
    assert "[motion]" in text
    for key in ("enabled", "threshold", "min_changed", "scan_s", "settle_s", "idle_scan_s", "idle_fps",
                "idle_after_s", "face_grey", "face_seconds", "crop", "crop_widths", "full_scan_s"):
        line = next(i for i, ln in enumerate(text.splitlines()) if ln.startswith(f"{key} = "))
        assert text.splitlines()[line - 1].startswith("#")
    config = load_config(None)
    assert config.motion.enabled and config.detector.crop and config.detector.threads == 1


# --- the room traps with the shipped search ----------------------------------------------------------------
@pytest.fixture(scope="module")
def room_bench():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("bench_rooms", Path(__file__).parent / "bench" / "rooms.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_rooms"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scenario", [rooms.lighting, rooms.crossing], ids=["lighting", "crossing"])
def test_the_room_traps_hold_with_gating_and_crops(room_bench, models, scenario):
    # tests/test_rooms.py runs these with a plain whole-frame detector; here through make_detector's search.
    # Found while building it: a photo at a crop's border, half of it found a few pixels off, was taken
    # for a person and held the eyes after the viewer left (lighting); a crossing needs both people seen.
    config = load_config(None)
    config = replace(config, detector=replace(config.detector, range="full"))
    search = face_search(config, models[0])
    rows = room_bench.run(scenario(), search, load_pack(room_bench.PACK, screen_size=(96, 96)), config)
    fig = room_bench.score(rows, load_pack(room_bench.PACK, screen_size=(96, 96)).centre_index)
    assert search.counts["crop"] > search.counts["whole"] / 2  # crops did most of the following
    assert fig.on_picture == 0 and fig.on_false == 0
    assert fig.on_right >= 0.8 * fig.in_view
    assert fig.let_go and max(fig.let_go) <= 2.0


def test_a_crop_reports_the_viewer_and_whole_others_and_falls_back_to_the_whole_frame(models, astronaut):
    full, short = models
    # the viewer at x=250 (60 px) and, beside her, a photo (50 px) at x=390
    frame, _ = place_astronaut(astronaut, 60.0, 250.0, 220.0)
    photo, _ = place_astronaut(astronaut, 50.0, 390.0, 220.0)
    frame[:, 340:] = photo[:, 340:]
    search = FaceSearch(full, short, crop_settings=CropSettings(widths=6.0, full_scan_s=1.0))
    whole = search.search(frame, 0.0, None)
    assert whole.where == "whole" and len(whole.faces) == 2
    viewer = min(whole.faces, key=lambda f: abs(float(f.eye_midpoint[0]) - 250.0))
    other = next(f for f in whole.faces if f is not viewer)
    found = search.search(frame, 1 / FPS, viewer)  # a crop of 6 face widths holds the photo whole
    assert found.where == "crop" and found.crop is not None
    assert len(found.faces) == 2 and found.faces[1] is other  # the photo as the whole-frame model saw it
    # A crop whose border cuts the photo: the short-range model finds the cut face, the search leaves it out.
    narrow = FaceSearch(full, short, crop_settings=CropSettings(widths=5.3, full_scan_s=1.0))
    narrow.search(frame, 0.0, None)
    cut = narrow.search(frame, 1 / FPS, viewer)
    assert cut.where == "crop" and cut.crop is not None
    x0, y0, x1, y1 = cut.crop
    assert len(short.detect(frame[y0:y1, x0:x1])) == 2 and x1 < float(other.box[2])  # found, but cut
    assert len(cut.faces) == 1 and abs(float(cut.faces[0].eye_midpoint[0]) - 250.0) < 6
    # The viewer gone from the crop: the whole frame is searched on that very frame.
    gone = frame.copy()
    gone[:, :340] = 90
    lost = search.search(gone, 2 / FPS, viewer)
    assert lost.where == "whole" and len(lost.faces) == 1
    # ... and the whole frame every full_scan_s even while she is there.
    assert search.search(frame, 1.05, viewer).where == "crop"  # 1.05 - 2/15 < 1 s since the last whole search
    assert search.search(frame, 2 / FPS + 1.0, viewer).where == "whole"


def small_face(x: float) -> Face:
    """A 20 px frontal face with its eye midpoint at (x, 100): what ViewerMotion is given."""
    kp = np.array([[x - 5, 100], [x + 5, 100], [x, 104], [x, 108], [x - 10, 101], [x + 10, 101]], np.float32)
    return Face(box=np.array([x - 10, 92, x + 10, 114], np.float32), keypoints=kp, score=0.9)


def test_the_crop_goes_where_the_viewer_is_heading_also_while_they_are_missed():
    motion = ViewerMotion()
    dt = 1 / 15
    a, b = small_face(100.0), small_face(110.0)
    motion.returned((a,), 0.0)
    motion.observe(a, dt)           # the tracker followed a face the search returned: a sighting at 0
    motion.returned((b,), dt)
    motion.observe(b, 2 * dt)       # and the next: 10 px in a frame
    assert motion.velocity[0] == pytest.approx(150.0) and motion.velocity[1] == pytest.approx(0.0)
    assert motion.predicted(2 * dt)[0] == pytest.approx(120.0)
    motion.returned((), 2 * dt)     # the crop and the whole frame missed her
    motion.observe(b, 3 * dt)       # the tracker holds her last face: not a sighting, the prediction runs on
    assert motion.seen is b and motion.predicted(3 * dt)[0] == pytest.approx(130.0)
    assert 1.0 < motion.growth(4 * dt) <= MAX_GROWTH
    # a jitter of a far face is not a sprint: the velocity is capped in face widths a second
    c = small_face(160.0)
    motion.returned((c,), 3 * dt)
    motion.observe(c, 4 * dt)
    assert motion.velocity[0] < 15.0 * 20.0
    # nothing is predicted past SPEED_GAP_S, and a new viewer starts from rest
    assert motion.predicted(100.0)[0] == pytest.approx(160.0 + motion.velocity[0] * SPEED_GAP_S)
    motion.reset()
    motion.returned((a,), 10.0)
    motion.observe(a, 10.0 + dt)
    assert motion.velocity == (0.0, 0.0) and motion.predicted(11.0)[0] == pytest.approx(100.0)


def test_a_new_viewer_does_not_inherit_a_velocity_from_the_jump_between_two_people():
    motion = ViewerMotion()
    dt = 1 / 15
    for i, x in enumerate((100.0, 110.0, 120.0)):  # A walks right at 150 px/s
        f = small_face(x)
        motion.returned((f,), i * dt)
        motion.observe(f, (i + 1) * dt)
    assert motion.velocity[0] == pytest.approx(150.0)
    b = small_face(400.0)  # the tracker switches to B, across the room
    motion.returned((b,), 3 * dt)
    motion.observe(b, 4 * dt)
    assert motion.seen is b and motion.velocity == (0.0, 0.0)


def test_tiles_cover_the_frame_with_overlap_and_are_large_enough_for_the_crop_model():
    from edge.search import MIN_CROP_SIDE, TILE_OVERLAP, tiles

    for size in ((640, 480), (1280, 720), (320, 240), (1640, 1232), (64, 48)):
        w, h = size
        rects = tiles(size)
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in rects:
            side = x1 - x0
            assert y1 - y0 == side and 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert side >= min(MIN_CROP_SIDE, w, h)
            covered[y0:y1, x0:x1] = True
        assert covered.all(), size
        xs = sorted({r[0] for r in rects})
        side = rects[0][2] - rects[0][0]
        assert all(b - a <= side * (1 - TILE_OVERLAP) + 1 for a, b in zip(xs, xs[1:])), size
    assert tiles((640, 480)) == ((0, 0, 360, 360), (280, 0, 640, 360), (0, 120, 360, 480), (280, 120, 640, 480))


def test_region_change_compares_with_half_a_second_before_and_with_the_oldest_frame_while_younger():
    from edge.motion import REGION_LAG_S, REGION_MIN_LAG_S, RegionChange

    regions = RegionChange()
    box = (0, 0, 16, 16)  # the two top-left cells of the thumbnail
    for i in range(12):  # 15 fps: frame i has grey level 10 * i in that box, 0 elsewhere
        thumb = np.zeros((60, 80), np.uint8)
        thumb[:2, :2] = 10 * i
        t = i / 15
        regions.add(thumb, t)
        change = regions.change(box)
        if t < REGION_MIN_LAG_S - 1e-6:
            assert change is None, (t, change)  # nothing old enough to compare with yet
        elif t < REGION_LAG_S - 1e-6:
            assert change == pytest.approx(10 * i), (t, change)  # the oldest frame: the first one
        else:
            lag = round(REGION_LAG_S * 15)
            assert change == pytest.approx(10 * lag), (t, change)  # half a second before
