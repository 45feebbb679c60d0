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

1. :func:`edge.plausibility.implausible` drops detections that cannot be faces (wider than a face at the
   nearest a viewer comes, eyes or nose outside the box, eyes too close or too far apart for the box).
2. :class:`edge.pictures.FaceTracks` gives faces an identity from frame to frame and tells people from
   pictures: a face that moves more than the detector's jitter is a person for as long as it is
   followed; one that stays put for ``static_seconds`` is a picture, and its place is remembered, so it
   is a picture again at once when a passer-by stops hiding it.
3. :class:`edge.viewer_choice.ViewerSelector` picks the viewer: the nearest frontal person, one who
   walked here before one who did not (a TV), kept while present, replaced at once when gone.
4. :class:`GeometryMapping` turns the viewer's eye midpoint into the angle *from the portrait's eyes* (the
   camera is not at the eyes: a viewer straight in front of the portrait is off-axis for the camera);
   :class:`LinearMapping` is the plain camera-X fallback, optionally through calibration points. The
   angle is scaled by ``gain``.
5. :class:`OneEuroFilter` smooths the angle: calm when the viewer stands still, little lag when they walk.
6. :class:`edge.saccades.EyeController` moves the eyes like eyes: a saccade to a new viewer, fixation with
   a dead band (jitter never moves them), smooth pursuit of a walker; with nobody seen for
   ``idle_seconds``, back to centre and an occasional glance aside.
7. :class:`FrameStepper` turns the eye angle into the pack frame, with hysteresis between neighbours.

The per-frame path works on Python floats and a handful of small objects; it allocates no arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from edge.faces import Face
from edge.pictures import MIN_HITS, PERSON, FaceTracks, Track
from edge.plausibility import implausible, max_face_width_px
from edge.saccades import EyeController
from edge.viewer_choice import ViewerSelector

#: Below this inter-pupil distance (px) the distance estimate is meaningless (a profile face).
MIN_IPD_PX = 1.0
#: A viewer who stood still inside the frame and vanished is held this long (s) before the eyes idle:
#: the detector misses small still faces for a second or more (room scenarios: gaps up to about 3 s
#: for a 60 px face), while a viewer who walks out is let go after ``idle_seconds``.
STILL_HOLD_S = 4.0
#: A walker the detector misses for a moment is followed where their velocity takes them for this long
#: (s), then held: human smooth pursuit goes on through a short disappearance of its target, at most a
#: few hundred milliseconds before it decays (Becker and Fuchs 1985, "Prediction in the oculomotor
#: system: smooth pursuit during transient disappearance of a visual target", Exp. Brain Res. 57). The
#: room scenarios' walkers at 2.5-5 m are missed for 1-3 frames at a time; without it the eyes stopped,
#: then jumped.
PURSUIT_PREDICT_S = 0.3


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

    After each :meth:`update` the status socket and the demo may read: ``viewer`` (the followed person's
    face in this frame; None when nobody is followed or they were not found in this frame),
    ``followed`` (the followed person's face, their last one during a dropout: the eyes stay on them),
    ``viewer_present``, ``angle_deg`` (the filtered angle,
    None when idle), ``raw_angle_deg``, ``distance_mm`` (geometry mapping only), ``index``, ``eye_deg``
    (where the painted eyes point), ``idle``, ``pictures`` (this frame's faces taken for pictures) and
    ``rejected`` (this frame's detections that cannot be faces).
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
        self.max_face_px = max_face_width_px(focal_length_px(w, cfg.fov_deg), cfg.nearest_mm)
        self.filter = OneEuroFilter(cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff)
        self.tracks = FaceTracks(cfg.static_seconds, cfg.static_px, cfg.static_widths, cfg.place_forget_s,
                                 screen_seconds=cfg.screen_seconds)
        #: How much a face's own pixels changed (edge.search.FaceSearch.region_change), set by the
        #: pipeline when its detector keeps the thumbnails; None: faces only (stillness and history).
        self.region_change: Callable[[Face], float | None] | None = None
        self.selector = ViewerSelector(cfg.sticky_margin, cfg.sticky_seconds, cfg.viewer_grace_s,
                                       self._hold_seconds, self._walked_out)
        step = self.stepper.step if self.stepper.count > 1 else 1.0
        self.eyes = EyeController(
            dead_band_deg=cfg.dead_band_deg, saccade_base_ms=cfg.saccade_base_ms,
            saccade_ms_per_deg=cfg.saccade_ms_deg, min_fixation_s=cfg.fixation_s,
            pursuit_deg_s=cfg.max_speed_fps * step, idle_glance_interval_s=cfg.glance_every_s,
            idle_glance_deg=cfg.glance_deg, idle_glance_hold_s=cfg.glance_hold_s,
            limits=self.span_deg)
        self.gain = float(cfg.gain)
        self.idle_seconds = float(cfg.idle_seconds)
        self.reset()

    def use_region_change(self, region_change: Callable[[Face], float | None], grey: float,
                          seconds: float) -> None:
        """Ask ``region_change(face)`` how much a new face's own pixels changed: one that changes by
        ``grey`` for ``seconds`` is a person while it stays put ([motion] face_grey, face_seconds)."""
        self.region_change = region_change
        self.tracks.live_grey, self.tracks.live_seconds = float(grey), float(seconds)

    def screen_areas(self) -> tuple[tuple[int, int, int, int], ...]:
        """The camera pixels of the screens known to show faces (:meth:`FaceTracks.screen_areas`)."""
        return self.tracks.screen_areas()

    def _hold_seconds(self, track: Track) -> float:
        """How long an unseen viewer stays the viewer when nobody else is there: ``idle_seconds``; for
        someone who stood still at least a face width inside the frame (not walking out of it: the
        detector missed them), :data:`STILL_HOLD_S`."""
        w = self.frame_size[0]
        inside = track.width <= track.x <= w - track.width
        return max(self.idle_seconds, STILL_HOLD_S) if track.still and inside else self.idle_seconds

    def _walked_out(self, track: Track, t: float) -> bool:
        """Whether an unseen person's velocity has taken them out of the frame's side since they were
        last seen (their eyes within a quarter of a face width of its edge or past it: half their face is
        out): they have left, and someone else in view need not wait ``viewer_grace_s`` (measured: two
        viewers crossing, the first one out of the frame held the eyes for the grace while the other was
        in view)."""
        x, _ = track.predicted(t)
        margin = 0.25 * track.width
        return not margin <= x <= self.frame_size[0] - margin

    @property
    def frame_count(self) -> int:
        return self.stepper.count

    @property
    def centre_index(self) -> int:
        return self.stepper.centre

    @property
    def idle(self) -> bool:
        """Nobody followed and the eyes idling (at the centre, or glancing aside)."""
        return self.followed is None and self.eyes.idle

    @property
    def eye_deg(self) -> float:
        return self.eyes.angle

    def reset(self) -> None:
        """Forget everyone; eyes at the centre frame at once (the camera is gone: look ahead). Where
        pictures hang is kept: that belongs to the room."""
        self.stepper.reset()
        self.eyes.reset()
        self._forget_time()
        self.index = self.stepper.index

    def _forget_time(self) -> None:
        """Drop everything tied to the clock, keep where the eyes are."""
        self.tracks.reset()
        self.selector.reset()
        self.filter.reset()
        self.eyes._last_t = None
        self._last_t: float | None = None
        self._last_seen: float | None = None
        self._target: float | None = None
        self.viewer: Face | None = None
        self.followed: Face | None = None
        self.viewer_present = False
        self.angle_deg: float | None = None
        self.raw_angle_deg: float | None = None
        self.distance_mm: float | None = None
        self.pictures: tuple[Face, ...] = ()
        self.rejected: tuple[Face, ...] = ()

    def adopt(self, earlier: GazeTracker) -> None:
        """Carry on from ``earlier``, the tracker this one replaces on a reload of the same camera stream
        (same frame size): its faces, pictures and screens (:meth:`FaceTracks.adopt`). The eyes start from
        the portrait's centre (the new pack is drawn so) and go to the viewer at the next frame."""
        if earlier.frame_size != self.frame_size:
            raise ValueError(f"frame size {earlier.frame_size} -> {self.frame_size}: the room's pixels differ")
        self.tracks.adopt(earlier.tracks)
        self._last_t = earlier._last_t

    def update(self, faces: Sequence[Face], t: float, *, held: bool = False) -> int:
        """The frame index to show for this camera frame's ``faces`` at time ``t`` (monotonic seconds).
        ``held``: the detector skipped this frame and ``faces`` are its last ones (edge.pictures.FaceTracks.update)."""
        if self._last_t is not None and t < self._last_t:
            self._forget_time()  # a new clock (the source was reopened): old timestamps mean nothing
        self._last_t = t
        limit = self.max_face_px
        if any(implausible(f, limit) is not None for f in faces):
            self.rejected = tuple(f for f in faces if implausible(f, limit) is not None)
            faces = [f for f in faces if implausible(f, limit) is None]
        elif self.rejected:
            self.rejected = ()
        self.tracks.update(faces, t, self.region_change, held=held)
        candidates = [tr for tr in self.tracks.tracks
                      if tr.kind == PERSON and tr.hits >= MIN_HITS and tr.last_t == t]
        track = self.selector.select(candidates, t)
        pictures = self.tracks.pictures()
        self.pictures = tuple(tr.last_face for tr in pictures) if pictures else ()
        if track is not None:
            self._follow(track, t)
            self.eyes.update(self._target, t, new_target=self.selector.switched)
        else:
            self.viewer = self.followed = None
            self.viewer_present = False
            if self._last_seen is None or t - self._last_seen >= self.idle_seconds:
                if self.angle_deg is not None:
                    self.filter.reset()
                    self.angle_deg = self.raw_angle_deg = self.distance_mm = None
                self._target = None
                self.eyes.update(None, t)
            else:  # the viewer may be back: hold the gaze where it was
                self.eyes.update(self._target, t)
        self.stepper.aim(self.eyes.angle)
        self.stepper.position = float(self.stepper.target)
        self.index = self.stepper.index = self.stepper.target
        return self.index

    def _follow(self, track: Track, t: float) -> None:
        if self.selector.switched:
            self.filter.reset()
        self.followed = track.last_face
        if track.last_t != t:  # a dropout (the idle clock runs from the last sighting)
            self.viewer = None
            self.viewer_present = False
            gap = t - track.last_t
            if gap <= PURSUIT_PREDICT_S and not track.still and (track.vx, track.vy) != (0.0, 0.0):
                # pursuit goes on where they are heading; beyond that, the last angle is kept
                self.followed = track.last_face.moved(track.vx * gap, track.vy * gap)
                self._aim(self.followed, t)
            return
        self.viewer = track.last_face
        self.viewer_present = True
        self._last_seen = t
        self._aim(track.last_face, t)

    def _aim(self, face: Face, t: float) -> None:
        raw = self.mapping(face)
        if raw is None:
            return
        self.raw_angle_deg = raw
        self.distance_mm = self.mapping.distance_mm
        self.angle_deg = self.filter.update(raw, t)
        self._target = self.gain * self.angle_deg


__all__ = ["GazeTracker", "OneEuroFilter", "FrameStepper", "FaceTracks", "ViewerSelector", "Track",
           "EyeController", "GeometryMapping", "LinearMapping", "viewer_angle_deg", "focal_length_px"]
