"""The demo runs what the Pi runs: the daemon's config (range, gaze), the clip's own frame rate, trace.csv."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest

from edge.assets import find_asset
from edge.config import load_config
from edge.demo import run_demo
from edge.viewerclip import demo_walk, write_clip


@pytest.mark.parametrize("detector_range", ["full", "short"])
def test_demo_honours_the_clip_rate_and_the_config_and_writes_trace_csv(tmp_path, detector_range):
    fps = 10.0  # not the bundled clip's 15: the time axis must follow the clip
    script = demo_walk(fps)[:90]
    clip = tmp_path / "walk.avi"
    write_clip(clip, script, fps=fps)
    base = load_config(None)
    config = replace(base, detector=replace(base.detector, range=detector_range))
    out = tmp_path / "out"
    trace = run_demo(clip, find_asset("packs", "test"), out, write_video=False, write_gif=False, quiet=True,
                     config=config)
    assert len(trace.times) == len(script)
    assert trace.times[1] - trace.times[0] == pytest.approx(1 / fps)
    assert trace.times[-1] == pytest.approx((len(script) - 1) / fps)
    with open(out / "trace.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(len(script)))
    assert list(rows[0]) == ["frame", "time_s", "viewer_x", "viewer_y", "index", "faces", "pictures", "searched"]
    assert float(rows[-1]["time_s"]) == pytest.approx(trace.times[-1], abs=1e-3)
    followed = [r for r in rows if r["viewer_x"]]
    assert followed and all(r["viewer_y"] for r in followed)
    # nobody is followed in the empty room at the start
    first = next(k for k, people in enumerate(script) if people)
    assert all(not r["viewer_x"] for r in rows[:first])
    assert [int(r["index"]) for r in rows] == trace.index
    assert all(int(r["pictures"]) <= int(r["faces"]) or r["pictures"] == "0" for r in rows)


def test_demo_searches_as_the_daemon_does(tmp_path):
    """The demo's detector is make_detector's FaceSearch: crops around the followed viewer, the whole
    frame every full_scan_s, nothing run while the empty room does not change; with [detector] crop and
    [motion] off, every frame is searched whole (what a plain detector did)."""
    fps = 15.0
    script = demo_walk(fps)[:150]
    clip = tmp_path / "walk.avi"
    write_clip(clip, script, fps=fps)
    base = load_config(None)
    shipped = run_demo(clip, find_asset("packs", "test"), tmp_path / "shipped", write_video=False,
                       write_gif=False, quiet=True, config=base)
    with open(tmp_path / "shipped" / "trace.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["searched"] for r in rows] == shipped.searched
    first = next(k for k, people in enumerate(script) if people)
    assert "gated" in shipped.searched[:first]  # the empty room before she comes: the detector rests
    crops = [k for k, (where, x) in enumerate(zip(shipped.searched, shipped.followed_x))
             if where == "crop" and x is not None]
    assert len(crops) >= 10  # followed in crops
    tracked = [k for k, x in enumerate(shipped.followed_x) if x is not None]
    whole_while_tracked = [k for k in tracked if shipped.searched[k] == "whole"]
    scans = int(len(tracked) / fps / base.detector.full_scan_s)
    assert len(whole_while_tracked) >= scans - 1  # and the whole frame still searched every full_scan_s
    plain = replace(base, detector=replace(base.detector, crop=False), motion=replace(base.motion, enabled=False))
    every = run_demo(clip, find_asset("packs", "test"), tmp_path / "plain", write_video=False, write_gif=False,
                     quiet=True, config=plain)
    assert set(every.searched) == {"whole"} and len(every.searched) == len(script)
