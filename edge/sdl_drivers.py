"""The video drivers compiled into the SDL library pygame really loaded, asked of SDL itself.

Why ask SDL: whether a pygame can drive a Pi console depends on how *its* SDL was built, not on
pygame's version. PyPI's pygame wheels bundle their own libSDL2 (2.6.1's aarch64 wheel: X11, Wayland,
offscreen and dummy only, no KMSDRM); Debian's and Raspberry Pi OS's python3-pygame link the OS's
libSDL2, which has KMSDRM. So the library is found where pygame put it (``/proc/self/maps`` after
``import pygame``: the ``libSDL2-2…`` mapping) and its own ``SDL_GetNumVideoDrivers`` /
``SDL_GetVideoDriver`` are called through ctypes. Both work before ``SDL_Init`` and touch no device:
nothing here initialises pygame or SDL, so this is safe beside a running display and in a doctor run.

Standard library only (besides pygame): ``python3 -m edge.sdl_drivers`` prints the answer as JSON, so a
test can ask any interpreter (the OS's ``/usr/bin/python3``, the emulated Pi's) about its own pygame.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.errors import DisplayError

#: A mapped file that is SDL2 itself: ``libSDL2-2.0.so.0.2600.5`` (the OS's) or
#: ``libSDL2-2-1667c208.0.so.0.2800.4`` (a wheel's, renamed by auditwheel); not libSDL2_mixer and friends.
_SDL2_FILE = re.compile(r"^libSDL2-2[.-]")
#: What to install where pygame is missing (the Pi's pygame is the OS's: its SDL has KMSDRM).
PYGAME_HINT = "on a Pi: sudo apt install python3-pygame (the venv sees it through system site-packages)"


@dataclass(frozen=True)
class SdlVideo:
    """What pygame's SDL can draw with."""

    library: str  #: the SDL2 file pygame loaded
    version: str  #: SDL's own runtime version, e.g. ``2.26.5``
    pygame: str  #: pygame's version
    #: Compiled video drivers in SDL's order of preference, lower case (SDL 2.26 calls it ``KMSDRM``,
    #: 2.28 ``kmsdrm``; SDL_VIDEODRIVER matches either way), e.g. ``("x11", "wayland", "kmsdrm", ...)``.
    drivers: tuple[str, ...]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint8), ("minor", ctypes.c_uint8), ("patch", ctypes.c_uint8)]


def _import_pygame():
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as exc:
        raise DisplayError(f"pygame is not installed ({PYGAME_HINT})") from exc
    return pygame


def mapped_sdl_library(maps: Path = Path("/proc/self/maps")) -> str | None:
    """The SDL2 library file mapped into this process (None where there is none, or no /proc)."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and _SDL2_FILE.match(os.path.basename(parts[5])):
            return parts[5]
    return None


def _open_sdl(pygame) -> tuple[ctypes.CDLL, str]:
    path = mapped_sdl_library()
    if path is not None:
        return ctypes.CDLL(path), path
    # No /proc, or SDL linked into pygame itself: a handle on pygame.base resolves symbols through
    # the libraries it was linked with, so it still reaches the SDL that pygame uses.
    base = pygame.base.__file__
    lib = ctypes.CDLL(base)
    if not hasattr(lib, "SDL_GetNumVideoDrivers"):
        raise DisplayError(f"pygame {pygame.version.ver}: cannot find the SDL library it loaded (looked in "
                           f"/proc/self/maps and {base})")
    return lib, base


def sdl_video() -> SdlVideo:
    """Import pygame (without initialising it) and ask its SDL for its compiled video drivers."""
    pygame = _import_pygame()
    lib, path = _open_sdl(pygame)
    lib.SDL_GetNumVideoDrivers.restype = ctypes.c_int
    lib.SDL_GetNumVideoDrivers.argtypes = []
    lib.SDL_GetVideoDriver.restype = ctypes.c_char_p
    lib.SDL_GetVideoDriver.argtypes = [ctypes.c_int]
    lib.SDL_GetVersion.restype = None
    lib.SDL_GetVersion.argtypes = [ctypes.POINTER(_Version)]
    count = lib.SDL_GetNumVideoDrivers()
    names = []
    for index in range(max(count, 0)):
        name = lib.SDL_GetVideoDriver(index)
        if name:
            names.append(name.decode("ascii", "replace").lower())
    version = _Version()
    lib.SDL_GetVersion(ctypes.byref(version))
    return SdlVideo(library=path, version=f"{version.major}.{version.minor}.{version.patch}",
                    pygame=str(pygame.version.ver), drivers=tuple(names))


def compiled_video_drivers() -> list[str]:
    """The video drivers compiled into the SDL that pygame loads here (``kmsdrm`` among them or not).

    Raises :class:`DisplayError` when pygame is not installed."""
    return list(sdl_video().drivers)


if __name__ == "__main__":
    print(json.dumps(asdict(sdl_video())))
