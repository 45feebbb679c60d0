"""Display sinks: where the portrait is drawn, behind one small interface.

The loop shows a whole frame once (``show_full``) and from then on only redraws the pack's patch
rectangle (``update``): on a Pi that is the difference between copying 8 MB and a few hundred KB per
gaze change. Every sink can say what the screen shows now (``snapshot``), so tests and the status socket
see exactly what a viewer sees.

Sinks: :class:`PygameSink` (SDL; ``kmsdrm`` on a Pi console, ``dummy`` in tests),
:class:`edge.framebuffer.FramebufferSink` (``/dev/fbN`` or a plain file, RGB565 or XRGB8888) and
:class:`HeadlessSink` (memory only). :func:`open_display` picks one from configuration; kind ``auto``
(the default) chooses between the first two on the machine it runs on (:func:`choose_sink`): KMS/DRM
through pygame where pygame's SDL was built with kmsdrm (the OS's python3-pygame; PyPI's wheel is not) and
a DRM card has a connected output, else the framebuffer, else one error naming what was tried.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.drm_outputs import SYSFS_DRM, connected_card, describe
from edge.errors import DisplayError  # re-exported: callers import it from here
from edge.sdl_drivers import SdlVideo, sdl_video

log = logging.getLogger(__name__)

Rect = tuple[int, int, int, int]
Size = tuple[int, int]

#: Display kinds accepted by :func:`open_display`.
KINDS = ("auto", "pygame", "fbdev", "file", "headless")
#: The framebuffer ``auto`` falls back to (and ``fbdev`` opens) unless a device is configured.
DEFAULT_FB = "/dev/fb0"
#: SDL hint (also read from the environment) choosing /dev/dri/cardN for the kmsdrm driver, SDL >= 2.24.
#: A Pi 5 has two DRM cards (the display controller is not card0 there), so this is configurable.
SDL_KMSDRM_DEVICE_INDEX = "SDL_KMSDRM_DEVICE_INDEX"
MAX_SIDE = 16384


class DisplaySink(Protocol):
    """What the service draws on. ``rect`` is ``(x, y, width, height)`` in screen pixels."""

    @property
    def size(self) -> Size:
        """The screen's ``(width, height)``."""
        ...

    def show_full(self, image: np.ndarray) -> None:
        """Draw a whole screen-sized HxWx3 uint8 RGB image."""
        ...

    def update(self, rect: Rect, patch: np.ndarray) -> None:
        """Redraw only ``rect`` with ``patch`` (its HxWx3 uint8 RGB content)."""
        ...

    def snapshot(self) -> np.ndarray:
        """What the screen shows now, as a new HxWx3 uint8 RGB array."""
        ...

    def close(self) -> None:
        ...


def check_size(size: Any, what: str = "display size") -> Size:
    """A ``(width, height)`` of positive ints, or a one-line :class:`DisplayError` naming it (sizes come
    from the user's config or command line when a display opens)."""
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                       for v in size)):
        raise DisplayError(f"{what} {size!r}: expected (width, height), each 1..{MAX_SIDE}")
    return int(size[0]), int(size[1])


def check_image(size: Size, image: np.ndarray) -> None:
    """A full-screen image must be exactly the screen's size, RGB, uint8 (a ValueError otherwise: images
    are made by our own code, so a wrong one is a bug)."""
    w, h = size
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (h, w, 3):
        shape = getattr(image, "shape", None)
        raise ValueError(f"image {shape} {getattr(image, 'dtype', type(image).__name__)}: expected ({h}, {w}, 3) "
                         f"uint8 for a {w}x{h} screen")


def check_update(size: Size, rect: Rect, patch: np.ndarray) -> Rect:
    """Validate a patch update cheaply (a few comparisons: this runs for every gaze change)."""
    try:
        x, y, w, h = (int(v) for v in rect)
    except (TypeError, ValueError):
        raise ValueError(f"rect {rect!r}: expected (x, y, width, height)") from None
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > size[0] or y + h > size[1]:
        raise ValueError(f"rect {rect!r}: outside the {size[0]}x{size[1]} screen")
    if not isinstance(patch, np.ndarray) or patch.dtype != np.uint8 or patch.shape != (h, w, 3):
        raise ValueError(f"patch {getattr(patch, 'shape', None)}: expected ({h}, {w}, 3) uint8 for rect {rect!r}")
    return x, y, w, h


class HeadlessSink:
    """A screen in memory: for ``mona-edge run`` without a display, the demo, and tests."""

    def __init__(self, size: Size):
        self._size = check_size(size)
        self._screen = np.zeros((self._size[1], self._size[0], 3), np.uint8)
        #: How many updates (full or partial) were drawn: lets the status report show the loop draws.
        self.updates = 0

    @property
    def size(self) -> Size:
        return self._size

    def show_full(self, image: np.ndarray) -> None:
        check_image(self._size, image)
        np.copyto(self._screen, image)
        self.updates += 1

    def update(self, rect: Rect, patch: np.ndarray) -> None:
        x, y, w, h = check_update(self._size, rect, patch)
        self._screen[y:y + h, x:x + w] = patch
        self.updates += 1

    def snapshot(self) -> np.ndarray:
        return self._screen.copy()

    def close(self) -> None:
        """Nothing to release; the image stays readable."""


class PygameSink:
    """A full-screen SDL window through pygame.

    On a Pi console (no X or Wayland) SDL's ``kmsdrm`` driver drives the screen directly; SDL2 has no
    fbdev driver. ``drm_card`` selects ``/dev/dri/cardN`` (needed on a Pi 5, where the display controller
    is not always card 0). ``driver`` overrides SDL's choice (tests use ``dummy``). SDL reads both only at
    initialisation, so they are set in the environment before pygame's display starts.

    ``fullscreen`` None means full screen unless the driver is one without a screen (``dummy``,
    ``offscreen``), whose only "full-screen" mode is a fixed 1024x768. ``size`` None takes the screen's
    current mode; a given size that the screen does not provide is an error, not a silent rescale.
    """

    def __init__(self, size: Size | None = None, *, driver: str | None = None,
                 drm_card: int | None = None, fullscreen: bool | None = None):
        if size is not None:
            size = check_size(size)
        if drm_card is not None and (not isinstance(drm_card, int) or isinstance(drm_card, bool)
                                     or not 0 <= drm_card <= 99):
            raise DisplayError(f"drm_card {drm_card!r}: expected an integer 0..99 (/dev/dri/cardN)")
        if driver:
            os.environ["SDL_VIDEODRIVER"] = driver
        elif not os.environ.get("SDL_VIDEODRIVER") and not (os.environ.get("DISPLAY")
                                                              or os.environ.get("WAYLAND_DISPLAY")):
            os.environ["SDL_VIDEODRIVER"] = "kmsdrm"
        if drm_card is not None:
            os.environ[SDL_KMSDRM_DEVICE_INDEX] = str(drm_card)
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            raise DisplayError("display 'pygame': pygame is not installed (pip install 'mona-edge[pi]')") from exc
        self._pg = pygame
        where = f"SDL driver {os.environ.get('SDL_VIDEODRIVER')!r}" + (
            f", /dev/dri/card{drm_card}" if drm_card is not None else "")
        if fullscreen is None:
            fullscreen = os.environ.get("SDL_VIDEODRIVER") not in ("dummy", "offscreen")
        if not fullscreen and size is None:
            raise DisplayError("display 'pygame': a window that is not full screen needs a size")
        wanted = os.environ.get("SDL_VIDEODRIVER")
        if pygame.display.get_init() and wanted and pygame.display.get_driver() != wanted:
            # SDL takes the driver only at initialisation: a display this process started earlier on
            # another driver (a closed sink's, a tool's) would be reused as it is, not opened as asked.
            pygame.display.quit()
        try:
            pygame.display.init()
            self._surface = pygame.display.set_mode(size or (0, 0), pygame.FULLSCREEN if fullscreen else 0)
        except pygame.error as exc:
            pygame.display.quit()
            raise DisplayError(f"display 'pygame' ({where}): {exc}; on a Pi the service user needs the "
                               f"'video' and 'render' groups and no desktop holding the screen") from exc
        pygame.mouse.set_visible(False)
        self._size = self._surface.get_size()
        if size is not None and self._size != size:
            actual = self._size
            pygame.display.quit()
            raise DisplayError(f"display 'pygame' ({where}): asked for {size[0]}x{size[1]}, got "
                               f"{actual[0]}x{actual[1]}")
        self._open = True

    @property
    def size(self) -> Size:
        return self._size

    def _blit(self, x: int, y: int, w: int, h: int, pixels: np.ndarray) -> None:
        if not pixels.flags.c_contiguous:
            pixels = np.ascontiguousarray(pixels)
        # frombuffer wraps the array's memory: no copy before the blit converts to the screen's format.
        source = self._pg.image.frombuffer(pixels, (w, h), "RGB")  # type: ignore[arg-type]  # any buffer works
        self._surface.blit(source, (x, y))
        self._pg.display.update((x, y, w, h))
        self._pg.event.pump()  # keep SDL's event queue drained; nothing here reads input

    def show_full(self, image: np.ndarray) -> None:
        check_image(self._size, image)
        self._blit(0, 0, self._size[0], self._size[1], image)

    def update(self, rect: Rect, patch: np.ndarray) -> None:
        x, y, w, h = check_update(self._size, rect, patch)
        self._blit(x, y, w, h, patch)

    def snapshot(self) -> np.ndarray:
        to_bytes = getattr(self._pg.image, "tobytes", None) or self._pg.image.tostring
        data = to_bytes(self._surface, "RGB")
        return np.frombuffer(data, np.uint8).reshape(self._size[1], self._size[0], 3).copy()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._pg.display.quit()


# --- sink = "auto" ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SinkChoice:
    """What ``auto`` chose and why: logged when the screen opens, printed by ``mona-edge doctor``."""

    sink: str  #: ``pygame`` or ``fbdev``
    reason: str  #: one phrase: what was found (and what was passed over on the way)
    driver: str | None = None  #: pygame: the SDL video driver (None: SDL's own choice, a desktop window)
    drm_card: int | None = None  #: pygame with kmsdrm: /dev/dri/cardN
    device: str | None = None  #: fbdev: the framebuffer device

    @property
    def target(self) -> str:
        """What will be drawn on, e.g. ``pygame (kmsdrm, /dev/dri/card1)`` or ``framebuffer /dev/fb0``."""
        if self.sink == "fbdev":
            return f"framebuffer {self.device}"
        where = [self.driver or "SDL's choice"] + ([f"/dev/dri/card{self.drm_card}"] if self.drm_card is not None else [])
        return f"pygame ({', '.join(where)})"

    def __str__(self) -> str:
        return f"{self.target}: {self.reason}"


def _sdl_or_reason(sdl: Callable[[], SdlVideo]) -> tuple[SdlVideo | None, str]:
    try:
        return sdl(), ""
    except DisplayError as exc:
        return None, str(exc)


def choose_sink(*, device: str | None = None, drm_card: int | None = None, drm_root: Path = SYSFS_DRM,
                sdl: Callable[[], SdlVideo] = sdl_video, environ: Mapping[str, str] = os.environ) -> SinkChoice:
    """Decide what ``sink = "auto"`` draws on, without opening anything (so ``doctor`` can ask too).

    In order: an ``SDL_VIDEODRIVER`` the environment names and SDL has (tests' ``dummy``); a desktop
    session (``WAYLAND_DISPLAY``/``DISPLAY`` and SDL's driver for it: a full-screen window, since a
    compositor holds the DRM device); KMS/DRM where SDL has ``kmsdrm`` and a DRM card has a connected
    connector (``drm_card`` given: that card), read from ``drm_root``; the framebuffer ``device``
    (default /dev/fb0) if it exists. Otherwise a :class:`DisplayError` naming each thing that was tried.
    """
    video, missing = _sdl_or_reason(sdl)
    drivers = video.drivers if video is not None else ()
    passed: list[str] = []  # what was looked at and not taken, in order
    if video is None:
        passed.append(missing)
    sdl_name = f"SDL {video.version}" if video is not None else "SDL"

    wanted = (environ.get("SDL_VIDEODRIVER") or "").lower()
    if wanted and wanted != "kmsdrm":
        if wanted in drivers:
            return SinkChoice("pygame", f"SDL_VIDEODRIVER={wanted} in the environment", driver=wanted)
        passed.append(f"SDL_VIDEODRIVER={wanted} is not one of {sdl_name}'s drivers")
    for variable, driver in (("WAYLAND_DISPLAY", "wayland"), ("DISPLAY", "x11")):
        if environ.get(variable) and driver in drivers:
            return SinkChoice("pygame", f"a desktop session ({variable}={environ[variable]}): a full-screen window")

    if video is not None and "kmsdrm" not in drivers:
        passed.append(f"pygame {video.pygame}'s {sdl_name} has no kmsdrm (its drivers: {', '.join(drivers)})")
    elif video is not None:
        if drm_card is not None:
            return SinkChoice("pygame", f"{sdl_name} has kmsdrm; [display] drm_card = {drm_card}",
                              driver="kmsdrm", drm_card=drm_card)
        card, connectors = connected_card(drm_root)
        if card is not None:
            names = ", ".join(f"{c.name}" for c in connectors if c.card == card and c.status == "connected")
            return SinkChoice("pygame", f"{sdl_name} has kmsdrm and card{card} has a connected output ({names})",
                              driver="kmsdrm", drm_card=card)
        passed.append(f"{sdl_name} has kmsdrm but no DRM output is connected ({describe(connectors)} in {drm_root})")

    fb = device or DEFAULT_FB
    if Path(fb).exists():
        return SinkChoice("fbdev", "; ".join(passed), device=fb)  # the reason: why not KMS/DRM
    passed.append(f"{fb}: no such framebuffer")
    raise DisplayError(f"display 'auto': no screen to drive: {'; '.join(passed)} (connect the screen; on a Pi "
                       f"use Raspberry Pi OS's python3-pygame and dtoverlay=vc4-kms-v3d)")


#: The choice each ``auto`` sink was opened with (status and doctor ask :func:`choice_of`).
_CHOICES: weakref.WeakKeyDictionary[Any, SinkChoice] = weakref.WeakKeyDictionary()


def choice_of(sink: Any) -> SinkChoice | None:
    """What ``auto`` chose for ``sink`` and why (None: the sink was configured by name, not chosen)."""
    try:
        return _CHOICES.get(sink)
    except TypeError:  # not weak-referenceable, so never recorded
        return None


def _open_fbdev(device: str, size: Size | None, sysfs_dir: Path | None = None) -> DisplaySink:
    from edge.framebuffer import FramebufferSink

    sink = FramebufferSink(device, sysfs_dir=sysfs_dir)
    if size is not None and sink.size != check_size(size):
        actual = sink.size
        sink.close()
        raise DisplayError(f"{device}: framebuffer is {actual[0]}x{actual[1]}, configuration "
                           f"asks for {size[0]}x{size[1]}")
    return sink


def open_auto(size: Size | None = None, *, device: str | None = None, drm_card: int | None = None,
              drm_root: Path = SYSFS_DRM, fb_sysfs: Path | None = None,
              sdl: Callable[[], SdlVideo] = sdl_video) -> DisplaySink:
    """Open what :func:`choose_sink` chose, and log the choice with its reason.

    A KMS/DRM screen that SDL then cannot open (another program holds it, a missing group) falls back to
    the framebuffer when there is one, so a fault shows the portrait rather than a black screen; the
    fallback and SDL's own error are logged and recorded. ``fb_sysfs``: the framebuffer's sysfs folder
    (default /sys/class/graphics/<device name>)."""
    choice = choose_sink(device=device, drm_card=drm_card, drm_root=drm_root, sdl=sdl)
    sink: DisplaySink
    if choice.sink == "pygame":
        try:
            sink = PygameSink(size, driver=choice.driver, drm_card=choice.drm_card)
        except DisplayError as exc:
            fb = device or DEFAULT_FB
            if not Path(fb).exists():
                raise DisplayError(f"display 'auto' chose {choice}, which failed: {exc}; and {fb}: no such "
                                   f"framebuffer to fall back to") from exc
            log.warning("display: %s failed (%s); falling back to %s", choice.target, exc, fb)
            choice = SinkChoice("fbdev", f"{choice.target} failed to open: {exc}", device=fb)
            sink = _open_fbdev(fb, size, fb_sysfs)
    else:
        sink = _open_fbdev(choice.device or DEFAULT_FB, size, fb_sysfs)
    log.info("display: %s", choice)
    _CHOICES[sink] = choice
    return sink


def open_display(kind: str, *, device: str | None = None, size: Size | None = None,
                 drm_card: int | None = None, output: str | None = None, bpp: int = 32) -> DisplaySink:
    """The sink for a configured display kind.

    ``auto``: :func:`open_auto` (KMS/DRM via pygame, else the framebuffer ``device``, default /dev/fb0;
    ``drm_card`` forces a card). ``pygame``: full-screen SDL (``size`` None = the screen's own mode; ``drm_card`` for kmsdrm).
    ``fbdev``: a framebuffer device (``device``, default ``/dev/fb0``), geometry from sysfs; ``size``,
    if given, must match it. ``file``: a plain file laid out like a framebuffer (``output`` path,
    ``size`` and ``bpp`` 16 or 32 required). ``headless``: memory only (``size`` required).
    """
    if kind not in KINDS:
        raise DisplayError(f"display kind {kind!r}: expected one of {', '.join(KINDS)}")

    def refuse(**given: Any) -> None:
        for key, value in given.items():
            if value is not None:
                raise DisplayError(f"display kind {kind!r} takes no {key} (got {value!r})")

    if kind == "auto":
        refuse(output=output)
        return open_auto(size, device=device, drm_card=drm_card)
    if kind == "pygame":
        refuse(device=device, output=output)
        return PygameSink(size, drm_card=drm_card)
    if kind == "headless":
        refuse(device=device, output=output, drm_card=drm_card)
        if size is None:
            raise DisplayError("display kind 'headless': needs size (width, height)")
        return HeadlessSink(size)

    if kind == "fbdev":
        refuse(output=output, drm_card=drm_card)
        return _open_fbdev(device or DEFAULT_FB, size)
    from edge.framebuffer import FramebufferSink

    refuse(device=device, drm_card=drm_card)
    if output is None or size is None:
        raise DisplayError("display kind 'file': needs output (a file path) and size (width, height)")
    w, h = check_size(size)
    return FramebufferSink(output, width=w, height=h, bpp=bpp)
