"""Display sinks: where the portrait is drawn, behind one small interface.

The loop shows a whole frame once (``show_full``) and from then on only redraws the pack's patch
rectangle (``update``): on a Pi that is the difference between copying 8 MB and a few hundred KB per
gaze change. Every sink can say what the screen shows now (``snapshot``), so tests and the status socket
see exactly what a viewer sees.

Sinks: :class:`PygameSink` (SDL; ``kmsdrm`` on a Pi console, ``dummy`` in tests),
:class:`edge.framebuffer.FramebufferSink` (``/dev/fbN`` or a plain file, RGB565 or XRGB8888) and
:class:`HeadlessSink` (memory only). :func:`open_display` picks one from configuration.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from edge.errors import DisplayError  # re-exported: callers import it from here

Rect = tuple[int, int, int, int]
Size = tuple[int, int]

#: Display kinds accepted by :func:`open_display`.
KINDS = ("pygame", "fbdev", "file", "headless")
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


def open_display(kind: str, *, device: str | None = None, size: Size | None = None,
                 drm_card: int | None = None, output: str | None = None, bpp: int = 32) -> DisplaySink:
    """The sink for a configured display kind.

    ``pygame``: full-screen SDL (``size`` None = the screen's own mode; ``drm_card`` for kmsdrm).
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

    if kind == "pygame":
        refuse(device=device, output=output)
        return PygameSink(size, drm_card=drm_card)
    if kind == "headless":
        refuse(device=device, output=output, drm_card=drm_card)
        if size is None:
            raise DisplayError("display kind 'headless': needs size (width, height)")
        return HeadlessSink(size)

    from edge.framebuffer import FramebufferSink

    if kind == "fbdev":
        refuse(output=output, drm_card=drm_card)
        sink = FramebufferSink(device or "/dev/fb0")
        if size is not None and sink.size != check_size(size):
            actual = sink.size
            sink.close()
            raise DisplayError(f"{device or '/dev/fb0'}: framebuffer is {actual[0]}x{actual[1]}, configuration "
                               f"asks for {size[0]}x{size[1]}")
        return sink
    refuse(device=device, drm_card=drm_card)
    if output is None or size is None:
        raise DisplayError("display kind 'file': needs output (a file path) and size (width, height)")
    w, h = check_size(size)
    return FramebufferSink(output, width=w, height=h, bpp=bpp)
