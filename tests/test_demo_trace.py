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
    assert list(rows[0]) == ["frame", "time_s", "viewer_x", "viewer_y", "index", "faces", "pictures"]
    assert float(rows[-1]["time_s"]) == pytest.approx(trace.times[-1], abs=1e-3)
    followed = [r for r in rows if r["viewer_x"]]
    assert followed and all(r["viewer_y"] for r in followed)
    # nobody is followed in the empty room at the start
    first = next(k for k, people in enumerate(script) if people)
    assert all(not r["viewer_x"] for r in rows[:first])
    assert [int(r["index"]) for r in rows] == trace.index
    assert all(int(r["pictures"]) <= int(r["faces"]) or r["pictures"] == "0" for r in rows)
