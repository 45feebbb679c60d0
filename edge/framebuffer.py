"""Draw straight into a Linux framebuffer (``/dev/fbN``) or a plain file laid out like one.

No SDL, no X: the kernel's fbdev emulation on top of the Pi's KMS driver is enough to show a picture,
and a plain file with the same layout lets everything be tested (and inspected) off the Pi.

Geometry comes from sysfs (``/sys/class/graphics/fbN/virtual_size``, ``bits_per_pixel``, ``stride``)
or is given explicitly. Two pixel formats are supported, the ones the Pi's fbdev offers:

* 16 bpp RGB565, little-endian 16-bit words: ``rrrrrggg gggbbbbb``;
* 32 bpp XRGB8888, little-endian 32-bit words, i.e. bytes B, G, R, X in memory.

Rows are ``stride`` bytes apart; padding bytes at the end of each row are never written. An update
converts only its rectangle with OpenCV's SIMD colour conversion. A patch (the eyes: the same rows on
every update) is converted straight into a mapping of just the rows it covers, made once and kept; a
big update (the full-screen draw at start) is converted a band of :data:`BAND_ROWS` rows at a time into
a scratch band (not kept: such an update is rare) and written with ``pwrite``. No full-screen scratch is
ever made, and the per-frame path allocates nothing after the first update at a given place. (Measured
on a 270x360 patch: 0.08 ms for the conversion, against 1.6 ms for numpy channel-strided writes.)

Why not map the whole screen: the pages of a mapping count in the daemon's resident memory once touched,
all 8 MiB of a 1080x1920 XRGB8888 screen after the first full-screen draw, with a framebuffer file (the
tests' and the benches') and with fbdev emulations that back ``/dev/fb0`` with ordinary pages (deferred
I/O). Mapping only a patch's rows keeps 0.25 MiB of them for the default pack (measured: tests/bench/
memory.py: 102.5 -> 95.3 MiB); ``pwrite`` for every row of a patch instead cost 0.16 ms a draw here
against 0.04 ms (57 calls), which is why patches keep a mapping.

The kernel console can draw over the framebuffer (a blinking cursor): the service's image disables it
(``vt.global_cursor_default=0`` on the kernel command line), which is configuration, not code.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.display import DisplayError, Rect, Size, check_image, check_update

#: Pixel formats by bits per pixel.
FORMATS = {16: "RGB565", 32: "XRGB8888"}
SYSFS_GRAPHICS = Path("/sys/class/graphics")
MAX_SIDE = 16384
#: Rows converted at a time for a big update: bounds the scratch kept (a 1080-wide band is 540 KB at
#: 32 bpp) while a band is still long enough for OpenCV's SIMD loop.
BAND_ROWS = 128
#: An update of at most this share of the screen's rows is drawn through a kept mapping of its rows (a
#: patch is redrawn at the same place many times a second); a bigger one is written band by band.
MAPPED_SHARE = 0.25
#: At most this many row mappings are kept (a pack has one patch place; a new pack may bring another).
MAPPED_PLACES = 2


@dataclass(frozen=True)
class FbGeometry:
    """Visible size, bits per pixel and row pitch of a framebuffer."""

    width: int
    height: int
    bpp: int
    stride: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.bpp // 8

    @property
    def nbytes(self) -> int:
        """Bytes mapped: every row at full stride."""
        return self.stride * self.height

    @property
    def pixel_format(self) -> str:
        return FORMATS[self.bpp]


def make_geometry(width: int, height: int, bpp: int, stride: int | None = None,
                  where: str = "framebuffer") -> FbGeometry:
    """Check a geometry; ``stride`` defaults to tightly packed rows. It comes from sysfs or the user's
    config, so a bad one is a :class:`DisplayError` naming the framebuffer."""
    for key, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIDE:
            raise DisplayError(f"{where}: {key} {value!r}: expected an integer 1..{MAX_SIDE}")
    if bpp not in FORMATS:
        raise DisplayError(f"{where}: bits_per_pixel {bpp!r}: supported are "
                         + ", ".join(f"{b} ({n})" for b, n in FORMATS.items()))
    row = width * (bpp // 8)
    if stride is None:
        stride = row
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < row or stride % (bpp // 8):
        raise DisplayError(f"{where}: stride {stride!r}: expected a multiple of {bpp // 8} bytes, at least "
                         f"{row} (width {width} x {bpp // 8} bytes)")
    return FbGeometry(width, height, bpp, stride)


def _read_sysfs_int_list(path: Path) -> tuple[int, ...]:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise DisplayError(f"{path}: cannot read framebuffer geometry: {exc.strerror or exc}") from exc
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise DisplayError(f"{path}: {text!r} is not a number or a comma-separated pair") from exc


def read_sysfs_geometry(sysfs_dir: str | Path) -> FbGeometry:
    """Geometry of a framebuffer from its sysfs folder (``stride`` optional: packed rows if absent)."""
    folder = Path(sysfs_dir)
    size = _read_sysfs_int_list(folder / "virtual_size")
    if len(size) != 2:
        raise DisplayError(f"{folder / 'virtual_size'}: {size!r}: expected 'width,height'")
    bpp = _read_sysfs_int_list(folder / "bits_per_pixel")[0]
    stride = None
    if (folder / "stride").exists():
        stride = _read_sysfs_int_list(folder / "stride")[0]
    return make_geometry(size[0], size[1], bpp, stride, where=str(folder))


class FramebufferSink:
    """A :class:`edge.display.DisplaySink` writing to a framebuffer device or file (module docstring).

    For a character device the geometry is read from ``sysfs_dir`` (default
    ``/sys/class/graphics/<device name>``). For a plain file give ``width``, ``height`` and ``bpp`` (and
    ``stride`` if rows are padded) or a ``sysfs_dir``; a missing file is created at the right size.
    Explicit values override sysfs ones.
    """

    def __init__(self, device: str | Path = "/dev/fb0", *, sysfs_dir: str | Path | None = None,
                 width: int | None = None, height: int | None = None, bpp: int | None = None,
                 stride: int | None = None):
        self.path = Path(device)
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise DisplayError(f"{self.path}: {exc.strerror or exc}") from exc
        is_device = st is not None and stat.S_ISCHR(st.st_mode)
        if st is not None and not (is_device or stat.S_ISREG(st.st_mode)):
            raise DisplayError(f"{self.path}: neither a framebuffer device nor a regular file")
        if sysfs_dir is None and is_device:
            sysfs_dir = SYSFS_GRAPHICS / self.path.name
        if st is None and sysfs_dir is None and None in (width, height, bpp):
            raise DisplayError(f"{self.path}: no such framebuffer device (a plain file needs width, height "
                               f"and bpp to be created)")
        self.geometry = self._geometry(sysfs_dir, width, height, bpp, stride)
        g = self.geometry

        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
        try:
            if st is None:
                self._fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                os.ftruncate(self._fd, g.nbytes)
            else:
                self._fd = os.open(self.path, flags)
        except OSError as exc:
            hint = " (the service user needs the 'video' group)" if exc.errno in (1, 13) else ""
            raise DisplayError(f"{self.path}: cannot open for writing: {exc.strerror or exc}{hint}") from exc
        try:
            if not is_device:
                actual = os.fstat(self._fd).st_size
                if actual < g.nbytes:
                    raise DisplayError(f"{self.path}: {actual} bytes, a {g.width}x{g.height} {g.pixel_format} "
                                       f"framebuffer with stride {g.stride} needs {g.nbytes}")
        except DisplayError:
            os.close(self._fd)
            raise
        self._row_bytes = g.width * g.bytes_per_pixel
        # Bytes per pixel as the last axis: B, G, R, X for XRGB8888; the low then high byte of the
        # little-endian RGB565 word (exactly OpenCV's "BGR565" layout) for 16 bpp.
        self._convert = cv2.COLOR_RGB2BGRA if g.bpp == 32 else cv2.COLOR_RGB2BGR565
        # (first row, rows) -> (the mapping of those rows' pages, a (rows, width, bytes per pixel) view)
        self._mapped: dict[tuple[int, int], tuple[mmap.mmap, np.ndarray]] = {}
        self._size: Size = (g.width, g.height)

    def _geometry(self, sysfs_dir, width, height, bpp, stride) -> FbGeometry:
        if sysfs_dir is None:
            if None in (width, height, bpp):
                raise DisplayError(f"{self.path}: a plain file needs width, height and bpp (16 or 32), or a "
                                   f"sysfs folder with virtual_size, bits_per_pixel and stride")
            return make_geometry(width, height, bpp, stride, where=str(self.path))
        base = read_sysfs_geometry(sysfs_dir)
        w = width if width is not None else base.width
        h = height if height is not None else base.height
        b = bpp if bpp is not None else base.bpp
        s = stride if stride is not None else (base.stride if base.bpp == b and base.width == w else None)
        return make_geometry(w, h, b, s, where=str(self.path))

    @property
    def size(self) -> Size:
        return self._size

    def _write(self, x: int, y: int, w: int, h: int, rgb: np.ndarray) -> None:
        try:
            if h <= MAPPED_SHARE * self.geometry.height:
                target = self._rows(y, h)[:, x:x + w]
                converted = cv2.cvtColor(rgb, self._convert, dst=target)  # 32 bpp: X = 255
                if converted is not target and not np.shares_memory(converted, target):
                    np.copyto(target, converted)  # (OpenCV allocates instead if it refuses a dst)
                return
            self._write_bands(x, y, w, h, rgb)
        except (OSError, ValueError) as exc:
            raise DisplayError(f"{self.path}: cannot write: {exc}") from exc

    def _rows(self, y: int, h: int) -> np.ndarray:
        """A (h, width, bytes per pixel) view of rows ``y``..``y+h`` through a kept mapping of their pages."""
        known = self._mapped.get((y, h))
        if known is not None:
            return known[1]
        g = self.geometry
        start = (y * g.stride) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        end = (y + h - 1) * g.stride + self._row_bytes
        mapping = mmap.mmap(self._fd, end - start, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                            offset=start)
        first = y * g.stride - start
        rows = np.frombuffer(mapping, np.uint8, count=(h - 1) * g.stride + self._row_bytes, offset=first)
        view = np.lib.stride_tricks.as_strided(rows, (h, g.width, g.bytes_per_pixel),
                                               (g.stride, g.bytes_per_pixel, 1))
        while len(self._mapped) >= MAPPED_PLACES:
            self._unmap(next(iter(self._mapped)))
        self._mapped[(y, h)] = (mapping, view)
        return view

    def _unmap(self, key: tuple[int, int]) -> None:
        mapping, view = self._mapped.pop(key)
        del view  # numpy views hold the mapping's buffer: dropped before it is closed
        mapping.close()

    def _write_bands(self, x: int, y: int, w: int, h: int, rgb: np.ndarray) -> None:
        g = self.geometry
        bpp = g.bytes_per_pixel
        whole_rows = x == 0 and w == g.width and g.stride == self._row_bytes
        band = np.empty((min(BAND_ROWS, h), w, bpp), np.uint8)  # not kept: a big update is rare
        for top in range(0, h, BAND_ROWS):
            rows = min(BAND_ROWS, h - top)
            scratch = band[:rows]
            converted = cv2.cvtColor(rgb[top:top + rows], self._convert, dst=scratch)
            if converted is not scratch:
                np.copyto(scratch, converted)
            offset = (y + top) * g.stride + x * bpp
            if whole_rows:  # one call for the band: its rows are contiguous in the framebuffer too
                self._pwrite(scratch, offset)
                continue
            for r in range(rows):
                self._pwrite(scratch[r], offset + r * g.stride)

    def _pwrite(self, data: np.ndarray, offset: int) -> None:
        view = data.data.cast("B")
        while view:  # a device may take less than asked
            done = os.pwrite(self._fd, view, offset)
            view, offset = view[done:], offset + done

    def show_full(self, image: np.ndarray) -> None:
        check_image(self._size, image)
        self._write(0, 0, self._size[0], self._size[1], image)

    def update(self, rect: Rect, patch: np.ndarray) -> None:
        x, y, w, h = check_update(self._size, rect, patch)
        self._write(x, y, w, h, patch)

    def snapshot(self) -> np.ndarray:
        """Read the framebuffer back and convert to RGB (RGB565 expands 5/6 bits by bit replication)."""
        g = self.geometry
        raw = bytearray(g.nbytes)
        view, offset = memoryview(raw), 0
        while view:
            got = os.preadv(self._fd, [view], offset)
            if got <= 0:
                raise DisplayError(f"{self.path}: {offset} bytes read back, {g.nbytes} expected")
            view, offset = view[got:], offset + got
        pixels = np.frombuffer(raw, np.uint8).reshape(g.height, g.stride)[:, :self._row_bytes]
        pixels = pixels.reshape(g.height, g.width, g.bytes_per_pixel)
        if g.bpp == 32:
            return np.ascontiguousarray(pixels[..., 2::-1])
        v = pixels[..., 0].astype(np.uint16) | (pixels[..., 1].astype(np.uint16) << 8)
        r, gr, b = (v >> 11) & 0x1F, (v >> 5) & 0x3F, v & 0x1F
        out = np.empty(v.shape + (3,), np.uint8)
        out[..., 0] = (r << 3) | (r >> 2)
        out[..., 1] = (gr << 2) | (gr >> 4)
        out[..., 2] = (b << 3) | (b >> 2)
        return out

    def close(self) -> None:
        if getattr(self, "_fd", None) is None:
            return
        for key in list(self._mapped):
            self._mapped[key][0].flush()
            self._unmap(key)
        os.close(self._fd)
        self._fd = None  # type: ignore[assignment]

    def __enter__(self) -> FramebufferSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
