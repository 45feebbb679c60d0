"""The gaze pack: one reader for the Pi, one writer for the workstation, one schema for both.

A pack is a folder (or a ``.tar`` / ``.tar.gz`` of one)::

    manifest.json
    base.png            the whole painting, canvas-sized, RGB
    frames/00.png ...   the head patch of each frame (all patch-sized), or whole frames when patch is null

``manifest.json`` (written with sorted keys; every key required, unknown keys refused)::

    format "mona-edge-gaze-pack", format_version 1, name, frame_count (2..255),
    canvas {width, height}, patch {x, y, width, height} or null,
    eyes {right: [x, y], left: [x, y]}      the portrait's eye centres, canvas coordinates
    gaze {span_deg: [low, high], measured: [one value per frame, -1 left .. +1 right] or null}
    files {"base.png": {sha256, bytes}, "frames/00.png": {...}, ...}   exactly the pack's images
    generator {method, tool, parameters {...}}, credits [{work, author, source, licence}, ...] (>= 1)

Frame names have two digits (``frames/07.png``), three when there are more than 100 frames.

Frame 0 looks to the viewer's left, the last frame to the right. Every file is listed in the manifest with
its size and sha256, and :func:`load_pack` checks all of them (and every image's size) before it returns,
so a damaged or half-copied pack raises :class:`PackError` while the caller's previous pack keeps running.

Nothing in a pack can hurt the daemon reading it: the manifest is bounded in size and nesting before it
is parsed; only regular files inside the pack's folder are opened (no FIFO to block on, no device, no
link out); an archive is streamed and each member judged from its header before anything is written, so
a tar bomb costs a header; and the memory a pack will take on this screen is computed from its manifest
and refused above a budget before any image is decoded. Loading then holds the pack plus one frame.

Loading also does, once, everything the per-frame path would otherwise repeat: the canvas is fitted into
the screen (aspect kept, centred on black), rotated for the way the screen is mounted, and each frame is
reduced to the one screen rectangle in which frames differ from the base. Showing frame ``i`` is then a
single blit of ``patch(i)``.

Coordinates: points (the portrait's eyes) are continuous pixel coordinates, ``(0, 0)`` the top-left
corner of the top-left pixel, pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)``. Rectangles are
``(x, y, width, height)`` in whole pixels.

Rotation: ``rotation`` is how far the screen has been turned *clockwise* (as seen from the front) from
its normal landscape mounting: 0, 90, 180 or 270. The picture is drawn turned the other way in the
framebuffer so that the viewer sees it upright; with ``rotation=90`` the painting's top-left corner lands
at the framebuffer's bottom-left. ``screen_size`` is always the framebuffer's own ``(width, height)``.
"""

from __future__ import annotations

import ctypes
import functools
import io
import json
import math
import mmap
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Union

import cv2
import numpy as np

from edge import __version__
from edge.digest import new_sha256
from edge.errors import PackError  # re-exported: callers import it from here

FORMAT = "mona-edge-gaze-pack"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BASE = "base.png"
MIN_FRAMES = 2
MAX_FRAMES = 255
#: Largest canvas or screen side accepted: a bigger one is a mistake, not a painting.
MAX_SIDE = 16384
#: manifest.json larger than this is not a manifest: 255 frames of checksums take ~30 KB, the generator's
#: parameters a few KB more. Read whole before parsing, so this also bounds the parser's work.
MAX_MANIFEST_BYTES = 256 << 10
#: Deepest nesting of arrays and objects a manifest may have (the schema needs 4; generator parameters are
#: free-form JSON, so some room). Checked by a scan before ``json.loads``, which recurses once per level.
MAX_JSON_DEPTH = 32
#: What loading may allocate, by default, in MiB: decoded images, the screen-sized base and the kept
#: patches. Fits a Pi 3 (1 GB) with room for the rest of the daemon and for the running pack, which stays
#: loaded while a candidate loads on SIGHUP. ``[pack] memory_budget_mb`` in edge/config.py has the same
#: default (a test checks); config.py does not import this module, which needs OpenCV.
DEFAULT_MEMORY_BUDGET_MB = 256
#: Archive limits. A pack holds at most 257 files and 2 folders (plus one top folder); more members is not
#: a pack. Its files may unpack to at most this many times the memory budget: PNGs hold no more bytes than
#: the pixels they decode to (plus a little), and those must fit the budget, with room for a canvas
#: larger than the screen.
MAX_ARCHIVE_MEMBERS = 300
ARCHIVE_BYTES_PER_BUDGET_BYTE = 2
#: The manifest must come within this many unpacked bytes of an archive's start: before it, nothing says
#: what the archive should hold, so this is all a bomb can make us unpack (``tar -cf p.tar -C pack
#: manifest.json base.png frames`` puts it first).
MAX_BYTES_BEFORE_MANIFEST = 64 << 20
#: zlib level for the writer's PNGs: fixed so that the same input gives the same bytes.
PNG_COMPRESS_LEVEL = 6
ROTATIONS = (0, 90, 180, 270)
EYE_NAMES = ("right", "left")
CREDIT_KEYS = ("work", "author", "source", "licence")
TOP_KEYS = ("format", "format_version", "name", "frame_count", "canvas", "patch", "eyes", "gaze", "files",
            "generator", "credits")
MAX_NAME = 200

Rect = tuple[int, int, int, int]
Point = tuple[float, float]
PathLike = Union[str, "os.PathLike[str]"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def frame_name(index: int, frame_count: int) -> str:
    """The file name of frame ``index``: two digits, more only when the count needs them."""
    digits = max(2, len(str(frame_count - 1)))
    return f"frames/{index:0{digits}d}.png"


def expected_files(frame_count: int) -> list[str]:
    """Every file a pack of ``frame_count`` frames holds besides its manifest, in writing order."""
    return [BASE] + [frame_name(i, frame_count) for i in range(frame_count)]


# --- manifest schema ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json``. Built only by :func:`parse_manifest`, so every field is sound."""

    name: str
    frame_count: int
    canvas: tuple[int, int]  # (width, height)
    patch: Rect | None  # canvas pixels; None: frames are whole canvas-sized frames
    eyes: dict[str, Point]  # "right" (the portrait's right, image left) and "left", canvas coordinates
    span_deg: tuple[float, float]
    measured: tuple[float, ...] | None
    files: dict[str, tuple[str, int]]  # name -> (sha256, bytes)
    generator: dict[str, Any]
    credits: tuple[dict[str, str], ...]
    raw: dict[str, Any]


def _fail(where: str, message: str) -> PackError:
    return PackError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _int_in(where: str, value: Any, lo: int, hi: int) -> int:
    if not _is_int(value) or not lo <= value <= hi:
        raise _fail(where, f"{value!r}: expected an integer in {lo}..{hi}")
    return int(value)


def _dict_with(where: str, value: Any, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object with keys {', '.join(required)}, got {type(value).__name__}")
    missing = [k for k in required if k not in value]
    if missing:
        raise _fail(where, f"missing key {missing[0]!r} (required: {', '.join(required)})")
    unknown = sorted(k for k in value if k not in required and k not in optional)
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(list(required) + list(optional))})")
    return value


def _text(where: str, value: Any, allow_empty: bool = False, limit: int = 2000) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()) or len(value) > limit:
        raise _fail(where, f"{value!r}: expected a{'' if allow_empty else ' non-empty'} string of at most "
                           f"{limit} characters")
    if any(ord(c) < 32 for c in value):
        raise _fail(where, f"{value!r}: control characters are not allowed")
    return value


def _safe_member_name(name: str) -> bool:
    """A relative POSIX path with no ``..``, no empty part, no backslash: safe to join under a folder."""
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return False
    parts = PurePosixPath(name).parts
    return all(part not in ("", ".", "..") for part in parts) and "/".join(parts) == name


def parse_manifest(data: Any, where: str = MANIFEST) -> Manifest:
    """Check a decoded manifest against the format; raise :class:`PackError` naming the first bad key."""
    top = _dict_with(where, data, TOP_KEYS)
    if top["format"] != FORMAT:
        raise _fail(f"{where} format", f"{top['format']!r}: expected {FORMAT!r}")
    if not _is_int(top["format_version"]) or top["format_version"] != FORMAT_VERSION:
        raise _fail(f"{where} format_version", f"{top['format_version']!r}: this reader knows {FORMAT_VERSION}")
    name = _text(f"{where} name", top["name"], limit=MAX_NAME)
    count = _int_in(f"{where} frame_count", top["frame_count"], MIN_FRAMES, MAX_FRAMES)

    canvas_d = _dict_with(f"{where} canvas", top["canvas"], ("width", "height"))
    canvas = (_int_in(f"{where} canvas.width", canvas_d["width"], 1, MAX_SIDE),
              _int_in(f"{where} canvas.height", canvas_d["height"], 1, MAX_SIDE))

    patch: Rect | None = None
    if top["patch"] is not None:
        p = _dict_with(f"{where} patch", top["patch"], ("x", "y", "width", "height"))
        x = _int_in(f"{where} patch.x", p["x"], 0, canvas[0] - 1)
        y = _int_in(f"{where} patch.y", p["y"], 0, canvas[1] - 1)
        w = _int_in(f"{where} patch.width", p["width"], 1, canvas[0] - x)
        h = _int_in(f"{where} patch.height", p["height"], 1, canvas[1] - y)
        patch = (x, y, w, h)

    eyes_d = _dict_with(f"{where} eyes", top["eyes"], EYE_NAMES)
    eyes: dict[str, Point] = {}
    for key in EYE_NAMES:
        value = eyes_d[key]
        if (not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value)
                or not (0 <= value[0] <= canvas[0] and 0 <= value[1] <= canvas[1])):
            raise _fail(f"{where} eyes.{key}", f"{value!r}: expected [x, y] inside the {canvas[0]}x{canvas[1]} canvas")
        eyes[key] = (float(value[0]), float(value[1]))

    gaze = _dict_with(f"{where} gaze", top["gaze"], ("span_deg", "measured"))
    span = gaze["span_deg"]
    if (not isinstance(span, list) or len(span) != 2 or not all(_is_number(v) for v in span)
            or not -90 <= span[0] < span[1] <= 90):
        raise _fail(f"{where} gaze.span_deg", f"{span!r}: expected [low, high] degrees, -90 <= low < high <= 90")
    measured = gaze["measured"]
    if measured is not None:
        if (not isinstance(measured, list) or len(measured) != count
                or not all(_is_number(v) for v in measured)):
            raise _fail(f"{where} gaze.measured", f"expected null or a list of {count} finite numbers")
        measured = tuple(float(v) for v in measured)

    files_d = top["files"]
    if not isinstance(files_d, dict):
        raise _fail(f"{where} files", "expected an object: file name -> {sha256, bytes}")
    for fname in files_d:
        if not isinstance(fname, str) or not _safe_member_name(fname):
            raise _fail(f"{where} files", f"{fname!r}: not a safe relative file name")
    wanted = expected_files(count)
    missing = [f for f in wanted if f not in files_d]
    if missing:
        raise _fail(f"{where} files", f"{missing[0]!r} is not listed (a {count}-frame pack holds {BASE} and "
                                      f"{frame_name(0, count)}..{frame_name(count - 1, count)})")
    extra = sorted(f for f in files_d if f not in wanted)
    if extra:
        raise _fail(f"{where} files", f"{extra[0]!r} is not part of a {count}-frame pack")
    files: dict[str, tuple[str, int]] = {}
    for fname in wanted:
        entry = _dict_with(f"{where} files[{fname!r}]", files_d[fname], ("sha256", "bytes"))
        digest = entry["sha256"]
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise _fail(f"{where} files[{fname!r}].sha256", f"{digest!r}: expected 64 lowercase hex digits")
        size = _int_in(f"{where} files[{fname!r}].bytes", entry["bytes"], 1, 1 << 34)
        files[fname] = (digest, size)

    gen = _dict_with(f"{where} generator", top["generator"], ("method", "tool", "parameters"))
    _text(f"{where} generator.method", gen["method"], limit=100)
    _text(f"{where} generator.tool", gen["tool"], limit=200)
    if not isinstance(gen["parameters"], dict):
        raise _fail(f"{where} generator.parameters", "expected an object")

    credits = top["credits"]
    if not isinstance(credits, list) or not credits:
        raise _fail(f"{where} credits", "expected a non-empty list: every pack credits the work it shows")
    for i, credit in enumerate(credits):
        entry = _dict_with(f"{where} credits[{i}]", credit, CREDIT_KEYS)
        for key in CREDIT_KEYS:
            _text(f"{where} credits[{i}].{key}", entry[key])

    return Manifest(name=name, frame_count=count, canvas=canvas, patch=patch, eyes=eyes,
                    span_deg=(float(span[0]), float(span[1])), measured=measured, files=files,
                    generator=dict(gen), credits=tuple(dict(c) for c in credits), raw=top)


# --- reading the pack's files: only regular files inside the pack, never more bytes than promised -------
#: One JSON token the depth scan cares about: a whole string (brackets in it do not count) or a bracket.
#: Every ``"`` starts a string token that always matches (to its closing quote, or to the end when it is
#: unterminated), and the quantifiers are possessive, so the scan is linear in the manifest's size.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]++|\\[\s\S])*+(?:"|\\?\Z)|[\[\]{}]')
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_HEAD = struct.Struct(">I4sIIBBBBB")  # IHDR: length, type, width, height, depth, colour, ...
_PNG_HEAD_BYTES = len(_PNG_SIGNATURE) + _PNG_HEAD.size


def _json_too_deep(blob: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``blob`` nest deeper than ``limit``, found without recursing.

    Why: ``json.loads`` recurses once per level, so ``[`` x 100000 raises RecursionError (not a
    ``JSONDecodeError``) deep in the parser. Scanning first keeps the parser's depth bounded by ``limit``;
    for text that is not JSON the scan sees the same strings as the parser up to where the parser stops.
    """
    depth = 0
    for match in _JSON_TOKEN.finditer(blob):
        first = blob[match.start()]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first in _CLOSERS:
            depth -= 1
    return False


def parse_manifest_bytes(blob: bytes, where: str = MANIFEST) -> Manifest:
    """Decode ``manifest.json``'s bytes (a folder's file or an archive's member) and check the schema.

    Bounded before the parser runs: size (:data:`MAX_MANIFEST_BYTES`) and nesting
    (:data:`MAX_JSON_DEPTH`). ``NaN``/``Infinity`` (not JSON; the writer never emits them) and integers
    longer than Python converts (its ValueError, not a JSONDecodeError) are PackErrors like any bad JSON.
    """
    if len(blob) > MAX_MANIFEST_BYTES:
        raise PackError(f"{where}: larger than {MAX_MANIFEST_BYTES} bytes (the limit for a manifest); "
                        "not a pack manifest")
    if _json_too_deep(blob, MAX_JSON_DEPTH):
        raise PackError(f"{where}: arrays and objects nested deeper than {MAX_JSON_DEPTH} levels (the limit "
                        "for a manifest); not a pack manifest")

    def refuse_constant(name: str) -> Any:
        raise PackError(f"{where}: {name} is not a JSON number; every number in a manifest is finite")

    try:
        data = json.loads(blob.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise PackError(f"{where}: not valid UTF-8 JSON: {str(exc).split(';')[0]}") from exc
    return parse_manifest(data, where)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: Path, where: str, follow: bool) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading only if it is a regular file; never block, never act on a device.

    ``O_NONBLOCK`` makes opening a FIFO return at once (a blocking open would wait for a writer
    forever); the ``lstat``/``stat`` before refuses devices, FIFOs and sockets without opening them, and
    ``fstat`` after checks that what was opened is the file that was checked. ``follow=False`` adds
    ``O_NOFOLLOW``: a symlink swapped in after the check is refused, not followed.
    """
    try:
        before = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        raise PackError(f"{where}: missing ({exc.strerror or exc.__class__.__name__})") from exc
    if not stat.S_ISREG(before.st_mode):
        raise PackError(f"{where}: {_kind(before.st_mode)}, not a regular file; a pack holds only files")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise PackError(f"{where}: cannot open: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise PackError(f"{where}: replaced while it was being opened; is the pack being rewritten?")
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


class _PackFiles:
    """The files of one pack folder, each opened only if it is a regular file inside the folder.

    Why: a pack comes from a workstation, an SD card or a USB stick and is read by the daemon. A FIFO
    named like a pack file would block the loading thread forever (and with it every later reload); a
    device may act when opened; a symlink may point at anything the service can read. Each name is
    resolved and must stay inside the resolved folder (a link within the pack is fine), then opened as
    :func:`_open_regular` does. ``label`` names an archive in messages instead of its temporary folder.
    """

    def __init__(self, folder: Path, label: str | None = None) -> None:
        self.folder = folder
        self.label = label
        try:
            self.root = Path(os.path.realpath(folder, strict=True))
        except OSError as exc:
            raise PackError(f"{folder}: cannot open the pack folder: {exc.strerror or exc}") from exc

    def where(self, fname: str) -> str:
        return str(self.folder / fname) if self.label is None else f"{self.label}: {fname}"

    def open(self, fname: str) -> tuple[BinaryIO, os.stat_result]:
        where = self.where(fname)
        try:
            real = Path(os.path.realpath(self.folder / fname, strict=True))
        except OSError as exc:
            raise PackError(f"{where}: missing ({exc.strerror or exc.__class__.__name__})") from exc
        if self.root not in real.parents:
            raise PackError(f"{where}: resolves outside the pack folder ({real})")
        return _open_regular(real, where, follow=False)

    def manifest_bytes(self) -> bytes:
        """``manifest.json``'s bytes; its size is taken from ``fstat`` first, so a huge one is not read."""
        where = self.where(MANIFEST)
        f, st = self.open(MANIFEST)
        with f:
            if st.st_size > MAX_MANIFEST_BYTES:
                raise PackError(f"{where}: {st.st_size} bytes, larger than {MAX_MANIFEST_BYTES} bytes (the limit "
                                "for a manifest); not a pack manifest")
            return self._read(f, where, MAX_MANIFEST_BYTES + 1)

    def manifest(self) -> Manifest:
        """Read and check ``manifest.json``."""
        return parse_manifest_bytes(self.manifest_bytes(), self.where(MANIFEST))

    @staticmethod
    def _read(f: BinaryIO, where: str, limit: int) -> bytes:
        try:
            return f.read(limit)
        except OSError as exc:
            raise PackError(f"{where}: cannot read: {exc.strerror or exc}") from exc

    def check_files(self, manifest: Manifest) -> None:
        """Cheap first pass, nothing decoded: every listed file is a regular file of the promised size with
        a PNG header of the promised size, so a half-copied or mismatched pack fails before any work."""
        for fname in expected_files(manifest.frame_count):
            where = self.where(fname)
            f, st = self.open(fname)
            with f:
                size = manifest.files[fname][1]
                if st.st_size != size:
                    raise PackError(f"{where}: {st.st_size} bytes, the manifest says {size}")
                head = self._read(f, where, _PNG_HEAD_BYTES)
            _check_png_header(head, where, _image_size(manifest, fname))

    def read_verified(self, manifest: Manifest, fname: str) -> bytes:
        """The bytes of one listed file, after checking they are what the manifest promised."""
        digest, size = manifest.files[fname]
        where = self.where(fname)
        f, st = self.open(fname)
        with f:
            if st.st_size != size:
                raise PackError(f"{where}: {st.st_size} bytes, the manifest says {size}")
            blob = self._read(f, where, size + 1)
        if len(blob) != size:
            raise PackError(f"{where}: {len(blob)} bytes, the manifest says {size}")
        actual = new_sha256(blob).hexdigest()
        if actual != digest:
            raise PackError(f"{where}: sha256 {actual} does not match the manifest's {digest}")
        return blob


def _check_png_header(head: bytes, where: str, size: tuple[int, int]) -> None:
    """Refuse an image from its first 33 bytes (signature and IHDR): not PNG, wrong size, not 8-bit RGB."""
    if len(head) < _PNG_HEAD_BYTES or not head.startswith(_PNG_SIGNATURE):
        raise PackError(f"{where}: not a PNG file (damaged, or not the file the manifest lists)")
    length, kind, width, height, depth, colour, _, _, _ = _PNG_HEAD.unpack_from(head, len(_PNG_SIGNATURE))
    if length != 13 or kind != b"IHDR":
        raise PackError(f"{where}: PNG without its IHDR header first; damaged")
    if (width, height) != size:
        raise PackError(f"{where}: image is {width}x{height}, expected {size[0]}x{size[1]}")
    if depth != 8 or colour != 2:
        raise PackError(f"{where}: PNG of bit depth {depth}, colour type {colour}; expected 8-bit RGB (colour "
                        "type 2: no alpha, no palette)")


def read_manifest(folder: PathLike) -> Manifest:
    """Read and validate ``folder/manifest.json`` (schema only; :func:`load_pack` checks the files)."""
    return _PackFiles(Path(folder)).manifest()


def _decode_png(blob: bytes, where: str, size: tuple[int, int]) -> np.ndarray:
    """Decode verified PNG bytes to an RGB uint8 array, refusing the wrong size before decoding pixels.

    OpenCV's decoder writes the pixels straight into the numpy array it returns (and the channel swap is
    done in place), so decoding costs the PNG's bytes plus one image; PIL's ``np.asarray`` would hold its
    own buffer and two copies more while it converts. EXIF orientation is ignored: a pack's pixels are
    shown as stored."""
    _check_png_header(blob[:_PNG_HEAD_BYTES], where, size)
    try:
        image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:
        raise PackError(f"{where}: cannot decode PNG: {exc}") from exc
    if image is None or image.shape != (size[1], size[0], 3) or image.dtype != np.uint8:
        raise PackError(f"{where}: cannot decode PNG: damaged image data")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def verify_pack(path: PathLike) -> Manifest:
    """Check a pack folder's manifest, every file's size and sha256, and every image's size.

    For tools (``mona-edge`` provisioning, tests): the daemon calls :func:`load_pack`, which does the same
    checks on the same bytes it then shows. One image is decoded at a time.
    """
    files = _PackFiles(Path(path))
    manifest = files.manifest()
    files.check_files(manifest)
    for fname in expected_files(manifest.frame_count):
        blob = files.read_verified(manifest, fname)
        _decode_png(blob, files.where(fname), _image_size(manifest, fname))
    return manifest


def _image_size(manifest: Manifest, fname: str) -> tuple[int, int]:
    if fname == BASE or manifest.patch is None:
        return manifest.canvas
    return manifest.patch[2], manifest.patch[3]


# --- screen layout ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How the canvas sits on the screen: scale, offset of the fitted canvas, and the mounting rotation."""

    canvas: tuple[int, int]
    screen: tuple[int, int]  # framebuffer (width, height)
    rotation: int
    scale: float
    scaled: tuple[int, int]  # the canvas's size after scaling
    offset: tuple[int, int]  # its top-left in the *upright* picture (before rotation)

    @property
    def upright(self) -> tuple[int, int]:
        """The picture's size as the viewer sees it: the screen's, swapped when mounted on its side."""
        w, h = self.screen
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def canvas_to_screen(self, x: float, y: float) -> Point:
        """A canvas point (continuous coordinates) to framebuffer coordinates."""
        sx = self.scaled[0] / self.canvas[0]
        sy = self.scaled[1] / self.canvas[1]
        ux, uy = x * sx + self.offset[0], y * sy + self.offset[1]
        uw, uh = self.upright
        if self.rotation == 90:
            return uy, uw - ux
        if self.rotation == 180:
            return uw - ux, uh - uy
        if self.rotation == 270:
            return uh - uy, ux
        return ux, uy

    def upright_rect_to_screen(self, rect: Rect) -> Rect:
        """An upright-picture rectangle to the framebuffer rectangle it lands on (exact integers)."""
        x, y, w, h = rect
        uw, uh = self.upright
        if self.rotation == 90:
            return y, uw - x - w, h, w
        if self.rotation == 180:
            return uw - x - w, uh - y - h, w, h
        if self.rotation == 270:
            return uh - y - h, x, h, w
        return rect

    def screen_rect_to_upright(self, rect: Rect) -> Rect:
        """Inverse of :meth:`upright_rect_to_screen`."""
        x, y, w, h = rect
        uw, uh = self.upright
        if self.rotation == 90:
            return uw - y - h, x, h, w
        if self.rotation == 180:
            return uw - x - w, uh - y - h, w, h
        if self.rotation == 270:
            return y, uh - x - w, h, w
        return rect

    @property
    def canvas_rect(self) -> Rect:
        """Where the scaled canvas lies on the framebuffer (the rest is black)."""
        return self.upright_rect_to_screen(self.offset + self.scaled)

    def to_screen(self, upright: np.ndarray) -> np.ndarray:
        """Rotate an upright picture into framebuffer orientation (a view; copy before keeping)."""
        return np.rot90(upright, k=self.rotation // 90)


def make_layout(canvas: tuple[int, int], screen_size: tuple[int, int] | None, rotation: int) -> Layout:
    """Fit the canvas inside the screen, aspect kept, centred; no screen means the canvas at 1:1."""
    if rotation not in ROTATIONS:
        raise PackError(f"rotation {rotation!r}: expected one of {', '.join(map(str, ROTATIONS))}")
    if screen_size is None:
        cw, ch = canvas
        screen = (ch, cw) if rotation in (90, 270) else (cw, ch)
    else:
        if (len(screen_size) != 2 or not all(_is_int(v) and 1 <= v <= MAX_SIDE for v in screen_size)):
            raise PackError(f"screen size {screen_size!r}: expected (width, height), each 1..{MAX_SIDE}")
        screen = (int(screen_size[0]), int(screen_size[1]))
    uw, uh = (screen[1], screen[0]) if rotation in (90, 270) else screen
    scale = min(uw / canvas[0], uh / canvas[1])
    sw = min(uw, max(1, int(round(canvas[0] * scale))))
    sh = min(uh, max(1, int(round(canvas[1] * scale))))
    return Layout(canvas=canvas, screen=screen, rotation=rotation, scale=scale, scaled=(sw, sh),
                  offset=((uw - sw) // 2, (uh - sh) // 2))


def _scale(image: np.ndarray, layout: Layout) -> np.ndarray:
    """Canvas-sized image -> scaled canvas (area averaging to shrink, bicubic to enlarge)."""
    if (image.shape[1], image.shape[0]) == layout.scaled:
        return image
    shrinking = layout.scaled[0] < image.shape[1]
    return cv2.resize(image, layout.scaled, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def _fit_window(image: np.ndarray, layout: Layout, window: Rect) -> np.ndarray:
    """The framebuffer ``window`` (inside :attr:`Layout.canvas_rect`) of a canvas-sized image, as
    :func:`_fit` would show it, without building the whole screen."""
    ux, uy, uw, uh = layout.screen_rect_to_upright(window)
    ox, oy = layout.offset
    scaled = _scale(image, layout)
    return np.ascontiguousarray(layout.to_screen(scaled[uy - oy:uy - oy + uh, ux - ox:ux - ox + uw]))


def _fit(image: np.ndarray, layout: Layout) -> np.ndarray:
    """Canvas-sized image -> screen-sized, rotated, C-contiguous image (black outside the canvas).

    The scaled canvas is written straight into the screen array through a turned view of it, so no
    upright copy is made besides the scaled image itself."""
    scaled = _scale(image, layout)
    uw, uh = layout.upright
    if (uw, uh) == layout.scaled and layout.rotation == 0:
        return np.ascontiguousarray(scaled)
    screen = np.zeros((layout.screen[1], layout.screen[0], 3), np.uint8)
    upright = np.rot90(screen, k=-(layout.rotation // 90))  # a view: to_screen(upright) is the screen
    ox, oy = layout.offset
    upright[oy:oy + layout.scaled[1], ox:ox + layout.scaled[0]] = scaled
    return screen


def _grow_to_screen(canvas: np.ndarray, layout: Layout) -> np.ndarray | None:
    """The screen-sized base made in the decoded canvas's own memory, where the canvas is shown unscaled,
    unturned and as wide as the screen (the packer's canvas for a portrait screen): the array is grown in
    place (``realloc``; glibc remaps a block that large rather than copying it) and its rows moved down to
    their place, so the canvas and the screen-sized base are never both held: a 1080x1080 canvas on a
    1080x1920 screen would otherwise add 3.3 MiB, half the loaded default pack, to the load's peak.
    None where this does not apply (the caller builds the screen with :func:`_fit`)."""
    sw, sh = layout.screen
    rows = canvas.shape[0]
    if (layout.rotation != 0 or layout.scaled != layout.canvas or canvas.shape[1] != sw or rows > sh
            or layout.offset[0] != 0 or not canvas.flags.owndata or canvas.base is not None
            or not canvas.flags.c_contiguous or not canvas.flags.writeable):
        return None
    try:
        canvas.resize((sh, sw, 3), refcheck=False)  # nothing else refers to a just-decoded canvas
    except (ValueError, MemoryError):  # pragma: no cover - then the ordinary way
        return None
    top, row_bytes = layout.offset[1], sw * 3
    if top:
        ctypes.memmove(canvas.ctypes.data + top * row_bytes, canvas.ctypes.data, rows * row_bytes)  # overlapping
    _zero_untouched(canvas, 0, top * row_bytes)
    _zero_untouched(canvas, (top + rows) * row_bytes, sh * row_bytes)
    return canvas


#: glibc's madvise, for :func:`_zero_untouched` (None where there is none: then zeros are written).
_MADVISE: Any = None
try:
    _MADVISE = ctypes.CDLL(None, use_errno=True).madvise
    _MADVISE.argtypes, _MADVISE.restype = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int), ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _MADVISE = None
MADV_DONTNEED = 4


def _zero_untouched(array: np.ndarray, start: int, stop: int) -> None:
    """Bytes ``start:stop`` of a C-contiguous array zeroed without making them resident: the whole pages
    among them are handed back to the kernel (``MADV_DONTNEED`` on private memory: they read as zeros and
    take no memory until written, as ``np.zeros``' fresh pages do), only the partial pages at the ends
    are written. The screen's black border around a letterboxed canvas is never drawn into, so it stays
    free (2.6 MiB for the default pack on a 1080x1920 screen)."""
    if stop <= start:
        return
    flat = array.reshape(-1)
    base = array.ctypes.data
    lo = -(-(base + start) // mmap.PAGESIZE) * mmap.PAGESIZE - base
    hi = (base + stop) // mmap.PAGESIZE * mmap.PAGESIZE - base
    if _MADVISE is not None and hi > lo and _MADVISE(base + lo, hi - lo, MADV_DONTNEED) == 0:
        flat[start:lo] = 0
        flat[hi:stop] = 0
    else:
        flat[start:stop] = 0


def _diff_bbox(a: np.ndarray, b: np.ndarray) -> Rect | None:
    """Bounding box of the pixels where two same-shaped RGB images differ (None if identical)."""
    h, w = a.shape[:2]
    diff = cv2.absdiff(a, b).reshape(h, w * 3)
    rows = np.flatnonzero(cv2.reduce(diff, 1, cv2.REDUCE_MAX).ravel())
    if rows.size == 0:
        return None
    cols = np.flatnonzero(cv2.reduce(diff, 0, cv2.REDUCE_MAX).reshape(w, 3).max(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _intersect(a: Rect, b: Rect) -> Rect | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def _union(a: Rect | None, b: Rect | None) -> Rect | None:
    if a is None or b is None:
        return a or b
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return x0, y0, x1 - x0, y1 - y0


def _screen_rect_of(layout: Layout, rect: Rect, margin: int = 0) -> Rect:
    """The framebuffer rectangle covering a canvas rectangle, widened by ``margin`` and clipped."""
    x, y, w, h = rect
    corners = [layout.canvas_to_screen(cx, cy) for cx, cy in ((x, y), (x + w, y + h))]
    xs = sorted(c[0] for c in corners)
    ys = sorted(c[1] for c in corners)
    sw, sh = layout.screen
    x0, y0 = max(0, int(math.floor(xs[0])) - margin), max(0, int(math.floor(ys[0])) - margin)
    x1 = min(sw, max(x0 + 1, int(math.ceil(xs[1])) + margin))
    y1 = min(sh, max(y0 + 1, int(math.ceil(ys[1])) + margin))
    return x0, y0, x1 - x0, y1 - y0


def _resample_margin(layout: Layout) -> int:
    """Screen pixels beyond a changed canvas region that resampling can still change.

    Area averaging (shrinking) reaches one output pixel past the region's scaled edge; bicubic
    (enlarging) reads two source pixels either side, i.e. ``2 * scale`` output pixels. One more for
    rounding. Tests compare against a full-frame resize to hold this to account.
    """
    return int(math.ceil(2 * max(layout.scale, 1.0))) + 2


# --- the loaded pack ------------------------------------------------------------------------------------
class GazePack:
    """A verified pack laid out for one screen: a base image and, per frame, one patch for one rectangle.

    All frames share the rectangle (the smallest one outside which every scaled frame equals the scaled
    base), so moving from any frame to any other is one blit. Arrays are read-only: the display may keep
    references to them.
    """

    def __init__(self, manifest: Manifest, layout: Layout, base: np.ndarray, rect: Rect,
                 patches: Sequence[np.ndarray], source: Path):
        self.manifest = manifest
        self.layout = layout
        self.source = source
        self._base = base
        self._rect = rect
        self._patches = tuple(patches)
        for array in (self._base,) + self._patches:
            array.setflags(write=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def frame_count(self) -> int:
        return self.manifest.frame_count

    @property
    def centre_index(self) -> int:
        """The frame shown when nobody is there: the middle one (the lower middle for even counts)."""
        return (self.manifest.frame_count - 1) // 2

    @property
    def span_deg(self) -> tuple[float, float]:
        """Gaze angles (degrees, negative = viewer's left) of the first and the last frame."""
        return self.manifest.span_deg

    @property
    def measured(self) -> tuple[float, ...] | None:
        """Per-frame gaze as measured on the workstation (-1 left .. +1 right), if the generator did."""
        return self.manifest.measured

    @property
    def screen_size(self) -> tuple[int, int]:
        return self.layout.screen

    @property
    def rotation(self) -> int:
        return self.layout.rotation

    @property
    def rect(self) -> Rect:
        """The framebuffer rectangle ``(x, y, w, h)`` every frame's patch is drawn into."""
        return self._rect

    @property
    def base(self) -> np.ndarray:
        """The screen-sized, rotated painting: what :meth:`frame_image` shows outside :attr:`rect`."""
        return self._base

    @property
    def nbytes(self) -> int:
        """The memory the loaded pack holds: the screen-sized base and every frame's patch."""
        return int(self._base.nbytes + sum(p.nbytes for p in self._patches))

    @property
    def eyes(self) -> dict[str, Point]:
        """The portrait's eye centres in canvas coordinates."""
        return dict(self.manifest.eyes)

    @property
    def eyes_screen(self) -> dict[str, Point]:
        """The portrait's eye centres in framebuffer coordinates."""
        return {k: self.layout.canvas_to_screen(*v) for k, v in self.manifest.eyes.items()}

    def _check_index(self, i: int) -> int:
        if not _is_int(i) and not isinstance(i, np.integer):
            raise TypeError(f"frame index {i!r}: expected an integer")
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame index {i}: pack {self.name!r} has frames 0..{self.frame_count - 1}")
        return int(i)

    def patch(self, i: int) -> tuple[Rect, np.ndarray]:
        """Frame ``i`` as ``(rect, array)``: what a display blits to move to it. No copy is made."""
        return self._rect, self._patches[self._check_index(i)]

    def frame_image(self, i: int) -> np.ndarray:
        """The whole screen showing frame ``i`` (a new array; for snapshots and tests, not the hot path)."""
        x, y, w, h = self._rect
        image = self._base.copy()
        image[y:y + h, x:x + w] = self._patches[self._check_index(i)]
        return image

    def __repr__(self) -> str:
        return (f"GazePack({self.name!r}, frames={self.frame_count}, screen={self.screen_size}, "
                f"rotation={self.rotation}, rect={self.rect})")


# --- memory: what a pack will take, known before anything is decoded --------------------------------------
def _frame_window(manifest: Manifest, layout: Layout) -> Rect:
    """Where frames can differ from the base on screen: around the scaled patch (the whole canvas for
    packs of full frames), never in the black bars. Only this window is computed and compared."""
    if manifest.patch is None:
        return layout.canvas_rect
    window = _intersect(layout.canvas_rect, _screen_rect_of(layout, manifest.patch, _resample_margin(layout)))
    assert window is not None  # the patch lies inside the canvas, which lies inside the screen
    return window


def _rgb_bytes(size: tuple[int, int]) -> int:
    return size[0] * size[1] * 3


def _mib(nbytes: float) -> str:
    return f"{nbytes / (1 << 20):.1f}"


@dataclass(frozen=True)
class LoadEstimate:
    """What loading a pack for one screen allocates, from its manifest alone (nothing decoded).

    ``kept`` bounds the loaded pack: the screen-sized base and one window-sized patch per frame (the real
    patches are the tighter rectangle inside that window). ``peak`` bounds what is held at once: at the
    start the base's working set (its PNG bytes, the decoded canvas, the scaled canvas, the screen
    image); then the kept part plus one frame's working set (its PNG bytes and
    decoded array, the canvas kept to compose on when it must be rescaled, the scaled canvas, the shown
    window, its difference with the base and its crop). Each decoded image is counted twice, for the
    decoder's row buffers and the allocator's slack. Not counted: the interpreter itself.
    """

    kept: int
    peak: int
    window: Rect
    screen: tuple[int, int]
    frames: int


def estimate_load(manifest: Manifest, layout: Layout) -> LoadEstimate:
    """The memory :func:`load_pack` will need for this manifest on this layout (see :class:`LoadEstimate`)."""
    window = _frame_window(manifest, layout)
    win = _rgb_bytes((window[2], window[3]))
    screen = _rgb_bytes(layout.screen)
    canvas = _rgb_bytes(manifest.canvas)
    names = expected_files(manifest.frame_count)
    frame = _rgb_bytes(_image_size(manifest, names[1]))
    rescaled = layout.scaled != manifest.canvas
    scaled = _rgb_bytes(layout.scaled) if rescaled else 0
    composed_on_canvas = rescaled and manifest.patch is not None

    def decoding(pixels: int, file_bytes: int) -> int:  # the PNG's bytes, the array (and as much for slack)
        return file_bytes + 2 * pixels

    base_phase = max(decoding(canvas, manifest.files[BASE][1]), canvas + scaled + screen)
    work = decoding(frame, max(manifest.files[f][1] for f in names[1:])) + 3 * win
    if composed_on_canvas:
        work += canvas
    work += scaled
    kept = screen + manifest.frame_count * win
    return LoadEstimate(kept=kept, peak=max(base_phase, kept + work), window=window, screen=layout.screen,
                        frames=manifest.frame_count)


def _check_budget(manifest: Manifest, layout: Layout, budget: int, where: str) -> LoadEstimate:
    estimate = estimate_load(manifest, layout)
    if estimate.peak > budget:
        _, _, ww, wh = estimate.window
        sw, sh = layout.screen
        raise PackError(f"{where}: loading needs about {_mib(estimate.peak)} MiB ({manifest.frame_count} frames of "
                        f"up to {ww}x{wh} px for a {sw}x{sh} screen, {_mib(estimate.kept)} MiB once loaded), "
                        f"more than the memory budget of {_mib(budget)} MiB ([pack] memory_budget_mb)")
    return estimate


# --- loading ------------------------------------------------------------------------------------------------
def _composer(manifest: Manifest, layout: Layout, window: Rect,
              base_canvas: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """How one decoded frame becomes what the screen shows in ``window``, laid out exactly as the base was
    (same resize, same rotation), keeping as little of the base as that needs:

    * whole frames: the frame is the canvas; nothing of the base is kept;
    * patches on a canvas shown at its own size (how the packer makes them): no resampling, so only the
      canvas under the window is composed, from a window-sized copy of the base;
    * patches otherwise: the resize reads the whole canvas, so the base canvas is kept and each patch
      pasted into it (always the same area, so nothing of one frame leaks into the next): the caller
      hands ``base_canvas`` over and must not use it again.
    """
    if manifest.patch is None:
        return lambda frame: _fit_window(frame, layout, window)
    px, py, pw, ph = manifest.patch
    if layout.scaled == manifest.canvas:
        ux, uy, uw, uh = layout.screen_rect_to_upright(window)
        cx, cy = ux - layout.offset[0], uy - layout.offset[1]
        under = base_canvas[cy:cy + uh, cx:cx + uw].copy()
        x0, y0, x1, y1 = max(px, cx), max(py, cy), min(px + pw, cx + uw), min(py + ph, cy + uh)

        def compose_window(frame: np.ndarray) -> np.ndarray:
            upright = under.copy()
            if x1 > x0 and y1 > y0:
                upright[y0 - cy:y1 - cy, x0 - cx:x1 - cx] = frame[y0 - py:y1 - py, x0 - px:x1 - px]
            return np.ascontiguousarray(layout.to_screen(upright))
        return compose_window
    # The decoded base itself becomes the canvas to compose on (the screen's base is a rescaled copy).
    canvas = base_canvas if base_canvas.flags.writeable else np.array(base_canvas)

    def compose_canvas(frame: np.ndarray) -> np.ndarray:
        canvas[py:py + ph, px:px + pw] = frame
        return _fit_window(canvas, layout, window)
    return compose_canvas


def _crop_difference(shown: np.ndarray, base_window: np.ndarray) -> tuple[Rect | None, np.ndarray | None]:
    """The part of ``shown`` that differs from the base (a copy, so ``shown`` can go), and where."""
    diff = _diff_bbox(shown, base_window)
    if diff is None:
        return None, None
    dx, dy, dw, dh = diff
    return diff, shown[dy:dy + dh, dx:dx + dw].copy()


def _load_folder(files: _PackFiles, screen_size: tuple[int, int] | None, rotation: int, source: Path,
                 budget: int) -> GazePack:
    """Check, budget, then decode one image at a time.

    Memory: the budget is checked from the manifest before anything is read. Then each frame is decoded,
    composed, laid out and cropped to where it differs from the base, and everything but the crop is
    dropped before the next frame; the second pass widens each crop to the common rectangle and drops it
    as its patch is made. So the crops and the patches are never all held at once, and the peak is the
    loaded pack plus one frame's working set; the screen-sized base is grown out of the decoded canvas
    where it can be (:func:`_grow_to_screen`), not built beside it.
    """
    manifest = files.manifest()
    layout = make_layout(manifest.canvas, screen_size, rotation)
    window = _check_budget(manifest, layout, budget, str(source)).window
    files.check_files(manifest)
    count = manifest.frame_count

    def image(fname: str) -> np.ndarray:
        blob = files.read_verified(manifest, fname)
        return _decode_png(blob, files.where(fname), _image_size(manifest, fname))

    base_canvas = image(BASE)
    compose = _composer(manifest, layout, window, base_canvas)  # first: it copies what it needs of the canvas
    base_screen = _grow_to_screen(base_canvas, layout)
    if base_screen is None:
        base_screen = _fit(base_canvas, layout)
    del base_canvas
    wx, wy, ww, wh = window
    base_window = base_screen[wy:wy + wh, wx:wx + ww]
    # Pass 1: the union of every frame's difference from the base is the one rectangle the display redraws.
    crops: list[tuple[Rect | None, np.ndarray | None]] = []
    rect: Rect | None = None
    for i in range(count):
        diff, crop = _crop_difference(compose(image(frame_name(i, count))), base_window)
        if diff is not None:
            diff = (diff[0] + wx, diff[1] + wy, diff[2], diff[3])
            rect = _union(rect, diff)
        crops.append((diff, crop))
        del crop
    if rect is None:  # no frame differs from the base: a still picture, still a valid pack
        rect = _screen_rect_of(layout, manifest.patch or (0, 0) + manifest.canvas)
    # Pass 2: widen every crop to the common rectangle (outside its own difference it equals the base),
    # dropping each crop as its patch is made.
    x, y, w, h = rect
    crops.reverse()
    patches = []
    while crops:
        diff, crop = crops.pop()
        patch = base_screen[y:y + h, x:x + w].copy()
        if diff is not None and crop is not None:
            dx, dy, dw, dh = diff
            patch[dy - y:dy - y + dh, dx - x:dx - x + dw] = crop
        del crop
        patches.append(patch)
    return GazePack(manifest, layout, base_screen, rect, patches, source)


def load_pack(path: PathLike, screen_size: tuple[int, int] | None = None, rotation: int = 0, *,
              memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> GazePack:
    """Verify a pack (folder, ``.tar`` or ``.tar.gz``) completely, then lay it out for the screen.

    ``screen_size`` is the framebuffer's ``(width, height)`` (None: the canvas at 1:1); ``rotation`` is
    the screen's clockwise mounting angle (see the module docstring). ``memory_budget_mb`` bounds what
    loading may allocate (``[pack] memory_budget_mb``): a pack that needs more, by its manifest, is refused
    before any image is decoded, and an archive may unpack to at most twice that. Raises
    :class:`PackError` before returning anything if any file, size, checksum, image or budget is wrong.
    """
    if not _is_number(memory_budget_mb) or memory_budget_mb <= 0:
        raise PackError(f"memory budget {memory_budget_mb!r} MiB: expected a positive number")
    budget = int(memory_budget_mb * (1 << 20))
    source = Path(path)
    try:
        st = os.stat(source)
    except FileNotFoundError as exc:
        raise PackError(f"{source}: no such pack (expected a folder with {MANIFEST}, or a .tar/.tar.gz of one)") from exc
    except OSError as exc:
        raise PackError(f"{source}: cannot open the pack: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        return _load_folder(_PackFiles(source), screen_size, rotation, source, budget)
    if not stat.S_ISREG(st.st_mode):
        raise PackError(f"{source}: {_kind(st.st_mode)}; expected a pack folder or a .tar/.tar.gz of one")

    def check(manifest: Manifest) -> None:  # as soon as the archive's manifest is read
        _check_budget(manifest, make_layout(manifest.canvas, screen_size, rotation), budget, str(source))

    with tempfile.TemporaryDirectory(prefix="mona-edge-pack-") as tmp:
        root = extract_archive(source, Path(tmp), max_bytes=ARCHIVE_BYTES_PER_BUDGET_BYTE * budget, check=check)
        return _load_folder(_PackFiles(root, label=str(source)), screen_size, rotation, source, budget)


# --- archives ---------------------------------------------------------------------------------------------
#: What a member may be called, relative to the pack's folder: a pack holds nothing else.
_PACK_MEMBER = re.compile(r"manifest\.json|base\.png|frames|frames/[0-9]{2,3}\.png")
PACK_FOLDER = "frames"
#: Errors that tarfile's stream lets through from the decompressors and the file itself: a truncated or
#: corrupt archive, the user's to fix.
_STREAM_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, OSError)
try:
    import lzma
    _STREAM_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - a Python without lzma cannot open .tar.xz anyway
    pass
#: Opening the stream fails with these too: CPython's tarfile reads a gzip header cut short with ord() of
#: an empty read (``_Stream._init_read_gz``: TypeError). Found by fuzzing the running daemon.
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*_STREAM_ERRORS, TypeError)
_COPY_CHUNK = 1 << 20


def _pack_relative(name: str, is_dir: bool) -> tuple[str, str] | None:
    """``(top folder, name inside the pack)`` for an archive member, or None if a pack holds no such name.
    The top folder is ``""`` for members at the archive's root; a top folder itself gives ``(top, "")``.
    The only folder inside a pack is ``frames``, and it is never a file."""
    def allowed(rel: str) -> bool:
        return rel == PACK_FOLDER if is_dir else rel != PACK_FOLDER and _PACK_MEMBER.fullmatch(rel) is not None

    if _PACK_MEMBER.fullmatch(name) and allowed(name):
        return "", name
    top, sep, rest = name.partition("/")
    if not sep:
        return (name, "") if is_dir else None
    return (top, rest) if allowed(rest) else None


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line (tarfile's "could not be opened" lists every method it tried)."""
    return " ".join(str(exc).split()) or exc.__class__.__name__


def extract_archive(archive: PathLike, dest: PathLike, *, max_bytes: int | None = None,
                    check: Callable[[Manifest], None] | None = None) -> Path:
    """Unpack a pack archive into ``dest`` while streaming it; return ``dest``, now a pack folder.

    Each member is judged from its header before any of its data is read or written: at most
    :data:`MAX_ARCHIVE_MEMBERS`; regular files and folders only (no links, devices, FIFOs, sparse files);
    relative names without ``..``, and only names a pack holds (``manifest.json``, ``base.png``,
    ``frames/NN.png``), at the top or inside one top folder, which is dropped. Before the manifest no more
    than :data:`MAX_BYTES_BEFORE_MANIFEST` may come; once it is read (and ``check``, the caller's budget
    check, has passed) every file must be one it lists, with the size it lists. In all, at most
    ``max_bytes`` (default: twice the default memory budget). So a tar bomb is refused at its first
    oversized header, and a damaged stream (tarfile, zlib, EOF, I/O errors) is a PackError naming the
    archive. Files are written here, never by ``tarfile``'s extraction: the name check above is stricter
    than ``tarfile.data_filter``, and nothing but the checked names is created. On any failure what was
    written is removed again.
    """
    archive, dest = Path(archive), Path(dest)
    limit = max_bytes if max_bytes is not None else ARCHIVE_BYTES_PER_BUDGET_BYTE * (DEFAULT_MEMORY_BUDGET_MB << 20)
    created: list[Path] = []
    try:
        f, _ = _open_regular(archive, str(archive), follow=True)
        with f:
            try:
                tar = tarfile.open(fileobj=f, mode="r|*")
            except _OPEN_ERRORS as exc:
                raise PackError(f"{archive}: not a readable .tar or .tar.gz: {_one_line(exc)}") from exc
            with tar:
                try:
                    _stream_members(tar, archive, dest, limit, check, created)
                except _STREAM_ERRORS as exc:  # truncated or corrupt: half-copied
                    raise PackError(f"{archive}: cannot unpack: {_one_line(exc)}") from exc
    except BaseException:
        for path in reversed(created):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass
        raise
    return dest


def _stream_members(tar: tarfile.TarFile, archive: Path, dest: Path, limit: int,
                    check: Callable[[Manifest], None] | None, created: list[Path]) -> None:
    total = 0
    top: str | None = None
    manifest: Manifest | None = None
    written: dict[str, int] = {}
    before = min(limit, MAX_BYTES_BEFORE_MANIFEST)
    for count, member in enumerate(tar, start=1):
        if count > MAX_ARCHIVE_MEMBERS:
            raise PackError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members (the limit); not a pack")
        name = member.name
        while name.startswith("./"):
            name = name[2:]
        if member.isdir():
            name = name.rstrip("/")
            if name in ("", "."):
                continue
        where = f"{archive}: member {member.name!r}"
        if not _safe_member_name(name):
            raise PackError(f"{where}: absolute or '..' paths are refused")
        if not (member.isdir() or (member.isreg() and not member.issparse())):
            raise PackError(f"{where}: only regular files and folders are allowed (no links, devices, FIFOs)")
        split = _pack_relative(name, member.isdir())
        if split is None:
            raise PackError(f"{where}: not a {'folder' if member.isdir() else 'file'} a gaze pack holds ({MANIFEST}, "
                            f"{BASE}, {PACK_FOLDER}/NN.png, at the top or in one top folder)")
        member_top, rel = split
        if member.isdir():
            if rel and not (dest / rel).is_dir():
                (dest / rel).mkdir(parents=True)
                created.append(dest / rel)
            continue
        if top is None:
            top = member_top
        elif member_top != top:
            raise PackError(f"{where}: outside the top folder {top or '(none)'!r}; an archive holds one pack")
        if rel in written:
            raise PackError(f"{where}: appears twice")
        size = member.size
        if manifest is None:
            if rel == MANIFEST and size > MAX_MANIFEST_BYTES:
                raise PackError(f"{where}: {size} bytes, larger than {MAX_MANIFEST_BYTES} bytes (the limit for a "
                                "manifest); not a pack manifest")
            if rel != MANIFEST and total + size > before:
                raise PackError(f"{where}: no {MANIFEST} within the first {_mib(before)} MiB of the archive (the "
                                f"limit before it); put it first: tar -czf pack.tar.gz -C PACK {MANIFEST} {BASE} frames")
        else:
            listed = manifest.files.get(rel)
            if listed is None:
                raise PackError(f"{where}: not listed in the archive's {MANIFEST}")
            if size != listed[1]:
                raise PackError(f"{where}: {size} bytes, the manifest says {listed[1]}")
        if total + size > limit:
            raise PackError(f"{archive}: unpacks to more than {_mib(limit)} MiB (the limit: "
                            f"{ARCHIVE_BYTES_PER_BUDGET_BYTE}x the memory budget); not a pack")
        total += size
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - a regular member always has a file object
            raise PackError(f"{where}: cannot be read")
        target = dest / rel
        if rel == MANIFEST:
            blob = source.read(size)
            manifest = parse_manifest_bytes(blob, f"{archive}: {MANIFEST}")
            listed_bytes = sum(nbytes for _, nbytes in manifest.files.values())
            if listed_bytes + size > limit:
                raise PackError(f"{archive}: its {MANIFEST} lists {_mib(listed_bytes)} MiB of files, more than "
                                f"{_mib(limit)} MiB (the limit: {ARCHIVE_BYTES_PER_BUDGET_BYTE}x the memory "
                                "budget)")
            for earlier, nbytes in written.items():
                if earlier not in manifest.files:
                    raise PackError(f"{archive}: member {earlier!r} is not listed in the archive's {MANIFEST}")
                if nbytes != manifest.files[earlier][1]:
                    raise PackError(f"{archive}: member {earlier!r}: {nbytes} bytes, the manifest says "
                                    f"{manifest.files[earlier][1]}")
            if check is not None:
                check(manifest)
            _write_new(target, [blob], created)
        else:
            _write_new(target, iter(functools.partial(source.read, _COPY_CHUNK), b""), created)
        written[rel] = size
    if manifest is None:
        raise PackError(f"{archive}: no {MANIFEST} at the top or in a single top folder")


def _write_new(target: Path, chunks: Iterable[bytes], created: list[Path]) -> None:
    """Create ``target`` (never through a link, never over a file) and write ``chunks`` to it."""
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True)
        created.append(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    created.append(target)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)


# --- writer ---------------------------------------------------------------------------------------------
def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes that depend only on the pixels (no timestamps, fixed compression). (PIL is imported here:
    the writer is the workstation's; the daemon reads packs with OpenCV and has no use for it.)"""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL,
                                                              optimize=False)
    return buf.getvalue()


def _check_rgb(what: str, image: Any, size: tuple[int, int] | None = None) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise PackError(f"{what}: expected an HxWx3 uint8 RGB array, got {type(image).__name__} {shape}")
    if size is not None and (image.shape[1], image.shape[0]) != size:
        raise PackError(f"{what}: {image.shape[1]}x{image.shape[0]}, expected {size[0]}x{size[1]}")
    return image


def _write_file(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_pack_folder(path: Path) -> bool:
    """Whether ``path`` holds a gaze pack (even a damaged one: the writer may replace it), by its manifest's
    format tag; the manifest is read as the loader reads it (no FIFO, no link out of the folder)."""
    try:
        blob = _PackFiles(path).manifest_bytes()
        if _json_too_deep(blob, MAX_JSON_DEPTH):
            return False
        data = json.loads(blob.decode("utf-8"))
    except (PackError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def write_pack(out_dir: PathLike, *, base: np.ndarray, frames: Sequence[np.ndarray],
               patch: tuple[int, int, int, int] | None, name: str, eyes: Mapping[str, Sequence[float]],
               span_deg: tuple[float, float] = (-30.0, 30.0), measured: Sequence[float] | None = None,
               generator: Mapping[str, Any], credits: Sequence[Mapping[str, str]]) -> Path:
    """Write a pack folder, atomically, byte-for-byte reproducibly; return its path.

    ``base`` is the canvas-sized painting; ``frames`` are left-to-right, each patch-sized (``patch`` is
    ``(x, y, w, h)`` in canvas pixels) or canvas-sized when ``patch`` is None. ``eyes`` maps "right" and
    "left" to the portrait's eye centres in canvas coordinates. ``generator`` has "method" and
    "parameters" (and "tool", which defaults to this mona-edge). The manifest goes through the reader's
    own schema check before anything is written.

    The pack is written to a temporary sibling folder and renamed into place. An existing pack at
    ``out_dir`` is replaced; any other existing folder, file or symlink is refused.
    """
    out = Path(out_dir)
    base = _check_rgb("base", base)
    canvas = (int(base.shape[1]), int(base.shape[0]))
    if patch is not None:
        if len(patch) != 4 or not all(_is_int(v) or isinstance(v, np.integer) for v in patch):
            raise PackError(f"patch {patch!r}: expected (x, y, width, height) integers or None")
        patch = tuple(int(v) for v in patch)  # type: ignore[assignment]
    frame_size = canvas if patch is None else (patch[2], patch[3])
    frames = [_check_rgb(f"frames[{i}]", f, frame_size) for i, f in enumerate(frames)]
    gen = dict(generator)
    gen.setdefault("tool", f"mona-edge {__version__}")
    gen.setdefault("parameters", {})
    count = len(frames)
    try:
        eyes_json = {k: [float(c) for c in v] for k, v in eyes.items()}
        span_json = [float(v) for v in span_deg]
        measured_json = None if measured is None else [float(v) for v in measured]
    except (TypeError, ValueError, AttributeError) as exc:
        raise PackError(f"eyes/span_deg/measured: expected numbers ({exc})") from exc
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "frame_count": count,
        "canvas": {"width": canvas[0], "height": canvas[1]},
        "patch": None if patch is None else dict(zip(("x", "y", "width", "height"), patch)),
        "eyes": eyes_json,
        "gaze": {"span_deg": span_json, "measured": measured_json},
        "files": {},
        "generator": gen,
        "credits": [dict(c) for c in credits],
    }
    if not MIN_FRAMES <= count <= MAX_FRAMES:
        raise PackError(f"frames: {count} given, a pack holds {MIN_FRAMES}..{MAX_FRAMES}")
    blobs = {BASE: encode_png(base)}
    for i, frame in enumerate(frames):
        blobs[frame_name(i, count)] = encode_png(frame)
    manifest["files"] = {k: {"sha256": new_sha256(v).hexdigest(), "bytes": len(v)} for k, v in blobs.items()}
    # The same schema the reader applies; a JSON round trip also proves the parameters are plain JSON.
    try:
        text = json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise PackError(f"manifest: not representable as JSON: {exc}") from exc
    parse_manifest(json.loads(text), "manifest (to be written)")

    if out.is_symlink():
        raise PackError(f"{out}: is a symlink; write to a versioned folder and switch the link instead")
    if out.exists() and not (out.is_dir() and _is_pack_folder(out)):
        raise PackError(f"{out}: exists and is not a gaze pack; refusing to overwrite it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise PackError(f"{out}: cannot write the pack there: {exc.strerror or exc}") from exc
    old: Path | None = None
    try:
        os.chmod(tmp, 0o755)
        for fname, blob in blobs.items():
            _write_file(tmp / fname, blob)
        _write_file(tmp / MANIFEST, text.encode("utf-8"))
        _fsync_dir(tmp / "frames")
        _fsync_dir(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
            os.rmdir(old)
            os.rename(out, old)
        os.rename(tmp, out)
        _fsync_dir(out.parent)
    except BaseException as exc:
        if old is not None and not out.exists():
            os.rename(old, out)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, a read-only folder: the user's to fix, named here
            raise PackError(f"{out}: writing the pack failed ({exc.strerror or exc}); "
                            "the previous pack there, if any, is untouched") from exc
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
