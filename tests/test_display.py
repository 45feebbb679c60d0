"""Display sinks: framebuffer files decoded byte by byte, partial updates, sysfs geometry, pygame (dummy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.display import DisplayError, HeadlessSink, PygameSink, SinkChoice, choice_of, open_display
from edge.framebuffer import FramebufferSink, read_sysfs_geometry
from edge.pack import load_pack

REPO = Path(__file__).resolve().parent.parent
TEST_PACK = REPO / "assets" / "packs" / "test"
W, H = 320, 240


@pytest.fixture(scope="module")
def pack():
    """The committed test pack on a 320x240 screen mounted on its side: patches are not at the origin."""
    return load_pack(TEST_PACK, screen_size=(W, H), rotation=90)


def decode_xrgb(raw: bytes, width: int, height: int, stride: int) -> np.ndarray:
    """Independent decoder: bytes B, G, R, X per pixel, ``stride`` bytes per row -> (h, w, 4) as R, G, B, X."""
    out = np.zeros((height, width, 4), np.uint8)
    for y in range(height):
        row = raw[y * stride: y * stride + width * 4]
        px = np.frombuffer(row, np.uint8).reshape(width, 4)
        out[y, :, 0], out[y, :, 1], out[y, :, 2], out[y, :, 3] = px[:, 2], px[:, 1], px[:, 0], px[:, 3]
    return out


def decode_rgb565_fields(raw: bytes, width: int, height: int, stride: int) -> np.ndarray:
    """Independent decoder: little-endian 16-bit words -> the raw 5/6/5-bit fields (h, w, 3)."""
    out = np.zeros((height, width, 3), np.int32)
    for y in range(height):
        for x in range(width):
            lo, hi = raw[y * stride + 2 * x], raw[y * stride + 2 * x + 1]
            word = lo | (hi << 8)
            out[y, x] = (word >> 11, (word >> 5) & 0x3F, word & 0x1F)
    return out


def test_xrgb8888_file_round_trip(tmp_path, pack):
    path = tmp_path / "fb.raw"
    with FramebufferSink(path, width=W, height=H, bpp=32) as fb:
        assert path.stat().st_size == W * H * 4 and fb.size == (W, H)
        fb.show_full(pack.frame_image(2))
        raw = path.read_bytes()  # the file, not the sink, is what we check
        decoded = decode_xrgb(raw, W, H, W * 4)
        np.testing.assert_array_equal(decoded[..., :3], pack.frame_image(2))
        assert (decoded[..., 3] == 255).all()
        np.testing.assert_array_equal(fb.snapshot(), pack.frame_image(2))


def test_rgb565_file_round_trip(tmp_path, pack):
    path = tmp_path / "fb565.raw"
    with FramebufferSink(path, width=W, height=H, bpp=16) as fb:
        image = pack.frame_image(6)
        fb.show_full(image)
        fields = decode_rgb565_fields(path.read_bytes(), W, H, W * 2)
        expected = np.stack([image[..., 0] >> 3, image[..., 1] >> 2, image[..., 2] >> 3], axis=-1).astype(np.int32)
        np.testing.assert_array_equal(fields, expected)
        back = fb.snapshot().astype(int)
        err = np.abs(back - image.astype(int))
        assert err[..., 0].max() <= 7 and err[..., 1].max() <= 3 and err[..., 2].max() <= 7
        # Full-scale values survive exactly (bit replication maps 31 -> 255, 63 -> 255).
        fb.show_full(np.full((H, W, 3), 255, np.uint8))
        assert (fb.snapshot() == 255).all()


@pytest.mark.parametrize("bpp", [16, 32])
def test_partial_update_touches_only_the_rect_and_never_the_padding(tmp_path, pack, bpp):
    bytes_pp = bpp // 8
    stride = W * bytes_pp + 24  # padded rows, as some drivers lay them out
    path = tmp_path / f"fb{bpp}.raw"
    path.write_bytes(b"\xab" * (stride * H))
    with FramebufferSink(path, width=W, height=H, bpp=bpp, stride=stride) as fb:
        fb.show_full(pack.frame_image(0))
        before = np.frombuffer(path.read_bytes(), np.uint8).reshape(H, stride).copy()
        rect, patch = pack.patch(8)
        fb.update(rect, patch)
        after = np.frombuffer(path.read_bytes(), np.uint8).reshape(H, stride)
        x, y, w, h = rect
        inside = np.zeros((H, stride), bool)
        inside[y:y + h, x * bytes_pp:(x + w) * bytes_pp] = True
        np.testing.assert_array_equal(after[~inside], before[~inside])
        assert (after[:, W * bytes_pp:] == 0xAB).all()
        assert (after[inside] != before[inside]).any()
        shown = fb.snapshot()
        expected = pack.frame_image(8)
        if bpp == 32:
            np.testing.assert_array_equal(shown, expected)
            np.testing.assert_array_equal(decode_xrgb(after.tobytes(), W, H, stride)[..., :3], expected)
        else:
            assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 7


def _mapped_kib(path: Path) -> list[int]:
    """Resident KiB of each of this process's mappings of ``path`` (from /proc/self/smaps)."""
    sizes, current = [], False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            current = line.endswith(str(path))
        elif current and line.startswith("Rss:"):
            sizes.append(int(line.split()[1]))
    return sizes


def test_the_sink_keeps_only_the_patchs_rows_mapped_not_the_screen(tmp_path):
    # a 1080x1920 XRGB8888 screen is 8 MiB: mapped whole, all of it counts in the daemon's RSS after the
    # first full-screen draw; written in bands it never is, and a patch maps only the rows it covers
    w, h = 1080, 1920
    path = tmp_path / "fb.raw"
    screen = np.random.default_rng(3).integers(0, 256, (h, w, 3), np.uint8)
    with FramebufferSink(path, width=w, height=h, bpp=32) as fb:
        fb.show_full(screen)
        assert _mapped_kib(path) == []
        eyes = screen[700:757, 400:592][::-1].copy()
        for _ in range(3):
            fb.update((400, 700, 192, 57), eyes)
        (resident,) = _mapped_kib(path)
        assert resident <= (57 * w * 4) // 1024 + 2 * 4 + 64, resident  # the rows' pages (and alignment)
        # more places than are kept: the oldest mapping goes, and every write lands
        for i, top in enumerate((0, 300, 1000)):
            fb.update((0, top, 64, 10), np.full((10, 64, 3), i * 80, np.uint8))
        assert len(_mapped_kib(path)) <= 2
        shown = fb.snapshot()
    expected = screen.copy()
    expected[700:757, 400:592] = eyes
    for i, top in enumerate((0, 300, 1000)):
        expected[top:top + 10, :64] = i * 80
    np.testing.assert_array_equal(shown, expected)
    assert _mapped_kib(path) == []  # closed: nothing left mapped


def test_sysfs_geometry_from_a_folder(tmp_path, pack):
    sysfs = tmp_path / "fb1"
    sysfs.mkdir()
    (sysfs / "virtual_size").write_text(f"{W},{H}\n")
    (sysfs / "bits_per_pixel").write_text("32\n")
    (sysfs / "stride").write_text(f"{W * 4 + 64}\n")
    geometry = read_sysfs_geometry(sysfs)
    assert (geometry.width, geometry.height, geometry.bpp, geometry.stride) == (W, H, 32, W * 4 + 64)
    assert geometry.pixel_format == "XRGB8888"
    path = tmp_path / "fb1.raw"
    with FramebufferSink(path, sysfs_dir=sysfs) as fb:
        assert fb.size == (W, H) and path.stat().st_size == (W * 4 + 64) * H
        fb.show_full(pack.frame_image(4))
        decoded = decode_xrgb(path.read_bytes(), W, H, W * 4 + 64)
        np.testing.assert_array_equal(decoded[..., :3], pack.frame_image(4))
    (sysfs / "stride").unlink()
    assert read_sysfs_geometry(sysfs).stride == W * 4  # no stride file: packed rows


@pytest.mark.parametrize("files, match", [
    ({"virtual_size": "320,240", "bits_per_pixel": "24"}, "bits_per_pixel 24: supported are 16 .RGB565., 32"),
    ({"virtual_size": "320,240", "bits_per_pixel": "32", "stride": "100"}, "stride 100: .*at least 1280"),
    ({"virtual_size": "320", "bits_per_pixel": "32"}, "expected 'width,height'"),
    ({"virtual_size": "wide,tall", "bits_per_pixel": "32"}, "not a number"),
    ({"virtual_size": "0,240", "bits_per_pixel": "16"}, "width 0"),
    ({"bits_per_pixel": "16"}, "virtual_size: cannot read"),
])
def test_bad_sysfs_geometry_is_a_clear_error(tmp_path, files, match):
    sysfs = tmp_path / "fb0"
    sysfs.mkdir()
    for name, text in files.items():
        (sysfs / name).write_text(text + "\n")
    with pytest.raises(DisplayError, match=match) as err:
        FramebufferSink(tmp_path / "out.raw", sysfs_dir=sysfs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.raw").exists()


def test_framebuffer_file_errors(tmp_path):
    with pytest.raises(DisplayError, match="no such framebuffer device"):
        FramebufferSink(tmp_path / "fb9")
    small = tmp_path / "small.raw"
    small.write_bytes(b"\0" * 100)
    with pytest.raises(DisplayError, match="100 bytes, a 320x240 XRGB8888 framebuffer with stride 1280 needs 307200"):
        FramebufferSink(small, width=W, height=H, bpp=32)
    with pytest.raises(DisplayError, match="a plain file needs width, height and bpp"):
        FramebufferSink(small)
    with pytest.raises(DisplayError, match="neither a framebuffer device nor a regular file"):
        FramebufferSink(tmp_path, width=W, height=H, bpp=32)
    with pytest.raises(DisplayError, match="stride 1282"):
        FramebufferSink(tmp_path / "odd.raw", width=W, height=H, bpp=32, stride=W * 4 + 2)
    with FramebufferSink(tmp_path / "ok.raw", width=4, height=2, bpp=16) as fb:
        with pytest.raises(ValueError, match=r"rect \(3, 0, 2, 1\): outside the 4x2 screen"):
            fb.update((3, 0, 2, 1), np.zeros((1, 2, 3), np.uint8))
        with pytest.raises(ValueError, match=r"expected \(1, 2, 3\) uint8"):
            fb.update((0, 0, 2, 1), np.zeros((1, 2, 4), np.uint8))
        with pytest.raises(ValueError, match=r"expected \(2, 4, 3\) uint8"):
            fb.show_full(np.zeros((4, 2, 3), np.uint8))
    fb.close()  # closing twice is harmless


def test_pygame_dummy_driver_shows_and_snapshots_the_right_pixels(pack):
    sink = PygameSink((W, H), driver="dummy")
    try:
        import pygame

        assert sink.size == (W, H) and not pygame.mouse.get_visible()
        sink.show_full(pack.frame_image(0))
        np.testing.assert_array_equal(sink.snapshot(), pack.frame_image(0))
        for i in (3, 8, 1):
            sink.update(*pack.patch(i))
            np.testing.assert_array_equal(sink.snapshot(), pack.frame_image(i))
    finally:
        sink.close()
    sink.close()


def test_headless_and_every_sink_agree_over_a_sequence(tmp_path, pack):
    sinks = [HeadlessSink((W, H)), FramebufferSink(tmp_path / "a.raw", width=W, height=H, bpp=32),
             PygameSink((W, H), driver="dummy")]
    try:
        for sink in sinks:
            sink.show_full(pack.base)
            for i in (0, 5, 8, 4, 2):
                sink.update(*pack.patch(i))
        for sink in sinks:
            np.testing.assert_array_equal(sink.snapshot(), pack.frame_image(2), err_msg=type(sink).__name__)
        assert sinks[0].updates == 6
    finally:
        for sink in sinks:
            sink.close()


def test_open_display_kinds_and_errors(tmp_path, monkeypatch):
    headless = open_display("headless", size=(64, 48))
    assert isinstance(headless, HeadlessSink) and headless.size == (64, 48)
    out = tmp_path / "screen.raw"
    with open_display("file", output=str(out), size=(64, 48), bpp=16) as fb:
        assert fb.geometry.pixel_format == "RGB565" and out.stat().st_size == 64 * 48 * 2
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    sink = open_display("pygame", size=(64, 48))
    assert sink.size == (64, 48)
    sink.close()
    # auto, with SDL_VIDEODRIVER naming a driver SDL has (the tests' dummy), is pygame with that driver
    auto = open_display("auto", size=(64, 48))
    assert isinstance(auto, PygameSink) and auto.size == (64, 48)
    assert choice_of(auto) == SinkChoice("pygame", "SDL_VIDEODRIVER=dummy in the environment", driver="dummy")
    auto.close()
    assert choice_of(sink) is None  # configured by name, not chosen
    with pytest.raises(DisplayError, match="display kind 'auto' takes no output"):
        open_display("auto", output=str(out))
    with pytest.raises(DisplayError, match="display kind 'lcd': expected one of auto, pygame, fbdev, file, headless"):
        open_display("lcd")
    with pytest.raises(DisplayError, match="'headless': needs size"):
        open_display("headless")
    with pytest.raises(DisplayError, match="'file': needs output"):
        open_display("file", size=(64, 48))
    with pytest.raises(DisplayError, match="takes no device"):
        open_display("pygame", device="/dev/fb0")
    with pytest.raises(DisplayError, match="drm_card 100"):
        open_display("pygame", drm_card=100)
    with pytest.raises(DisplayError, match="display size"):
        open_display("headless", size=(0, 10))
    with pytest.raises(DisplayError, match="no such framebuffer device"):
        open_display("fbdev", device=str(tmp_path / "fb7"))
    with pytest.raises(DisplayError, match="bits_per_pixel 24"):
        open_display("file", output=str(tmp_path / "x.raw"), size=(64, 48), bpp=24)


def test_pygame_without_a_usable_driver_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    with pytest.raises(DisplayError, match="display 'pygame' \\(SDL driver 'no-such-driver'"):
        PygameSink((64, 48), driver="no-such-driver")


def test_pygame_full_screen_takes_the_screens_mode_and_refuses_a_size_it_lacks(monkeypatch):
    """SDL's dummy screen has one mode, 1024x768: full screen gets it; asking for another size fails loudly."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    sink = PygameSink(fullscreen=True)
    try:
        assert sink.size == (1024, 768)
        sink.show_full(np.full((768, 1024, 3), (10, 20, 30), np.uint8))
        assert tuple(sink.snapshot()[767, 1023]) == (10, 20, 30)
    finally:
        sink.close()
    with pytest.raises(DisplayError, match="asked for 64x48, got 1024x768"):
        PygameSink((64, 48), fullscreen=True)
    with pytest.raises(DisplayError, match="needs a size"):
        PygameSink(fullscreen=False)


def test_a_pygame_sink_opens_on_the_driver_it_is_given_even_after_another_started_sdl(monkeypatch):
    """SDL reads its video driver only when pygame's display starts: a display left started on one driver
    (by a tool, a sink not yet closed) must not be reused by a sink asked for another one."""
    import pygame

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # undone after the test: the sinks set the variable
    first = PygameSink((32, 24), driver="dummy")
    assert pygame.display.get_driver() == "dummy"
    second = PygameSink((32, 24), driver="offscreen")  # the first is not closed
    try:
        assert pygame.display.get_driver() == "offscreen" and second.size == (32, 24)
    finally:
        second.close()
        first.close()
