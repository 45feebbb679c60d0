"""From the faces in each camera frame to the gaze frame the portrait shows.

Conventions (shared with ``edge.config`` and the gaze pack): *left* and *right* are as seen by a viewer
standing in front of the picture, facing it. Angles are horizontal, in degrees, measured at the portrait's
eyes from the wall's normal: negative toward the viewer's left. Frame 0 looks to the viewer's left (the
painted eyes point at the left side of the room), frame N-1 to the right; the pack says which angles its
first and last frames look at (``span_deg``, default -30..+30).

The room from above; the picture hangs on the top wall, people stand below it, facing it::

      wall ═══════════════════[ eyes ]══════════[ cam ]═══════    camera_offset_mm.x > 0 here: the camera
                                 |                  |              is to the viewer's right of the eyes
                                 |                  |
                 angle < 0       |    angle > 0     | camera's optical axis
      viewer's LEFT  <───────────┼──────────────────┼───────────>  viewer's RIGHT
      (frame 0)                  |                  |              (frame N-1)
                  A              |                  |         B
          A: seen on the camera image's RIGHT side; the portrait must look at frame ~0
          B: seen on the camera image's LEFT side;  the portrait must look at frame ~N-1

The camera is a person standing in the wall looking out: its right hand is on the room's left. So in an
unmirrored camera image a viewer standing at the room's left appears on the image's RIGHT, and the eye
midpoint's X must be turned around; ``mirror = true`` says the image is already turned (camera hflip, or a
webcam that mirrors itself like a selfie preview).

The pipeline, one small piece each, in the order a frame goes through them:

1. :class:`FaceTracks` gives faces an identity from frame to frame (nearest centre, similar size) and
   marks *static* ones: a painting or poster in view is a face to BlazeFace, often a confident one, but
   it never moves, while a real viewer always moves a little. A face whose smoothed eye midpoint stays
   within ``static_px`` for ``static_seconds`` is ignored until it moves again.
2. :class:`ViewerSelector` picks the viewer: the widest (closest) moving face, kept while present; another
   face takes over only when it is ``sticky_margin`` wider for ``sticky_seconds``, so two people of similar
   size do not make the eyes jump between them on every frame.
3. :class:`GeometryMapping` turns the viewer's eye midpoint into the angle *from the portrait's eyes* (the
   camera is not at the eyes: a viewer straight in front of the portrait is off-axis for the camera);
   :class:`LinearMapping` is the plain camera-X fallback, optionally through calibration points.
4. :class:`OneEuroFilter` smooths the angle: calm when the viewer stands still, little lag when they walk.
5. :class:`FrameStepper` applies hysteresis (no flicker between neighbouring frames) and limits how many
   frames per second the eyes may move; with nobody seen for ``idle_seconds`` it walks back to centre.

The per-frame path works on Python floats and a handful of small objects; it allocates no arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edge.faces import Face

#: Time constant (s) of the eye-midpoint smoothing used only for the static test. Keypoint jitter on a
#: still picture is several camera pixels for small faces (int8 full range on the astronaut photo with
#: sensor-like noise, 640x480: 4 px standard deviation, 14 px peak to peak, for a 40 px face); a third of
#: a second of averaging at 30 fps cuts it about four times, while a person's sway (a few centimetres over
#: a second or two, about ten pixels at 2.5 m) passes almost unchanged.
STATIC_SMOOTH_S = 0.3
#: A face must be seen on this many frames before it can be the viewer: one-frame false detections
#: (wallpaper, a lamp) must not move the eyes.
MIN_HITS = 2
#: A moving track unseen this long is gone (the person left or turned away).
TRACK_LOST_S = 1.0
#: A static track (a painting) is remembered this long unseen, so a poster the detector finds only now
#: and then does not get stared at for ``static_seconds`` each time it reappears.
STATIC_MEMORY_S = 3600.0
#: At most this many tracks; beyond it the longest-unseen is forgotten (bounded memory, bounded work).
MAX_TRACKS = 16
#: The viewer may vanish this long (a blink of the detector, a head turn) before someone else is chosen.
VIEWER_GRACE_S = 0.5
#: Faces match a track when their centres are closer than this many face widths...
MATCH_WIDTHS = 0.75
#: ... and their widths differ by less than this factor (a person walking past a poster is not the poster).
MATCH_SIZE_RATIO = 1.5
#: Below this inter-pupil distance (px) the distance estimate is meaningless (a profile face).
MIN_IPD_PX = 1.0


# --- 4. the One Euro filter ------------------------------------------------------------------------------
class OneEuroFilter:
    """Casiez, Roussel and Vogel, "1 Euro Filter", CHI 2012: a low-pass filter whose cutoff rises with speed.

    Why this one: a fixed low-pass filter must choose between jitter (cutoff high) and lag (cutoff low).
    The eyes of a portrait need both at once: dead still while the viewer stands, quick when they walk.
    The cutoff is ``min_cutoff + beta * |speed|``, speed itself low-passed at ``d_cutoff``. Time-based, so
    an uneven camera frame rate changes nothing.
    """

    __slots__ = ("min_cutoff", "beta", "d_cutoff", "_x", "_dx", "_t")

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"OneEuroFilter: min_cutoff {min_cutoff} and d_cutoff {d_cutoff} must be > 0, "
                             f"beta {beta} >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next value is taken as it is (a new viewer is a new signal)."""
        self._x: float | None = None
        self._dx = 0.0
        self._t = 0.0

    @property
    def value(self) -> float | None:
        return self._x

    @staticmethod
    def _alpha(dt: float, cutoff: float) -> float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def update(self, value: float, t: float) -> float:
        """Filter ``value`` observed at time ``t`` (seconds); returns the filtered value."""
        if self._x is None:
            self._x, self._dx, self._t = float(value), 0.0, t
            return self._x
        dt = t - self._t
        if dt <= 0.0:  # same timestamp again: nothing new to learn about speed
            return self._x
        a_d = self._alpha(dt, self.d_cutoff)
        self._dx += a_d * ((value - self._x) / dt - self._dx)
        a = self._alpha(dt, self.min_cutoff + self.beta * abs(self._dx))
        self._x += a * (value - self._x)
        self._t = t
        return self._x


# --- 3. from a face to an angle ----------------------------------------------------------------------------
def focal_length_px(frame_width: float, fov_deg: float) -> float:
    """Pinhole focal length in pixels from the horizontal field of view: ``(W/2) / tan(fov/2)``."""
    return (frame_width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def viewer_angle_deg(eye_x: float, ipd_px: float, frame_width: float, fov_deg: float, ipd_mm: float = 63.0,
                     camera_offset_x_mm: float = 0.0, mirror: bool = False) -> float:
    """Horizontal angle (deg, negative = viewer's left) from the portrait's eyes to a viewer.

    The inter-pupil distance fixes the scale at the viewer: ``ipd_mm / ipd_px`` millimetres per pixel, so
    the viewer's distance is ``focal_px * ipd_mm / ipd_px`` and their sideways offset from the camera's axis
    is ``(eye_x - W/2) * ipd_mm / ipd_px``. Adding the camera's own offset from the painted eyes moves the
    origin to the eyes. The camera is taken to lie in the picture's plane, looking straight out.
    """
    mm_per_px = ipd_mm / ipd_px
    distance = focal_length_px(frame_width, fov_deg) * mm_per_px
    side = (eye_x - frame_width / 2.0) * mm_per_px
    x = (side if mirror else -side) + camera_offset_x_mm
    return math.degrees(math.atan2(x, distance))


class GeometryMapping:
    """The true angle from the portrait's eyes (see :func:`viewer_angle_deg`), constants computed once.

    Also leaves the viewer's distance and elevation (deg, positive = above the painted eyes) from the last
    call in ``distance_mm`` and ``elevation_deg``, for the status socket.
    """

    def __init__(self, frame_size: tuple[int, int], fov_deg: float, ipd_mm: float,
                 camera_offset_mm: tuple[float, float] = (0.0, 0.0), mirror: bool = False) -> None:
        w, h = frame_size
        self.cx, self.cy = w / 2.0, h / 2.0
        self.focal = focal_length_px(w, fov_deg)
        self.ipd_mm = float(ipd_mm)
        self.off_x, self.off_y = float(camera_offset_mm[0]), float(camera_offset_mm[1])
        self.sign = 1.0 if mirror else -1.0
        self.distance_mm: float | None = None
        self.elevation_deg: float | None = None

    def __call__(self, face: Face) -> float | None:
        kp = face.keypoints
        rx, ry, lx, ly = float(kp[0, 0]), float(kp[0, 1]), float(kp[1, 0]), float(kp[1, 1])
        ipd_px = math.hypot(lx - rx, ly - ry)
        if ipd_px < MIN_IPD_PX:
            return None
        mm_per_px = self.ipd_mm / ipd_px
        z = self.focal * mm_per_px
        x = self.sign * ((rx + lx) * 0.5 - self.cx) * mm_per_px + self.off_x
        y = -((ry + ly) * 0.5 - self.cy) * mm_per_px - self.off_y  # image y grows downward; relative to eyes
        self.distance_mm = z
        self.elevation_deg = math.degrees(math.atan2(y, z))
        return math.degrees(math.atan2(x, z))


class LinearMapping:
    """Camera X straight onto the pack's span: the fallback when the geometry is unknown or misleading.

    Without calibration the image's width spans the frames (turned around unless ``mirror``). With
    calibration ``(left_x, centre_x, right_x)`` (normalised camera X of viewers the portrait should look
    fully left at, straight at, fully right at, as recorded by ``mona-edge calibrate``) the mapping is
    piecewise linear through those three points; the direction comes from the recording, so ``mirror``
    does not apply.
    """

    def __init__(self, frame_size: tuple[int, int], span_deg: tuple[float, float], mirror: bool = False,
                 calibration: tuple[float, float, float] | None = None) -> None:
        self.width = float(frame_size[0])
        self.lo, self.hi = float(span_deg[0]), float(span_deg[1])
        self.mirror = mirror
        if calibration is not None:
            left, centre, right = (float(v) for v in calibration)
            if not (left < centre < right or left > centre > right):
                raise ValueError(f"calibration {calibration}: centre must lie strictly between left and right")
        self.calibration = calibration
        self.distance_mm: float | None = None
        self.elevation_deg: float | None = None

    def fraction(self, eye_x: float) -> float:
        """0 = look fully left, 1 = fully right (unclamped: beyond the calibrated edges extrapolates)."""
        nx = eye_x / self.width
        if self.calibration is None:
            return nx if self.mirror else 1.0 - nx
        left, centre, right = self.calibration
        if (nx - centre) * (left - centre) > 0.0:
            return 0.5 - 0.5 * (nx - centre) / (left - centre)
        return 0.5 + 0.5 * (nx - centre) / (right - centre)

    def __call__(self, face: Face) -> float | None:
        kp = face.keypoints
        return self.lo + self.fraction((float(kp[0, 0]) + float(kp[1, 0])) * 0.5) * (self.hi - self.lo)


# --- 1. identity and static faces ------------------------------------------------------------------------
class Track:
    """One face followed over frames. ``face`` is this frame's detection (None when unseen)."""

    __slots__ = ("id", "face", "x", "y", "width", "sx", "sy", "lo_x", "hi_x", "lo_y", "hi_y", "anchor_t",
                 "last_t", "hits")

    def __init__(self, track_id: int, face: Face, x: float, y: float, width: float, t: float) -> None:
        self.id = track_id
        self.face: Face | None = face
        self.x, self.y, self.width = x, y, width
        self.sx, self.sy = x, y                  # smoothed eye midpoint, for the static test
        self.lo_x = self.hi_x = x                # extent of the smoothed midpoint since anchor_t
        self.lo_y = self.hi_y = y
        self.anchor_t = t                        # when it last moved
        self.last_t = t
        self.hits = 1

    def is_static(self, t: float, static_seconds: float) -> bool:
        return t - self.anchor_t >= static_seconds

    def __repr__(self) -> str:
        return f"Track({self.id}, x={self.x:.1f}, y={self.y:.1f}, w={self.width:.1f}, hits={self.hits})"


def _midpoint(face: Face) -> tuple[float, float]:
    kp = face.keypoints
    return (float(kp[0, 0]) + float(kp[1, 0])) * 0.5, (float(kp[0, 1]) + float(kp[1, 1])) * 0.5


class FaceTracks:
    """Faces matched frame to frame, each knowing whether it has been still long enough to be a picture.

    "Still" is judged on the eye midpoint smoothed over :data:`STATIC_SMOOTH_S`: its extent since the face
    last moved must stay within ``2 * static_px`` in x and y (a box of +-static_px around its centre). When
    it grows beyond that the face has moved: the extent restarts from here and so does the clock, which is
    also how a face that starts moving again counts again.
    """

    def __init__(self, static_seconds: float, static_px: float) -> None:
        self.static_seconds = float(static_seconds)
        self.static_px = float(static_px)
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks.clear()

    def update(self, faces: Sequence[Face], t: float) -> list[Track]:
        """Match this frame's faces; returns the tracks seen now (``track.face`` set), in face order."""
        for tr in self.tracks:
            tr.face = None
        pairs = []
        obs = []
        for fi, face in enumerate(faces):
            x, y = _midpoint(face)
            w = float(face.box[2] - face.box[0])
            obs.append((x, y, w))
            for tr in self.tracks:
                big, small = (w, tr.width) if w >= tr.width else (tr.width, w)
                if small <= 0.0 or big > small * MATCH_SIZE_RATIO:
                    continue
                d = math.hypot(x - tr.x, y - tr.y)
                if d < MATCH_WIDTHS * big:
                    pairs.append((d, fi, tr))
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
            if known is None:
                known = Track(self._next_id, face, x, y, w, t)
                self._next_id += 1
                self.tracks.append(known)
            else:
                self._observe(known, x, y, w, t)
            seen.append(known)
        self._forget(t)
        return seen

    def _observe(self, tr: Track, x: float, y: float, w: float, t: float) -> None:
        dt = t - tr.last_t
        a = 1.0 - math.exp(-dt / STATIC_SMOOTH_S) if dt > 0.0 else 0.0
        tr.sx += a * (x - tr.sx)
        tr.sy += a * (y - tr.sy)
        tr.lo_x, tr.hi_x = min(tr.lo_x, tr.sx), max(tr.hi_x, tr.sx)
        tr.lo_y, tr.hi_y = min(tr.lo_y, tr.sy), max(tr.hi_y, tr.sy)
        limit = 2.0 * self.static_px
        if tr.hi_x - tr.lo_x > limit or tr.hi_y - tr.lo_y > limit:
            tr.lo_x = tr.hi_x = tr.sx
            tr.lo_y = tr.hi_y = tr.sy
            tr.anchor_t = t
        tr.x, tr.y, tr.width = x, y, w
        tr.last_t = t
        tr.hits += 1

    def _expired(self, tr: Track, t: float) -> bool:
        memory = STATIC_MEMORY_S if tr.is_static(tr.last_t, self.static_seconds) else TRACK_LOST_S
        return t - tr.last_t > memory

    def _forget(self, t: float) -> None:
        if len(self.tracks) <= MAX_TRACKS and not any(self._expired(tr, t) for tr in self.tracks):
            return  # the usual frame: nothing to drop, nothing to rebuild
        keep = [tr for tr in self.tracks if not self._expired(tr, t)]
        if len(keep) > MAX_TRACKS:
            keep.sort(key=lambda tr: tr.last_t, reverse=True)
            del keep[MAX_TRACKS:]
        self.tracks[:] = keep

    def is_static(self, track: Track, t: float) -> bool:
        return track.is_static(t, self.static_seconds)


# --- 2. who is the viewer ---------------------------------------------------------------------------------
class ViewerSelector:
    """The closest moving face, kept until it leaves or someone clearly closer stays a while.

    ``switched`` is True after a :meth:`select` that changed the viewer (the filter then starts afresh).
    """

    def __init__(self, sticky_margin: float, sticky_seconds: float, grace_s: float = VIEWER_GRACE_S) -> None:
        self.sticky_margin = float(sticky_margin)
        self.sticky_seconds = float(sticky_seconds)
        self.grace_s = float(grace_s)
        self.reset()

    def reset(self) -> None:
        self.current_id: int | None = None
        self.current_seen = 0.0
        self.challenger_id: int | None = None
        self.challenger_since = 0.0
        self.switched = False

    def _adopt(self, tr: Track, t: float) -> Track:
        self.current_id = tr.id
        self.current_seen = t
        self.challenger_id = None
        self.switched = True
        return tr

    def select(self, candidates: Sequence[Track], t: float) -> Track | None:
        """The viewer among ``candidates`` (tracks seen now, not static, seen often enough), or None."""
        self.switched = False
        current = None
        best = None
        for tr in candidates:
            if tr.id == self.current_id:
                current = tr
            elif best is None or tr.width > best.width:
                best = tr
        if current is None:
            if self.current_id is not None and t - self.current_seen < self.grace_s:
                return None  # hold: the viewer may be back next frame; do not jump to someone else
            self.current_id = None
            return None if best is None else self._adopt(best, t)
        self.current_seen = t
        if best is not None and best.width > current.width * (1.0 + self.sticky_margin):
            if self.challenger_id != best.id:
                self.challenger_id, self.challenger_since = best.id, t
            elif t - self.challenger_since >= self.sticky_seconds:
                return self._adopt(best, t)
        else:
            self.challenger_id = None
        return current


# --- 5. frames: hysteresis, speed limit -------------------------------------------------------------------
class FrameStepper:
    """The frame index from the filtered angle: hysteresis between bins, then at most ``max_speed_fps``.

    Frame ``i`` looks at ``lo + i * step``; its bin is half a step either side. The aimed frame changes only
    when the angle leaves that bin by a further ``hysteresis`` steps, so noise at a bin edge never makes
    two neighbours alternate. The shown position then moves toward the aim at the speed limit; the shown
    index is that position rounded.
    """

    def __init__(self, frame_count: int, span_deg: tuple[float, float], hysteresis: float,
                 max_speed_fps: float) -> None:
        if frame_count < 1:
            raise ValueError(f"frame_count {frame_count}: expected at least 1")
        lo, hi = float(span_deg[0]), float(span_deg[1])
        if not lo < hi:
            raise ValueError(f"span_deg {span_deg}: expected (low, high) with low < high")
        if max_speed_fps <= 0:
            raise ValueError(f"max_speed_fps {max_speed_fps}: expected > 0")
        self.count = int(frame_count)
        self.lo, self.hi = lo, hi
        self.step = (hi - lo) / (self.count - 1) if self.count > 1 else 0.0
        self.hysteresis = float(hysteresis)
        self.max_speed = float(max_speed_fps)
        self.centre = (self.count - 1) // 2
        self.reset()

    def reset(self) -> None:
        self.target = self.centre
        self.position = float(self.centre)
        self.index = self.centre

    def nearest(self, angle: float) -> int:
        if self.count == 1:
            return 0
        i = math.floor((angle - self.lo) / self.step + 0.5)
        return 0 if i < 0 else (self.count - 1 if i > self.count - 1 else i)

    def aim(self, angle: float) -> int:
        """Aim at ``angle`` unless it is still within the current aim's bin plus the hysteresis margin."""
        if self.count > 1:
            centre = self.lo + self.target * self.step
            if abs(angle - centre) > self.step * (0.5 + self.hysteresis):
                self.target = self.nearest(angle)
        return self.target

    def aim_index(self, index: int) -> None:
        self.target = max(0, min(self.count - 1, int(index)))

    def advance(self, dt: float) -> int:
        """Move the shown position toward the aim by at most ``max_speed * dt`` frames."""
        delta = self.target - self.position
        if delta != 0.0:
            limit = self.max_speed * max(0.0, dt)
            self.position += delta if abs(delta) <= limit else math.copysign(limit, delta)
        self.index = math.floor(self.position + 0.5)
        return self.index


# --- the whole ---------------------------------------------------------------------------------------------
class GazeTracker:
    """Faces of each camera frame in, frame index out. One instance per camera stream (size fixed).

    After each :meth:`update` the status socket may read: ``viewer_present`` (a viewer was seen in this
    frame), ``viewer`` (that face), ``angle_deg`` (the filtered angle, None when idle), ``raw_angle_deg``,
    ``distance_mm`` (geometry mapping only) and ``index``.
    """

    def __init__(self, cfg, frame_count: int, frame_size: tuple[int, int],
                 span_deg: tuple[float, float] = (-30.0, 30.0)) -> None:
        w, h = int(frame_size[0]), int(frame_size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"frame_size {frame_size}: expected (width, height) > 0")
        self.cfg = cfg
        self.frame_size = (w, h)
        self.stepper = FrameStepper(frame_count, span_deg, cfg.hysteresis, cfg.max_speed_fps)
        self.span_deg = (self.stepper.lo, self.stepper.hi)
        self.mapping: GeometryMapping | LinearMapping
        if cfg.mapping == "geometry":
            offset = cfg.camera_offset_mm
            self.mapping = GeometryMapping(self.frame_size, cfg.fov_deg, cfg.ipd_mm, (offset.x, offset.y),
                                           cfg.mirror)
        elif cfg.mapping == "linear":
            self.mapping = LinearMapping(self.frame_size, self.span_deg, cfg.mirror, cfg.calibration)
        else:
            raise ValueError(f"gaze mapping {cfg.mapping!r}: expected 'geometry' or 'linear'")
        self.filter = OneEuroFilter(cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff)
        self.tracks = FaceTracks(cfg.static_seconds, cfg.static_px)
        self.selector = ViewerSelector(cfg.sticky_margin, cfg.sticky_seconds)
        self.idle_seconds = float(cfg.idle_seconds)
        self.reset()

    @property
    def frame_count(self) -> int:
        return self.stepper.count

    @property
    def centre_index(self) -> int:
        return self.stepper.centre

    def reset(self) -> None:
        """Forget everyone; eyes at the centre frame at once (the camera is gone: look ahead)."""
        self.stepper.reset()
        self._forget_time()
        self.index = self.stepper.index

    def _forget_time(self) -> None:
        """Drop everything tied to the clock, keep where the eyes are."""
        self.tracks.reset()
        self.selector.reset()
        self.filter.reset()
        self._last_t: float | None = None
        self._last_seen: float | None = None
        self.viewer: Face | None = None
        self.viewer_present = False
        self.angle_deg: float | None = None
        self.raw_angle_deg: float | None = None
        self.distance_mm: float | None = None

    def update(self, faces: Sequence[Face], t: float) -> int:
        """The frame index to show for this camera frame's ``faces`` at time ``t`` (monotonic seconds)."""
        if self._last_t is not None and t < self._last_t:
            self._forget_time()  # a new clock (the source was reopened): old timestamps mean nothing
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t

        seen = self.tracks.update(faces, t)
        static_s = self.tracks.static_seconds
        candidates = [tr for tr in seen if tr.hits >= MIN_HITS and not tr.is_static(t, static_s)]
        track = self.selector.select(candidates, t)
        if track is not None:
            if self.selector.switched:
                self.filter.reset()
            assert track.face is not None  # selected among this frame's tracks: each was seen in it
            self.viewer = track.face
            self.viewer_present = True
            self._last_seen = t
            raw = self.mapping(track.face)
            if raw is not None:
                self.raw_angle_deg = raw
                self.distance_mm = self.mapping.distance_mm
                self.angle_deg = self.filter.update(raw, t)
                self.stepper.aim(self.angle_deg)
        else:
            self.viewer = None
            self.viewer_present = False
            if self._last_seen is None or t - self._last_seen >= self.idle_seconds:
                if self.angle_deg is not None:
                    self.filter.reset()
                    self.angle_deg = self.raw_angle_deg = self.distance_mm = None
                self.stepper.aim_index(self.stepper.centre)
        self.index = self.stepper.advance(dt)
        return self.index


__all__ = ["GazeTracker", "OneEuroFilter", "FrameStepper", "FaceTracks", "ViewerSelector", "Track",
           "GeometryMapping", "LinearMapping", "viewer_angle_deg", "focal_length_px"]
