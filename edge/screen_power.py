"""Screen power: the panel off when nobody has been seen for a while or at night, on again for a viewer.

Why: a frame spends most of its life in front of an empty room or a dark one, and the panel is most of
its power. Blanking is a deliberate state with a reason (``"nobody seen for 10 min"``, ``"night
schedule"``), logged when it changes and reported on the status socket; it is never a fault, and a
failure to blank or wake is one warning line, never the end of the daemon. Waking always redraws the
portrait at the current gaze (never a black screen after a wake).

The policy (:class:`ScreenPolicy`) is plain arithmetic on "when was someone last seen". Presence is the
pipeline's ``viewer_present`` (a tracked viewer, so a photograph on the opposite wall that the detector
finds every frame neither keeps the screen on nor wakes it). A camera that is down, or detection that
has stopped, counts as "someone may be there": the frame cannot see the room, so it does not blank on
absence it cannot observe, and wakes if it was blanked (a fault never leaves the screen dark).

The mechanisms, each the real kernel or tool call, each behind a small injectable boundary (``ioctl`` is
:func:`fcntl.ioctl`, ``run`` is :func:`subprocess.run`; tests record them):

* :class:`FbBlank`: ``FBIOBLANK`` on the framebuffer device (``FB_BLANK_POWERDOWN`` / ``FB_BLANK_UNBLANK``),
  for the framebuffer and file sinks.
* :class:`DrmDpms`: the connector's legacy ``DPMS`` property through DRM ioctls (``GETRESOURCES``,
  ``GETCONNECTOR``, ``GETPROPERTY``, ``OBJ_SETPROPERTY``), for the pygame (KMS/DRM) sink. Setting a
  property needs DRM master, which SDL holds while pygame's display is open, so the display is
  *released* while blanked (:class:`ReleasableDisplay`): a non-master fd keeps the device open (so the
  kernel's fbdev console is not restored in between), pygame's display is closed (SDL drops master), a
  fresh fd becomes master and powers the connector down. To wake: DPMS on, drop master, re-open
  pygame's display (SDL becomes master and sets its mode), close our fd, redraw.
* :class:`CecPower`: HDMI-CEC standby and wake (Image View On) of the TV through ``cec-ctl`` (v4l-utils),
  where ``[screen] cec_device`` is configured.
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import fcntl
import glob
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.config import ScreenConfig, parse_schedule
from edge.display import SDL_KMSDRM_DEVICE_INDEX, PygameSink

log = logging.getLogger(__name__)

ON, BLANKED = "on", "blanked"
#: At night the screen blanks once nobody has been seen for this long (the day's limit is
#: ``[screen] idle_minutes``): someone who walks past at 3 am gets a look, then the room is dark again.
NIGHT_LINGER = 60.0
#: Seconds between attempts to re-open a display that failed to come back on a wake.
REOPEN_RETRY = 5.0
#: Seconds ``cec-ctl`` may take (a TV that does not answer makes it wait for its own timeouts).
CEC_TIMEOUT = 10.0
CEC_CTL = "cec-ctl"

Ioctl = Callable[[int, int, Any], Any]
Run = Callable[..., "subprocess.CompletedProcess[str]"]

# --- ioctl numbers: <linux/fb.h>, <drm/drm.h>, <drm/drm_mode.h> (the generic _IOC layout of x86 and arm) ---
FBIOBLANK = 0x4611
FB_BLANK_UNBLANK = 0
FB_BLANK_POWERDOWN = 4


def _ioc(direction: int, kind: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (kind << 8) | nr


class DrmModeCardRes(ctypes.Structure):
    _fields_ = [("fb_id_ptr", ctypes.c_uint64), ("crtc_id_ptr", ctypes.c_uint64),
                ("connector_id_ptr", ctypes.c_uint64), ("encoder_id_ptr", ctypes.c_uint64),
                ("count_fbs", ctypes.c_uint32), ("count_crtcs", ctypes.c_uint32),
                ("count_connectors", ctypes.c_uint32), ("count_encoders", ctypes.c_uint32),
                ("min_width", ctypes.c_uint32), ("max_width", ctypes.c_uint32),
                ("min_height", ctypes.c_uint32), ("max_height", ctypes.c_uint32)]


class DrmModeGetConnector(ctypes.Structure):
    _fields_ = [("encoders_ptr", ctypes.c_uint64), ("modes_ptr", ctypes.c_uint64),
                ("props_ptr", ctypes.c_uint64), ("prop_values_ptr", ctypes.c_uint64),
                ("count_modes", ctypes.c_uint32), ("count_props", ctypes.c_uint32),
                ("count_encoders", ctypes.c_uint32), ("encoder_id", ctypes.c_uint32),
                ("connector_id", ctypes.c_uint32), ("connector_type", ctypes.c_uint32),
                ("connector_type_id", ctypes.c_uint32), ("connection", ctypes.c_uint32),
                ("mm_width", ctypes.c_uint32), ("mm_height", ctypes.c_uint32),
                ("subpixel", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class DrmModeGetProperty(ctypes.Structure):
    _fields_ = [("values_ptr", ctypes.c_uint64), ("enum_blob_ptr", ctypes.c_uint64),
                ("prop_id", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("name", ctypes.c_char * 32),
                ("count_values", ctypes.c_uint32), ("count_enum_blobs", ctypes.c_uint32)]


class DrmModeObjSetProperty(ctypes.Structure):
    _fields_ = [("value", ctypes.c_uint64), ("prop_id", ctypes.c_uint32), ("obj_id", ctypes.c_uint32),
                ("obj_type", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


_DRM = ord("d")
DRM_IOCTL_SET_MASTER = _ioc(0, _DRM, 0x1E, 0)
DRM_IOCTL_DROP_MASTER = _ioc(0, _DRM, 0x1F, 0)
DRM_IOCTL_MODE_GETRESOURCES = _ioc(3, _DRM, 0xA0, ctypes.sizeof(DrmModeCardRes))
DRM_IOCTL_MODE_GETCONNECTOR = _ioc(3, _DRM, 0xA7, ctypes.sizeof(DrmModeGetConnector))
DRM_IOCTL_MODE_GETPROPERTY = _ioc(3, _DRM, 0xAA, ctypes.sizeof(DrmModeGetProperty))
DRM_IOCTL_MODE_OBJ_SETPROPERTY = _ioc(3, _DRM, 0xBA, ctypes.sizeof(DrmModeObjSetProperty))
DRM_MODE_OBJECT_CONNECTOR = 0xC0C0C0C0
DRM_MODE_CONNECTED = 1
DPMS_ON, DPMS_OFF = 0, 3


def _open_rw(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{exc.strerror or os.strerror(exc.errno)} ({errno.errorcode.get(exc.errno, exc.errno)})"
    return str(exc)


# --- the policy ----------------------------------------------------------------------------------------
class ScreenPolicy:
    """Whether the screen should be blanked now, and why: arithmetic on when someone was last seen."""

    def __init__(self, settings: ScreenConfig, started: float) -> None:
        self.settings = settings
        self.night = parse_schedule(settings.night) if settings.night else None
        self.last_seen = started

    def decide(self, now: float, local: datetime.time, someone: bool) -> str | None:
        """The reason to be blanked, or None for on. ``someone``: a viewer is seen, or the room cannot be
        seen at all (camera down, detection stopped)."""
        if someone:
            self.last_seen = now
            return None
        absent = now - self.last_seen
        if self.night is not None and in_window(self.night, local) and absent >= NIGHT_LINGER:
            return "night schedule"
        idle = self.settings.idle_minutes
        if idle > 0 and absent >= idle * 60.0:
            return f"nobody seen for {idle:g} min"
        return None


def in_window(window: tuple[int, int], local: datetime.time) -> bool:
    """Whether ``local`` is in a (start, end) window of minutes of the day (end excluded)."""
    start, end = window
    minute = local.hour * 60 + local.minute
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end  # over midnight: "23:00-07:00"


# --- mechanisms ----------------------------------------------------------------------------------------
class Mechanism(Protocol):
    """One way to power the screen down and up; each raises OSError (or DisplayError) when it cannot."""

    name: str

    def off(self) -> None: ...
    def on(self) -> None: ...


class FbBlank:
    """``FBIOBLANK`` on a framebuffer device (the fbdev sink's, or the file a file sink writes)."""

    def __init__(self, device: str, *, ioctl: Ioctl = fcntl.ioctl, open_fd: Callable[[str], int] = _open_rw) -> None:
        self.name = f"FBIOBLANK {device}"
        self.device = device
        self._ioctl, self._open = ioctl, open_fd

    def _blank(self, level: int) -> None:
        fd = self._open(self.device)
        try:
            self._ioctl(fd, FBIOBLANK, level)
        finally:
            os.close(fd)

    @property
    def is_device(self) -> bool:
        try:
            return stat.S_ISCHR(os.stat(self.device).st_mode)
        except OSError:
            return False

    def off(self) -> None:
        self._blank(FB_BLANK_POWERDOWN)

    def on(self) -> None:
        self._blank(FB_BLANK_UNBLANK)


@dataclass(frozen=True, slots=True)
class DpmsTarget:
    """A connected connector and the id of its DPMS property, on one DRM card."""

    card: str
    connector_id: int
    dpms_prop: int


class DrmDevice:
    """The few DRM ioctls screen power needs, on one open card fd."""

    def __init__(self, fd: int, ioctl: Ioctl) -> None:
        self.fd, self._ioctl = fd, ioctl

    def connectors(self) -> list[int]:
        res = DrmModeCardRes()
        self._ioctl(self.fd, DRM_IOCTL_MODE_GETRESOURCES, res)
        count = int(res.count_connectors)
        ids = (ctypes.c_uint32 * max(1, count))()
        res = DrmModeCardRes(connector_id_ptr=ctypes.addressof(ids), count_connectors=count)
        self._ioctl(self.fd, DRM_IOCTL_MODE_GETRESOURCES, res)
        return [int(ids[i]) for i in range(min(count, int(res.count_connectors)))]

    def connector(self, connector_id: int) -> tuple[bool, dict[int, int]]:
        """Whether it is connected, and its property ids and values (no probe: modes not asked for)."""
        conn = DrmModeGetConnector(connector_id=connector_id)
        self._ioctl(self.fd, DRM_IOCTL_MODE_GETCONNECTOR, conn)
        count = int(conn.count_props)
        props, values = (ctypes.c_uint32 * max(1, count))(), (ctypes.c_uint64 * max(1, count))()
        conn = DrmModeGetConnector(connector_id=connector_id, count_props=count,
                                   props_ptr=ctypes.addressof(props), prop_values_ptr=ctypes.addressof(values))
        self._ioctl(self.fd, DRM_IOCTL_MODE_GETCONNECTOR, conn)
        n = min(count, int(conn.count_props))
        return int(conn.connection) == DRM_MODE_CONNECTED, {int(props[i]): int(values[i]) for i in range(n)}

    def property_name(self, prop_id: int) -> str:
        prop = DrmModeGetProperty(prop_id=prop_id)
        self._ioctl(self.fd, DRM_IOCTL_MODE_GETPROPERTY, prop)
        return bytes(prop.name).split(b"\0", 1)[0].decode("ascii", "replace")

    def set_connector_property(self, connector_id: int, prop_id: int, value: int) -> None:
        self._ioctl(self.fd, DRM_IOCTL_MODE_OBJ_SETPROPERTY,
                    DrmModeObjSetProperty(value=value, prop_id=prop_id, obj_id=connector_id,
                                          obj_type=DRM_MODE_OBJECT_CONNECTOR))

    def drop_master(self) -> None:
        self._ioctl(self.fd, DRM_IOCTL_DROP_MASTER, 0)


def find_dpms_targets(cards: Sequence[str], ioctl: Ioctl, open_fd: Callable[[str], int] = _open_rw
                      ) -> tuple[int, list[DpmsTarget]]:
    """The first card with connected connectors that have a DPMS property: an fd open on it (the caller
    closes it) and those connectors. Raises OSError naming every card tried when there is none."""
    tried: list[str] = []
    for card in cards:
        try:
            fd = open_fd(card)
        except OSError as exc:
            tried.append(f"{card}: {_why(exc)}")
            continue
        try:
            drm = DrmDevice(fd, ioctl)
            targets = []
            for cid in drm.connectors():
                connected, props = drm.connector(cid)
                if connected:
                    dpms = next((p for p in props if drm.property_name(p) == "DPMS"), None)
                    if dpms is not None:
                        targets.append(DpmsTarget(card, cid, dpms))
        except OSError as exc:
            os.close(fd)
            tried.append(f"{card}: {_why(exc)}")
            continue
        if targets:
            return fd, targets
        os.close(fd)
        tried.append(f"{card}: no connected output with a DPMS property")
    raise OSError(errno.ENODEV, "no KMS/DRM output to power down: " + ("; ".join(tried) or "no /dev/dri/card*"))


class Releasable(Protocol):
    """A display that can let go of the screen (DRM master) and take it back (:class:`ReleasableDisplay`)."""

    def release(self) -> None: ...
    def reacquire(self) -> None: ...


class DrmDpms:
    """DPMS off/on of the KMS/DRM output the pygame sink shows on, taking DRM master from SDL for it (the
    module docstring has the order of the steps and why)."""

    def __init__(self, display: Releasable, cards: Sequence[str], *, ioctl: Ioctl = fcntl.ioctl,
                 open_fd: Callable[[str], int] = _open_rw) -> None:
        self.name = "DPMS " + (cards[0] if len(cards) == 1 else "/dev/dri/card*")
        self._display, self._cards = display, list(cards)
        self._ioctl, self._open = ioctl, open_fd
        self._master: int | None = None
        self._targets: list[DpmsTarget] = []

    def off(self) -> None:
        hold, targets = find_dpms_targets(self._cards, self._ioctl, self._open)  # queried as non-master: no probe
        try:
            self._display.release()  # SDL closes its fd: master is free; ours keeps the fbdev console away
            try:
                master = self._open(targets[0].card)  # the first opener without a master becomes master
            except OSError:
                self._display.reacquire()
                raise
        finally:
            os.close(hold)
        drm = DrmDevice(master, self._ioctl)
        try:
            for t in targets:
                drm.set_connector_property(t.connector_id, t.dpms_prop, DPMS_OFF)
        except OSError:
            self._hand_back(drm)
            raise
        self._master, self._targets = master, targets

    def on(self) -> None:
        if self._master is None:  # released and never powered down (or already woken): just re-open
            self._display.reacquire()
            return
        drm = DrmDevice(self._master, self._ioctl)
        failure: OSError | None = None
        try:
            for t in self._targets:
                drm.set_connector_property(t.connector_id, t.dpms_prop, DPMS_ON)
        except OSError as exc:  # SDL's mode set powers the output up anyway: go on, then say so
            failure = exc
        self._hand_back(drm)
        if failure is not None:
            raise failure

    def _hand_back(self, drm: DrmDevice) -> None:
        """Drop master, let pygame re-open (SDL becomes master), then close our fd: in that order the
        device never has no user (which would make the kernel restore its console in between)."""
        self._master, self._targets = None, []
        try:
            drm.drop_master()
        except OSError as exc:  # then SDL can only become master once our fd is closed
            log.debug("screen: DRM_IOCTL_DROP_MASTER: %s", _why(exc))
            os.close(drm.fd)
            self._display.reacquire()
            return
        try:
            self._display.reacquire()
        finally:
            os.close(drm.fd)


class CecPower:
    """The TV's own standby and wake over HDMI-CEC, through ``cec-ctl`` (v4l-utils). ``--playback``
    claims a logical address first (a Pi's adapter has none until one is configured)."""

    def __init__(self, device: str, *, run: Run = subprocess.run, tool: str = CEC_CTL) -> None:
        self.name = f"HDMI-CEC {device}"
        self.device, self._run, self._tool = device, run, tool

    def command(self, message: str) -> list[str]:
        return [self._tool, "--device", self.device, "--playback", "--to", "0", f"--{message}"]

    def _send(self, message: str) -> None:
        argv = self.command(message)
        try:
            done = self._run(argv, capture_output=True, text=True, timeout=CEC_TIMEOUT, check=False)
        except FileNotFoundError as exc:
            raise OSError(errno.ENOENT, f"{self._tool} not found (apt install v4l-utils)") from exc
        except subprocess.TimeoutExpired as exc:
            raise OSError(errno.ETIMEDOUT, f"{' '.join(argv)}: no answer within {CEC_TIMEOUT:g} s") from exc
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
            raise OSError(errno.EIO, f"{' '.join(argv)}: exit status {done.returncode}"
                          + (f": {lines[-1].strip()}" if lines else ""))

    def off(self) -> None:
        self._send("standby")

    def on(self) -> None:
        self._send("image-view-on")


# --- the display wrapper for the DRM path ----------------------------------------------------------------
class ReleasableDisplay:
    """A display that can be closed while the screen is dark and opened again (SDL's KMS/DRM display holds
    DRM master, which DPMS needs). While released, draws are dropped: the pipeline keeps its gaze, and the
    wake redraws the whole portrait at it. ``open_display`` makes a new sink of the same kind."""

    def __init__(self, display: Any, open_display: Callable[[], Any], cards: Sequence[str] = ()) -> None:
        self._inner: Any | None = display
        self._open = open_display
        self.cards = list(cards)  # the DRM cards it may show on (:func:`kms_cards`)
        self._size: tuple[int, int] = tuple(display.size)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def released(self) -> bool:
        return self._inner is None

    def release(self) -> None:
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.close()

    def reacquire(self) -> None:
        if self._inner is None:
            inner = self._open()
            if tuple(inner.size) != self._size:
                inner.close()
                raise OSError(errno.EINVAL, f"the screen came back at {inner.size[0]}x{inner.size[1]}, "
                              f"not {self._size[0]}x{self._size[1]}")
            self._inner = inner

    def show_full(self, image: np.ndarray) -> None:
        if self._inner is not None:
            self._inner.show_full(image)

    def update(self, rect: tuple[int, int, int, int], patch: np.ndarray) -> None:
        if self._inner is not None:
            self._inner.update(rect, patch)

    def snapshot(self) -> np.ndarray:
        """What the screen shows: black while released (the panel is off)."""
        if self._inner is None:
            return np.zeros((self._size[1], self._size[0], 3), np.uint8)
        return np.asarray(self._inner.snapshot())

    def close(self) -> None:
        self.release()


# --- the controller --------------------------------------------------------------------------------------
class ScreenPower:
    """Follows the policy with the mechanisms; called once per loop step (:meth:`observe`, loop's thread).

    ``redraw()`` draws the whole portrait at the current gaze (the service's); it runs after every wake.
    ``clock`` is monotonic seconds, ``wall_clock`` epoch seconds (for ``since``), ``local_time`` the local
    time of day (the night schedule)."""

    def __init__(self, settings: ScreenConfig, mechanisms: Sequence[Mechanism], redraw: Callable[[], None], *,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 local_time: Callable[[], datetime.time] = lambda: datetime.datetime.now().time()) -> None:
        self._mechanisms = list(mechanisms)
        self._redraw = redraw
        self._clock, self._wall, self._local = clock, wall_clock, local_time
        self._policy = ScreenPolicy(settings, clock())
        self.state, self.why = ON, ""
        self.since = wall_clock()
        self.changes = 0
        self._failed: dict[str, str] = {}  # mechanism name -> its last error
        self._warned: set[str] = set()
        self._pending_wake = False  # a wake whose display did not come back: retried
        self._next_retry = 0.0

    @property
    def settings(self) -> ScreenConfig:
        return self._policy.settings

    @property
    def enabled(self) -> bool:
        s = self.settings
        return bool(self._mechanisms) and (s.idle_minutes > 0 or bool(s.night))

    def configure(self, settings: ScreenConfig) -> None:
        """New ``[screen]`` settings (a reload); the time since someone was last seen carries over."""
        last = self._policy.last_seen
        self._policy = ScreenPolicy(settings, last)

    def observe(self, someone: bool) -> None:
        """One loop step's news: whether someone is seen (or the room cannot be seen at all)."""
        now = self._clock()
        if self._pending_wake and now >= self._next_retry:
            self._wake("retry")
        reason = self._policy.decide(now, self._local(), someone) if self.enabled else None
        if reason is None:
            if self.state == BLANKED:
                self._wake("someone appeared" if someone else "schedule ended")
        elif self.state == ON:
            self._blank(reason)
        elif reason != self.why:
            log.info("screen: still blanked, now because %s", reason)
            self.why = reason

    def _blank(self, reason: str) -> None:
        log.info("screen: blanking (%s)", reason)
        failed = [m for m in self._mechanisms if not self._apply(m, "off")]
        if failed:  # that one is still lit (a DRM display is handed back): it must show the portrait
            try:
                self._redraw()
            except Exception as exc:
                self._warn("redraw", f"screen: the portrait could not be redrawn ({exc})")
        self.state, self.why, self.since = BLANKED, reason, self._wall()
        self.changes += 1

    def _wake(self, reason: str) -> None:
        if not self._pending_wake:
            log.info("screen: waking (%s)", reason)
        for mechanism in reversed(self._mechanisms):  # the TV first on, the panel, then the picture
            self._apply(mechanism, "on")
        try:
            self._redraw()
        except Exception as exc:  # the display did not come back: retry, the portrait must return
            self._pending_wake = True
            self._next_retry = self._clock() + REOPEN_RETRY
            self._failed["redraw"] = f"the portrait could not be redrawn after waking: {exc}"
            self._warn("redraw", f"screen: the portrait could not be redrawn after waking ({exc}); "
                       f"retrying every {REOPEN_RETRY:g} s")
        else:
            if self._pending_wake:
                log.info("screen: the portrait is back on screen")
            self._pending_wake = False
            self._failed.pop("redraw", None)
        if self.state == BLANKED:
            self.state, self.why, self.since = ON, "", self._wall()
            self.changes += 1

    def _apply(self, mechanism: Mechanism, action: str) -> bool:
        try:
            getattr(mechanism, action)()
        except Exception as exc:  # never the daemon's end: the screen is only not powered as wished
            message = f"{mechanism.name}: {action}: {_why(exc)}"
            self._failed[mechanism.name] = message
            self._warn(mechanism.name + str(getattr(exc, "errno", "")),
                       f"screen: {message} (the frame keeps running)")
            return False
        self._failed.pop(mechanism.name, None)
        return True

    def _warn(self, key: str, message: str) -> None:
        """One warning per kind of failure (a file sink's ENOTTY would otherwise repeat at every change)."""
        if key in self._warned:
            log.debug("%s", message)
        else:
            self._warned.add(key)
            log.warning("%s", message)

    def restore(self) -> None:
        """At start: a framebuffer device left powered down (a daemon that died while dark) is powered up.
        (The DRM output comes up with SDL's mode set; a TV in CEC standby is left to its viewer.)"""
        for mechanism in self._mechanisms:
            if isinstance(mechanism, FbBlank) and mechanism.is_device:
                self._apply(mechanism, "on")

    def wake_for_exit(self) -> None:
        """The daemon stops: leave the portrait showing (as every stop does), not a powered-down panel."""
        if self.state == BLANKED or self._pending_wake:
            self._wake("stopping")

    def status(self) -> dict[str, object]:
        """The status socket's ``"screen"``."""
        s = self.settings
        since = datetime.datetime.fromtimestamp(self.since).astimezone().isoformat(timespec="seconds")
        return {
            "state": self.state,
            "why": self.why or None,
            "since": since,
            "idle_minutes": s.idle_minutes,
            "night": s.night,
            "by": [m.name for m in self._mechanisms],
            "errors": sorted(self._failed.values()),
        }


def drm_cards(drm_card: int | None) -> list[str]:
    """The given card, or every card (the first with a connected output is used)."""
    if drm_card is not None:
        return [f"/dev/dri/card{drm_card}"]
    return sorted(glob.glob("/dev/dri/card[0-9]*"), key=lambda p: int(p.rsplit("card", 1)[1]))


def kms_cards(display: object) -> list[str] | None:
    """The DRM card(s) a pygame display on SDL's kmsdrm driver may show on; None for any other display
    (a desktop window or SDL's dummy driver has no DRM master to take, a framebuffer has FBIOBLANK)."""
    if not isinstance(display, PygameSink):
        return None
    pygame = sys.modules.get("pygame")
    try:
        driver = str(pygame.display.get_driver()) if pygame is not None else ""
    except Exception:  # pygame.error: its display is not initialised
        return None
    if driver.lower() != "kmsdrm":
        return None
    index = os.environ.get(SDL_KMSDRM_DEVICE_INDEX, "")
    return drm_cards(int(index) if index.isdigit() else None)


def releasable(display: Any, reopen: Callable[[], Any]) -> Any:
    """``display`` wrapped in a :class:`ReleasableDisplay` if it is pygame's KMS/DRM one (DPMS needs its
    DRM master while blanked), else ``display`` itself."""
    cards = kms_cards(display)
    return display if cards is None else ReleasableDisplay(display, reopen, cards)


def mechanisms_for(settings: ScreenConfig, display: object, *, ioctl: Ioctl = fcntl.ioctl,
                   run: Run = subprocess.run) -> list[Mechanism]:
    """What powers this screen down: the panel's own way for the opened display (``panel = "auto"``:
    DPMS for pygame's KMS/DRM display, FBIOBLANK for a framebuffer device or file), then HDMI-CEC where
    configured."""
    found: list[Mechanism] = []
    if settings.panel == "auto":
        framebuffer = sys.modules.get("edge.framebuffer")  # not imported: no framebuffer sink exists
        if isinstance(display, ReleasableDisplay):
            found.append(DrmDpms(display, display.cards, ioctl=ioctl))
        elif framebuffer is not None and isinstance(display, framebuffer.FramebufferSink):
            found.append(FbBlank(str(display.path), ioctl=ioctl))
    if settings.cec_device:
        found.append(CecPower(settings.cec_device, run=run))
    return found
