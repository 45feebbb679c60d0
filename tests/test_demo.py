"""``mona-edge demo`` and the viewer footage it runs on: real detector, real loop, real outputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from edge.demo import (
    CLIP_NAME,
    GIF_STEP,
    DemoTrace,
    clip_frame_count,
    find_asset,
    plot_trace,
    run_demo,
    stage_latency_ms,
)
from edge.detector import FaceDetector
from edge.pipeline import FrameResult, StageTimes, StepError
from edge.viewerclip import FRAME_SIZE, Person, demo_walk, eye_height, write_clip

FPS = 15.0


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(None, "short", threads=1)


def test_rendered_viewer_is_found_where_the_script_put_her(tmp_path, detector):
    script = [[Person(w, x, eye_height(w))] for w, x in [(90, 150), (130, 320), (190, 470)]] + [[]]
    clip = tmp_path / "check.avi"
    assert write_clip(clip, script, FPS) == 4
    cap = cv2.VideoCapture(str(clip))
    for people in script:
        ok, bgr = cap.read()
        assert ok and bgr.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3)
        faces = detector.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not people:
            assert faces == []  # the drawn room has no face in it
            continue
        assert len(faces) == 1
        person = people[0]
        assert faces[0].eye_midpoint[0] == pytest.approx(person.eye_x, abs=0.1 * person.face_width)
        assert faces[0].eye_midpoint[1] == pytest.approx(person.eye_y, abs=0.1 * person.face_width)
        assert faces[0].width == pytest.approx(person.face_width, rel=0.35)


def test_bundled_clip_matches_its_script():
    clip = find_asset("clips", CLIP_NAME)
    assert clip.stat().st_size < 2_000_000
    script = demo_walk(FPS)
    assert clip_frame_count(clip) == len(script)
    widths = [p.face_width for people in script for p in people]
    assert min(widths) <= 62 and max(widths) >= 190  # nearer and farther
    empty = [not people for people in script]
    assert empty[0] and any(empty[len(empty) // 2:])  # an empty room, and leaving mid-way
    assert (clip.parent / "NOTICE").read_text().count("public domain") >= 1


def test_demo_runs_the_pipeline_and_writes_its_outputs(tmp_path):
    pack = find_asset("packs", "test")
    out = tmp_path / "demo"
    trace = run_demo(find_asset("clips", CLIP_NAME), pack, out, quiet=True)
    script = demo_walk(FPS)
    n = len(script)
    assert len(trace.times) == n
    # Video: every frame, camera | portrait side by side.
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    ok, first = cap.read()
    assert ok and first.shape[0] == 360 and first.shape[1] > 480 + 100
    gif = Image.open(out / "demo.gif")
    duration = 0
    for k in range(gif.n_frames):  # identical neighbours are merged into one longer frame
        gif.seek(k)
        duration += gif.info["duration"]
    assert duration == pytest.approx((n + GIF_STEP - 1) // GIF_STEP * int(1000 * GIF_STEP / FPS), rel=0.01)
    assert (out / "demo.gif").stat().st_size < 3_000_000
    assert Image.open(out / "plot.png").size == (960, 480)
    figures = json.loads((out / "latency.json").read_text())
    assert figures["frames"] == n
    for stage in ("capture", "gaze", "frame"):
        assert figures["latency_ms"][stage]["p50"] > 0 and figures["latency_ms"][stage]["samples"] == n
    # The daemon's search: the detector's time is counted on the frames it ran on (not the gated ones).
    searched = n - trace.searched.count("gated")
    assert 0 < searched <= n and figures["latency_ms"]["detect"]["samples"] == searched
    assert figures["latency_ms"]["detect"]["p50"] > 0
    assert figures["latency_ms"]["detect"]["p95"] < 100
    # The screen is redrawn only on the frames whose index changed.
    centre = (trace.frame_count - 1) // 2  # on screen before the first frame
    changes = int(np.count_nonzero(np.diff([centre] + trace.index)))
    assert figures["latency_ms"]["draw"]["samples"] == changes and 0 < changes < n

    # She is seen whenever her face is fully in frame and near enough for the short-range model.
    seen = np.array([x is not None for x in trace.viewer_x])
    visible = np.array([bool(people) and people[0].face_width >= 90 and 60 < people[0].eye_x < 580
                        for people in script])
    assert seen[visible].mean() > 0.9
    # The eyes follow her: where she is seen, frame index and her X move together.
    xs = np.array([x if x is not None else np.nan for x in trace.viewer_x])
    idx = np.array(trace.index, float)
    both = ~np.isnan(xs)
    corr = np.corrcoef(xs[both], idx[both])[0, 1]
    assert abs(corr) > 0.8, corr
    assert max(trace.index) - min(trace.index) >= trace.frame_count - 3  # nearly the whole span is used
    # After the long empty stretch the eyes are idle: back at the centre frame, or on one of the glances
    # to either side that an empty room gets (edge/saccades.py), and never far from it.
    last_gap_end = max(i for i, people in enumerate(script) if not people)
    assert trace.idle[last_gap_end]
    assert abs(trace.index[last_gap_end] - (trace.frame_count - 1) // 2) <= trace.frame_count // 4


def test_plot_marks_the_viewer_and_the_frame(tmp_path):
    t = list(np.arange(30) / FPS)
    trace = DemoTrace(times=t, viewer_x=[None] * 10 + [float(v) for v in np.linspace(100, 500, 20)],
                      index=[4] * 10 + list(np.linspace(0, 8, 20).round().astype(int)), frame_width=640,
                      frame_count=9)
    plot_trace(trace, tmp_path / "p.png")
    img = np.asarray(Image.open(tmp_path / "p.png").convert("RGB")).astype(int)
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)
    red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 80)
    shade = (img[..., 0] == 236) & (img[..., 2] == 244)
    assert blue[: 240].sum() > 50 and blue[240:].sum() == 0   # dots only in the upper panel
    assert red[240:].sum() > 50 and red[:240].sum() == 0      # the frame line only in the lower one
    assert shade[:, :300].sum() > 1000 and shade[:, 500:].sum() == 0  # "nobody" shaded at the start only


def _result(times, error=None):
    return FrameResult(frame=np.zeros((2, 2, 3), np.uint8), timestamp=0.0, faces=(), viewer=None, angle_deg=None,
                       frame_size=(2, 2), index=0, drew=times is not None and times.draw is not None,
                       camera_state="ok", error=error, times=times)


def test_latency_comes_from_the_steps_own_times():
    """Per-stage figures over the frames that went through every stage; draw only over those that drew."""
    results = [_result(StageTimes(capture=0.001 * k, detect=0.004, gaze=0.0001, draw=0.002 if k % 2 else None,
                                  frame=0.006 + 0.001 * k)) for k in range(1, 11)]
    results.append(_result(None, StepError("detector", "detector: boom")))  # skipped frame: not counted
    figures = stage_latency_ms(results)
    assert figures["capture"] == {"p50": 5.5, "p95": pytest.approx(9.55), "samples": 10}
    assert figures["detect"]["p50"] == 4.0 and figures["gaze"]["p95"] == 0.1
    assert figures["draw"] == {"p50": 2.0, "p95": 2.0, "samples": 5}
    assert figures["frame"]["samples"] == 10 and figures["frame"]["p50"] == 11.5
    assert stage_latency_ms([])["frame"] == {"p50": None, "p95": None, "samples": 0}
