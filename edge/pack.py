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

import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Union

import cv2
import numpy as np
from PIL import Image

from edge import __version__
from edge.errors import PackError  # re-exported: callers import it from here

FORMAT = "mona-edge-gaze-pack"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BASE = "base.png"
MIN_FRAMES = 2
MAX_FRAMES = 255
#: Largest canvas or screen side accepted: a bigger one is a mistake, not a painting.
MAX_SIDE = 16384
#: manifest.json larger than this is not a manifest (255 frames of checksums fit in ~30 KB).
MAX_MANIFEST_BYTES = 1 << 20
#: Archive limits: a pack is at most 257 files; its unpacked size is bounded to refuse tar bombs.
MAX_ARCHIVE_MEMBERS = 1024
MAX_ARCHIVE_BYTES = 2 << 30
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


def read_manifest(folder: PathLike) -> Manifest:
    """Read and validate ``folder/manifest.json`` (schema only; :func:`load_pack` checks the files)."""
    path = Path(folder) / MANIFEST
    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise PackError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from exc
    if len(blob) > MAX_MANIFEST_BYTES:
        raise PackError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes; not a pack manifest")
    try:
        data = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackError(f"{path}: not valid UTF-8 JSON: {exc}") from exc
    return parse_manifest(data, str(path))


# --- verification -----------------------------------------------------------------------------------------
def _read_verified(folder: Path, fname: str, digest: str, size: int) -> bytes:
    """The bytes of one listed file, after checking they are what the manifest promised."""
    path = folder / fname
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise PackError(f"{path}: missing ({exc.__class__.__name__})") from exc
    if folder.resolve() not in real.parents:
        raise PackError(f"{path}: resolves outside the pack folder ({real})")
    try:
        with open(real, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise PackError(f"{path}: not a regular file")
            if st.st_size != size:
                raise PackError(f"{path}: {st.st_size} bytes, the manifest says {size}")
            blob = f.read(size + 1)
    except OSError as exc:
        raise PackError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(blob) != size:
        raise PackError(f"{path}: {len(blob)} bytes, the manifest says {size}")
    actual = hashlib.sha256(blob).hexdigest()
    if actual != digest:
        raise PackError(f"{path}: sha256 {actual} does not match the manifest's {digest}")
    return blob


def _check_sizes(folder: Path, manifest: Manifest) -> None:
    """Cheap first pass: every file exists with the promised size, so a half-copied pack fails fast."""
    for fname, (_, size) in manifest.files.items():
        path = folder / fname
        try:
            actual = path.stat().st_size
        except OSError as exc:
            raise PackError(f"{path}: missing ({exc.strerror or exc})") from exc
        if actual != size:
            raise PackError(f"{path}: {actual} bytes, the manifest says {size}")


def _decode_png(blob: bytes, where: str, size: tuple[int, int]) -> np.ndarray:
    """Decode verified PNG bytes to an RGB uint8 array, refusing the wrong size before decoding pixels."""
    try:
        with Image.open(io.BytesIO(blob)) as im:
            if im.format != "PNG":
                raise PackError(f"{where}: {im.format} data, expected PNG")
            if im.size != size:
                raise PackError(f"{where}: image is {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]}")
            if im.mode != "RGB":
                raise PackError(f"{where}: PNG mode {im.mode!r}, expected 'RGB' (8-bit, no alpha)")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except PackError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PackError(f"{where}: cannot decode PNG: {exc}") from exc


def verify_pack(path: PathLike) -> Manifest:
    """Check a pack folder's manifest, every file's size and sha256, and every image's size.

    For tools (``mona-edge`` provisioning, tests): the daemon calls :func:`load_pack`, which does the same
    checks on the same bytes it then shows.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    _check_sizes(folder, manifest)
    for fname in expected_files(manifest.frame_count):
        digest, size = manifest.files[fname]
        blob = _read_verified(folder, fname, digest, size)
        _decode_png(blob, str(folder / fname), _image_size(manifest, fname))
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
    """Canvas-sized image -> screen-sized, rotated, C-contiguous image (black outside the canvas)."""
    scaled = _scale(image, layout)
    uw, uh = layout.upright
    if (uw, uh) == layout.scaled and layout.rotation == 0:
        return np.ascontiguousarray(scaled)
    upright = np.zeros((uh, uw, 3), np.uint8)
    ox, oy = layout.offset
    upright[oy:oy + layout.scaled[1], ox:ox + layout.scaled[0]] = scaled
    return np.ascontiguousarray(layout.to_screen(upright))


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


def _load_folder(folder: Path, screen_size: tuple[int, int] | None, rotation: int, source: Path) -> GazePack:
    manifest = read_manifest(folder)
    layout = make_layout(manifest.canvas, screen_size, rotation)
    _check_sizes(folder, manifest)

    def image(fname: str) -> np.ndarray:
        digest, size = manifest.files[fname]
        blob = _read_verified(folder, fname, digest, size)
        return _decode_png(blob, str(folder / fname), _image_size(manifest, fname))

    base_canvas = image(BASE)
    base_screen = _fit(base_canvas, layout)
    # Where frames can differ from the base on screen: around the scaled patch (the whole canvas for
    # packs of full frames), never in the black bars. Only this window is computed and compared.
    window: Rect | None = layout.canvas_rect
    if manifest.patch is not None:
        window = _intersect(layout.canvas_rect, _screen_rect_of(layout, manifest.patch, _resample_margin(layout)))
    assert window is not None  # the patch lies inside the canvas, which lies inside the screen
    wx, wy, ww, wh = window
    base_window = base_screen[wy:wy + wh, wx:wx + ww]
    # Pass 1: each frame composed at canvas size, laid out exactly as the base was (same resize, same
    # rotation), compared with the base: the union of the differences is the one rectangle the display
    # redraws. Only each frame's differing crop is kept, so memory stays near one screen image.
    composed = base_canvas.copy()
    crops: list[tuple[Rect | None, np.ndarray]] = []
    rect: Rect | None = None
    for i in range(manifest.frame_count):
        frame = image(frame_name(i, manifest.frame_count))
        if manifest.patch is None:
            composed = frame
        else:
            px, py, pw, ph = manifest.patch
            composed[py:py + ph, px:px + pw] = frame
        shown = _fit_window(composed, layout, window)
        diff = _diff_bbox(shown, base_window)
        if diff is None:
            crops.append((None, shown[:0, :0]))
            continue
        dx, dy, dw, dh = diff
        diff = (dx + wx, dy + wy, dw, dh)
        rect = _union(rect, diff)
        crops.append((diff, shown[dy:dy + dh, dx:dx + dw].copy()))
    if rect is None:  # no frame differs from the base: a still picture, still a valid pack
        rect = _screen_rect_of(layout, manifest.patch or (0, 0) + manifest.canvas)
    # Pass 2: widen every crop to the common rectangle (outside its own difference it equals the base).
    x, y, w, h = rect
    patches = []
    for diff, crop in crops:
        patch = base_screen[y:y + h, x:x + w].copy()
        if diff is not None:
            dx, dy, dw, dh = diff
            patch[dy - y:dy - y + dh, dx - x:dx - x + dw] = crop
        patches.append(patch)
    return GazePack(manifest, layout, base_screen, rect, patches, source)


def load_pack(path: PathLike, screen_size: tuple[int, int] | None = None, rotation: int = 0) -> GazePack:
    """Verify a pack (folder, ``.tar`` or ``.tar.gz``) completely, then lay it out for the screen.

    ``screen_size`` is the framebuffer's ``(width, height)`` (None: the canvas at 1:1); ``rotation`` is
    the screen's clockwise mounting angle (see the module docstring). Raises :class:`PackError` before
    returning anything if any file, size, checksum or image is wrong.
    """
    source = Path(path)
    if source.is_dir():
        return _load_folder(source, screen_size, rotation, source)
    if source.is_file():
        with tempfile.TemporaryDirectory(prefix="mona-edge-pack-") as tmp:
            root = extract_archive(source, Path(tmp))
            return _load_folder(root, screen_size, rotation, source)
    raise PackError(f"{source}: no such pack (expected a folder with {MANIFEST}, or a .tar/.tar.gz of one)")


# --- archives ---------------------------------------------------------------------------------------------
def extract_archive(archive: PathLike, dest: PathLike) -> Path:
    """Unpack a pack archive into ``dest`` safely; return the folder holding ``manifest.json``.

    Only regular files and folders are accepted, with relative names free of ``..``; links, devices and
    oversized archives are refused. Files are written by this function (``tarfile``'s extraction is never
    used), so nothing lands outside ``dest``. The manifest may be at the top or inside one top folder.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise PackError(f"{archive}: not a readable .tar or .tar.gz: {exc}") from exc
    try:
        with tar:
            _extract_members(tar, archive, dest)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:  # truncated or corrupt: half-copied
        raise PackError(f"{archive}: cannot unpack: {exc}") from exc
    if (dest / MANIFEST).is_file():
        return dest
    tops = [p for p in dest.iterdir()]
    if len(tops) == 1 and (tops[0] / MANIFEST).is_file():
        return tops[0]
    raise PackError(f"{archive}: no {MANIFEST} at the top or in a single top folder")


def _extract_members(tar: tarfile.TarFile, archive: Path, dest: Path) -> None:
    """Check every member, then write the files; PackError names the member that is refused."""
    total = 0
    members = []
    for count, member in enumerate(tar, start=1):
        if count > MAX_ARCHIVE_MEMBERS:
            raise PackError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members; not a pack")
        name = member.name[2:] if member.name.startswith("./") else member.name
        name = name.rstrip("/") if member.isdir() else name
        if member.isdir() and name in ("", "."):
            continue
        if not _safe_member_name(name):
            raise PackError(f"{archive}: member {member.name!r}: absolute or '..' paths are refused")
        if not (member.isfile() or member.isdir()):
            raise PackError(f"{archive}: member {member.name!r}: only regular files and folders are allowed")
        total += member.size
        if total > MAX_ARCHIVE_BYTES:
            raise PackError(f"{archive}: unpacks to more than {MAX_ARCHIVE_BYTES} bytes; not a pack")
        members.append((name, member))
    for name, member in members:
        target = dest.joinpath(*name.split("/"))
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        source = tar.extractfile(member)
        if source is None:
            raise PackError(f"{archive}: member {member.name!r} cannot be read")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, open(target, "xb") as out:
                shutil.copyfileobj(source, out)
        except FileExistsError as exc:
            raise PackError(f"{archive}: member {member.name!r} appears twice") from exc
        except OSError as exc:
            raise PackError(f"{archive}: member {member.name!r} cannot be unpacked: {exc.strerror or exc}") from exc


# --- writer ---------------------------------------------------------------------------------------------
def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes that depend only on the pixels (no timestamps, fixed compression)."""
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
    try:
        with open(path / MANIFEST, "rb") as f:
            data = json.loads(f.read(MAX_MANIFEST_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
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
    manifest["files"] = {k: {"sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v)} for k, v in blobs.items()}
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
