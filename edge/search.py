"""Where to look for faces in a frame: nowhere (gated), in a crop around the viewer, or the whole frame.

Why: the detector is most of a busy frame's cost, and most frames need less than a whole-frame search.

* With nobody followed and nothing changed since the frame the detector last saw (:mod:`edge.motion`),
  the detector is not run: the faces it found last stand.
* With a viewer followed, the bundled **short-range** model looks at a square crop around where they
  will be (``crop_widths`` of their face width, at their last sighting moved on by their velocity for
  the time since, :class:`ViewerMotion`): a viewer at 4-5 m, 16-20 px
  wide in a 640x480 frame, is a quarter of the crop, which the short-range model finds well, and it
  costs a fifth of the full-range model on the whole frame. The whole frame is still searched every
  ``full_scan_s`` (someone nearer may have come in; pictures on the wall stay known to the tracker) and
  at once on any frame where the crop does not find the viewer. Other faces wholly inside the crop
  are reported too (a second person crossing the viewer must be seen on every frame), as one of the
  last :data:`SNAP_SEARCHES` whole-frame searches saw them where one found them at the same place (the
  two models place a face's eyes a few pixels apart); one cut by the crop's border is not. Measured on
  the room scenarios: a photo at the crop's edge, half of it found a few pixels off, seemed to move, was
  taken for a person, and held the eyes once the viewer left.

* With the **short-range model on the whole frame** too (``[detector] range = "short"``), each
  whole-frame search (also a followed viewer's every ``full_scan_s``) looks at one :func:`tiles` square
  in turn (four overlap to cover a 640x480 frame), and around each face only a tile found, for
  :data:`TILE_FOLLOW_S` from its first find; a followed viewer's whole-frame searches look at the moving
  regions too (that model on the whole frame does not see a second person come in). That model on the
  whole frame sees a face of 60 px (someone at 1.4 m) as 12 px and misses it; in a 360 px tile it is
  21 px and found (measured on the room scenes: a viewer standing at 1.4 m from the first frame, on 0 %
  of the whole frames and 100 % of the tiles holding her). Without tiles such a viewer was found only
  once she walked (the motion crops). A face a tile found is looked for again on the next whole
  searches so that the tracker sees it often enough to tell a person from a photo, but not for ever: a
  photo only tiles see would cost a detector run on every search.

Crop detections are mapped back by adding the crop's origin to boxes and keypoints (the detector itself
maps its input back to the pixels it was given), so the tracker sees full-frame coordinates, as before.
:class:`FaceSearch` is a :class:`edge.pipeline.Detector` too (``detect`` searches the whole frame), so
whatever only wants faces in an image can use it as one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.faces import Face
from edge.motion import CELL, GateSettings, MotionGate, RegionChange, luma_thumbnail

#: What :meth:`FaceSearch.search` did with a frame.
WHERE = ("whole", "crop", "gated")
#: Smallest crop side, px: below it the short-range model sees a blur (it upsamples to 128 px).
MIN_CROP_SIDE = 64
#: The viewer's velocity is capped at this many of their face widths a second: a brisk walk across is
#: about 8 (1.2 m/s over a 155 mm face), a run 20; a detection's jitter must not throw the crop off them.
MAX_SPEED_WIDTHS = 15.0
#: Each new sighting's velocity is averaged with the last estimate by this weight (detector jitter of a
#: far face is a few pixels a frame, a sizeable share of its step).
SPEED_WEIGHT = 0.5
#: Sightings further apart than this (s) give no velocity: the person may have turned or stopped.
SPEED_GAP_S = 1.0
#: While the crop does not find the viewer it grows by this share of its side per second unseen, up to
#: :data:`MAX_GROWTH` times its side (the prediction's error grows with the time since the sighting;
#: measured on the far walker, a 3-4 face-width crop centred on her found her on 91-98 % of the frames, an
#: 8-width one on 45 %: a crop much larger than needed costs detections, not only time).
GROWTH_PER_S = 1.0
MAX_GROWTH = 1.5
#: A sighting this many face widths from where the last one was heading is someone else (the tracker
#: switched viewers): the velocity starts again from rest, not from the jump between two people.
NEW_VIEWER_WIDTHS = 2.0
#: A crop has found the viewer only if one of its faces has its eyes within this many of the viewer's
#: face widths of where they were predicted, and a width within :data:`VIEWER_SIZE_RATIO` of theirs.
#: Otherwise the whole frame is searched: a crop that holds only a picture beside a viewer who has just
#: walked out must not hand the tracker that picture as the only face, at a viewer's place.
VIEWER_WIDTHS = 1.0
VIEWER_SIZE_RATIO = 1.6
#: How many recent whole-frame searches a crop's other faces are matched against (3 s at the default
#: [detector] full_scan_s: a small photo is found on a third of the frames or fewer).
SNAP_SEARCHES = 3
#: Two searches found a face at the same place when its eyes moved less than this many of
#: its widths (a photo's detector jitter is up to about 0.2 widths: edge.pictures) and its size by less
#: than :data:`VIEWER_SIZE_RATIO`.
SAME_PLACE_WIDTHS = 0.25
#: With nobody followed, on a frame that changed, the short-range model also looks at the top of the
#: largest moving regions (edge.motion.MotionGate.moving_regions): a walker at 4-5 m (16-20 px face) is
#: a blob from head to feet that the full-range model on the whole frame misses on most frames. The crop
#: is this many of the region's widths square (a walker's region is about two shoulder widths with the
#: dilation), its top this share of its side above the region's top.
MOTION_CROP_WIDTHS = 1.5
MOTION_CROP_ABOVE = 0.15
MOTION_CROP_MAX = 192
#: A face found there is taken only if it is at most this share of the region's width wide, with its
#: eyes within that much of the region's top (a walker's face is under a third of the region's width:
#: its shoulders and a cell of dilation each side; a 45 px "face" above a 17 px one was measured at 0.5).
MOTION_FACE_SHARE = 0.4
#: ... and not on regions this share of the frame or more (a light switched on changes everything).
MOTION_MAX_SHARE = 0.25
#: A tile's side is this share of the frame's width (at most its height): 360 px in a 640 px frame. In
#: 240 px tiles the short-range model found the standing viewer at 1.4 m on none of the frames, in 280,
#: 320 and 360 px ones on all (tests/rooms.py leave_enter, its first 4 s); the larger, the fewer tiles.
TILE_SHARE = 0.5625
#: Neighbouring tiles overlap by at least this share of their side, so that a face on a tile's border
#: is whole in the next one.
TILE_OVERLAP = 0.2
#: Two detections are one face when their eyes are closer than this many of its widths.
SAME_FACE_WIDTHS = 0.5
#: A face only tiles found is looked for again around it for this long (s) from when a tile first found
#: it: long enough for the tracker to decide (a person after [motion] face_seconds of change, a picture
#: after [gaze] static_seconds), bounded so that photos only tiles see do not cost a detector run each
#: on every later whole-frame search (measured: three runs per whole search in the room scenes, one
#: of them the tile).
TILE_FOLLOW_S = 4.0
#: ... and remembered this long (s) after a tile last found it, so that a photo found again by its tile
#: later keeps its first time and is not followed again for another TILE_FOLLOW_S.
TILE_MEMORY_S = 60.0


class Detector(Protocol):
    def detect(self, rgb: np.ndarray) -> Sequence[Face]: ...


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


@dataclass(frozen=True, slots=True)
class CropSettings:
    """:class:`edge.config.DetectorConfig`'s crop keys (see their docs)."""

    widths: float = 4.0
    full_scan_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Found:
    """One frame's search: the faces (full-frame coordinates), ``where`` (one of :data:`WHERE`) and the
    crop looked at (None unless ``where`` is "crop")."""

    faces: tuple[Face, ...]
    where: str
    crop: Rect | None = None

    @property
    def detected(self) -> bool:
        """Whether a detector ran on this frame."""
        return self.where != "gated"


def crop_rect(centre: tuple[float, float], face_width: float, frame_size: tuple[int, int],
              widths: float) -> Rect:
    """The square of side ``widths * face_width`` (at least :data:`MIN_CROP_SIDE`, at most the frame's
    shorter side) centred on ``centre``, moved inside the frame."""
    w, h = frame_size
    side = int(round(min(max(widths * face_width, MIN_CROP_SIDE), w, h)))
    x0 = int(round(centre[0] - side / 2))
    y0 = int(round(centre[1] - side / 2))
    x0 = min(max(x0, 0), w - side)
    y0 = min(max(y0, 0), h - side)
    return x0, y0, x0 + side, y0 + side


def tiles(frame_size: tuple[int, int]) -> tuple[Rect, ...]:
    """The squares, :data:`TILE_SHARE` of the frame's width, that cover it with :data:`TILE_OVERLAP`,
    row by row (2 x 2 of 360 px for 640x480)."""
    w, h = frame_size
    side = int(min(h, w, max(MIN_CROP_SIDE, round(TILE_SHARE * w))))

    def starts(length: int) -> list[int]:
        if side >= length:
            return [0]
        n = math.ceil((length - side) / (side * (1.0 - TILE_OVERLAP))) + 1
        return [round(i * (length - side) / (n - 1)) for i in range(n)]

    return tuple((x, y, x + side, y + side) for y in starts(h) for x in starts(w))


def to_frame(faces: Sequence[Face], origin: tuple[int, int]) -> tuple[Face, ...]:
    """Faces found in a crop whose top-left corner is ``origin``, in the whole frame's pixels."""
    return tuple(f.moved(float(origin[0]), float(origin[1])) for f in faces)


class ViewerMotion:
    """Where the followed viewer will be: their last sighting moved on by their velocity.

    Why: at 1.2 m/s a viewer at 2.5 m moves half their face width between two frames and one at 4-5 m
    about as much, so a crop around where they were last seen loses them the moment a frame is missed;
    measured on the room scenarios (``walk_1_5m``), a crop placed on the truth finds the 2.5 m walker on
    every frame and the 4-5 m one on 91-98 %, where the whole-frame full-range model finds them on 24 %
    and 0 %. A sighting is a face the last search returned that the tracker then followed (the very
    object); a face the tracker holds through a dropout is not one, and the prediction runs on.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen: Face | None = None
        self.seen_t = 0.0
        self.velocity = (0.0, 0.0)  # px/s
        self._returned: tuple[Face, ...] = ()
        self._returned_t = 0.0

    def returned(self, faces: tuple[Face, ...], t: float) -> None:
        """The faces a search handed the tracker at ``t``."""
        self._returned, self._returned_t = faces, t

    def observe(self, target: Face, t: float) -> None:
        """``target`` is whom the tracker follows after the last search; ``t`` is now."""
        if any(target is f for f in self._returned):
            self._sighting(target, self._returned_t)
        elif self.seen is None:  # followed from before this search knew them: a sighting of unknown time
            self._sighting(target, self._returned_t if self._returned else t)

    def _sighting(self, face: Face, t: float) -> None:
        before, before_t = self.seen, self.seen_t
        if before is face:
            return
        expected = self.predicted(t) if before is not None else None
        self.seen, self.seen_t = face, t
        dt = t - before_t
        mid = face.eye_midpoint
        other = expected is not None and math.hypot(float(mid[0]) - expected[0], float(mid[1]) - expected[1]) > (
            NEW_VIEWER_WIDTHS * float(face.width))
        if before is None or other or not 0.0 < dt <= SPEED_GAP_S:
            self.velocity = (0.0, 0.0)  # a new viewer (the tracker switched) starts from rest
            return
        cap = MAX_SPEED_WIDTHS * float(face.width)
        (x0, y0), (x1, y1) = before.eye_midpoint, face.eye_midpoint
        vx = max(-cap, min(cap, (float(x1) - float(x0)) / dt))
        vy = max(-cap, min(cap, (float(y1) - float(y0)) / dt))
        if self.velocity != (0.0, 0.0):
            vx = SPEED_WEIGHT * vx + (1.0 - SPEED_WEIGHT) * self.velocity[0]
            vy = SPEED_WEIGHT * vy + (1.0 - SPEED_WEIGHT) * self.velocity[1]
        self.velocity = (vx, vy)

    def unseen_s(self, t: float) -> float:
        return max(0.0, t - self.seen_t)

    def predicted(self, t: float) -> tuple[float, float]:
        """The viewer's eye midpoint at ``t`` (the sighting's, moved on for at most :data:`SPEED_GAP_S`)."""
        assert self.seen is not None
        dt = min(self.unseen_s(t), SPEED_GAP_S)
        mid = self.seen.eye_midpoint
        return float(mid[0]) + self.velocity[0] * dt, float(mid[1]) + self.velocity[1] * dt

    def growth(self, t: float) -> float:
        """How much larger than its usual side the crop is now (1 right after a sighting)."""
        return min(MAX_GROWTH, 1.0 + GROWTH_PER_S * max(0.0, self.unseen_s(t) - 0.1))


@dataclass(slots=True)
class TileFace:
    """A face only a tile found: its last detection, when a tile first found it and when last."""

    face: Face
    since: float
    seen: float


class FaceSearch:
    """The daemon's detector: a whole-frame model, a crop model for the followed viewer, a motion gate.

    ``whole`` is the configured model (what a plain detector would be); ``crop`` the bundled short-range
    model (None: no crop tracking); ``gate`` None: no motion gating. ``idle_fps`` is the camera rate the
    pipeline asks for while :meth:`slow` (0: keep the camera's). ``face_grey`` > 0: keep the recent
    thumbnails so that :meth:`region_change` can say how much a face's own pixels changed
    (edge.motion.RegionChange: what tells a person standing still from a photo); the tracker takes a new
    face whose change stays above ``face_grey`` for ``face_seconds`` for a person ([motion] keys).
    """

    def __init__(self, whole: Detector, crop: Detector | None = None, *, gate: GateSettings | None = None,
                 crop_settings: CropSettings = CropSettings(), idle_fps: float = 0.0,
                 face_grey: float = 0.0, face_seconds: float = 1.0, tiled: bool = False) -> None:
        self.whole = whole
        self.crop = crop
        self.gate = MotionGate(gate) if gate is not None else None
        self.face_grey = float(face_grey)
        self.face_seconds = float(face_seconds)
        self.regions = RegionChange() if self.face_grey > 0.0 else None
        self.crop_settings = crop_settings
        self.idle_fps = float(idle_fps)
        self._last: tuple[Face, ...] = ()   # the last whole-frame search's faces
        self._last_whole: float | None = None
        self.motion = ViewerMotion()  # where the followed viewer will be
        self._thumb: np.ndarray | None = None
        self._seen: deque[tuple[Face, ...]] = deque(maxlen=SNAP_SEARCHES)  # recent whole-frame faces
        self.counts = dict.fromkeys(WHERE, 0)
        #: whether whole-frame searches with nobody followed look at tiles too (the short-range model on
        #: the whole frame: module docstring); needs ``crop``
        self.tiled = bool(tiled) and crop is not None
        self._next_tile = 0
        self._tile_faces: list[TileFace] = []  # faces only tiles found
        self.tile_searches = 0  # detector runs on tiles and around their faces

    # --- what a plain detector offers (names, the model's record) -------------------------------------
    @property
    def model_path(self) -> Path | None:
        return getattr(self.whole, "model_path", None)

    @property
    def runtime_name(self) -> str:
        return str(getattr(self.whole, "runtime_name", ""))

    @property
    def bundled(self) -> bool:
        return bool(getattr(self.whole, "bundled", False))

    def detect(self, rgb: np.ndarray) -> Sequence[Face]:
        """Faces in the whole of ``rgb`` (no gate, no crop): :class:`edge.pipeline.Detector`."""
        return self.whole.detect(rgb)

    # --- per frame -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """A new stream (frame size, clock) or a new tracker: forget the scene and the viewer."""
        self._last = ()
        self._seen.clear()
        self._last_whole = None
        self._tile_faces = []
        self.motion.reset()
        if self.gate is not None:
            self.gate.reset()
        if self.regions is not None:
            self.regions.reset()

    def region_change(self, face: Face) -> float | None:
        """How much ``face``'s box changed on the thumbnails over the last half second, beyond the whole
        frame's change (grey levels; None: not known yet, or ``regions`` is off)."""
        return None if self.regions is None else self.regions.change(face.box)

    def ignore(self, areas: Sequence[tuple[int, int, int, int]]) -> None:
        """Camera-pixel rectangles (x0, y0, x1, y1) whose change the motion gate does not count: the
        screens the tracker knows (a TV changes all evening; the room with it on is an empty room)."""
        if self.gate is not None:
            self.gate.ignore(areas)

    def slow(self, t: float) -> bool:
        """Whether the camera may run at ``idle_fps`` now (gated long enough)."""
        return self.gate is not None and self.idle_fps > 0 and self.gate.slow(t)

    def search(self, rgb: np.ndarray, t: float, target: Face | None, luma: np.ndarray | None = None) -> Found:
        """Faces in this frame. ``target``: the face of the viewer followed after the previous frame
        (None: nobody). ``luma``: the frame's grey/Y plane if the camera has one (else ``rgb`` is used for
        the change test). A detector's error propagates (the pipeline counts it)."""
        if self.gate is not None or self.regions is not None:
            self._thumb = luma_thumbnail(luma if luma is not None else rgb, self._thumb)
            if self.regions is not None:
                self.regions.add(self._thumb, t)
        if self.gate is not None and self._thumb is not None:
            decision = self.gate.decide(self._thumb, t, tracked=target is not None)
            if decision == "gated":
                self.counts["gated"] += 1
                return Found(self._last, "gated")
        else:
            decision = ""
        found = self._look(rgb, t, target, decision == "changed")
        if self.gate is not None and self._thumb is not None:
            self.gate.detected(self._thumb, t)
        self.counts[found.where] += 1
        return found

    def _look(self, rgb: np.ndarray, t: float, target: Face | None, changed: bool = False) -> Found:
        if target is None:
            self.motion.reset()
        else:
            self.motion.observe(target, t)
        found = None
        if (target is not None and self.crop is not None and self._last_whole is not None
                and 0.0 <= t - self._last_whole < self.crop_settings.full_scan_s):
            found = self._in_crop(rgb, t, target)
        if found is None:
            faces = tuple(self.whole.detect(rgb))
            if self.crop is not None and ((target is None and changed) or (target is not None and self.tiled)):
                faces += self._in_motion(rgb, faces)
            if self.tiled:
                faces += self._in_tiles(rgb, faces, t)
            self._last, self._last_whole = faces, t
            self._seen.append(faces)
            found = Found(faces, "whole")
        self.motion.returned(found.faces, t)
        return found

    def _in_crop(self, rgb: np.ndarray, t: float, target: Face) -> Found | None:
        assert self.crop is not None
        h, w = rgb.shape[:2]
        seen = self.motion.seen if self.motion.seen is not None else target
        predicted = self.motion.predicted(t)
        growth = self.motion.growth(t)
        # the crop's centre is the face box's (the eyes are above it), at the predicted place
        below_eyes = float(seen.box[1] + seen.box[3]) * 0.5 - float(seen.eye_midpoint[1])
        rect = crop_rect((predicted[0], predicted[1] + below_eyes), seen.width, (w, h),
                         self.crop_settings.widths * growth)
        x0, y0, x1, y1 = rect
        faces = to_frame(self.crop.detect(rgb[y0:y1, x0:x1]), (x0, y0))
        viewer = [f for f in faces if _is_viewer(f, predicted, seen.width, growth)]
        if not viewer:
            return None  # lost in the crop: the whole frame is searched on this frame
        # Others the crop holds whole (one cut by its border is misplaced: half a face) are reported, as
        # a recent whole-frame search saw them where one found them at the same place.
        others = tuple(self._snapped(f) for f in faces if f is not viewer[0] and _whole_in(f, rect, (w, h)))
        return Found((viewer[0],) + others, "crop", rect)

    def _in_motion(self, rgb: np.ndarray, found: tuple[Face, ...]) -> tuple[Face, ...]:
        """Faces the crop model finds at the top of the largest moving regions that the whole-frame
        search did not (see :data:`MOTION_CROP_WIDTHS`)."""
        assert self.crop is not None and self.gate is not None
        h, w = rgb.shape[:2]
        cells = max(1, (w // CELL) * (h // CELL))
        extra: list[Face] = []
        for cx0, cy0, cx1, cy1 in self.gate.moving_regions():
            if (cx1 - cx0) * (cy1 - cy0) >= MOTION_MAX_SHARE * cells:
                continue
            width = (cx1 - cx0) * CELL
            side = int(min(max(MOTION_CROP_WIDTHS * width, MIN_CROP_SIDE), MOTION_CROP_MAX, w, h))
            centre = ((cx0 + cx1) * CELL / 2.0, cy0 * CELL - MOTION_CROP_ABOVE * side + side / 2.0)
            rect = crop_rect(centre, side, (w, h), 1.0)
            x0, y0, x1, y1 = rect
            if any(x0 <= float(f.eye_midpoint[0]) < x1 and y0 <= float(f.eye_midpoint[1]) < y1
                   for f in found + tuple(extra)):
                continue  # the whole frame already has a face there (a walker near enough for it)
            for face in to_frame(self.crop.detect(rgb[y0:y1, x0:x1]), (x0, y0)):
                # a head is narrower than the shoulders that move with it and sits at the region's top:
                # a "face" as wide as the region or lower down is the body's (measured: false faces on
                # a walker's jacket 55-60 px wide in a 60 px region)
                head = (face.width <= MOTION_FACE_SHARE * width
                        and float(face.eye_midpoint[1]) <= cy0 * CELL + MOTION_FACE_SHARE * width)
                if head and _whole_in(face, rect, (w, h)):
                    extra.append(face)
        return tuple(extra)

    def _in_tiles(self, rgb: np.ndarray, found: tuple[Face, ...], t: float) -> tuple[Face, ...]:
        """Faces the crop model finds around the faces only tiles found last time, and in the next tile,
        that no other search of this frame found (module docstring)."""
        assert self.crop is not None
        h, w = rgb.shape[:2]
        rects = [crop_rect(((float(e.face.box[0]) + float(e.face.box[2])) * 0.5,
                            (float(e.face.box[1]) + float(e.face.box[3])) * 0.5),
                           e.face.width, (w, h), self.crop_settings.widths)
                 for e in self._tile_faces if t - e.since < TILE_FOLLOW_S]
        grid = tiles((w, h))
        rects.append(grid[self._next_tile % len(grid)])
        self._next_tile = (self._next_tile + 1) % len(grid)
        extra: list[Face] = []
        for rect in rects:
            x0, y0, x1, y1 = rect
            self.tile_searches += 1
            for face in to_frame(self.crop.detect(rgb[y0:y1, x0:x1]), (x0, y0)):
                if _whole_in(face, rect, (w, h)) and not any(_same_face(face, f) for f in found + tuple(extra)):
                    extra.append(face)
        for face in extra:
            entry = next((e for e in self._tile_faces if _same_face(face, e.face)), None)
            if entry is None:
                self._tile_faces.append(TileFace(face, t, t))
            else:
                entry.face, entry.seen = face, t
        self._tile_faces = [e for e in self._tile_faces if t - e.seen <= TILE_MEMORY_S]
        return tuple(extra)

    def _snapped(self, face: Face) -> Face:
        for faces in reversed(self._seen):
            for seen in faces:
                if _same_place(face, seen):
                    return seen
        return face


def _same_place(face: Face, before: Face) -> bool:
    a, b = face.eye_midpoint, before.eye_midpoint
    near = math.hypot(float(a[0]) - float(b[0]), float(a[1]) - float(b[1])) <= SAME_PLACE_WIDTHS * face.width
    return near and 1.0 / VIEWER_SIZE_RATIO <= face.width / max(before.width, 1e-6) <= VIEWER_SIZE_RATIO


#: Pixels a face's box must keep from a crop border that is not the frame's own for the face to count
#: as wholly inside the crop.
BORDER_PX = 2


def _same_face(face: Face, other: Face) -> bool:
    """Whether two detections (of two searches of one frame) are one face: eyes within
    :data:`SAME_FACE_WIDTHS` of the larger's width."""
    (ax, ay), (bx, by) = face.eye_midpoint, other.eye_midpoint
    return math.hypot(float(ax) - float(bx), float(ay) - float(by)) < SAME_FACE_WIDTHS * max(face.width, other.width)


def _whole_in(face: Face, rect: Rect, frame_size: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = (float(v) for v in face.box)
    cx0, cy0, cx1, cy1 = rect
    w, h = frame_size
    return ((cx0 == 0 or x0 >= cx0 + BORDER_PX) and (cy0 == 0 or y0 >= cy0 + BORDER_PX)
            and (cx1 == w or x1 <= cx1 - BORDER_PX) and (cy1 == h or y1 <= cy1 - BORDER_PX))


def _is_viewer(face: Face, predicted: tuple[float, float], width: float, reach: float = 1.0) -> bool:
    """``face`` is the viewer predicted at ``predicted`` whose face is ``width`` wide: near it (within
    ``reach`` times :data:`VIEWER_WIDTHS` of their widths) and of about their size."""
    mid = face.eye_midpoint
    distance = math.hypot(float(mid[0]) - predicted[0], float(mid[1]) - predicted[1])
    near = distance <= VIEWER_WIDTHS * width * reach
    return near and 1.0 / VIEWER_SIZE_RATIO <= face.width / max(width, 1e-6) <= VIEWER_SIZE_RATIO


__all__ = ["CropSettings", "FaceSearch", "Found", "MIN_CROP_SIDE", "ViewerMotion", "WHERE", "crop_rect",
           "to_frame"]
