"""Room scenarios for the gaze tracker: real faces in a room with pictures on the wall, with per-frame truth.

Why generated: the appliance hangs where there are framed photos, posters, a TV and people who walk, cross,
stand still and leave; the tracker must tell them apart, and only a scene whose truth we know frame by
frame can say how often it does. Everything here is deterministic (seeded noise, scripted motion) and
made in memory from faces that ship inside registry packages: scikit-image's ``astronaut`` (NASA, public
domain; the walking viewers, cut out by :mod:`edge.viewerclip`) and matplotlib's ``grace_hopper`` (US Navy,
public domain) and the astronaut again, framed on the wall and shown on the TV. The room is
:func:`edge.viewerclip.room` (drawn: smooth and low in detail, which is what makes the short-range model
see frame-sized faces in it), or, for :func:`office`, a real room photographed by a real camera: OpenCV's
sample photo from Debian's ``opencv-doc`` (:data:`OFFICE`), with the people frozen in it. People who
cross with their backs to the camera (:attr:`Walker.faceless`) are drawn as a head of hair and a back.

Geometry: a 640x480 camera with a 62.2 degree field of view (Pi camera v2), so a face 155 mm wide (ear to
ear: the astronaut's 106 px face has a 43 px inter-pupil distance, 63 mm in life) is ``530.5 * 155 / z``
pixels wide at ``z`` mm: 82 px at 1 m, 41 px at 2 m, 16 px at 5 m.

A still person is not a still picture: people standing "still" sway. Quiet-standing postural sway of the
centre of pressure is a few millimetres RMS (Prieto et al., "Measures of postural steadiness", IEEE TBME
43(9), 1996: about 3-8 mm) and the head, on top of the body's inverted pendulum, moves more; people looking
at something also shift their weight now and then. :func:`sway_mm` models that (about 6 mm lateral, 4 mm
vertical, and a 15 mm weight shift every few seconds); the bench and tests measure what it does to the
detector's keypoints against the detector's own jitter on a picture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.gaze import focal_length_px
from edge.viewerclip import PHOTO_FACE_WIDTH, astronaut_photo, cutout, room

SIZE = (640, 480)
FPS = 15.0
FOV_DEG = 62.2
FOCAL = focal_length_px(SIZE[0], FOV_DEG)
FACE_MM = 155.0
#: Sensor noise (grey levels, one sigma) added to every frame: what makes the detector jitter on a picture.
NOISE_SIGMA = 2.5
#: A truth face counts as in view when this much of its box is inside the frame.
MIN_VISIBLE = 0.8


def face_px(z_mm: float) -> float:
    """Face width in pixels of a real face ``z_mm`` from the camera."""
    return FOCAL * FACE_MM / z_mm


def image_x(x_mm: float, z_mm: float) -> float:
    """Image column of a point ``x_mm`` to the *camera's image right* at depth ``z_mm``."""
    return SIZE[0] / 2 + FOCAL * x_mm / z_mm


# --- the room's furniture: pictures and a TV -------------------------------------------------------------
@dataclass(frozen=True)
class Picture:
    """A framed photograph (or poster) on the wall: its face's eye midpoint and face width, in frame px."""

    name: str
    source: str  # "hopper" or "astronaut"
    eye_x: float
    eye_y: float
    face_width: float
    mirror: bool = False
    #: part of the scenario's backdrop photo (a person photographed in the room), not hung by us
    in_backdrop: bool = False


@dataclass(frozen=True)
class TV:
    """A screen at a fixed rectangle showing a face that moves inside it (a news reader, a film)."""

    rect: tuple[int, int, int, int]  # x0, y0, x1, y1
    face_width: float
    source: str = "hopper"


#: The wall of every scenario: photos of several sizes, a poster whose face is larger than most viewers,
#: and one photo at eye height on a sideboard that walkers pass in front of.
WALL: tuple[Picture, ...] = (
    Picture("photo-hopper", "hopper", 470.0, 100.0, 58.0),
    Picture("poster-astronaut", "astronaut", 290.0, 110.0, 96.0, mirror=True),
    Picture("photo-small", "astronaut", 590.0, 190.0, 40.0),
    Picture("sideboard-hopper", "hopper", 395.0, 268.0, 46.0),
)
TV_SET = TV((40, 255, 210, 370), 50.0)

#: Where Debian's ``opencv-doc`` puts OpenCV's sample photos (Apache-2.0 / BSD-3-Clause, see that package's
#: copyright file; installed by tests/run, not redistributed here).
OPENCV_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
#: A real room photographed by a real camera at 640x480, the camera's own size: OpenCV's
#: ``basketball1.png``, an office corridor with a door, a poster and two men playing catch (grey).
OFFICE = "basketball1.png"
#: The two men of that photo, frozen in it: faces a real room's photo holds, which the eyes must never
#: take (measured on the photo: the full-range model finds neither on the whole frame; the short-range
#: one finds the right man's turned head at score 0.6 in the next frame of the same shoot).
OFFICE_PEOPLE: tuple[Picture, ...] = (
    Picture("office-man-left", "", 90.0, 107.0, 38.0, in_backdrop=True),
    Picture("office-man-right", "", 545.0, 105.0, 90.0, in_backdrop=True),
)


def opencv_sample(name: str) -> np.ndarray:
    """One of OpenCV's sample photos (from Debian's ``opencv-doc``) as an RGB array; a missing file is one
    line that says what to install."""
    path = OPENCV_SAMPLES / name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: not found; the room scenarios' real room is Debian's opencv-doc "
                                "sample photo (apt-get install opencv-doc; tests/run does)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Sprite:
    """A face photo cut to head and shoulders (RGBA float32), where its eyes are and how wide its face is."""

    rgba: np.ndarray
    eyes: np.ndarray  # (2, 2) eye centres, image order
    face_width: float


def _hopper_sprite() -> Sprite:
    import matplotlib.cbook
    from PIL import Image

    with Image.open(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))) as img:
        photo = np.asarray(img.convert("RGB"))
    # provisioning.calibration's measurements (eyes at (221, 190) and (302, 187) in the photo), cropped tighter
    crop = photo[80:400, 120:400].astype(np.float32)
    rgba = np.concatenate([crop, np.ones(crop.shape[:2] + (1,), np.float32)], axis=2)
    return Sprite(rgba, np.array([[101.0, 110.0], [182.0, 107.0]]), 205.0)


def _astronaut_photo_sprite() -> Sprite:
    photo = astronaut_photo()[20:250, 130:330].astype(np.float32)  # eyes (203, 101), (246, 103) in the photo
    rgba = np.concatenate([photo, np.ones(photo.shape[:2] + (1,), np.float32)], axis=2)
    return Sprite(rgba, np.array([[73.0, 81.0], [116.0, 83.0]]), 108.0)


def paste(frame: np.ndarray, sprite: Sprite, face_width: float, eye_x: float, eye_y: float,
          mirror: bool = False, clip: tuple[int, int, int, int] | None = None,
          border: int = 0) -> None:
    """Alpha-blend ``sprite`` into float ``frame`` in place, its eye midpoint at (eye_x, eye_y); ``clip``
    keeps it inside a rectangle (a TV's screen), ``border`` draws a picture frame around it."""
    scale = face_width / sprite.face_width
    src = sprite.rgba[:, ::-1] if mirror else sprite.rgba
    eyes = sprite.eyes.copy()
    if mirror:
        eyes[:, 0] = sprite.rgba.shape[1] - eyes[:, 0]
    mid = eyes.mean(axis=0) * scale
    scaled = cv2.resize(np.ascontiguousarray(src), None, fx=scale, fy=scale,
                        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0, y0 = int(round(eye_x - mid[0])), int(round(eye_y - mid[1]))
    sh, sw = scaled.shape[:2]
    fh, fw = frame.shape[:2]
    cx0, cy0, cx1, cy1 = clip if clip is not None else (0, 0, fw, fh)
    if border:
        cv2.rectangle(frame, (x0 - border, y0 - border), (x0 + sw + border - 1, y0 + sh + border - 1),
                      (92.0, 64.0, 40.0), thickness=border)
    fx0, fy0, fx1, fy1 = max(cx0, x0), max(cy0, y0), min(cx1, x0 + sw), min(cy1, y0 + sh)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = scaled[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    region = frame[fy0:fy1, fx0:fx1]
    region += (part[..., :3] - region) * part[..., 3:4]


# --- people and their motion -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Walker:
    """One person's script: ``at(t)`` gives (x_mm to the image's right, z_mm) or None when not in the room;
    ``still(t)`` says whether they are standing still then (the reversal count's window)."""

    pid: str
    at: Callable[[float], tuple[float, float] | None]
    mirror: bool = False
    still: Callable[[float], bool] = lambda t: False
    #: walking with their back (or a profile) to the camera: a head and a body, no face to find. People
    #: cross rooms so; the detector does not see them, and their passing changes a photo's pixels.
    faceless: bool = False


def sway_mm(t: float, phase: float = 0.0) -> tuple[float, float, float]:
    """Head displacement (lateral, vertical, depth) in mm of a person standing still (see module docstring):
    two sway sines, breathing, and a smoothed weight shift of 15 mm every 6.5 s."""
    lateral = 6.0 * math.sin(2 * math.pi * 0.23 * t + phase) + 2.5 * math.sin(2 * math.pi * 0.61 * t + 2 * phase)
    shift = 15.0 * math.tanh(3.0 * math.sin(2 * math.pi * t / 13.0 + phase))
    vertical = 4.0 * math.sin(2 * math.pi * 0.27 * t + phase) + 1.5 * math.sin(2 * math.pi * 0.9 * t)
    depth = 8.0 * math.sin(2 * math.pi * 0.19 * t + 3 * phase)
    return lateral + shift, vertical, depth


def walk(points: Sequence[tuple[float, float, float]]) -> Callable[[float], tuple[float, float] | None]:
    """Piecewise-linear path through (t, x_mm, z_mm) points, with a walker's 1.8 Hz lateral bob; None
    before the first and after the last point."""
    def at(t: float) -> tuple[float, float] | None:
        if t < points[0][0] or t > points[-1][0]:
            return None
        for (t0, x0, z0), (t1, x1, z1) in zip(points, points[1:]):
            if t0 <= t <= t1:
                u = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                x, z = x0 + (x1 - x0) * u, z0 + (z1 - z0) * u
                moving = (x1 - x0) != 0 or (z1 - z0) != 0
                if moving:
                    x += 12.0 * math.sin(2 * math.pi * 1.8 * t)
                else:
                    dx, _dy, dz = sway_mm(t)
                    x, z = x + dx, z + dz
                return x, z
        return None
    return at


def standing(points: Sequence[tuple[float, float, float]]) -> Callable[[float], bool]:
    """True while a :func:`walk` path stands (consecutive equal points), after a second to settle."""
    spans = [(t0 + 1.0, t1) for (t0, x0, z0), (t1, x1, z1) in zip(points, points[1:]) if (x0, z0) == (x1, z1)]
    return lambda t: any(a <= t <= b for a, b in spans)


# --- truth -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TruthFace:
    """Where one face really is in a frame. ``kind`` is "person", "picture", "tv" or "passer" (a person
    whose face is turned away: :attr:`Walker.faceless`; nobody the eyes could follow)."""

    key: str
    kind: str
    eye_x: float
    eye_y: float
    face_width: float
    visible: bool  # enough of it inside the frame to be findable
    still: bool = False


@dataclass
class Scenario:
    """A room, who walks through it and when; :meth:`frames` renders it with its truth."""

    name: str
    seconds: float
    walkers: Sequence[Walker]
    pictures: Sequence[Picture] = WALL
    tv: TV | None = None
    lighting: Callable[[float], float] = lambda t: 1.0
    seed: int = 1
    description: str = ""
    #: the room behind it all: "" the drawn room (:func:`edge.viewerclip.room`), else one of OpenCV's
    #: sample photos (:func:`opencv_sample`)
    backdrop: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def frame_count(self) -> int:
        return int(round(self.seconds * FPS))

    def _layers(self) -> tuple[np.ndarray, dict[str, Sprite]]:
        if "layers" not in self._cache:
            sprites = {"hopper": _hopper_sprite(), "astronaut": _astronaut_photo_sprite()}
            wall = (opencv_sample(self.backdrop) if self.backdrop else room(SIZE)).astype(np.float32)
            assert wall.shape[:2] == (SIZE[1], SIZE[0]), (self.backdrop, wall.shape)
            for p in self.pictures:
                if p.in_backdrop:
                    continue
                paste(wall, sprites[p.source], p.face_width, p.eye_x, p.eye_y, p.mirror,
                      border=max(3, int(p.face_width / 12)))
            if self.tv is not None:
                x0, y0, x1, y1 = self.tv.rect
                cv2.rectangle(wall, (x0 - 6, y0 - 6), (x1 + 5, y1 + 5), (25.0, 25.0, 28.0), thickness=-1)
            self._cache["layers"] = (wall, sprites)
            self._cache["viewer"] = cutout(astronaut_photo())
        return self._cache["layers"]

    def tv_face(self, t: float) -> tuple[float, float]:
        """The TV face's eye midpoint at ``t``: it pans and bobs inside the screen, never leaving it."""
        assert self.tv is not None
        x0, y0, x1, y1 = self.tv.rect
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 8
        return cx + 0.28 * (x1 - x0) * math.sin(2 * math.pi * t / 7.0), cy + 6 * math.sin(2 * math.pi * t / 3.1)

    def truth(self, t: float) -> list[TruthFace]:
        out = []
        for w in self.walkers:
            pos = w.at(t)
            if pos is None:
                continue
            x_mm, z_mm = pos
            width = face_px(z_mm)
            _, dy, _ = sway_mm(t)
            eye_x = image_x(x_mm, z_mm)
            eye_y = SIZE[1] / 2 - 10 + FOCAL * (-dy) / z_mm if w.still(t) else SIZE[1] / 2 - 10
            out.append(TruthFace(w.pid, "passer" if w.faceless else "person", eye_x, eye_y, width,
                                 _visible(eye_x, eye_y, width), w.still(t)))
        for p in self.pictures:
            out.append(TruthFace(p.name, "picture", p.eye_x, p.eye_y, p.face_width, True))
        if self.tv is not None:
            x, y = self.tv_face(t)
            out.append(TruthFace("tv", "tv", x, y, self.tv.face_width, True))
        return out

    def frames(self) -> Iterator[tuple[np.ndarray, float, list[TruthFace]]]:
        """(RGB frame, timestamp, truth) for every frame, rendered one at a time (nothing kept)."""
        wall, sprites = self._layers()
        viewer = Sprite(self._cache["viewer"], np.array([[203.0, 101.0], [246.0, 103.0]]), PHOTO_FACE_WIDTH)
        rng = np.random.default_rng(self.seed)
        noise = np.empty(wall.shape, np.float32)
        for i in range(self.frame_count):
            t = i / FPS
            frame = wall.copy()
            truth = self.truth(t)
            if self.tv is not None:
                x0, y0, x1, y1 = self.tv.rect
                frame[y0:y1, x0:x1] = (70.0, 90.0, 120.0)
                x, y = self.tv_face(t)
                paste(frame, sprites[self.tv.source], self.tv.face_width, x, y, clip=self.tv.rect)
            people = sorted((f for f in truth if f.kind in ("person", "passer")), key=lambda f: f.face_width)
            for f in people:
                w = next(w for w in self.walkers if w.pid == f.key)
                if w.faceless:
                    _back_of_head(frame, f)
                else:
                    paste(frame, viewer, f.face_width, f.eye_x, f.eye_y, w.mirror)
                _shoulders(frame, viewer, f, w.mirror)
            frame *= self.lighting(t)
            frame = cv2.GaussianBlur(frame, (0, 0), 0.9)
            noise[...] = rng.standard_normal(noise.shape, dtype=np.float32)
            frame += noise * NOISE_SIGMA
            yield np.clip(frame + 0.5, 0, 255).astype(np.uint8), t, truth


def _shoulders(frame: np.ndarray, sprite: Sprite, face: TruthFace, mirror: bool) -> None:
    """The cut-out is head and shoulders only: below it a body in a plain jacket down to the frame's edge,
    so a viewer is a person standing in the room, not a floating bust."""
    scale = face.face_width / sprite.face_width
    top = int(face.eye_y + 300 * scale)
    if top >= frame.shape[0]:
        return
    half = int(140 * scale)
    x = int(face.eye_x)
    cv2.rectangle(frame, (x - half, top), (x + half, frame.shape[0] - 1), (200.0, 120.0, 60.0), thickness=-1)


def _back_of_head(frame: np.ndarray, face: TruthFace) -> None:
    """A head seen from behind: dark hair over an ellipse a little wider than the face, from the crown to
    the nape; a neck; shoulders and a back in a shirt down to the frame's edge (the jacket of
    :func:`_shoulders` goes over it lower down)."""
    w = face.face_width
    x, y = face.eye_x, face.eye_y
    cv2.rectangle(frame, (int(x - 1.25 * w), int(y + 0.95 * w)), (int(x + 1.25 * w), frame.shape[0] - 1),
                  (70.0, 82.0, 110.0), thickness=-1)
    cv2.rectangle(frame, (int(x - 0.22 * w), int(y + 0.5 * w)), (int(x + 0.22 * w), int(y + 1.0 * w)),
                  (176.0, 132.0, 110.0), thickness=-1)
    cv2.ellipse(frame, (int(round(x)), int(round(y - 0.1 * w))), (int(0.55 * w), int(0.7 * w)), 0, 0, 360,
                (48.0, 36.0, 28.0), thickness=-1)


def _visible(eye_x: float, eye_y: float, width: float) -> bool:
    x0, x1 = eye_x - width / 2, eye_x + width / 2
    y0, y1 = eye_y - 0.6 * width, eye_y + 0.7 * width
    inside = max(0.0, min(x1, SIZE[0]) - max(x0, 0.0)) * max(0.0, min(y1, SIZE[1]) - max(y0, 0.0))
    return inside / ((x1 - x0) * (y1 - y0)) >= MIN_VISIBLE


def half_width_mm(z_mm: float) -> float:
    """Half the room's width the camera sees at depth ``z_mm``."""
    return z_mm * math.tan(math.radians(FOV_DEG / 2))


# --- a scenario as a camera --------------------------------------------------------------------------------
class ScenarioCamera:
    """A scenario's frames as a camera source (the pipeline's Camera protocol, through RetryingCamera);
    timestamps are the scenario's own (a 15 fps camera). Keeps the truth of the frame it delivered last
    and every rate it was asked for (``rates``; None: its own).

    ``slows``: honour ``set_frame_rate`` as a camera does: at a rate below :data:`FPS` only every k-th
    frame is handed over (the Pi's picamera2 source lowers the sensor's rate; the frames in between never
    exist). False: every frame is delivered whatever rate is asked for (a test that counts decisions)."""

    def __init__(self, scenario: Scenario, slows: bool = False) -> None:
        self.scenario = scenario
        self.name = f"scenario:{scenario.name}"
        self.state = "closed"
        self.truth: list[TruthFace] = []
        self.rates: list[float | None] = []
        self.slows = slows
        self._every = 1
        self._frames: Iterator[tuple[np.ndarray, float, list[TruthFace]]] | None = None

    def open(self) -> None:
        self._frames = self.scenario.frames()
        self._every = 1
        self.state = "ok"

    def set_frame_rate(self, fps: float | None) -> bool:
        self.rates.append(fps)
        if self.slows:
            self._every = max(1, round(FPS / fps)) if fps else 1
        return True

    def read(self) -> tuple[np.ndarray, float] | None:
        assert self._frames is not None, "read before open"
        for _ in range(self._every):
            try:
                rgb, t, truth = next(self._frames)
            except StopIteration:
                self.state = "ended"
                return None
        self.truth = truth
        return rgb, t

    def close(self) -> None:
        self._frames = None
        self.state = "closed"


# --- the scenarios -----------------------------------------------------------------------------------------
def _across(t0: float, z0: float, z1: float, speed: float = 1200.0, leftward: bool = False,
            margin: float = 400.0) -> tuple[list[tuple[float, float, float]], float]:
    """A straight walk across the view from beyond one edge to beyond the other (depth z0 -> z1), at
    ``speed`` mm/s (1.2 m/s: an unhurried walk)."""
    x_start = half_width_mm(z0) + margin
    x_end = half_width_mm(z1) + margin
    xa, xb = (x_start, -x_end) if leftward else (-x_start, x_end)
    duration = abs(xb - xa) / speed
    return [(t0, xa, z0), (t0 + duration, xb, z1)], t0 + duration


def walk_near_far() -> Scenario:
    """One viewer crossing near (1 m), then farther (2.5 m), then far (5 m), passing the pictures."""
    a, t = _across(1.0, 1000.0, 1300.0)
    b, t = _across(t + 1.0, 2500.0, 2500.0, leftward=True)
    c, t = _across(t + 1.0, 5000.0, 4000.0)
    segments = [walk(a), walk(b), walk(c)]

    def at(tt: float):
        for s in segments:
            p = s(tt)
            if p is not None:
                return p
        return None
    return Scenario("walk_1_5m", t + 2.0, [Walker("A", at)], seed=11,
                    description="one viewer across at 1 m, 2.5 m and 5 m (4-5 m), past pictures and a poster")


def crossing() -> Scenario:
    """Two viewers of similar size walking towards each other and crossing mid-frame."""
    a, ta = _across(1.0, 1400.0, 1400.0, speed=900.0)
    b, tb = _across(1.0, 1550.0, 1550.0, speed=900.0, leftward=True)
    return Scenario("crossing", max(ta, tb) + 1.5, [Walker("A", walk(a)), Walker("B", walk(b), mirror=True)],
                    seed=12, description="two viewers (1.4 m and 1.55 m) cross each other")


def still_viewer(seconds: float = 60.0) -> Scenario:
    """A viewer walks up, stands still looking at the frame for ``seconds``, then walks off."""
    x0 = -(half_width_mm(2500.0) + 400.0)
    stop = (4.0, -250.0, 1300.0)
    points = [(0.5, x0, 2500.0), stop, (stop[0] + seconds, stop[1], stop[2]),
              (stop[0] + seconds + 2.5, half_width_mm(1300.0) + 400.0, 1300.0)]
    return Scenario(f"still_{int(seconds)}s", points[-1][0] + 2.5,
                    [Walker("A", walk(points), still=standing(points))], seed=13,
                    description=f"a viewer walks up and stands still for {seconds:g} s, then leaves")


def leave_enter() -> Scenario:
    """A viewer stands a while and leaves to one side while another enters from the other."""
    pa = [(0.0, 300.0, 1400.0), (4.0, 300.0, 1400.0), (6.0, half_width_mm(1400.0) + 500.0, 1400.0)]
    pb = [(5.6, -(half_width_mm(1300.0) + 400.0), 1300.0), (8.0, -200.0, 1300.0), (12.0, -200.0, 1300.0),
          (14.0, -(half_width_mm(1300.0) + 400.0), 1300.0)]
    return Scenario("leave_enter", 16.0, [Walker("A", walk(pa), still=standing(pa)),
                                          Walker("B", walk(pb), mirror=True, still=standing(pb))],
                    seed=14, description="one viewer leaves as another enters; then the room empties")


def empty_room() -> Scenario:
    return Scenario("empty", 20.0, [], tv=TV_SET, seed=15,
                    description="nobody: only the pictures, the poster and a TV showing a face")


def lighting() -> Scenario:
    """A viewer lingers while the light dims, a lamp goes on (a step) and the daylight comes back."""
    points = [(0.0, -600.0, 1500.0), (3.0, 200.0, 1500.0), (9.0, 200.0, 1500.0), (12.0, 600.0, 1500.0),
              (16.0, 600.0, 1500.0), (17.5, half_width_mm(1500.0) + 400.0, 1500.0)]

    def light(t: float) -> float:
        if t < 4.0:
            return 1.0
        if t < 8.0:
            return 1.0 - 0.5 * (t - 4.0) / 4.0  # dusk
        if t < 12.0:
            return 0.8  # a lamp switched on
        return 0.8 + 0.4 * min(1.0, (t - 12.0) / 3.0)

    return Scenario("lighting", 20.0, [Walker("A", walk(points), still=standing(points))], lighting=light,
                    seed=16, description="light dims to half, steps up (a lamp) and brightens while a viewer lingers")


def tv_and_viewer() -> Scenario:
    a, t = _across(4.0, 1400.0, 1400.0, speed=800.0)
    return Scenario("tv", t + 6.0, [Walker("A", walk(a))], tv=TV_SET, seed=17,
                    description="a TV shows a moving face; a viewer walks past; the TV alone again")


def tv_evening() -> Scenario:
    """A TV plays for 45 s with nobody there, then a viewer walks past it, then the TV alone again: the
    frame has watched the TV long enough to know it is one (``[gaze] screen_seconds``)."""
    a, t = _across(45.0, 1400.0, 1400.0, speed=800.0)
    return Scenario("tv_evening", t + 8.0, [Walker("A", walk(a))], tv=TV_SET, seed=18,
                    description="a TV plays alone for 45 s; a viewer walks past; the TV alone again")


def office() -> Scenario:
    """The real room: OpenCV's photo of an office corridor (:data:`OFFICE`) with the two men frozen in it and
    a framed photo on its bare wall. A viewer walks in at 2 m, stands still for 8 s and walks out; another
    crosses near (1.2 m) the other way, past the man in the photo; the room is empty again."""
    stop = (3.5, -150.0, 2000.0)
    pa = [(1.0, -(half_width_mm(2000.0) + 400.0), 2000.0), stop, (stop[0] + 8.0, stop[1], stop[2]),
          (stop[0] + 10.5, half_width_mm(2000.0) + 400.0, 2000.0)]
    b, t = _across(pa[-1][0] + 0.5, 1200.0, 1200.0, leftward=True)
    wall = OFFICE_PEOPLE + (Picture("office-photo", "hopper", 335.0, 130.0, 50.0),)
    return Scenario("office", t + 3.0, [Walker("A", walk(pa), still=standing(pa)), Walker("B", walk(b), mirror=True)],
                    pictures=wall, seed=19, backdrop=OFFICE,
                    description="a real office photo (two men frozen in it, a framed photo): a viewer stands "
                                "8 s at 2 m, another crosses at 1.2 m")


def passers() -> Scenario:
    """People crossing with their backs to the camera, in front of the photos at eye height (the
    sideboard photo, the small one): nobody to follow, and each passing changes the photos' pixels.
    Then a viewer walks in facing the frame and stands; a last passer crosses between her and the wall."""
    a, t = _across(0.5, 1500.0, 1500.0)
    b, t = _across(t + 0.5, 1200.0, 1200.0, speed=800.0, leftward=True)  # slow and near: long in front
    c, t = _across(t + 0.5, 2500.0, 2500.0, speed=1000.0)
    stop = (t + 3.0, 450.0, 1800.0)
    v = [(t + 0.5, half_width_mm(1800.0) + 400.0, 1800.0), stop, (stop[0] + 6.0, stop[1], stop[2]),
         (stop[0] + 8.0, half_width_mm(1800.0) + 400.0, 1800.0)]
    d, _ = _across(stop[0] + 1.5, 2600.0, 2600.0, speed=900.0, leftward=True)
    walkers = [Walker("P1", walk(a), faceless=True), Walker("P2", walk(b), faceless=True),
               Walker("P3", walk(c), faceless=True), Walker("V", walk(v), still=standing(v)),
               Walker("P4", walk(d), faceless=True)]
    return Scenario("passers", v[-1][0] + 2.0, walkers, seed=20,
                    description="people crossing with their backs to the camera past the photos, then a "
                                "viewer who stands while another passes behind her")


def scenarios(still_seconds: float = 60.0) -> list[Scenario]:
    return [walk_near_far(), crossing(), still_viewer(still_seconds), leave_enter(), empty_room(), lighting(),
            tv_and_viewer(), tv_evening(), office(), passers()]


__all__ = ["Scenario", "ScenarioCamera", "Walker", "Picture", "TV", "TruthFace", "WALL", "TV_SET", "FPS", "SIZE", "face_px",
           "scenarios", "walk_near_far", "crossing", "still_viewer", "leave_enter", "empty_room", "lighting",
           "tv_and_viewer", "tv_evening", "office", "passers", "opencv_sample", "OFFICE", "OFFICE_PEOPLE", "sway_mm", "walk", "standing", "Sprite", "paste"]
