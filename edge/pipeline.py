"""The frame loop as one typed pipeline: camera -> detector -> gaze tracker -> pack -> display.

Why one module: the daemon (:mod:`edge.service`), the demo (:mod:`edge.demo`), the benchmarks and the
tests must all measure and trust *the same* loop, not copies of it that drift apart. So the parts are
built in one place (:func:`build_parts`, from an :class:`edge.config.Config`; callers pass their own
parts in where they have them), each behind a small Protocol saying exactly what the loop uses, and one
:meth:`Pipeline.step` does one iteration and returns everything that happened in it as a
:class:`FrameResult`. What a driver does with a result (count it, plot it, report it on the status
socket, feed the watchdog) is the driver's business; the pipeline only keeps the picture right:

  * the eyes follow the tracker's index, and only the pack's patch is redrawn when the index changes;
  * a camera that is down puts the eyes back at the centre frame (nobody can be seen: look ahead);
  * a detector or display error skips that frame and is *reported* in the result, never raised: one bad
    frame must not take the portrait down;
  * a detector that fails :data:`DETECTOR_FAILURES` frames in a row is replaced by the bundled model of
    the same range (the ``fallback`` the driver gives), and if that fails as often too, detection stops
    (:class:`NoDetector`: eyes at centre) while the portrait stays; :attr:`Pipeline.detector_fault` says
    why, for the daemon's DEGRADED state, until a new detector (a reload) finds its first frame;
  * repeated errors are logged once and then summarised at most once per interval
    (:class:`edge.ratelimit.RepeatLimiter`), not once per frame;
  * a detector that is a :class:`edge.search.FaceSearch` (what :func:`make_detector` builds from the
    config) decides where to look: nowhere on a frame where nothing changed and nobody is followed
    (motion gating; the camera is then slowed down), a crop around a followed viewer, or the whole frame.
    Any other detector sees every whole frame, as before.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.camera import CameraSource, Frame, RetryingCamera, open_source, use_one_opencv_thread
from edge.config import Config, GazeConfig
from edge.detector import FaceDetector, bundled_fallback
from edge.display import open_display
from edge.faces import Face
from edge.gaze import GazeTracker
from edge.motion import GateSettings
from edge.pack import load_pack
from edge.ratelimit import INTERVAL, RepeatLimiter
from edge.search import CropSettings, FaceSearch, Found

log = logging.getLogger(__name__)

Rect = tuple[int, int, int, int]
Size = tuple[int, int]
#: The longest the loop pauses while no frame can come (camera retrying): short, so that signals and
#: status requests, which are served between steps, stay prompt.
IDLE_WAIT = 0.05
#: The stages a frame goes through, as :class:`StageTimes` names them.
STAGES = ("capture", "detect", "gaze", "draw", "frame")
#: Frames in a row a detector may fail before it is given up on: one to two seconds at 15-30 fps. Long
#: enough that a few bad frames (a camera glitch, a transient runtime error) never swap the model; short
#: enough that a model broken for good is replaced before anyone standing there notices the eyes stuck.
DETECTOR_FAILURES = 30


# --- what the loop needs from each part ----------------------------------------------------------------
class Camera(Protocol):
    """A camera that never raises from :meth:`read` (:class:`edge.camera.RetryingCamera`): a failing source
    shows in ``state`` ("ok", "retrying", "failed") and is retried in the background of ``read``."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def frames(self) -> int: ...  # frames delivered since start
    @property
    def failures(self) -> int: ...
    @property
    def recoveries(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def retry_in(self) -> float: ...  # seconds until the next reopen attempt (0 when ok)
    @property
    def waited(self) -> float: ...  # seconds the last read waited for its frame (not work)
    @property
    def luma(self) -> np.ndarray | None: ...  # the last frame's Y plane, where the source has one

    def set_frame_rate(self, fps: float | None) -> bool: ...  # None: the configured rate
    def open(self) -> None: ...
    def read(self) -> Frame | None: ...  # the newest (RGB, timestamp), or None when none is due
    def close(self) -> None: ...


class Detector(Protocol):
    """Faces in one RGB frame, best first (:class:`edge.detector.FaceDetector`)."""

    def detect(self, rgb: np.ndarray) -> Sequence[Face]: ...


class Tracker(Protocol):
    """Faces of each frame in, pack frame index out (:class:`edge.gaze.GazeTracker`). After ``update`` it
    tells who it follows (``viewer``) and where (``angle_deg``, None when idle)."""

    @property
    def viewer(self) -> Face | None: ...
    @property
    def angle_deg(self) -> float | None: ...

    def update(self, faces: Sequence[Face], t: float, *, held: bool = False) -> int: ...
    def reset(self) -> None: ...  # forget everyone, eyes to the centre frame at once


class TrackerFactory(Protocol):
    """Makes the tracker for one camera stream: a tracker's mapping is fixed to a frame size, so the
    pipeline makes a new one whenever the frames' size changes (and after a reload)."""

    def __call__(self, frame_count: int, frame_size: Size, span_deg: tuple[float, float]) -> Tracker: ...


class Pack(Protocol):
    """A loaded gaze pack, already scaled and turned for the screen (:class:`edge.pack.GazePack`)."""

    @property
    def name(self) -> str: ...
    @property
    def frame_count(self) -> int: ...
    @property
    def centre_index(self) -> int: ...
    @property
    def span_deg(self) -> tuple[float, float]: ...

    def patch(self, i: int) -> tuple[Rect, np.ndarray]: ...  # the screen rectangle frame i differs in
    def frame_image(self, i: int) -> np.ndarray: ...  # the whole screen showing frame i


class Display(Protocol):
    """Where the portrait is drawn (:class:`edge.display.DisplaySink`)."""

    @property
    def size(self) -> Size: ...

    def show_full(self, image: np.ndarray) -> None: ...
    def update(self, rect: Rect, patch: np.ndarray) -> None: ...
    def snapshot(self) -> np.ndarray: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Parts:
    """Everything one pipeline runs on. Frozen: a reload builds a new ``Parts`` and switches whole."""

    camera: Camera
    detector: Detector
    pack: Pack
    display: Display
    make_tracker: TrackerFactory


# --- building the parts from config ---------------------------------------------------------------------
def make_display(config: Config) -> Display:
    d = config.display
    return open_display(d.kind, device=d.device, size=d.size, drm_card=d.drm_card,
                        output=None if d.output is None else str(d.output))


def make_pack(config: Config, screen_size: Size) -> Pack:
    """Load and verify the configured pack, pre-scaled and pre-turned for a screen of ``screen_size``."""
    return load_pack(config.pack.path, screen_size=screen_size, rotation=config.display.rotation,
                     memory_budget_mb=config.pack.memory_budget_mb)


def make_detector(config: Config) -> Detector:
    """The configured model, searching as [detector] crop and [motion] say (:func:`face_search`)."""
    d = config.detector
    return face_search(config, FaceDetector(d.model, d.range, threads=d.threads, min_score=d.min_score,
                                            sha256=d.sha256, precision=d.precision))


def make_bundled_detector(config: Config) -> Detector:
    """The bundled model for the configured range and precision (checked against the record shipped with
    it; the int8 one if that file is unusable), with the configured threads and threshold: what replaces a
    configured model that cannot be used."""
    d = config.detector
    return face_search(config, bundled_fallback(d.range, d.precision, threads=d.threads, min_score=d.min_score))


def face_search(config: Config, whole: Detector) -> FaceSearch:
    """``whole`` (the whole-frame model) with the configured motion gate and, with [detector] crop, the
    bundled short-range model for crops around the viewer (its own interpreter: 2.4 MiB more RSS here)."""
    d, m = config.detector, config.motion
    crop = FaceDetector(None, "short", threads=d.threads, min_score=d.min_score,
                        precision=d.precision) if d.crop else None
    gate = GateSettings(threshold=m.threshold, min_changed=m.min_changed, scan_s=m.scan_s,
                        settle_s=m.settle_s, idle_scan_s=m.idle_scan_s,
                        idle_after_s=m.idle_after_s) if m.enabled else None
    return FaceSearch(whole, crop, gate=gate, crop_settings=CropSettings(d.crop_widths, d.full_scan_s),
                      idle_fps=m.idle_fps, face_grey=m.face_grey, face_seconds=m.face_seconds,
                      tiled=d.range == "short")


class NoDetector:
    """Stands in for a detector when none can be used: finds nobody, so the eyes rest at the centre frame
    while the portrait stays. ``reason`` says why (what the daemon reports)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def detect(self, rgb: np.ndarray) -> Sequence[Face]:
        return ()


def make_camera(config: Config, source: CameraSource | None = None) -> Camera:
    """The configured source (or ``source``), wrapped so that it is retried with the configured backoff.
    Not opened: opening may block in a driver, and the caller decides when it can afford that."""
    c = config.camera
    # A video file plays at its own frame rate: [camera] fps has a default, so it cannot tell us the
    # user meant to override the file's.
    src = source if source is not None else open_source(
        c.source, device=c.device, path=c.path, size=c.size, fps=None if c.source == "file" else c.fps,
        realtime=c.realtime, loop=c.loop, hflip=c.hflip, vflip=c.vflip)
    return RetryingCamera(src, initial=c.retry_initial, maximum=c.retry_max)


def gaze_tracker(gaze: GazeConfig) -> TrackerFactory:
    """The configured :class:`edge.gaze.GazeTracker`, made per stream by the pipeline."""

    def make(frame_count: int, frame_size: Size, span_deg: tuple[float, float]) -> Tracker:
        return GazeTracker(gaze, frame_count, frame_size=frame_size, span_deg=span_deg)

    return make


def show_portrait(display: Display, pack: Pack) -> int:
    """Draw the pack's centre frame over the whole screen; returns that index."""
    index = pack.centre_index
    display.show_full(pack.frame_image(index))
    return index


def build_parts(config: Config, *, camera: CameraSource | None = None, detector: Detector | None = None,
                pack: Pack | None = None, display: Display | None = None,
                make_tracker: TrackerFactory | None = None,
                on_stage: Callable[[str], object] | None = None) -> Parts:
    """The parts ``config`` asks for; any part given is used as it is (``camera`` is still wrapped in a
    :class:`~edge.camera.RetryingCamera`).

    Order matters on a wall: display and pack first, and the portrait is drawn (looking ahead) before the
    model loads, so a slow or missing model never leaves the screen black. ``on_stage("display")`` and
    ``on_stage("detector")`` are called as each begins (the daemon's status line). On return the display
    shows the pack's centre frame, which is what :class:`Pipeline` expects; the camera is not opened yet.
    If a later part fails, a display opened here is closed again before the error propagates.
    """
    stage = on_stage or (lambda _name: None)
    stage("display")
    own_display = display is None
    screen = display if display is not None else make_display(config)
    try:
        portrait = pack if pack is not None else make_pack(config, screen.size)
        show_portrait(screen, portrait)
        stage("detector")
        model = detector if detector is not None else make_detector(config)
        return Parts(camera=make_camera(config, camera), detector=model, pack=portrait, display=screen,
                     make_tracker=make_tracker or gaze_tracker(config.gaze))
    except BaseException:
        if own_display:
            screen.close()
        raise


# --- one step -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageTimes:
    """Seconds each stage took on one camera frame (``time.perf_counter``): work only. The time the
    camera's read spent waiting for the frame (paced to its rate, or blocked in the driver) is ``waited``,
    and in neither ``capture`` nor ``frame``: a paced 15 fps camera would otherwise report 66 ms a frame.
    ``draw`` is None when nothing was drawn (the index did not change, or the draw failed); ``detected``
    is False on a frame the motion gate let pass without the detector (``detect`` is then the gate's own
    time, and :meth:`by_stage` leaves ``detect`` out so the detector's figures stay the detector's)."""

    capture: float
    detect: float
    gaze: float
    draw: float | None
    frame: float  # capture through draw, without waited
    waited: float = 0.0
    detected: bool = True

    def by_stage(self) -> dict[str, float | None]:
        """The times keyed by :data:`STAGES`, for tables and rolling statistics."""
        return {"capture": self.capture, "detect": self.detect if self.detected else None, "gaze": self.gaze,
                "draw": self.draw, "frame": self.frame}


@dataclass(frozen=True, slots=True)
class StepError:
    """A stage that failed in one step: ``stage`` is "detector" or "display"; ``message`` names it."""

    stage: str
    message: str


@dataclass(frozen=True, slots=True, eq=False)  # holds arrays: equal only to itself
class FrameResult:
    """What one :meth:`Pipeline.step` did, and the picture's state after it.

    ``frame`` is the camera frame read in this step, or None (none due yet, or the camera is down). It is
    the camera's own buffer, overwritten by the next read: copy it to keep it. ``faces`` are those found
    in it. ``viewer``, ``angle_deg`` and ``index`` describe the state *after* the step
    (unchanged by a step that read no frame). ``times`` is set only for a frame that went through every
    stage (a detector error skips the rest of that frame).
    """

    frame: np.ndarray | None
    timestamp: float | None
    faces: tuple[Face, ...]
    viewer: Face | None
    angle_deg: float | None
    frame_size: Size | None  # the camera frames' (width, height) the tracker runs at; None before the first
    index: int  # the pack frame on screen
    drew: bool  # whether the screen changed in this step
    camera_state: str
    error: StepError | None
    times: StageTimes | None
    #: Where faces were looked for (:data:`edge.search.WHERE`: "whole", "crop", "gated"); "whole" for a
    #: plain detector, "" when no frame was read. On a "gated" frame ``faces`` are the last search's.
    searched: str = ""
    #: The crop looked at on a "crop" frame, (x0, y0, x1, y1) camera pixels.
    crop: Rect | None = None

    @property
    def viewer_present(self) -> bool:
        return self.viewer is not None

    @property
    def camera_down(self) -> bool:
        return self.camera_state != "ok"

    @property
    def viewer_x(self) -> float | None:
        """The followed viewer's eye midpoint X in camera pixels."""
        return None if self.viewer is None else float(self.viewer.eye_midpoint[0])


class Pipeline:
    """Runs :class:`Parts`: one :meth:`step` per camera frame, on one thread (the display and camera are
    not shared across threads). Owns the tracker, which it makes for the frames' size.

    ``parts.display`` must show ``parts.pack``'s centre frame when this is made (:func:`build_parts` leaves
    it so). ``wait(seconds)`` is how a step pauses while the camera is down: the daemon passes its stop
    event's ``wait`` so that SIGTERM cuts the pause short.

    ``fallback()`` makes the detector that replaces one failing ``max_detector_failures`` frames in a row
    (the daemon passes the bundled model of its configured range); None: none, detection stops instead.
    ``detector_stand_in``: ``parts.detector`` already stands in for the configured one (the daemon's safe
    mode at boot gave it the bundled model or a :class:`NoDetector`), so it is not replaced by ``fallback``
    again: if it fails as often, detection stops.
    """

    def __init__(self, parts: Parts, *, wait: Callable[[float], object] = time.sleep,
                 timer: Callable[[], float] = time.perf_counter,
                 fallback: Callable[[], Detector] | None = None, detector_stand_in: bool = False,
                 max_detector_failures: int = DETECTOR_FAILURES, log_interval: float = INTERVAL) -> None:
        self._parts = parts
        self._wait = wait
        self._timer = timer
        self._fallback = fallback
        self._max_failures = max(1, int(max_detector_failures))
        self._failures = 0  # consecutive frames the running detector failed
        self._fault: str | None = None
        self._stand_in = detector_stand_in  # the running detector is not the configured one
        self._fell_back = detector_stand_in  # no further fallback for the running detector
        self._retired: list[Detector] = []  # detectors given up on (a reload loaded beside us may hold one)
        self._limiter = RepeatLimiter(log, interval=log_interval)
        self._index = parts.pack.centre_index
        self._tracker: Tracker | None = None
        #: the tracker a reload replaced, while the same camera goes on: the new one carries on from it
        self._replaced: Tracker | None = None
        self._frame_size: Size | None = None
        self._viewer: Face | None = None
        self._angle: float | None = None
        self._last_frame: np.ndarray | None = None
        self._opened = False
        self._slowed = False  # the camera was asked for its idle rate
        use_one_opencv_thread()

    @property
    def parts(self) -> Parts:
        return self._parts

    @property
    def index(self) -> int:
        """The pack frame on screen."""
        return self._index

    @property
    def opened(self) -> bool:
        return self._opened

    @property
    def last_frame(self) -> np.ndarray | None:
        """The newest camera frame (the camera's buffer; in memory only): what a debug snapshot copies."""
        return self._last_frame

    @property
    def frame_size(self) -> Size | None:
        return self._frame_size

    @property
    def detector_fault(self) -> str | None:
        """Why detection is degraded (the configured detector failed and was replaced, or detection has
        stopped), or None. Cleared when a new detector from a reload finds its first frame."""
        return self._fault

    @property
    def detector_replaced(self) -> bool:
        """Whether the running detector is a stand-in (the bundled fallback or :class:`NoDetector`) rather
        than the one the config names: a reload must then load the configured one afresh."""
        return self._stand_in

    def open(self) -> None:
        """Open the camera (it may block in a driver call; a failure only sets it retrying)."""
        self._parts.camera.open()
        self._opened = True

    def close(self) -> None:
        """Close camera and display; the last picture stays on a framebuffer."""
        try:
            self._parts.camera.close()
        finally:
            self._opened = False
            self._parts.display.close()

    def step(self) -> FrameResult:
        """Read one frame, find faces, update the gaze, redraw the patch if the index changed."""
        parts = self._parts
        t0 = self._timer()
        frame = parts.camera.read()
        t1 = self._timer()
        if frame is None:
            drew = False
            if parts.camera.state != "ok":
                drew = self._camera_down()
                self._wait(min(IDLE_WAIT, max(0.001, parts.camera.retry_in)))
            return self._result(None, None, (), drew, None, None)
        waited = min(max(0.0, parts.camera.waited), t1 - t0)
        rgb, t = frame
        self._last_frame = rgb
        size = (int(rgb.shape[1]), int(rgb.shape[0]))
        search = parts.detector if isinstance(parts.detector, FaceSearch) else None
        if self._tracker is None or size != self._frame_size:
            replaced, self._replaced = self._replaced, None
            self._tracker = parts.make_tracker(parts.pack.frame_count, size, parts.pack.span_deg)
            adopt = getattr(self._tracker, "adopt", None)
            if replaced is not None and adopt is not None and size == self._frame_size:
                adopt(replaced)  # a reload: the room, its pictures and its viewer are the same
            self._frame_size = size
            if search is not None:
                search.reset()
                use = getattr(self._tracker, "use_region_change", None)
                if search.regions is not None and use is not None:
                    # the tracker asks how much a new face's own pixels changed (a person, not a photo)
                    use(search.region_change, search.face_grey, search.face_seconds)
        tracker = self._tracker
        try:
            if search is not None:
                found = search.search(rgb, t, _followed(tracker), parts.camera.luma)
            else:
                found = Found(tuple(parts.detector.detect(rgb)), "whole")
        except Exception as exc:  # one bad frame must not stop the portrait
            failed = self._report("detector", exc)
            return self._result(rgb, t, (), self._detector_failed(failed.message), failed, None, "whole")
        faces = found.faces
        if found.detected and (self._failures or (self._fault is not None and not self._stand_in)):
            self._detector_works()
        if search is not None:
            self._pace_camera(search, t)
        t2 = self._timer()
        index = int(tracker.update(faces, t, held=not found.detected))
        if search is not None:
            screens = getattr(tracker, "screen_areas", None)
            if screens is not None:
                search.ignore(screens())  # a TV's change is not the room's
        self._viewer = tracker.viewer
        self._angle = None if tracker.angle_deg is None else float(tracker.angle_deg)
        t3 = self._timer()
        error = None
        drew = False
        if index != self._index:
            error = self._draw(index)
            drew = error is None
        t4 = self._timer()
        times = StageTimes(capture=t1 - t0 - waited, detect=t2 - t1, gaze=t3 - t2,
                           draw=t4 - t3 if drew else None, frame=t4 - t0 - waited, waited=waited,
                           detected=found.detected)
        return self._result(rgb, t, faces, drew, error, times, found.where, found.crop)

    def switch_to(self, parts: Parts) -> None:
        """Run on ``parts`` from now on (a reload): the new portrait in one full draw, a new tracker at the
        next frame, and, if the camera is a new one, the old closed and the new opened. If the draw fails
        the old parts stay and the old picture is put back; the error propagates to the caller."""
        old = self._parts
        try:
            index = show_portrait(parts.display, parts.pack)
        except Exception:
            try:
                old.display.show_full(old.pack.frame_image(self._index))
            except Exception as exc:
                log.warning("could not restore the previous picture: %s", exc)
            raise
        if any(parts.detector is retired for retired in self._retired):
            # Loaded beside the loop from the parts of before a fallback: keep the detector that replaced it.
            parts = dataclasses.replace(parts, detector=old.detector)
        if parts.detector is not old.detector:  # a new model: it gets its own chances (and fallback)
            self._failures, self._stand_in, self._fell_back = 0, False, False
            self._retired.clear()
        if self._slowed and parts.camera is old.camera:  # the same camera goes on: at its full rate again
            parts.camera.set_frame_rate(None)
        self._parts, self._index = parts, index
        self._replaced = self._tracker if parts.camera is old.camera else None
        self._tracker = None
        self._slowed = False
        self._viewer, self._angle = None, None
        if parts.camera is not old.camera:
            try:
                old.camera.close()
            except Exception as exc:  # a vanished device may fail to close; it is being replaced anyway
                log.warning("closing the previous camera %s: %s", old.camera.name, exc)
            if self._opened:
                parts.camera.open()

    # --- inside a step ----------------------------------------------------------------------------------
    def _pace_camera(self, search: FaceSearch, t: float) -> None:
        """The camera at its idle rate while the gate has let frames pass a while, full rate otherwise
        (asked once per change: a driver call per frame would cost what gating saves)."""
        slow = search.slow(t)
        if slow != self._slowed:
            self._parts.camera.set_frame_rate(search.idle_fps if slow else None)
            self._slowed = slow

    def _camera_down(self) -> bool:
        """Nobody can be seen: eyes to centre, screen untouched otherwise. Returns whether it drew."""
        self._viewer, self._angle = None, None
        self._slowed = False  # a camera that comes back opens at its configured rate
        centre = self._parts.pack.centre_index
        if self._index == centre:
            return False
        if self._tracker is not None:
            self._tracker.reset()
        return self._draw(centre) is None

    def _detector_failed(self, message: str) -> bool:
        """Count one failed frame; after too many in a row, fall back or stop. Returns whether it drew."""
        self._failures += 1
        if self._failures < self._max_failures:
            return False
        failing = self._parts.detector
        self._retired.append(failing)
        self._failures = 0
        self._limiter.flush()
        what = f"detector failed {self._max_failures} frames in a row ({message})"
        if not self._fell_back and self._fallback is not None:
            self._fell_back = True
            try:
                replacement = self._fallback()
            except Exception as exc:  # the bundled model cannot be loaded either
                what += f"; the bundled model cannot be used either ({exc})"
            else:
                name = getattr(replacement, "model_path", None)
                self._fault = f"{what}; running the bundled model{f' {name}' if name else ''} instead"
                self._stand_in = True
                self._parts = dataclasses.replace(self._parts, detector=replacement)
                log.error("%s", self._fault)
                return False
        self._fault = f"{what}; detection stopped, eyes at centre (fix the model, then reload)"
        self._stand_in = self._fell_back = True
        self._parts = dataclasses.replace(self._parts, detector=NoDetector(self._fault))
        log.error("%s", self._fault)
        return self._camera_down()  # nobody can be seen any more: eyes to the centre

    def _detector_works(self) -> None:
        """A frame went through after failures: the count restarts, and a new model clears the fault."""
        self._failures = 0
        self._limiter.flush()
        if self._fault is not None and not self._stand_in:
            log.info("detector: working again (was: %s)", self._fault)
            self._fault = None

    def _draw(self, index: int) -> StepError | None:
        try:
            rect, patch = self._parts.pack.patch(index)
            self._parts.display.update(rect, patch)
        except Exception as exc:
            return self._report("display", exc)
        self._index = index
        return None

    def _report(self, stage: str, exc: Exception) -> StepError:
        error = StepError(stage, f"{stage}: {exc}")
        self._limiter.warning(error.message)
        return error

    def _result(self, rgb: np.ndarray | None, t: float | None, faces: tuple[Face, ...], drew: bool,
                error: StepError | None, times: StageTimes | None, searched: str = "",
                crop: Rect | None = None) -> FrameResult:
        return FrameResult(frame=rgb, timestamp=t, faces=faces, viewer=self._viewer, angle_deg=self._angle, frame_size=self._frame_size, index=self._index, drew=drew,
                           camera_state=self._parts.camera.state, error=error, times=times, searched=searched,
                           crop=crop)


def _followed(tracker: Tracker) -> Face | None:
    """Whom the tracker follows: its ``followed`` face where it has one (:class:`edge.gaze.GazeTracker`
    keeps the last face of a viewer the detector lost for a moment: nothing is gated then either), else
    this frame's ``viewer``."""
    followed = getattr(tracker, "followed", None)
    return followed if isinstance(followed, Face) else tracker.viewer
