"""Reading still images from disk for the command-line tools (never camera frames: those stay in memory).

One reader for every image a user names (a photo for ``mona-edge detect``, a portrait for ``build-pack``),
so each protection holds for all of them:

* only regular files are opened: a named pipe would block the read forever, and opening a device can
  act (opening ``/dev/watchdog`` arms the Pi's watchdog), so the path is checked *before* it is opened
  and the open descriptor is checked again (the path may have been swapped in between);
* an image has a pixel budget (:data:`MAX_PIXELS`), checked from the header before anything is decoded:
  a 20000x20000 PNG is a few hundred kilobytes on disk and over a gigabyte in memory;
* images with more than 8 bits a sample (16-bit grey or colour PNG/TIFF/PPM, 32-bit integer or float
  TIFF) are scaled to 8 bits by the range their pixels really use, never clipped (see
  :func:`scale_to_8bit` for why not by the container's nominal range);
* whatever Pillow's decoders raise on a malformed file becomes one :class:`ImageError` line naming it,
  and what the C libraries under them print on their own (libtiff's "TIFFFetchNormalTag: ...",
  libpng's "libpng error: ...", often naming some temporary file) goes to the debug log, not the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge.errors import ImageError

log = logging.getLogger(__name__)

#: The most pixels one image may have: 64 Mi px (8192 x 8192). The largest phone cameras write 48-64 MP
#: (9248 x 6936 = 64.1 MP fits); one RGB copy of it is 192 MiB, and reading holds about three copies at
#: once, which a 1 GiB Pi can still afford. It is below Pillow's own warning limit (89.5 MP), so Pillow's
#: decompression-bomb check never speaks first for an image this budget would accept.
MAX_PIXELS = 1 << 26

#: Exceptions Pillow's format plugins and decoders raise on malformed or hostile bytes (found by reading
#: the plugins and by fuzzing ``mona-edge detect``: tests/test_detect_cli.py). Reading the user's file is
#: the boundary where they mean "this file is broken", so they become an ImageError there and only there.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, TypeError, SyntaxError, EOFError, IndexError, KeyError, ZeroDivisionError,
    OverflowError, struct.error, zlib.error, Image.DecompressionBombError,
)

#: The formats a photo or a portrait comes in; Pillow is asked for these only. Why not all it knows: some
#: of its plugins hand the file to other programs (EPS runs Ghostscript) or read formats nobody photographs
#: in (FITS, GRIB, PSD layers), each one more parser exposed to a file that may be hostile.
PHOTO_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "AVIF", "BMP", "GIF", "PPM", "TGA", "JPEG2000", "QOI")

#: EXIF orientation -> the transpose that shows the picture upright (the mapping ImageOps.exif_transpose uses).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112

#: File types other than a regular file, as a user would name them.
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path, what: str = "image") -> IO[bytes]:
    """``path`` opened for reading if, and only if, it is a regular file (symlinks to one are fine).

    Checked by ``stat`` before the open (a device's open may itself do something) and by ``fstat``
    after it, with ``O_NONBLOCK`` so that a FIFO swapped in between cannot block the open either.
    """
    try:
        before = os.stat(path)
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: {what} not found") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(before.st_mode):
        raise ImageError(f"{path}: is {_kind(before.st_mode)}; the {what} must be a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from exc
    try:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode):
            raise ImageError(f"{path}: is {_kind(after.st_mode)}; the {what} must be a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_budget(path: Path, size: tuple[int, int], max_pixels: int = MAX_PIXELS, what: str = "image") -> None:
    """Refuse, from the header's size alone, an image with no pixels or more than ``max_pixels``."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{path}: the {what} is {width}x{height}: no pixels")
    if width * height > max_pixels:
        raise ImageError(f"{path}: the {what} is {width}x{height} ({width * height / 1e6:.1f} MP); at most "
                         f"{max_pixels / 1e6:.1f} MP are allowed (a decompression bomb is refused unread)")


def scale_to_8bit(values: np.ndarray, nominal_max: float = 65535.0) -> np.ndarray:
    """More-than-8-bit samples as uint8, the range the pixels really use stretched over 0..255.

    Why the real range and not the container's nominal one (65535 for 16 bits): a 16-bit file says how
    wide its samples *may* be, not how many bits the sensor filled. Machine-vision, thermal and depth
    cameras write 10- or 12-bit data into 16-bit PNGs and TIFFs (0..4095), which by the nominal range
    would be a black picture (0..15) in which no face can be found; 32-bit integer and float images have
    no nominal range at all. For a photo that does span 0..65535 the two are the same. An image of one
    value has no range to stretch: it keeps that value on the nominal scale (0..``nominal_max``).
    NaN counts as the darkest value and infinities as the ends.
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            shown = values[finite]
            lo = float(shown.min()) if shown.size else 0.0
            hi = float(shown.max()) if shown.size else 0.0
            values = np.where(np.isposinf(values), hi, np.where(finite, values, lo))
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        level = int(np.clip(np.floor(lo * 255.0 / nominal_max + 0.5), 0, 255))
        return np.full(values.shape, level, np.uint8)
    if values.dtype in (np.uint8, np.uint16) or values.dtype.newbyteorder("=") == np.dtype(np.uint16):
        levels = np.arange(int(hi) + 1, dtype=np.float64)  # a lookup table: one byte a pixel, exact
        lut = np.clip(np.floor((levels - lo) * (255.0 / (hi - lo)) + 0.5), 0, 255).astype(np.uint8)
        return lut[values.astype(np.uint16, copy=False)]
    out = np.empty(values.shape, np.uint8)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    step = 1 << 20  # a million samples at a time: float64 scratch stays at 8 MiB
    for start in range(0, flat_in.size, step):
        chunk = flat_in[start:start + step].astype(np.float64)
        flat_out[start:start + step] = np.clip(np.floor((chunk - lo) * (255.0 / (hi - lo)) + 0.5), 0, 255)
    return out


def _tile_rawmode(tile: object) -> tuple[str, object]:
    """(rawmode, the argument after it) of one Pillow tile, whatever its plugin put there."""
    args = tile[3] if isinstance(tile, tuple) and len(tile) > 3 else None
    if isinstance(args, str):
        return args, None
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0], args[1] if len(args) > 1 else None
    return "", None


def _deep_colour(img: Image.Image) -> bool:
    """True when Pillow would keep only the top 8 bits of a 16-bit colour (or grey+alpha) file.

    Pillow has no 16-bit colour mode: it reads a 16-bit RGB(A) or LA PNG, TIFF or PPM as 8-bit, taking the
    high byte (or scaling by the PPM's maxval), which turns 12-bit data into a black picture.
    """
    if img.mode not in ("RGB", "RGBA", "LA"):
        return False
    for tile in getattr(img, "tile", ()):  # an ImageFile's, before loading
        rawmode, extra = _tile_rawmode(tile)
        if ";16" in rawmode:
            return True
        if img.format == "PPM" and isinstance(extra, int) and extra > 255:  # the PPM's maxval
            return True
    return False


def _decode_deep_colour(fh: IO[bytes], size: tuple[int, int]) -> np.ndarray | None:
    """The file's 16-bit samples as RGB uint8 by :func:`scale_to_8bit`, or None when OpenCV cannot read it.

    OpenCV (already the detector's dependency) decodes 16-bit colour PNG, TIFF and PPM; it is asked only
    after Pillow has parsed the header and the size has passed the budget. It ignores EXIF orientation,
    which the caller applies as for every other image.
    """
    import cv2

    fh.seek(0)
    decoded = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.shape[:2] != (size[1], size[0]):
        return None
    if decoded.ndim == 2 or decoded.shape[2] <= 2:  # grey (with or without alpha): the alpha is dropped
        grey = scale_to_8bit(decoded if decoded.ndim == 2 else decoded[..., 0])
        return np.repeat(grey[..., None], 3, axis=2)
    return scale_to_8bit(np.ascontiguousarray(decoded[..., 2::-1]))  # BGR(A) -> RGB, alpha dropped


def _to_rgb(img: Image.Image, fh: IO[bytes], deep_colour: bool) -> Image.Image:
    """``img`` as an 8-bit RGB image (not yet turned upright); ``deep_colour``: :func:`_deep_colour`'s
    answer, asked before anything loaded the pixels (loading drops the tiles it reads)."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        grey = scale_to_8bit(np.asarray(img))
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")
    if deep_colour:
        img.load()  # Pillow checks the data first: a broken file fails here, not inside libpng's own messages
        rgb = _decode_deep_colour(fh, img.size)
        if rgb is not None:
            return Image.fromarray(rgb, "RGB")
        log.debug("%s: OpenCV cannot read its 16-bit samples; using Pillow's 8-bit reading", img.format)
    return img if img.mode == "RGB" else img.convert("RGB")


def _orientation(img: Image.Image) -> Image.Transpose | None:
    """How to turn ``img`` upright; None for upright or unknown (a broken EXIF block leaves it as stored)."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION)
    except DECODE_ERRORS as exc:
        log.debug("unreadable EXIF, orientation ignored: %s", exc)
        return None
    return _ORIENTATION.get(value) if isinstance(value, int) else None


def _formats() -> list[str]:
    """:data:`PHOTO_FORMATS` this Pillow has (an older one may lack AVIF or QOI)."""
    Image.init()
    return [name for name in PHOTO_FORMATS if name in Image.OPEN]


@contextlib.contextmanager
def _native_messages_logged(path: Path) -> Iterator[None]:
    """While decoding, file descriptor 2 goes to a temporary file, logged at debug level afterwards.

    libtiff, libpng and OpenCV write warnings straight to fd 2, bypassing Python: for a damaged file the
    user would see them beside (or instead of) the one line that names the file. Only the command-line
    readers use this (never the daemon, whose other threads share fd 2).
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to keep clean
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read(8192).decode(errors="replace").strip()
                if text:
                    log.debug("%s: the decoders said: %s", path, " | ".join(text.splitlines()))
    finally:
        os.close(saved)


def read_rgb(path: Path, what: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any Pillow-readable file as an (H, W, 3) uint8 RGB array, upright; one-line errors naming the file.

    Upright: phone cameras store a portrait photo's pixels sideways with an EXIF orientation tag, and every
    viewer (and whoever marks faces on it) shows it turned. Faces, eyes and portraits must be where people
    see them, not where the sensor put them.

    The file is the user's, so every way it fails (missing, not a regular file, unreadable, not an image,
    over the pixel budget, a broken decode) is an :class:`ImageError` (module docstring).
    """
    with open_regular(path, what) as fh, _native_messages_logged(path):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                # Pillow warns, then decodes, between its own limit and twice it: here that is a refusal.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(fh, formats=_formats()) as img:
                    check_budget(path, img.size, max_pixels, what)
                    deep = _deep_colour(img)  # before _orientation: a PNG's EXIF may sit after its pixels
                    turn = _orientation(img)
                    rgb = _to_rgb(img, fh, deep)
                    if turn is not None:
                        rgb = rgb.transpose(turn)
                    array = np.asarray(rgb)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's own check, at open, for sizes far over the budget: its message has the pixel count.
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"has {int(found.group(1)) / 1e6:.1f} MP" if found else "is larger"
            raise ImageError(f"{path}: the {what} {size}; at most {max_pixels / 1e6:.1f} MP are allowed "
                             "(a decompression bomb is refused unread)") from exc
        except MemoryError as exc:
            raise ImageError(f"{path}: not enough memory to decode the {what}") from exc
        except UnidentifiedImageError as exc:
            raise ImageError(f"{path}: not a readable {what} (not any of {', '.join(_formats())})") from exc
        except DECODE_ERRORS as exc:
            raise ImageError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from exc
    for warning in caught:  # a readable file with a blemish (corrupt EXIF, a truncated chunk): not an error
        log.debug("%s: %s", path, warning.message)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ImageError(f"{path}: the {what} decoded to {array.dtype} {array.shape}, not RGB")
    return array
