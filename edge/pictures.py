"""Faces followed from frame to frame, and which of them are pictures: pictures are places.

Why this design (measured on the room scenarios, ``tests/bench/rooms.py --jitter``): a framed photo's
eye midpoint jitters by 0.6-3 px (sd) under sensor noise, 0.006-0.07 face widths over a 3 s window; a
person standing still (postural sway and weight shifts) moves 0.04 widths over the same window. The two
overlap, so stillness alone cannot tell a poster from a still person, and the old rule (still for 15 s ->
ignored) both stared at pictures for 15 s and dropped a viewer who stood still. What does separate them
is *history*:

* A face is born **new**. If it is born where a picture is known to hang (a :class:`Place`: same spot
  within ``PLACE_WIDTHS`` of its width, same size within ``PLACE_SIZE_RATIO``), it is a **picture** at
  once: a person walking in front of a poster hides it for a while, and when it reappears it is not new.
* A new face whose (smoothed) eye midpoint stays outside a box of ``move_widths`` of its width around
  where it was born (on :data:`MOVED_HITS` observations in a row), or is found once
  :data:`RAW_MOVE_WIDTHS` from there (:data:`CHANGING_MOVE_WIDTHS` while its pixels change a lot), has
  moved more than any picture's jitter: it is a **person**, for as long as the track lives. Where it is
  found counts only while its own pixels are not steady (below): a face that moved changed them, and a
  photo's detections can jump while its pixels do not. A person who walks up and then stands still for
  a minute stays a person.
* A new face whose *own pixels* keep changing (:class:`edge.motion.RegionChange`: its box on the 8x8
  luma thumbnail against half a second before, less the whole frame's change) by ``face_grey`` on every
  observation for ``face_seconds`` is a **person** too, also while it stays put: someone already
  standing there when the camera starts sways, breathes and blinks; a photo's pixels change only by
  sensor noise (a fraction of a grey level on the thumbnail) or while someone passes in front of it
  (shorter than ``face_seconds`` in the room scenarios, also by people the detector does not see,
  their backs to the camera). While a person on the move is near it (:meth:`FaceTracks._passed_by`),
  a new face's change is not its own and its run starts again. When a new face's pixels turn steady after
  changing (or after it was unseen for :data:`REBASE_GAP_S`), its movement test starts again from
  there: a photo first found half hidden behind a viewer is found whole, a few pixels off, when they
  walk away, and must not seem to have moved.
* A new face that stays inside that box for ``picture_seconds`` is a **picture**; its place is
  remembered, and forgotten only after ``place_forget_s`` with nothing seen there.
* A frame the detector skipped (the motion gate saw nothing change) hands in its last faces *held*
  (:meth:`FaceTracks.update`): they keep their tracks seen and their pixels tested, but are no new
  sighting of where they are.
* A person lost by the detector for a moment (a dropout, a head turn) is still a person when found again
  nearby: person tracks are kept ``PERSON_MEMORY_S`` unseen and matched within a radius that grows with
  the time unseen, around where their velocity has taken them since (a walker at 2.5 m moves half a
  face width a frame: after two missed frames they are outside any radius around where they were that
  would not also take a photo beside them).
* A person who has **travelled** (the extent of their path exceeds ``TRAVEL_WIDTHS`` face widths) has
  walked here. A face on a TV moves, so it is a person by the rule above, but it stays inside the screen;
  the viewer choice ranks a travelled person first, so a TV does not hold the gaze while someone who
  walked in is in view.
* **Screens are places too.** A face that keeps moving about (not still, :attr:`Track.still`) for
  ``screen_seconds`` in all, and in all that time never travels, is a face on a screen: a TV plays for
  hours and its faces move and cut but never leave it, while a person who moves about that long goes
  somewhere. It is not followed, and the box its eyes moved in (plus :data:`SCREEN_MARGIN_WIDTHS`) is
  remembered as a :class:`Screen`: a face that appears inside it later (the next shot) is on the screen at
  once. A screen's face that leaves the box was a person after all: it is a person again and the box is
  forgotten. Someone who fidgets inside a box of three face widths (about 45 cm) for that long without
  being still for a second, or who is found again (after a dropout) in front of a known screen, is taken
  for the screen until they step out of it.

What it cannot tell apart (README, "Real rooms"): a person who was already there, keeps within a fifth
of a face width and whose face's pixels do not change (no region change known: gating and the
thumbnail are the pipeline's, see edge.search) for ``picture_seconds``; a photo someone keeps moving in
front of for ``face_seconds``; a TV face in its first ``screen_seconds`` of movement from a person who
has not travelled (with nobody else there the eyes follow it until then), and one that keeps still (a
news reader: a person by the region test); a face in a mirror from the person.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge.faces import Face

#: Time constant (s) of the eye-midpoint smoothing used for the movement test: a third of a second cuts
#: the detector's frame-to-frame jitter several times while a step of a few centimetres passes.
SMOOTH_S = 0.3
#: A face must be seen on this many frames before it can be the viewer (one-frame false detections).
MIN_HITS = 2
#: A new (unclassified) track unseen this long is dropped. Long, because small photos are found only on
#: some frames (a 40 px photo on a third of them): their track must live long enough to become a picture.
NEW_LOST_S = 3.0
#: A person unseen this long is gone; until then a face found near where they were is them again.
PERSON_MEMORY_S = 3.0
#: ... but a person who stood still when last seen is remembered longer: the detector misses a still,
#: small face for seconds at a time (a 60 px face at 1.3 m: found on half the frames, gaps over 1 s),
#: and a still person found again must not start over as a new face (and become a picture).
STILL_PERSON_MEMORY_S = 12.0
#: A person is *still* once their eye midpoint has stayed within ``STILL_WIDTHS`` of their width of one
#: spot for ``STILL_S`` seconds.
STILL_WIDTHS = 0.5
STILL_S = 1.0
#: A picture's track unseen this long is dropped (its place is remembered much longer).
PICTURE_LOST_S = 2.0
#: Tracks and places are bounded: bounded memory, bounded work per frame.
MAX_TRACKS = 16
MAX_PLACES = 32
#: Faces match a moving track when their centres are closer than this many face widths (plus
#: ``LOST_WIDTHS_PER_S`` for each second the track went unseen, up to ``MAX_MATCH_WIDTHS``: a walker moves
#: on while undetected, but a person's track must not jump onto a picture across the room)...
MATCH_WIDTHS = 0.75
LOST_WIDTHS_PER_S = 2.0
MAX_MATCH_WIDTHS = 2.0
#: A face's velocity (its eye midpoint's, face widths per second) is capped at these: a brisk walk across
#: is about 8 widths a second (1.2 m/s over a 155 mm face), a run 20; eye height changes slowly. Each
#: observation's velocity is averaged with the last estimate by ``VELOCITY_WEIGHT`` (a far face's
#: detector jitter is a fair share of its step), and none is taken across ``VELOCITY_GAP_S`` unseen.
MAX_SPEED_WIDTHS = 15.0
MAX_RISE_WIDTHS = 2.0
VELOCITY_WEIGHT = 0.5
VELOCITY_GAP_S = 1.0
#: Vertically the match is tighter, and does not grow: a walker's eyes stay at one height; a face found
#: half a face width above or below where a person was is somebody (or something: a photo) else.
VERTICAL_WIDTHS = 0.35
#: A new face has moved once its smoothed midpoint has been outside its box on this many observations in
#: a row: one jittery detection (a small, low-contrast photo jumps by a fifth of its width now and then,
#: more while the light changes) does not make a picture a person; a walker stays outside.
MOVED_HITS = 2
#: A new face whose raw eye midpoint is found this many of its widths from where it was born has moved
#: too, before its smoothed midpoint shows it: the smoothing lags a walker by a few frames (0.2 s at
#: 1 m), and the eyes would wait for it. No picture comes near (measured: detector jitter at most 0.065
#: widths sd on the low-contrast sideboard photo, its largest jumps a fifth of its width; a photo found
#: whole after half hidden 0.28 widths off, once).
RAW_MOVE_WIDTHS = 0.5
#: A new face found this many of its widths from where it was born *while its own pixels change a lot*
#: (by :data:`WALKER_GREY_TIMES` the region test's ``face_grey``, :class:`edge.motion.RegionChange`) has
#: moved too: a walker's second sighting is 0.34-0.52 widths on (0.8-1.2 m/s at 15 fps, at any
#: distance), under :data:`RAW_MOVE_WIDTHS` at a slow pace, and the eyes would wait a frame more for
#: every one who comes in. Either alone is not enough: a photo jumps by up to 0.22 widths (measured,
#: both ranges, every room scenario; a turned face in the office photo 0.3), and a passer-by changes its
#: pixels.
CHANGING_MOVE_WIDTHS = 0.3
#: ... "a lot": a walker's box, where the wall was half a second before, changes by 49-100 grey levels
#: at that second sighting (every walker of the room scenarios, both ranges; a TV face 28-37), a stray
#: detection beside a walker (the edge of her head) by about ``face_grey``, which took it for a person
#: once.
WALKER_GREY_TIMES = 5.0
#: ... but never more than this many pixels: the detector's jitter does not grow with a face's size as fast
#: as the size (measured, full range, 2.5 s windows of the smoothed midpoint: a 96 px poster moves at most
#: 6 px, a 46 px low-contrast photo 11 px), while a near viewer's few centimetres are many pixels.
MOVE_CAP_PX = 12.0
#: ... and their widths differ by less than this factor.
MATCH_SIZE_RATIO = 1.5
#: A picture's track only matches detections this close to its place (pictures do not move): a person
#: walking past a poster is never taken for the poster.
PLACE_WIDTHS = 0.3
PLACE_SIZE_RATIO = 1.3
#: A new face's pixels may stop changing this long (s) without ending its run of change: a swaying
#: head stands still for a moment at each turn of its sway (measured: single frames under 0.5 grey
#: levels between runs of 3-25 on the room scenarios' standing viewers).
LIVE_BREAK_S = 0.25
#: ... and must be seen at least this often (s) during the run: a small photo found on a few frames
#: (a passer-by's changes on each) is not watched changing all along.
LIVE_GAP_S = 0.4
#: A new face found again after this long unseen (s) with its pixels steady starts its movement test
#: again from where it is found (measured: a photo first found half hidden behind a viewer standing in
#: front of it was found whole 13 px off when she left, and seemed to have moved).
REBASE_GAP_S = 0.5
#: How far back (s) the region test compares a face's pixels (:data:`edge.motion.REGION_LAG_S`): a person
#: who was near a new face within this long may have changed its pixels, in front of it or beside it.
PASSER_WINDOW_S = 0.5
#: ... "near": their path in that time came within this many of their face widths of the new face's
#: eye midpoint sideways (a body is about 2.5 face widths across, shoulders and arms), and their head
#: was not below its box (a body hides what is below and beside its head, not a photo above it).
PASSER_REACH_WIDTHS = 1.5
#: A person whose path spans this many face widths has walked here (see the module docstring).
TRAVEL_WIDTHS = 3.0
#: A screen's box is the extent its face's eyes moved in, grown by this many face widths on every side:
#: the next shot's face turns up a little beyond where the last one went.
SCREEN_MARGIN_WIDTHS = 0.5
#: Moving time is counted between observations at most this far apart (s): a face seen only on the
#: whole-frame scans (every 0.4 s) while someone else is followed still adds up, one unseen for long not.
SCREEN_GAP_S = 0.5
MAX_SCREENS = 8

NEW, PERSON, PICTURE, SCREEN = "new", "person", "picture", "screen"


@dataclass
class Place:
    """Where a picture hangs: its eye midpoint and face width in camera pixels, and when it was last seen."""

    x: float
    y: float
    width: float
    last_seen: float

    def holds(self, x: float, y: float, width: float) -> bool:
        big, small = (width, self.width) if width >= self.width else (self.width, width)
        if small <= 0.0 or big > small * PLACE_SIZE_RATIO:
            return False
        return math.hypot(x - self.x, y - self.y) <= PLACE_WIDTHS * self.width


@dataclass
class Screen:
    """Where a screen shows faces: the box (camera pixels) its faces' eye midpoints move in, and when a
    face was last seen on it."""

    x0: float
    y0: float
    x1: float
    y1: float
    last_seen: float
    face_width: float = 0.0  # the width of the face it was learnt from

    def holds(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    def area(self) -> tuple[int, int, int, int]:
        """The camera pixels (x0, y0, x1, y1) its faces cover: the eyes' box grown by a face width on
        every side and one and a half below (the head above the eyes, the shoulders below)."""
        w = self.face_width
        return (int(self.x0 - w), int(self.y0 - w), int(math.ceil(self.x1 + w)), int(math.ceil(self.y1 + 1.5 * w)))


class Track:
    """One face followed over frames. ``face`` is this frame's detection (None when unseen)."""

    __slots__ = ("id", "face", "last_face", "kind", "x", "y", "width", "sx", "sy", "ox", "oy", "lo_x", "hi_x",
                 "lo_y", "hi_y", "born", "last_t", "hits", "place", "ax", "ay", "at", "outside", "travelled",
                 "live_since", "live_last", "changing", "vx", "vy", "moving_s", "screen")

    def __init__(self, track_id: int, face: Face, x: float, y: float, width: float, t: float) -> None:
        self.id = track_id
        self.face: Face | None = face
        self.last_face: Face = face
        self.kind = NEW
        self.x, self.y, self.width = x, y, width
        self.sx, self.sy = x, y          # smoothed eye midpoint
        self.ox, self.oy = x, y          # where it was born
        self.lo_x = self.hi_x = x        # extent of the smoothed midpoint since birth
        self.lo_y = self.hi_y = y
        self.born = t
        self.last_t = t
        self.hits = 1
        self.place: Place | None = None
        self.ax, self.ay, self.at = x, y, t  # where and since when it has stayed (the stillness anchor)
        self.outside = 0  # observations in a row outside its birth box (new faces)
        #: whether its path has spanned TRAVEL_WIDTHS face widths: someone who walked here (kept for life)
        self.travelled = False
        #: since when its own pixels have kept changing (edge.motion.RegionChange), None: they do not
        self.live_since: float | None = None
        self.live_last = t  # the last observation on which they did
        self.changing = False  # whether its pixels changed by face_grey on its last observation
        self.vx = self.vy = 0.0  # velocity of its eye midpoint, px/s (people; pictures do not move)
        self.moving_s = 0.0  # seconds seen moving about (not still) since birth, for the screen test
        self.screen: Screen | None = None  # the screen it is on (kind SCREEN)

    @property
    def still(self) -> bool:
        """Whether it stayed within :data:`STILL_WIDTHS` of one spot for :data:`STILL_S` when last seen."""
        return self.last_t - self.at >= STILL_S


    def predicted(self, t: float) -> tuple[float, float]:
        """Where its eye midpoint is expected at ``t``: where it was seen, moved on by its velocity (for
        at most :data:`VELOCITY_GAP_S`); a picture's is its place, a new face's where it was last seen (its
        velocity is a jittery detection's jump as often as a step: extrapolated over a gap it carried a
        stray detection beside a walker onto the photo behind her)."""
        if self.kind == PICTURE:
            return self.ox, self.oy
        if self.kind == NEW:
            return self.x, self.y
        gap = min(max(0.0, t - self.last_t), VELOCITY_GAP_S)
        return self.x + self.vx * gap, self.y + self.vy * gap

    @property
    def frontal(self) -> float:
        """1 for a frontal face, towards 0 as the nose leaves the eyes' midline (a turned head)."""
        kp = self.last_face.keypoints
        ipd = abs(float(kp[1, 0] - kp[0, 0]))
        if ipd <= 0.0:
            return 0.0
        off = abs(float(kp[2, 0]) - (float(kp[0, 0]) + float(kp[1, 0])) * 0.5) / ipd
        return max(0.0, 1.0 - off)

    def __repr__(self) -> str:
        return f"Track({self.id}, {self.kind}, x={self.x:.1f}, y={self.y:.1f}, w={self.width:.1f}, hits={self.hits})"


def midpoint(face: Face) -> tuple[float, float]:
    kp = face.keypoints
    return (float(kp[0, 0]) + float(kp[1, 0])) * 0.5, (float(kp[0, 1]) + float(kp[1, 1])) * 0.5


class FaceTracks:
    """Faces matched frame to frame, each a new face, a person or a picture (module docstring)."""

    def __init__(self, picture_seconds: float, static_px: float, move_widths: float,
                 place_forget_s: float, live_grey: float = 0.0, live_seconds: float = 1.0,
                 screen_seconds: float = 0.0) -> None:
        self.picture_seconds = float(picture_seconds)
        #: a face that moves about this long in all without travelling is on a screen (0: never)
        self.screen_seconds = float(screen_seconds)
        self.live_grey = float(live_grey)
        self.live_seconds = float(live_seconds)
        self.static_px = float(static_px)
        self.move_widths = float(move_widths)
        self.place_forget_s = float(place_forget_s)
        self.tracks: list[Track] = []
        self.places: list[Place] = []
        self.screens: list[Screen] = []
        self._next_id = 1
        self._rebase = False

    def reset(self) -> None:
        """Forget the faces (a new clock); where pictures hang is kept, that is the room, not the clock:
        their "last seen" is taken as the next update's time, whatever clock that is on."""
        self.tracks.clear()
        self._rebase = bool(self.places or self.screens)

    def adopt(self, other: FaceTracks) -> None:
        """Take over what ``other`` (this room's tracks before a reload) knows: the faces followed, where
        pictures hang and where screens are. The config may have changed how faces are judged; the room
        has not, and a reload must not make the frame stare at its pictures and TV again while it
        relearns them, nor make the viewer standing in front of it wait to be told from a photo. With
        ``screen_seconds`` 0 (no screens) the screens are left behind."""
        self.tracks = list(other.tracks)
        self.places = list(other.places)
        self.screens = list(other.screens) if self.screen_seconds > 0.0 else []
        if not self.screens:
            for tr in self.tracks:
                if tr.kind == SCREEN:
                    tr.kind, tr.screen = PERSON, None
        self._next_id = max(self._next_id, other._next_id)

    def forget_places(self) -> None:
        self.places.clear()
        self.screens.clear()

    def _within(self, tr: Track, dx: float, dy: float, width: float, t: float) -> bool:
        """Whether a face ``(dx, dy)`` from the track's position can be it: a picture's within
        :data:`PLACE_WIDTHS`; a person's within an ellipse, wide sideways (people walk across a room) and
        flat vertically (eye height changes slowly: sitting down takes a second or more), both growing
        with the time unseen."""
        if tr.kind == PICTURE:
            return math.hypot(dx, dy) <= PLACE_WIDTHS * tr.width
        gap = max(0.0, t - tr.last_t)
        w = max(width, tr.width)
        rx = min(MAX_MATCH_WIDTHS, MATCH_WIDTHS + LOST_WIDTHS_PER_S * gap) * w
        ry = VERTICAL_WIDTHS * w
        return (dx / rx) ** 2 + (dy / ry) ** 2 < 1.0

    def update(self, faces: Sequence[Face], t: float,
               region_change: Callable[[Face], float | None] | None = None, *,
               held: bool = False) -> list[Track]:
        """Match this frame's faces; returns the tracks seen now (``track.face`` set), in face order.
        ``region_change(face)``: how much that face's own pixels changed (grey levels beyond the frame's,
        :class:`edge.motion.RegionChange`), asked only of new faces; None: not known.

        ``held``: the detector did not look at this frame (the motion gate saw nothing change) and
        ``faces`` are its last search's, taken to be still there. They keep their tracks seen and their
        pixels are still tested (the frame is new), but they are no new sighting: a detection repeated
        over a gated second would otherwise weigh as fifteen, and one jittery detection of a photo,
        held, pulled its smoothed midpoint out of its box (the office scenario's man in the photo)."""
        if self._rebase:
            for place in self.places:
                place.last_seen = t
            for screen in self.screens:
                screen.last_seen = t
            self._rebase = False
        for tr in self.tracks:
            tr.face = None
        pairs = []
        obs = []
        for fi, face in enumerate(faces):
            x, y = midpoint(face)
            w = float(face.box[2] - face.box[0])
            obs.append((x, y, w))
            for tr in self.tracks:
                ratio = PLACE_SIZE_RATIO if tr.kind == PICTURE else MATCH_SIZE_RATIO
                big, small = (w, tr.width) if w >= tr.width else (tr.width, w)
                if small <= 0.0 or big > small * ratio:
                    continue
                ax, ay = tr.predicted(t)
                d = math.hypot(x - ax, y - ay)
                if tr.kind != PICTURE and d > MATCH_WIDTHS * max(w, tr.width) and self._place_at(x, y, w):
                    continue  # a picture reappearing where a face was a moment ago is the picture
                if self._within(tr, x - ax, y - ay, w, t):
                    pairs.append((d, fi, tr))  # nearest first: a picture's own detection is right at it
        pairs.sort(key=lambda p: p[0])
        matched: list[Track | None] = [None] * len(faces)
        for _, fi, tr in pairs:
            if matched[fi] is None and tr.face is None:
                matched[fi] = tr
                tr.face = faces[fi]
        seen = []
        for fi, face in enumerate(faces):
            x, y, w = obs[fi]
            known = matched[fi]
            if known is None and held:
                continue  # not a sighting: nothing new is born of it
            if known is None:
                known = Track(self._next_id, face, x, y, w, t)
                self._next_id += 1
                hangs = self._place_at(x, y, w)
                if hangs is not None:
                    known.kind, known.place = PICTURE, hangs
                    hangs.last_seen = t
                else:
                    shows = self._screen_at(x, y)
                    if shows is not None:  # the next shot on a known screen
                        known.kind, known.screen = SCREEN, shows
                        shows.last_seen = t
                self.tracks.append(known)
            elif held:
                self._hold(known, face, t, region_change)
            else:
                self._observe(known, face, x, y, w, t, region_change)
            seen.append(known)
        self._forget(t)
        return seen

    def _screen_at(self, x: float, y: float) -> Screen | None:
        for screen in self.screens:
            if screen.holds(x, y):
                return screen
        return None

    def _place_at(self, x: float, y: float, w: float) -> Place | None:
        for place in self.places:
            if place.holds(x, y, w):
                return place
        return None

    def _observe(self, tr: Track, face: Face, x: float, y: float, w: float, t: float,
                 region_change: Callable[[Face], float | None] | None = None) -> None:
        dt = t - tr.last_t
        a = 1.0 - math.exp(-dt / SMOOTH_S) if dt > 0.0 else 0.0
        if tr.kind == PERSON and dt > 2 * SMOOTH_S:
            a = 1.0  # found again after a while: where they are now, not a blend with where they were
        tr.sx += a * (x - tr.sx)
        tr.sy += a * (y - tr.sy)
        tr.lo_x, tr.hi_x = min(tr.lo_x, tr.sx), max(tr.hi_x, tr.sx)
        tr.lo_y, tr.hi_y = min(tr.lo_y, tr.sy), max(tr.hi_y, tr.sy)
        if math.hypot(x - tr.ax, y - tr.ay) > STILL_WIDTHS * w:  # raw: a step away ends stillness at once
            tr.ax, tr.ay, tr.at = x, y, t
        if not tr.travelled and max(tr.hi_x - tr.lo_x, tr.hi_y - tr.lo_y) >= TRAVEL_WIDTHS * w:
            tr.travelled = True
        if 0.0 < dt <= VELOCITY_GAP_S:
            cap_x, cap_y = MAX_SPEED_WIDTHS * w, MAX_RISE_WIDTHS * w
            vx = max(-cap_x, min(cap_x, (x - tr.x) / dt))
            vy = max(-cap_y, min(cap_y, (y - tr.y) / dt))
            weight = VELOCITY_WEIGHT if tr.hits > 1 else 1.0
            tr.vx += weight * (vx - tr.vx)
            tr.vy += weight * (vy - tr.vy)
        elif dt > VELOCITY_GAP_S:
            tr.vx = tr.vy = 0.0
        tr.x, tr.y, tr.width = x, y, w
        tr.last_t = t
        tr.hits += 1
        tr.last_face = face
        if tr.kind == NEW:
            self._judge(tr, face, t, dt, region_change, (x, y, w))
        elif tr.kind == PICTURE and tr.place is not None:
            tr.place.last_seen = t
        else:
            self._screen_test(tr, dt, t)

    def _hold(self, tr: Track, face: Face, t: float,
              region_change: Callable[[Face], float | None] | None) -> None:
        """A held face (:meth:`update`): still seen, its pixels tested, but no new sighting of where it is."""
        dt = t - tr.last_t
        tr.last_t = t
        if tr.kind == NEW:
            self._judge(tr, face, t, dt, region_change, None)
        elif tr.kind == PICTURE and tr.place is not None:
            tr.place.last_seen = t

    def _judge(self, tr: Track, face: Face, t: float, dt: float,
               region_change: Callable[[Face], float | None] | None,
               sighting: tuple[float, float, float] | None) -> None:
        """Whether a new face is a person or a picture yet (module docstring): its own pixels on every
        frame, where it was found on a ``sighting`` (x, y, width; None for a held face)."""
        change = (region_change(face) if self.live_grey > 0.0 and region_change is not None
                  else None)
        steady = change is not None and change < self.live_grey
        if sighting is not None and steady and (tr.changing or dt > REBASE_GAP_S):
            # Its pixels steady now after changing (or after a while unseen): it may have been found half
            # hidden while someone passed in front of it (a photo on a sideboard behind a viewer who walks
            # off) and be found whole now, a few pixels off. The movement test starts again from here
            # (the picture clock does not).
            x, y, _ = sighting
            tr.ox, tr.oy, tr.sx, tr.sy, tr.outside = x, y, x, y, 0
        tr.changing = change is not None and not steady
        moved = False
        if sighting is not None:
            # Where it is found counts only while its pixels are not steady: a face that has moved has
            # changed them, and a photo's detections jump (a turned face in the office photo by 0.3 of
            # its width, back and forth) while its pixels do not.
            x, y, w = sighting
            limit = max(self.static_px, min(self.move_widths * w, MOVE_CAP_PX))
            smoothed_out = max(abs(tr.sx - tr.ox), abs(tr.sy - tr.oy)) > limit
            tr.outside = tr.outside + 1 if smoothed_out and not steady else 0
            # a walker's first frames, before the smoothing has caught up with them
            step = max(abs(x - tr.ox), abs(y - tr.oy))
            walking = change is not None and change >= WALKER_GREY_TIMES * self.live_grey
            stepped = not steady and step > (CHANGING_MOVE_WIDTHS if walking else RAW_MOVE_WIDTHS) * w
            moved = tr.outside >= MOVED_HITS or stepped
        if tr.changing and self._passed_by(tr, t):
            change, tr.live_since = None, None  # a passer-by's change, not its own: the run starts again
        if moved or self._alive(tr, change, t, t - dt):
            tr.kind = PERSON
        elif t - tr.born >= self.picture_seconds:
            tr.kind = PICTURE
            tr.ox, tr.oy = tr.sx, tr.sy  # the place is where it settled
            tr.place = self._remember(tr.sx, tr.sy, tr.width, t)

    def _passed_by(self, tr: Track, t: float) -> bool:
        """Whether a person on the move came near new face ``tr`` within the last :data:`PASSER_WINDOW_S`:
        its pixels then changed because of them (walking in front of a photo, or beside it, and for half
        a second after, while the region test compares with a frame they were in), not by itself. Someone
        standing still beside it does not count: two people standing side by side are both people."""
        since = t - PASSER_WINDOW_S
        for other in self.tracks:
            if other is tr or other.kind != PERSON or other.last_t < since or other.still:
                continue
            then = other.x - other.vx * min(other.last_t - since, VELOCITY_GAP_S)  # where they were
            reach = PASSER_REACH_WIDTHS * other.width
            if (min(then, other.x) - reach <= tr.x <= max(then, other.x) + reach
                    and other.y - other.width <= tr.y + tr.width):
                return True
        return False

    def _screen_test(self, tr: Track, dt: float, t: float) -> None:
        """A person who has moved about for ``screen_seconds`` without travelling is a face on a screen; a
        screen's face that leaves the screen's box, or travels, is a person (module docstring)."""
        if tr.kind == SCREEN:
            screen = tr.screen
            if tr.travelled or (screen is not None and not screen.holds(tr.sx, tr.sy)):
                tr.kind, tr.screen = PERSON, None
                if screen in self.screens:
                    self.screens.remove(screen)  # it was somebody moving about there, not a screen
            elif screen is not None:
                screen.last_seen = t
            return
        if self.screen_seconds <= 0.0 or tr.travelled:
            return
        if 0.0 < dt <= SCREEN_GAP_S and not tr.still:
            tr.moving_s += dt
        if tr.moving_s >= self.screen_seconds:
            tr.kind = SCREEN
            tr.screen = self._remember_screen(tr, t)

    def _remember_screen(self, tr: Track, t: float) -> Screen:
        m = SCREEN_MARGIN_WIDTHS * tr.width
        screen = Screen(tr.lo_x - m, tr.lo_y - m, tr.hi_x + m, tr.hi_y + m, t, tr.width)
        self.screens.append(screen)
        if len(self.screens) > MAX_SCREENS:
            self.screens.sort(key=lambda s: s.last_seen, reverse=True)
            del self.screens[MAX_SCREENS:]
        return screen

    def _alive(self, tr: Track, change: float | None, t: float, gap_from: float) -> bool:
        """Whether a new face's own pixels have changed by ``face_grey`` on every observation for
        ``face_seconds``: someone standing still, not a photo (whose pixels change only while a passer-by
        is in front of it, for less than that)."""
        if change is None:
            return False
        if t - gap_from > LIVE_GAP_S:  # not seen for a while: a run of change must be watched whole
            tr.live_since = None
        if change < self.live_grey:
            if t - tr.live_last > LIVE_BREAK_S:
                tr.live_since = None
            return False
        if tr.live_since is None:
            tr.live_since = t
        tr.live_last = t
        return t - tr.live_since >= self.live_seconds

    def _remember(self, x: float, y: float, w: float, t: float) -> Place:
        place = self._place_at(x, y, w)
        if place is None:
            place = Place(x, y, w, t)
            self.places.append(place)
            if len(self.places) > MAX_PLACES:
                self.places.sort(key=lambda p: p.last_seen, reverse=True)
                del self.places[MAX_PLACES:]
        place.last_seen = t
        return place

    def _expired(self, tr: Track, t: float) -> bool:
        if tr.kind == PERSON:
            memory = STILL_PERSON_MEMORY_S if tr.still else PERSON_MEMORY_S
        else:
            memory = PICTURE_LOST_S if tr.kind == PICTURE else NEW_LOST_S
        return t - tr.last_t > memory

    def _forget(self, t: float) -> None:
        if self.places and t - min(p.last_seen for p in self.places) > self.place_forget_s:
            self.places[:] = [p for p in self.places if t - p.last_seen <= self.place_forget_s]
        if self.screens and t - min(s.last_seen for s in self.screens) > self.place_forget_s:
            self.screens[:] = [s for s in self.screens if t - s.last_seen <= self.place_forget_s]
        if len(self.tracks) <= MAX_TRACKS and not any(self._expired(tr, t) for tr in self.tracks):
            return  # the usual frame: nothing to drop, nothing to rebuild
        keep = [tr for tr in self.tracks if not self._expired(tr, t)]
        if len(keep) > MAX_TRACKS:
            keep.sort(key=lambda tr: (tr.kind == PERSON, tr.last_t), reverse=True)
            del keep[MAX_TRACKS:]
        self.tracks[:] = keep

    def screen_areas(self) -> tuple[tuple[int, int, int, int], ...]:
        """Where the known screens are, in camera pixels (:meth:`Screen.area`): the motion gate does not
        count their change as the room's (a TV changes all evening)."""
        return tuple(screen.area() for screen in self.screens)

    def pictures(self) -> list[Track]:
        """The tracks taken for pictures, or for faces on a screen (a moving picture), that were seen in
        the last update: the faces the eyes do not follow."""
        return [tr for tr in self.tracks if tr.kind in (PICTURE, SCREEN) and tr.face is not None]


__all__ = ["FaceTracks", "Track", "Place", "Screen", "midpoint", "MIN_HITS", "NEW", "PERSON", "PICTURE",
           "SCREEN"]
