"""Camera sources behind one small protocol, and a wrapper that keeps retrying a source that fails.

Every source hands out the *newest* frame as RGB uint8 with a timestamp in seconds (monotonic for that
source), or ``None`` when no new frame is due yet. The service never waits on a stale queue: the gaze
must follow the viewer as they are now, not as they were a few buffered frames ago.

Frames stay in memory. Nothing here writes a camera frame anywhere; the only way one reaches a disk is
``mona-edge snapshot --camera``, a debug capture the user asks for explicitly.

Two things every source also tells, for honest figures and an idle room that costs nothing: ``waited``,
the seconds the last ``read`` spent waiting for the frame (sleeping until it was due, or blocked in the
driver) rather than working, so stage times exclude it; and ``set_frame_rate(fps)``, a lower rate asked
for while nothing happens (:mod:`edge.motion`), where the source allows it: picamera2 through its
``FrameDurationLimits`` control, a paced file or a USB camera by reading less often.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.errors import CameraError, ConfigError  # CameraError re-exported: callers import it from here

log = logging.getLogger(__name__)

Frame = tuple[np.ndarray, float]

#: What ``RetryingCamera.state`` can be: delivering, waiting to retry, or given up for good.
CAMERA_STATES = ("ok", "retrying", "failed")
_opencv_threads_set = False


def use_one_opencv_thread() -> None:
    """``cv2.setNumThreads(0)``, once per process: OpenCV's own thread pool runs its functions on the
    calling thread only. Why: our OpenCV work per frame is a colour conversion and a few small resizes
    (well under a millisecond); farming that out costs more than it saves, and the pool's workers spin
    between frames, which is CPU an idle room should not cost (issue 14: decode plus the pool were 54 %
    of a busy frame with the detector removed). The detector has its own threads ([detector] threads)."""
    global _opencv_threads_set
    if not _opencv_threads_set:
        cv2.setNumThreads(0)
        _opencv_threads_set = True


class CameraUnavailable(CameraError):
    """A source that can never work on this machine (e.g. picamera2 not installed): retrying is pointless.

    (:class:`CameraError` itself, a source that could not open or stopped delivering frames, lives in
    :mod:`edge.errors` with the other user-facing errors.)"""


class CameraSource(Protocol):
    """What the service needs from a camera. ``read`` returns the newest frame, or ``None`` if none is due."""

    name: str
    state: str  # "closed", "ok", "ended" (a file that does not loop), "retrying" or "failed"

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


def flip_code(hflip: bool, vflip: bool) -> int | None:
    """OpenCV's flip code for a mounting (None: no flip)."""
    if hflip and vflip:
        return -1
    if hflip:
        return 1
    if vflip:
        return 0
    return None


def _bgr_to_rgb_into(bgr: np.ndarray, out: np.ndarray | None, flip: int | None = None) -> np.ndarray:
    """Convert (and flip, in place) into a reused buffer: one allocation per stream, not per frame."""
    if out is None or out.shape != bgr.shape:
        out = np.empty_like(bgr)
    cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out)
    if flip is not None:
        cv2.flip(out, flip, dst=out)
    return out


class VideoFileSource:
    """A video file as a camera: looping, real-time paced at the file's fps or as fast as it decodes.

    Timestamps are media time (plus one clip length per loop), offset by the wall clock at open when
    real-time, so the gaze filters see the motion as it was filmed whatever the decode speed.
    """

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = True,
                 fps: float | None = None, hflip: bool = False, vflip: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = Path(path)
        self._flip = flip_code(hflip, vflip)
        self.name = f"file:{self.path.name}"
        self.realtime = realtime
        self.loop = loop
        self._fps_override = fps
        self._clock = clock
        self._sleep = sleep
        self._cap: cv2.VideoCapture | None = None
        self._rgb: np.ndarray | None = None
        self._pace: float | None = None  # a lower rate asked for (set_frame_rate), frames per second
        self._last_read: float | None = None
        self.waited = 0.0
        self.state = "closed"

    def set_frame_rate(self, fps: float | None) -> bool:
        """Read at most ``fps`` frames a second (None: every frame). Only a real-time file has a rate to
        lower: one decoded as fast as it goes is a benchmark's or a test's, which wants every frame."""
        if not self.realtime:
            return False
        self._pace = float(fps) if fps else None
        return True

    def open(self) -> None:
        if not self.path.exists() or self.path.is_dir():  # a named pipe (a live stream) is fine
            raise CameraError(f"{self.path}: no such video file")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise CameraError(f"{self.path}: OpenCV cannot decode this video")
        fps = self._fps_override or cap.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0:
            cap.release()
            raise CameraError(f"{self.path}: the file has no frame rate; pass fps")
        self.fps = float(fps)
        self._cap = cap
        self._pace = None       # (re)opened at the file's own rate, as a camera opens at its configured one
        self._last_read = None
        self._next = 0          # index of the next frame the decoder will return within this loop
        self._loops = 0
        self._loop_frames = 0   # frames in one pass, learnt at the first wrap
        self._start = self._clock()
        self.state = "ok"

    def _decode(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, bgr = self._cap.read()
        if not ok:
            return None
        self._next += 1
        return bgr

    def _rewind(self) -> bool:
        if not self.loop or self._next == 0:
            return False
        assert self._cap is not None  # only called while open
        self._loop_frames = self._next
        self._loops += 1
        self._next = 0
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return True

    def _absolute_next(self) -> int:
        return self._loops * self._loop_frames + self._next

    def _media_time(self, index: int) -> float:
        return (self._loops * self._loop_frames + index) / self.fps

    def read(self) -> Frame | None:
        if self._cap is None:
            raise RuntimeError(f"{self.name}: read before open")  # a caller's bug, not the camera's
        self.waited = 0.0
        if self.realtime:
            if self._pace and self._last_read is not None:  # idle: the next read is due 1/pace later
                self.waited += self._wait_until(self._last_read + 1.0 / self._pace)
            # Which frame is on "air" now? Sleep until the next one is due, or skip to the newest.
            # (1e-9: a frame due exactly now is on air, whatever the float rounding of now - start.)
            target = int((self._clock() - self._start) * self.fps + 1e-9)
            if target < self._absolute_next():
                self.waited += self._wait_until(self._start + self._absolute_next() / self.fps)
                target = self._absolute_next()
            while self._absolute_next() < target:  # we fell behind: drop frames, as a live camera would
                if self._cap.grab():
                    self._next += 1
                elif not self._rewind():
                    break
        bgr = self._decode()
        if bgr is None:
            if not self._rewind():
                self.state = "ended"
                raise CameraError(f"{self.path}: end of video")
            bgr = self._decode()
            if bgr is None:
                raise CameraError(f"{self.path}: no frame after rewinding")
        self._rgb = _bgr_to_rgb_into(bgr, self._rgb, self._flip)
        t = self._media_time(self._next - 1)
        self._last_read = self._clock()
        return self._rgb, (self._start + t) if self.realtime else t

    def _wait_until(self, when: float) -> float:
        """Sleep until the clock reads ``when``; the seconds waited."""
        delay = when - self._clock()
        if delay <= 0.0:
            return 0.0
        self._sleep(delay)
        return delay

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.state = "closed"


class OpenCVSource:
    """A V4L2 device (``/dev/videoN`` or an index) through OpenCV: USB webcams.

    The driver keeps a queue of filled buffers; we ask for one, and when more than a frame interval has
    passed since the last read we ``grab()`` once to throw the queued (stale) frame away first.
    """

    def __init__(self, device: str | int, size: tuple[int, int] | None = None,
                 fps: float | None = None, hflip: bool = False, vflip: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._flip = flip_code(hflip, vflip)
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.device = device
        self.name = f"opencv:{device}"
        self.size = size
        self.fps = fps
        self._clock = clock
        self._cap: cv2.VideoCapture | None = None
        self._rgb: np.ndarray | None = None
        self._last_read = 0.0
        self._interval = 1.0 / 30.0
        self._sleep = sleep
        self._pace: float | None = None
        self.waited = 0.0
        self.state = "closed"

    def set_frame_rate(self, fps: float | None) -> bool:
        """Read at most ``fps`` frames a second (None: as they come). V4L2 drivers differ in whether they
        take a new rate while streaming, so the rate is lowered by reading less often: the frames in
        between stay in the driver's buffer, never converted."""
        self._pace = float(fps) if fps else None
        return True

    def open(self) -> None:
        if isinstance(self.device, str) and self.device.startswith("/dev/") and not Path(self.device).exists():
            raise CameraError(f"{self.device}: no such device (is the camera plugged in?)")
        backend = cv2.CAP_V4L2 if isinstance(self.device, int) or str(self.device).startswith("/dev/") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device, backend)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.device}: OpenCV cannot open this camera")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._interval = 1.0 / fps if fps and np.isfinite(fps) and fps > 0 else 1.0 / 30.0
        self._cap = cap
        self._last_read = self._clock()
        self._pace = None  # (re)opened at the configured rate
        self.state = "ok"

    def read(self) -> Frame | None:
        if self._cap is None:
            raise RuntimeError(f"{self.name}: read before open")  # a caller's bug, not the camera's
        now = self._clock()
        self.waited = 0.0
        if self._pace and now < self._last_read + 1.0 / self._pace:
            self.waited = self._last_read + 1.0 / self._pace - now
            self._sleep(self.waited)
            now = self._clock()
        if now - self._last_read > self._interval:
            self._cap.grab()  # a buffer filled while we were busy: drop it
        start = self._clock()
        ok = self._cap.grab()  # blocks until the driver has a frame: waiting, not work
        self.waited += self._clock() - start
        bgr = self._cap.retrieve()[1] if ok else None
        if not ok or bgr is None:
            raise CameraError(f"{self.device}: the camera stopped delivering frames")
        self._last_read = self._clock()
        self._rgb = _bgr_to_rgb_into(bgr, self._rgb, self._flip)
        return self._rgb, self._last_read

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.state = "closed"


class Picamera2Source:
    """The Raspberry Pi camera through picamera2, reading its small "lores" stream for the detector.

    On Pi 0-4 (VC4 ISP) the lores stream can only be YUV420, converted here with one I420->RGB pass into
    a reused buffer; on a Pi 5 it can be RGB, which we try first. libcamera names formats by their
    little-endian word, so picamera2's ``"BGR888"`` is R,G,B in memory — the order the detector wants.
    ``queue=False`` makes every capture wait for a frame exposed after the call, never a queued one.
    picamera2 comes from the OS (apt), so it is imported only when this source opens.
    """

    def __init__(self, size: tuple[int, int] = (320, 240), main_size: tuple[int, int] = (640, 480),
                 fps: float | None = 30.0, camera_num: int = 0, hflip: bool = False, vflip: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hflip, self.vflip = hflip, vflip
        self.size = (int(size[0]) & ~1, int(size[1]) & ~1)  # YUV420 needs even dimensions
        self.main_size = (max(main_size[0], self.size[0]), max(main_size[1], self.size[1]))
        self.fps = fps
        self.camera_num = camera_num
        self.name = f"picamera2:{camera_num}"
        self._clock = clock
        self._cam = None
        self._yuv = False
        self._rgb: np.ndarray | None = None
        self._padded: np.ndarray | None = None  # a padded-stride frame's RGB before the crop to the width
        self.luma: np.ndarray | None = None  # the last frame's Y plane (YUV420 lores), before any conversion
        self.waited = 0.0
        self.state = "closed"

    def set_frame_rate(self, fps: float | None) -> bool:
        """Ask the sensor for ``fps`` (None: the configured rate back) through ``FrameDurationLimits``:
        the sensor, ISP and driver then do less work, not only this process."""
        if self._cam is None:
            return False
        rate = float(fps) if fps else self.fps
        if not rate:
            return False
        frame_us = int(round(1e6 / rate))
        try:
            self._cam.set_controls({"FrameDurationLimits": (frame_us, frame_us)})
        except Exception as exc:  # a camera that refuses keeps its rate: gating still saves the detector
            log.warning("%s: cannot set the frame rate to %.1f fps (%s)", self.name, rate, exc)
            return False
        return True

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraUnavailable("picamera2 is not installed (on Raspberry Pi OS: sudo apt install "
                                    f"python3-picamera2, and create the venv with --system-site-packages): {exc}") from exc
        try:
            cam = Picamera2(self.camera_num)
        except Exception as exc:  # picamera2 raises IndexError/RuntimeError when no camera is attached
            raise CameraError(f"{self.name}: cannot open the camera ({exc})") from exc
        controls = {"FrameRate": float(self.fps)} if self.fps else {}
        extra = {}
        if self.hflip or self.vflip:  # flipped by the ISP, for free
            from libcamera import Transform

            extra["transform"] = Transform(hflip=int(self.hflip), vflip=int(self.vflip))
        last_exc: Exception | None = None
        for fmt in ("BGR888", "YUV420"):
            try:
                config = cam.create_video_configuration(
                    main={"size": self.main_size, "format": "YUV420"},
                    lores={"size": self.size, "format": fmt},
                    buffer_count=2, queue=False, controls=controls, **extra)
                cam.configure(config)
                self._yuv = fmt == "YUV420"
                break
            except Exception as exc:  # VC4 refuses an RGB lores stream: fall back to YUV420
                last_exc = exc
        else:
            cam.close()
            raise CameraError(f"{self.name}: no usable lores configuration ({last_exc})") from last_exc
        try:
            cam.start()
        except Exception as exc:
            cam.close()
            raise CameraError(f"{self.name}: cannot start the camera ({exc})") from exc
        self._cam = cam
        self._rgb = np.empty((self.size[1], self.size[0], 3), np.uint8)
        self._padded = None
        self.state = "ok"
        log.info("%s: lores %dx%d %s", self.name, self.size[0], self.size[1], "YUV420" if self._yuv else "RGB")

    def read(self) -> Frame | None:
        if self._cam is None:
            raise RuntimeError(f"{self.name}: read before open")  # a caller's bug, not the camera's
        start = self._clock()
        try:
            array = self._cam.capture_array("lores")  # waits for a frame exposed after the call
        except Exception as exc:
            raise CameraError(f"{self.name}: capture failed ({exc})") from exc
        t = self._clock()
        self.waited = t - start
        w, h = self.size
        if self._yuv:
            self.luma = array[:h, :w]  # the Y plane: what motion gating looks at
            # (h*3/2, stride) I420 planes; the stride may exceed the width, so convert then crop.
            if array.shape[1] == w:
                cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420, dst=self._rgb)
                return self._rgb, t
            padded = self._padded
            if padded is None or padded.shape[1] != array.shape[1]:  # kept: the stride is the stream's
                padded = self._padded = np.empty((h, array.shape[1], 3), np.uint8)
            cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420, dst=padded)
            np.copyto(self._rgb, padded[:, :w])
            return self._rgb, t
        self._rgb[...] = array[:h, :w, :3]
        return self._rgb, t

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None
        self.state = "closed"


class RetryingCamera:
    """Wraps a source so that a failure never stops the caller: it returns ``None`` and retries later.

    Retries back off exponentially from ``initial`` to ``maximum`` seconds, reset by one good frame.
    A :class:`CameraUnavailable` source, or one that failed ``max_failures`` times in a row, is
    ``"failed"``: it stays down until :meth:`open` is called again (e.g. by a reload).
    """

    def __init__(self, source: CameraSource, initial: float = 0.5, maximum: float = 30.0,
                 max_failures: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"camera backoff: expected 0 < initial ({initial}) <= maximum ({maximum})")
        self.source = source
        self.name = source.name
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.max_failures = max_failures
        self._clock = clock
        self.state = "retrying"
        self._backoff = self.initial
        self._next_try = 0.0
        self._open = False
        self.failures = 0            # every failure since start
        self.consecutive_failures = 0
        self.recoveries = 0          # times it came back after failing
        self.last_error: str | None = None
        self.frames = 0

    @property
    def waited(self) -> float:
        """Seconds the last read waited for its frame (the source's; 0 if it does not say)."""
        return float(getattr(self.source, "waited", 0.0) or 0.0)

    @property
    def luma(self) -> np.ndarray | None:
        """The last frame's luma plane if the source has one before conversion (picamera2's YUV420 lores),
        else None (the caller uses the RGB frame)."""
        luma = getattr(self.source, "luma", None)
        return luma if isinstance(luma, np.ndarray) else None

    def set_frame_rate(self, fps: float | None) -> bool:
        """Ask the source for ``fps`` (None: its configured rate); False where it cannot change."""
        setter = getattr(self.source, "set_frame_rate", None)
        if setter is None or self.state != "ok":
            return False
        try:
            return bool(setter(fps))
        except Exception as exc:  # a rate that cannot be set is no reason to stop reading frames
            log.warning("camera %s: cannot change the frame rate: %s", self.name, exc)
            return False

    @property
    def retry_in(self) -> float:
        """Seconds until the next attempt (0 when ok)."""
        return max(0.0, self._next_try - self._clock()) if self.state == "retrying" else 0.0

    def open(self) -> None:
        """Try to open now; on failure the state becomes ``retrying`` (never raises a CameraError)."""
        self.state = "retrying"
        self._backoff = self.initial
        self.consecutive_failures = 0
        self._try_open()

    def _try_open(self) -> None:
        try:
            self.source.open()
        except Exception as exc:
            self._fail(exc, opening=True)
            return
        self._open = True
        if self.failures:
            self.recoveries += 1
            log.info("camera %s is back", self.name)
        self.state = "ok"

    def _fail(self, exc: Exception, opening: bool) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = str(exc) or type(exc).__name__
        if self._open:
            try:
                self.source.close()
            except Exception:  # closing a vanished device may fail too; we are retrying anyway
                pass
            self._open = False
        give_up = isinstance(exc, CameraUnavailable) or (
            self.max_failures is not None and self.consecutive_failures >= self.max_failures)
        if give_up:
            self.state = "failed"
            log.error("camera %s failed: %s", self.name, self.last_error)
            return
        delay = self._backoff
        self._backoff = min(self._backoff * 2.0, self.maximum)
        self._next_try = self._clock() + delay
        self.state = "retrying"
        log.warning("camera %s %s: %s; retrying in %.1f s", self.name,
                    "did not open" if opening else "failed", self.last_error, delay)

    def read(self) -> Frame | None:
        if self.state == "failed":
            return None
        if self.state == "retrying":
            if self._clock() < self._next_try:
                return None
            self._try_open()
            if self.state != "ok":
                return None
        try:
            frame = self.source.read()
        except Exception as exc:
            self._fail(exc, opening=False)
            return None
        if frame is not None:
            self.frames += 1
            self.consecutive_failures = 0
            self._backoff = self.initial
        return frame

    def close(self) -> None:
        if self._open:
            self.source.close()
            self._open = False
        self.state = "retrying"


def open_source(kind: str, *, device: str | int | None = None, path: str | Path | None = None,
                size: tuple[int, int] = (320, 240), fps: float | None = None,
                realtime: bool = True, loop: bool = True, hflip: bool = False, vflip: bool = False) -> CameraSource:
    """A source by config name: ``picamera2``, ``opencv`` or ``file``. A file plays at ``fps`` if given,
    else at its own rate."""
    if kind == "picamera2":
        return Picamera2Source(size=size, fps=fps or 30.0, camera_num=int(device or 0), hflip=hflip, vflip=vflip)
    if kind == "opencv":
        return OpenCVSource(device if device is not None else 0, size=size, fps=fps, hflip=hflip, vflip=vflip)
    if kind == "file":
        if path is None:
            raise ConfigError("camera.path: a video file is required when camera.source is 'file'")
        return VideoFileSource(path, realtime=realtime, loop=loop, fps=fps, hflip=hflip, vflip=vflip)
    raise ConfigError(f"camera.source {kind!r}: expected one of 'picamera2', 'opencv', 'file'")
