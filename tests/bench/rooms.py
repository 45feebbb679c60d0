"""Room-scenario benchmark: does the portrait look at the right person in a room with pictures in it?

Each scenario of :mod:`tests.rooms` (pictures and a poster on the wall, a TV, viewers walking near and far,
crossing, standing still for a minute, leaving and entering, an empty room, changing light) is played
through the daemon's own :meth:`edge.pipeline.Pipeline.step` with the daemon's own detector stack
(:func:`edge.pipeline.make_detector` from the config: :class:`edge.search.FaceSearch` with the real int8
model of each range on whole frames, the short-range model in crops around the followed viewer, motion
gating, and the camera slowed to ``[motion] idle_fps`` while gated, as the Pi's is), the configured gaze
tracker (defaults, or ``--config``), the bundled default pack on a headless display. Every camera frame's
result is scored against the scenario's truth.

    .venv/bin/python tests/bench/rooms.py [--ranges short,full] [--still-seconds 60] [--config FILE]
                                          [--only NAME[,NAME]] [--jitter]

Figures per scenario and range:
  on right    share of the frames with a person in view in which the eyes follow an acceptable person (the
              nearest one, or anyone within 0.75x of the nearest's face width: two similar people are
              both right); "of detectable" counts only frames where the detector found that person;
              "settled" leaves out the frames within ACQUIRE_GOAL_S (0.3 s) of a person becoming
              detectable or of a takeover, the time the acquire goal allows
  acquire     seconds from a person becoming detectable (or the followed one leaving while another is
              detectable) to the eyes following them; worst case
  let go      seconds from the last person leaving view to the eyes following nobody and being at the
              centre frame (or idling); worst case
  picture     frames the eyes spent on a picture (after the scenario's first 3 s in brackets), and on
              the TV while a person was in view
  false       frames the eyes spent on a detection of nobody (a detector false positive) or of a passer
              whose face is turned away
  rev/s       index reversals per second while the eyes follow a viewer who stands still (changes/s
              beside it), per second of standing still
  still kept  share of the standing-still frames in which the still person is followed
  searched    share of the frames searched whole / in a crop / gated (no detector run), and frames
              delivered (fewer than the scenario's while the camera was slowed)
``--jitter`` also prints the detector's own jitter on each picture against a standing person's micro-motion.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from rooms import FPS, Scenario, ScenarioCamera, TruthFace, scenarios  # noqa: E402

from edge.config import Config, load_config  # noqa: E402
from edge.display import open_display  # noqa: E402
from edge.faces import Face  # noqa: E402
from edge.pack import load_pack  # noqa: E402
from edge.pipeline import Detector, Pipeline, Tracker, build_parts, gaze_tracker, make_detector  # noqa: E402

PACK = REPO / "assets" / "packs" / "default"
#: A person within this factor of the nearest one's face width is an equally right choice.
SIMILAR = 0.75
SETTLE_S = 3.0
#: The issue's bar for acquiring a viewer (s): frames within it of a person becoming detectable (or of a
#: takeover) are the tracker's allowance, left out of the "settled" share.
ACQUIRE_GOAL_S = 0.3


@dataclass
class Row:
    """One camera frame: the truth and what the tracker did."""

    t: float
    truth: list[TruthFace]
    faces: tuple[Face, ...]
    viewer: Face | None
    index: int
    idle: bool
    pictures: int
    searched: str = "whole"


def match(face: Face, truth: Sequence[TruthFace]) -> TruthFace | None:
    """The truth face a detection is of: eye midpoint within half a face width (+3 px), similar width
    (people partly out of the frame included: following someone who is leaving is not a mistake); a
    passer (face turned away) only when no one else is (a viewer in front of a passer is who is seen)."""
    x, y = (float(v) for v in face.eye_midpoint)
    best, best_d = None, math.inf
    for f in sorted(truth, key=lambda f: f.kind == "passer"):  # a face turned away only if nothing else
        d = math.hypot(x - f.eye_x, y - f.eye_y)
        if d < 0.5 * f.face_width + 3.0 and 0.5 < face.width / f.face_width < 2.0 and d < best_d:
            if best is not None and f.kind == "passer":
                break
            best, best_d = f, d
    return best


def run(scenario: Scenario, detector: Detector, pack, config: Config) -> list[Row]:
    """Step the daemon's pipeline over the whole scenario; one :class:`Row` per camera frame."""
    made: list[Tracker] = []
    factory = gaze_tracker(config.gaze)

    def make(frame_count, frame_size, span_deg):
        tracker = factory(frame_count, frame_size, span_deg)
        made.append(tracker)
        return tracker

    source = ScenarioCamera(scenario, slows=True)  # slowed while idle, as the Pi's camera is
    parts = build_parts(config, camera=source, detector=detector, pack=pack,
                        display=open_display("headless", size=(96, 96)), make_tracker=make)
    pipeline = Pipeline(parts)
    pipeline.open()
    rows: list[Row] = []
    try:
        while source.state == "ok":
            result = pipeline.step()
            if result.frame is None or result.timestamp is None:
                continue
            tracker = made[-1]
            idle = bool(getattr(tracker, "idle", False))
            pictures = len(getattr(tracker, "pictures", ()))
            # Whom the eyes are on: the followed person, also through a detector dropout (older trackers
            # only say whom they saw).
            viewer = getattr(tracker, "followed", result.viewer)
            rows.append(Row(result.timestamp, source.truth, result.faces, viewer, result.index, idle, pictures,
                            result.searched))
    finally:
        pipeline.close()
    return rows


@dataclass
class Figures:
    frames: int = 0
    in_view: int = 0
    on_right: int = 0
    detectable: int = 0
    on_right_detectable: int = 0
    settled: int = 0
    on_right_settled: int = 0
    acquire: list[float] = field(default_factory=list)
    let_go: list[float] = field(default_factory=list)
    on_picture: int = 0
    on_picture_late: int = 0
    on_tv_with_person: int = 0
    on_false: int = 0
    still_frames: int = 0
    still_kept: int = 0
    reversals: int = 0
    changes: int = 0


def acceptable(truth: Sequence[TruthFace]) -> set[str]:
    people = [f for f in truth if f.kind == "person" and f.visible]
    if not people:
        return set()
    widest = max(f.face_width for f in people)
    return {f.key for f in people if f.face_width >= SIMILAR * widest}


def score(rows: Sequence[Row], centre: int) -> Figures:
    fig = Figures(frames=len(rows))
    followed: list[TruthFace | None] = []
    ok: list[bool] = []
    detected: list[bool] = []
    for row in rows:
        want = acceptable(row.truth)
        who = None if row.viewer is None else match(row.viewer, row.truth)
        found = {m.key for m in (match(f, row.truth) for f in row.faces) if m is not None and m.key in want}
        right = who is not None and who.key in want
        followed.append(who)
        ok.append(right)
        detected.append(bool(want & found))
        if want:
            fig.in_view += 1
            fig.on_right += right
            if want & found:
                fig.detectable += 1
                fig.on_right_detectable += right
        if who is not None and who.kind == "picture":
            fig.on_picture += 1
            fig.on_picture_late += row.t >= SETTLE_S
        if who is not None and who.kind == "tv" and want:
            fig.on_tv_with_person += 1
        if (who is None or who.kind == "passer") and any(row.viewer is f for f in row.faces):
            # not a held face: a detection of nobody (or of the back of a passer's head)
            fig.on_false += 1
    window = int(round(0.5 * FPS))
    allowance_until = -math.inf
    for i, row in enumerate(rows):
        prev_who = followed[i - 1] if i else None
        onset = detected[i] and not any(detected[max(0, i - window):i]) and not (i and ok[i - 1])
        keys_now = {f.key for f in row.truth if f.kind == "person" and f.visible}
        takeover = (prev_who is not None and prev_who.kind == "person" and prev_who.key not in keys_now
                    and detected[i])
        if onset or takeover:
            j = next((k for k in range(i, len(rows)) if ok[k]), None)
            fig.acquire.append(math.inf if j is None else rows[j].t - row.t)
            allowance_until = row.t + ACQUIRE_GOAL_S
        if keys_now and row.t >= allowance_until - 1e-9:
            fig.settled += 1
            fig.on_right_settled += ok[i]
        people_before = i and any(f.kind == "person" and f.visible for f in rows[i - 1].truth)
        if people_before and not keys_now:
            j = next((k for k in range(i, len(rows)) if rows[k].viewer is None and
                      (rows[k].index == centre or rows[k].idle)), None)
            fig.let_go.append(math.inf if j is None else rows[j].t - row.t)
    last_dir = 0
    for i in range(1, len(rows)):
        still = [f for f in rows[i].truth if f.kind == "person" and f.still and f.visible]
        if not still:
            last_dir = 0
            continue
        fig.still_frames += 1
        kept = followed[i] is not None and followed[i].key == still[0].key
        fig.still_kept += kept
        if not kept:  # the eyes are not on them (not detected): idle glances are no reversals of theirs
            last_dir = 0
            continue
        d = rows[i].index - rows[i - 1].index
        if d:
            fig.changes += 1
            direction = 1 if d > 0 else -1
            fig.reversals += last_dir != 0 and direction != last_dir
            last_dir = direction
    return fig


def jitter(rows: Sequence[Row]) -> dict[str, tuple[int, float, float]]:
    """Per truth face: detections matched, std of the raw eye midpoint (px, x and y pooled), and the same
    over 3 s windows as a fraction of the face's width (the median window): the detector's jitter on a
    picture, and jitter plus micro-motion on a standing person."""
    tracks: dict[str, list[tuple[float, float, float, float]]] = {}
    for row in rows:
        for face in row.faces:
            m = match(face, row.truth)
            if m is None or (m.kind == "person" and not m.still):
                continue
            x, y = (float(v) for v in face.eye_midpoint)
            tracks.setdefault(m.key, []).append((row.t, x, y, m.face_width))
    out = {}
    for key, obs in tracks.items():
        a = np.array(obs)
        if len(a) < 10:
            continue
        spread = float(np.sqrt((a[:, 1].var() + a[:, 2].var()) / 2))
        windows = []
        for t0 in np.arange(a[0, 0], a[-1, 0] - 3.0, 1.0):
            w = a[(a[:, 0] >= t0) & (a[:, 0] < t0 + 3.0)]
            if len(w) >= 10:
                windows.append(math.sqrt((w[:, 1].var() + w[:, 2].var()) / 2) / float(w[:, 3].mean()))
        out[key] = (len(a), spread, float(np.median(windows)) if windows else math.nan)
    return out


def fmt_s(values: Sequence[float]) -> str:
    if not values:
        return "-"
    worst = max(values)
    return "never" if math.isinf(worst) else f"{worst:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranges", default="short,full")
    parser.add_argument("--still-seconds", type=float, default=60.0)
    parser.add_argument("--config", type=Path, help="a config file (default: built-in defaults)")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--jitter", action="store_true", help="also print detector jitter per face")
    args = parser.parse_args()
    base = load_config(args.config)
    pack = load_pack(PACK, screen_size=(96, 96))
    chosen = scenarios(args.still_seconds)
    if args.only:
        names = set(args.only.split(","))
        chosen = [s for s in chosen if s.name in names or s.name.split("_")[0] in names]
    print("scenario      range  frames  on right (of detectable)  settled  acquire  let go  picture (late)  tv"
          "  false  rev/s (chg/s)  still kept  whole/crop/gated")
    started = time.perf_counter()
    for det_range in args.ranges.split(","):
        config = replace(base, detector=replace(base.detector, range=det_range))
        detector = make_detector(config)  # what the daemon builds; reset by the pipeline at each stream
        for scenario in chosen:
            rows = run(scenario, detector, pack, config)
            fig = score(rows, pack.centre_index)
            share = f"{fig.on_right / fig.in_view:6.1%}" if fig.in_view else "     -"
            share_d = f"{fig.on_right_detectable / fig.detectable:6.1%}" if fig.detectable else "     -"
            share_s = f"{fig.on_right_settled / fig.settled:6.1%}" if fig.settled else "     -"
            still_s = fig.still_frames / FPS
            rev = f"{fig.reversals / still_s:4.2f} ({fig.changes / still_s:4.2f})" if still_s else "   -"
            kept = f"{fig.still_kept / fig.still_frames:6.1%}" if fig.still_frames else "     -"
            split = "/".join(f"{sum(r.searched == w for r in rows) / max(1, len(rows)):.0%}"
                             for w in ("whole", "crop", "gated"))
            print(f"{scenario.name:<13} {det_range:<5} {fig.frames:6d}  {share} ({share_d})"
                  f"           {share_s}   {fmt_s(fig.acquire):>6}  {fmt_s(fig.let_go):>6}  {fig.on_picture:5d} "
                  f"({fig.on_picture_late:4d})  {fig.on_tv_with_person:3d}  {fig.on_false:4d}"
                  f"  {rev:>13}  {kept}      {split}", flush=True)
            if args.jitter:
                for key, (n, spread, window) in sorted(jitter(rows).items()):
                    print(f"    jitter {key:<18} {n:5d} detections, eye midpoint sd {spread:5.2f} px, "
                          f"3 s windows {window:.4f} face widths")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
