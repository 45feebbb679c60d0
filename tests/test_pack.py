"""Gaze pack: the committed test pack, writer determinism, every refusal, layout on screens and archives.

``python tests/test_pack.py`` regenerates ``assets/packs/test`` with :func:`make_test_pack`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.pack import (  # noqa: E402
    FORMAT,
    PackError,
    expected_files,
    extract_archive,
    frame_name,
    load_pack,
    make_layout,
    verify_pack,
    write_pack,
)

TEST_PACK = REPO / "assets" / "packs" / "test"
CREDITS = [{"work": "w", "author": "a", "source": "s", "licence": "l"}]

# --- the committed test pack --------------------------------------------------------------------------------
#: The test pack's canvas is scikit-image's astronaut, columns 32..415 (a 3:4 portrait crop round her
#: face), halved by exact 2x2 averaging: 192x256. Her eyes (hand-measured in the 512x512 original, see
#: conftest) land here; the pack's drawn irises sit on them.
TP_CROP_X = 32
TP_EYES_512 = {"right": (203.0, 101.0), "left": (246.0, 103.0)}
TP_PATCH = (60, 32, 72, 40)
TP_FRAMES = 9
TP_SHIFT_PX = 2.0
TP_IRIS = (2.8, (70, 52, 40))
TP_PUPIL = (1.3, (12, 10, 9))


def _tp_canvas(astronaut: np.ndarray) -> np.ndarray:
    crop = astronaut[:, TP_CROP_X:TP_CROP_X + 384].astype(np.uint16)
    halved = (crop[0::2, 0::2] + crop[1::2, 0::2] + crop[0::2, 1::2] + crop[1::2, 1::2] + 2) // 4
    return halved.astype(np.uint8)


def _tp_eyes() -> dict:
    """Eye centres in the canvas's continuous coordinates (original pixel centres are at index + 0.5)."""
    return {k: ((x + 0.5 - TP_CROP_X) / 2.0, (y + 0.5) / 2.0) for k, (x, y) in TP_EYES_512.items()}


def _disc(image: np.ndarray, centre, radius: float, colour) -> None:
    """Paint an anti-aliased disc (4x4 supersampled coverage), in place; plain arithmetic, so exact."""
    x0, y0 = max(0, int(centre[0] - radius) - 1), max(0, int(centre[1] - radius) - 1)
    x1 = min(image.shape[1], int(centre[0] + radius) + 2)
    y1 = min(image.shape[0], int(centre[1] + radius) + 2)
    h, w = y1 - y0, x1 - x0
    offsets = (np.arange(4) + 0.5) / 4.0
    ys = (np.arange(y0, y1)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(x0, x1)[:, None] + offsets[None, :]).reshape(-1)
    inside = ((xs[None, :] - centre[0]) ** 2 + (ys[:, None] - centre[1]) ** 2) <= radius * radius
    cover = inside.reshape(h, 4, w, 4).sum(axis=(1, 3)).astype(np.int32)[..., None]  # 0..16
    box = image[y0:y1, x0:x1]
    box[...] = ((box.astype(np.int32) * (16 - cover) + np.array(colour, np.int32) * cover + 8) // 16).astype(np.uint8)


def tp_arrays(astronaut: np.ndarray):
    """(base, patches, shifts): the painting with irises at centre, and each frame's patch."""
    canvas = _tp_canvas(astronaut)
    shifts = np.linspace(-TP_SHIFT_PX, TP_SHIFT_PX, TP_FRAMES)
    x, y, w, h = TP_PATCH
    painted = []
    for dx in shifts:
        image = canvas.copy()
        for cx, cy in _tp_eyes().values():
            _disc(image, (cx + dx, cy), TP_IRIS[0], TP_IRIS[1])
            _disc(image, (cx + dx, cy), TP_PUPIL[0], TP_PUPIL[1])
        painted.append(image)
    base = painted[TP_FRAMES // 2]
    return base, [p[y:y + h, x:x + w].copy() for p in painted], shifts


def make_test_pack(out_dir: Path, astronaut: np.ndarray) -> Path:
    """Write the committed test pack: drawn irises shifted left to right over the astronaut's eyes."""
    base, patches, shifts = tp_arrays(astronaut)
    return write_pack(
        out_dir, base=base, frames=patches, patch=TP_PATCH, name="test: astronaut, drawn irises shifted",
        eyes=_tp_eyes(), span_deg=(-30.0, 30.0), measured=[float(s / TP_SHIFT_PX) for s in shifts],
        generator={"method": "test-shift", "parameters": {
            "note": "TEST PACK ONLY: flat discs drawn over the eyes and shifted; not a generated gaze",
            "crop_x": TP_CROP_X, "downscale": 2, "shift_px": [float(s) for s in shifts],
            "iris_radius": TP_IRIS[0], "pupil_radius": TP_PUPIL[0]}},
        credits=[{"work": "Astronaut Eileen Collins (official NASA portrait, 1992)", "author": "NASA",
                  "source": "scikit-image sample data, skimage.data.astronaut()",
                  "licence": "Public domain (work of the United States government)"}])



@pytest.fixture(scope="module")
def tp(astronaut):
    return tp_arrays(astronaut)


@pytest.fixture(scope="module")
def written_pack(tmp_path_factory, astronaut) -> Path:
    return make_test_pack(tmp_path_factory.mktemp("written") / "pack", astronaut)


@pytest.fixture
def pack_dir(tmp_path, written_pack) -> Path:
    """A fresh copy of the test pack that a test may damage."""
    return Path(shutil.copytree(written_pack, tmp_path / "pack"))


def test_committed_test_pack_verifies_and_matches_its_generator(tp):
    manifest = verify_pack(TEST_PACK)
    assert manifest.generator["method"] == "test-shift"
    assert manifest.canvas == (192, 256) and manifest.patch == TP_PATCH and manifest.frame_count == TP_FRAMES
    base, patches, _ = tp
    pack = load_pack(TEST_PACK)
    assert pack.screen_size == (192, 256) and pack.rotation == 0
    np.testing.assert_array_equal(pack.base, base)
    x, y, w, h = TP_PATCH
    for i, patch in enumerate(patches):
        expected = base.copy()
        expected[y:y + h, x:x + w] = patch
        np.testing.assert_array_equal(pack.frame_image(i), expected)
    total = sum((TEST_PACK / f).stat().st_size for f in expected_files(TP_FRAMES))
    assert total < 200_000


def test_test_pack_irises_move_left_to_right(tp):
    """Frame 0 looks left: the centroid of darkness (strongly weighted to the drawn irises) moves right
    with the index; the centre frame is the base."""
    pack = load_pack(TEST_PACK)
    rect, _ = pack.patch(0)
    xs = []
    for i in range(pack.frame_count):
        _, patch = pack.patch(i)
        dark = (765.0 - patch.astype(float).sum(axis=2)) ** 4
        xs.append((dark * np.arange(patch.shape[1])).sum() / dark.sum())
    assert np.all(np.diff(xs) > 0) and xs[-1] - xs[0] > 1.0
    x, y, w, h = rect
    np.testing.assert_array_equal(pack.patch(pack.centre_index)[1], pack.base[y:y + h, x:x + w])
    # The rectangle is tight: frames differ from the base only around the irises, inside the stored patch.
    px, py, pw, ph = TP_PATCH
    assert px <= x and py <= y and x + w <= px + pw and y + h <= py + ph
    for eye in pack.eyes_screen.values():
        assert x <= eye[0] <= x + w and y <= eye[1] <= y + h


def test_writer_is_byte_reproducible_with_sorted_keys(tmp_path, astronaut):
    a = make_test_pack(tmp_path / "a", astronaut)
    b = make_test_pack(tmp_path / "b", astronaut)
    names = expected_files(TP_FRAMES) + ["manifest.json"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    text = (a / "manifest.json").read_text()
    data = json.loads(text)
    assert json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n" == text
    assert data["format"] == FORMAT and data["format_version"] == 1
    for name in expected_files(TP_FRAMES):
        blob = (a / name).read_bytes()
        assert data["files"][name] == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        assert b"tIME" not in blob
    # The committed pack decodes to the same pixels (its bytes depend on the zlib that wrote it).
    for name in expected_files(TP_FRAMES):
        np.testing.assert_array_equal(np.asarray(Image.open(a / name)), np.asarray(Image.open(TEST_PACK / name)))


def test_writer_replaces_a_pack_refuses_anything_else_and_leaves_no_temporaries(tmp_path, astronaut, tp):
    out = make_test_pack(tmp_path / "p", astronaut)
    base, patches, _ = tp
    write_pack(out, base=base, frames=patches[:3], patch=TP_PATCH, name="three", eyes=_tp_eyes(),
               generator={"method": "test-shift"}, credits=CREDITS)
    assert verify_pack(out).frame_count == 3
    assert not (out / "frames" / "08.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(PackError, match="not a gaze pack"):
        make_test_pack(other, astronaut)
    assert (other / "precious.txt").read_text() == "keep"
    link = tmp_path / "current"
    link.symlink_to(out)
    with pytest.raises(PackError, match="symlink"):
        make_test_pack(link, astronaut)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "other", "p"]


@pytest.mark.parametrize("change, match", [
    (dict(frames="one"), "frames"),
    (dict(patch=(180, 0, 72, 40)), "patch.width"),
    (dict(eyes={"right": (1, 1)}), "eyes"),
    (dict(span_deg=(10, -10)), "span_deg"),
    (dict(measured=[0.0]), "measured"),
    (dict(credits=[]), "credits"),
    (dict(name=""), "name"),
    (dict(generator={"method": "x", "parameters": {"bad": object()}}), "JSON"),
])
def test_writer_refuses_bad_input_with_the_key_named(tmp_path, tp, change, match):
    base, patches, _ = tp
    args = dict(base=base, frames=patches, patch=TP_PATCH, name="n", eyes=_tp_eyes(), measured=None,
                generator={"method": "m"}, credits=[{"work": "w", "author": "a", "source": "s", "licence": "l"}])
    if change.get("frames") == "one":
        change = dict(frames=patches[:1])
    args.update(change)
    with pytest.raises(PackError, match=match):
        write_pack(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


def test_round_trip_full_frames_finds_the_changed_rectangle(tmp_path, tp):
    base, patches, _ = tp
    x, y, w, h = TP_PATCH
    frames = []
    for p in patches:
        f = base.copy()
        f[y:y + h, x:x + w] = p
        frames.append(f)
    out = write_pack(tmp_path / "full", base=base, frames=frames, patch=None, name="full", eyes=_tp_eyes(),
                     generator={"method": "test-shift"},
                     credits=[{"work": "w", "author": "a", "source": "s", "licence": "l"}])
    pack = load_pack(out)
    diff = np.zeros(base.shape[:2], bool)
    for f in frames:
        diff |= np.any(f != base, axis=2)
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    assert pack.rect == (cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(pack.frame_image(i), f)


def test_frames_identical_to_the_base_still_get_the_patch_rectangle(tmp_path, tp):
    base, _, _ = tp
    x, y, w, h = TP_PATCH
    still = [base[y:y + h, x:x + w].copy()] * 2
    out = write_pack(tmp_path / "still", base=base, frames=still, patch=TP_PATCH, name="still", eyes=_tp_eyes(),
                     generator={"method": "test"}, credits=CREDITS)
    pack = load_pack(out, screen_size=(384, 512))
    assert pack.rect == (2 * x, 2 * y, 2 * w, 2 * h)
    np.testing.assert_array_equal(pack.frame_image(1), pack.base)


def test_many_frames_get_wider_names(tmp_path):
    assert frame_name(7, 33) == "frames/07.png" and frame_name(7, 101) == "frames/007.png"
    base = np.zeros((4, 6, 3), np.uint8)
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(101)]
    out = write_pack(tmp_path / "many", base=base, frames=frames, patch=(1, 1, 2, 2), name="many",
                     eyes={"right": [2, 2], "left": [4, 2]}, generator={"method": "test"},
                     credits=[{"work": "w", "author": "a", "source": "s", "licence": "l"}])
    assert (out / "frames" / "100.png").is_file()
    pack = load_pack(out)
    assert pack.frame_count == 101 and pack.centre_index == 50
    assert pack.patch(100)[1][0, 0, 0] == 100 and pack.rect == (1, 1, 2, 2)
    with pytest.raises(IndexError):
        pack.patch(101)


# --- refusals: the pack is checked completely before anything is returned -----------------------------------
def _edit_manifest(folder: Path, edit) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    edit(data)
    (folder / "manifest.json").write_text(json.dumps(data))


def _set(path, value):
    def edit(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, match", [
    (_set(["format"], "zip"), "format"),
    (_set(["format_version"], 2), "format_version"),
    (_set(["frame_count"], 1), "frame_count"),
    (_set(["frame_count"], 256), "frame_count"),
    (lambda d: (_set(["frame_count"], 10)(d), _set(["gaze", "measured"], None)(d)), "frames/09.png"),
    (_set(["surprise"], 1), "unknown key 'surprise'"),
    (_set(["patch", "x"], 150), "patch.width"),
    (_set(["patch", "y"], -1), "patch.y"),
    (_set(["canvas", "width"], 0), "canvas.width"),
    (_set(["eyes", "left"], [500, 1]), "eyes.left"),
    (_set(["gaze", "span_deg"], [-30]), "span_deg"),
    (_set(["gaze", "measured"], [0.0, 1.0]), "gaze.measured"),
    (_set(["files", "base.png", "sha256"], "ABC"), "sha256"),
    (_set(["files", "../escape.png"], {"sha256": "0" * 64, "bytes": 1}), "not a safe relative file name"),
    (_set(["files", "/etc/passwd"], {"sha256": "0" * 64, "bytes": 1}), "not a safe relative file name"),
    (_set(["files", "extra.png"], {"sha256": "0" * 64, "bytes": 1}), "not part of a 9-frame pack"),
    (_set(["credits"], [{"work": "w"}]), "credits\\[0\\]"),
    (_set(["generator", "parameters"], []), "generator.parameters"),
])
def test_bad_manifest_is_refused_naming_the_key(pack_dir, edit, match):
    _edit_manifest(pack_dir, edit)
    with pytest.raises(PackError, match=match) as err:
        load_pack(pack_dir)
    assert "manifest.json" in str(err.value) and "\n" not in str(err.value)


def test_tampered_truncated_missing_and_resized_files_are_refused(pack_dir, tp):
    frame = pack_dir / "frames" / "05.png"
    good = frame.read_bytes()
    frame.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(PackError, match=r"frames/05\.png: sha256 .* does not match"):
        load_pack(pack_dir)
    frame.write_bytes(good[:-10])
    with pytest.raises(PackError, match=r"frames/05\.png: \d+ bytes, the manifest says"):
        load_pack(pack_dir)
    frame.unlink()
    with pytest.raises(PackError, match=r"frames/05\.png: missing"):
        load_pack(pack_dir)
    # A frame of the wrong size whose checksum *is* listed: the image check catches it.
    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(buf, format="PNG")
    frame.write_bytes(buf.getvalue())
    _edit_manifest(pack_dir, _set(["files", "frames/05.png"], {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                                                               "bytes": len(buf.getvalue())}))
    with pytest.raises(PackError, match=r"frames/05\.png: image is 10x10, expected 72x40"):
        load_pack(pack_dir)
    (pack_dir / "manifest.json").write_text("{not json")
    with pytest.raises(PackError, match="not valid UTF-8 JSON"):
        load_pack(pack_dir)


def test_a_symlink_out_of_the_pack_is_refused(pack_dir, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.move(pack_dir / "frames" / "03.png", outside)
    (pack_dir / "frames" / "03.png").symlink_to(outside)
    with pytest.raises(PackError, match="outside the pack"):
        load_pack(pack_dir)


def test_failed_load_leaves_the_running_pack_untouched(pack_dir, tmp_path, astronaut):
    running = load_pack(pack_dir)
    before = running.frame_image(0)
    bad = make_test_pack(tmp_path / "bad", astronaut)
    good = (bad / "base.png").read_bytes()  # header kept (so the cheap first pass passes), pixels zeroed
    (bad / "base.png").write_bytes(good[:33] + b"\0" * (len(good) - 33))
    with pytest.raises(PackError, match="base.png: sha256"):
        load_pack(bad)
    np.testing.assert_array_equal(running.frame_image(0), before)
    assert not running.base.flags.writeable and not running.patch(0)[1].flags.writeable


# --- layout: scale to fit, letterbox, rotation -------------------------------------------------------------
def test_fit_letterboxes_and_frames_match_an_independent_resize(pack_dir, tp):
    base, patches, _ = tp
    pack = load_pack(pack_dir, screen_size=(800, 480))
    # 192x256 into 800x480: scale 1.875, 360x480, centred with 220 px black bars left and right.
    assert pack.layout.scaled == (360, 480) and pack.layout.offset == (220, 0)
    assert pack.base.shape == (480, 800, 3) and pack.base.flags.c_contiguous
    assert not pack.base[:, :220].any() and not pack.base[:, 580:].any()
    x, y, w, h = TP_PATCH
    for i in (0, 4, 8):
        composed = base.copy()
        composed[y:y + h, x:x + w] = patches[i]
        reference = np.asarray(Image.fromarray(composed).resize((360, 480), Image.BICUBIC)).astype(int)
        shown = pack.frame_image(i)
        assert np.abs(shown[:, 220:580].astype(int) - reference).mean() < 2.0
        rx, ry, rw, rh = pack.rect
        outside = np.ones((480, 800), bool)
        outside[ry:ry + rh, rx:rx + rw] = False
        np.testing.assert_array_equal(shown[outside], pack.base[outside])
    # Eye points follow the same mapping: scaled by 1.875 and shifted by the bar.
    ex, ey = pack.eyes["right"]
    assert pack.eyes_screen["right"] == pytest.approx((ex * 1.875 + 220, ey * 1.875))


@pytest.mark.parametrize("screen, rotation", [((800, 480), 0), ((100, 100), 90), ((1000, 700), 180),
                                              ((240, 320), 270), ((37, 53), 0)])
def test_patch_rectangle_holds_everything_a_full_frame_resize_changes(tmp_path, screen, rotation):
    """The loader computes only a window round the patch; a whole-frame resize must agree exactly."""
    import cv2

    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    patch = (13, 21, 17, 11)
    frames = [rng.integers(0, 256, (11, 17, 3), dtype=np.uint8) for _ in range(3)]
    out = write_pack(tmp_path / "noise", base=base, frames=frames, patch=patch, name="noise",
                     eyes={"right": [20, 25], "left": [28, 25]}, generator={"method": "test"},
                     credits=[{"work": "w", "author": "a", "source": "s", "licence": "l"}])
    pack = load_pack(out, screen_size=screen, rotation=rotation)
    uw, uh = (screen[1], screen[0]) if rotation in (90, 270) else screen
    scale = min(uw / 48, uh / 64)
    sw, sh = round(48 * scale), round(64 * scale)
    assert pack.layout.scaled == (sw, sh)
    for i, frame in enumerate(frames):
        composed = base.copy()
        composed[21:32, 13:30] = frame
        interp = cv2.INTER_AREA if sw < 48 else cv2.INTER_CUBIC
        upright = np.zeros((uh, uw, 3), np.uint8)
        ox, oy = (uw - sw) // 2, (uh - sh) // 2
        upright[oy:oy + sh, ox:ox + sw] = cv2.resize(composed, (sw, sh), interpolation=interp)
        np.testing.assert_array_equal(pack.frame_image(i), np.rot90(upright, rotation // 90))


def test_downscale_keeps_aspect(pack_dir):
    pack = load_pack(pack_dir, screen_size=(100, 100))
    assert pack.layout.scaled == (75, 100) and pack.layout.offset == (12, 0)
    assert pack.frame_image(0).shape == (100, 100, 3)


@pytest.mark.parametrize("rotation, corner", [(0, (0, 0)), (90, (0, -1)), (180, (-1, -1)), (270, (-1, 0))])
def test_rotation_puts_the_paintings_top_left_where_the_turned_screen_shows_it(tmp_path, rotation, corner):
    """Screen turned clockwise by ``rotation``: the painting's top-left must be drawn at the framebuffer
    corner that the viewer now sees at the top-left."""
    base = np.full((30, 20, 3), 100, np.uint8)
    base[:3, :3] = (255, 0, 0)  # top-left marker
    frames = [base.copy(), base.copy()]
    frames[1][15, 10] = (0, 255, 0)
    out = write_pack(tmp_path / "r", base=base, frames=frames, patch=None, name="r",
                     eyes={"right": [0, 0], "left": [20, 30]}, generator={"method": "test"},
                     credits=[{"work": "w", "author": "a", "source": "s", "licence": "l"}])
    pack = load_pack(out, rotation=rotation)
    sw, sh = (30, 20) if rotation in (90, 270) else (20, 30)
    assert pack.screen_size == (sw, sh) and pack.base.shape == (sh, sw, 3)
    row, col = corner[1] % sh, corner[0] % sw
    assert tuple(pack.base[row, col]) == (255, 0, 0)
    # The canvas's top-left point (the "right" eye here) maps to that same framebuffer corner.
    corner_point = (sw if corner[0] else 0, sh if corner[1] else 0)
    assert pack.eyes_screen["right"] == pytest.approx(corner_point)
    # The one changed pixel is the whole rectangle, wherever the rotation put it.
    rx, ry, rw, rh = pack.rect
    assert (rw, rh) == (1, 1) and tuple(pack.frame_image(1)[ry, rx]) == (0, 255, 0)
    assert tuple(np.rot90(pack.frame_image(1), k=-rotation // 90)[15, 10]) == (0, 255, 0)


def test_bad_layout_arguments(pack_dir):
    with pytest.raises(PackError, match="rotation 45"):
        load_pack(pack_dir, rotation=45)
    with pytest.raises(PackError, match="screen size"):
        load_pack(pack_dir, screen_size=(0, 480))
    with pytest.raises(PackError, match="no such pack"):
        load_pack(pack_dir / "nope")
    assert make_layout((100, 50), (50, 100), 90).scale == 1.0


# --- archives ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, suffix, nested", [("w", ".tar", False), ("w:gz", ".tar.gz", True)])
def test_archive_loads_like_the_folder(pack_dir, tmp_path, mode, suffix, nested):
    archive = tmp_path / f"pack{suffix}"
    with tarfile.open(archive, mode) as tar:
        tar.add(pack_dir, arcname="test-pack" if nested else ".")
    folder = load_pack(pack_dir, screen_size=(320, 240), rotation=270)
    packed = load_pack(archive, screen_size=(320, 240), rotation=270)
    np.testing.assert_array_equal(packed.base, folder.base)
    assert packed.rect == folder.rect and packed.source == archive
    for i in range(folder.frame_count):
        np.testing.assert_array_equal(packed.patch(i)[1], folder.patch(i)[1])


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(path, "w") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


@pytest.mark.parametrize("name, kind, match", [
    ("../evil.txt", tarfile.REGTYPE, "'..' paths"),
    ("/tmp/evil.txt", tarfile.REGTYPE, "absolute"),
    ("pack/../../evil.txt", tarfile.REGTYPE, "'..' paths"),
    ("link", tarfile.SYMTYPE, "only regular files"),
    ("hard", tarfile.LNKTYPE, "only regular files"),
    ("dev", tarfile.CHRTYPE, "only regular files"),
])
def test_unsafe_archive_members_are_refused(tmp_path, name, kind, match):
    archive = tmp_path / "evil.tar"
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    _tar_with(archive, member, b"boo")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(PackError, match=match):
        extract_archive(archive, dest)
    with pytest.raises(PackError, match=match):
        load_pack(archive)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_archive_without_manifest_and_garbage_file(tmp_path):
    archive = tmp_path / "empty.tar"
    _tar_with(archive, tarfile.TarInfo("base.png"), b"hi")
    with pytest.raises(PackError, match="no manifest.json"):
        load_pack(archive)
    _tar_with(archive, tarfile.TarInfo("readme.txt"), b"hi")
    with pytest.raises(PackError, match=r"member 'readme.txt': not a file a gaze pack holds"):
        load_pack(archive)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(64))
    with pytest.raises(PackError, match="not a readable"):
        load_pack(junk)


def test_a_half_copied_archive_is_a_pack_error(pack_dir, tmp_path):
    """Truncated mid-stream, tarfile and gzip raise EOFError or their own errors, not OSError: still the
    user's damaged file, so still one PackError naming it."""
    whole = tmp_path / "whole.tar.gz"
    with tarfile.open(whole, "w:gz") as tar:
        tar.add(pack_dir, arcname=".")
    half = tmp_path / "half.tar.gz"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(PackError, match=r"half\.tar\.gz: cannot unpack"):
        load_pack(half)


def test_a_pack_that_cannot_be_written_is_a_pack_error_naming_the_folder(tmp_path, astronaut):
    blocker = tmp_path / "packs"
    blocker.write_text("a file where the packs folder should be")
    with pytest.raises(PackError, match=r"packs/p: cannot write the pack there"):
        make_test_pack(blocker / "p", astronaut)
    assert blocker.read_text() == "a file where the packs folder should be"


if __name__ == "__main__":
    import skimage.data

    target = make_test_pack(TEST_PACK, skimage.data.astronaut())
    print(f"wrote {target}")


@pytest.mark.parametrize("screen", [(1080, 1920), (1080, 1081), (1080, 1080)])
def test_a_canvas_as_wide_as_the_screen_becomes_the_base_in_place_with_black_borders(screen):
    """The screen-sized base grown out of the decoded canvas (edge.pack._grow_to_screen) is exactly what
    building it beside the canvas gives: the canvas centred, black above and below."""
    from edge.pack import _decode_png, _fit, _grow_to_screen, make_layout

    folder = Path(__file__).resolve().parent.parent / "assets" / "packs" / "default"
    blob = (folder / "base.png").read_bytes()
    layout = make_layout((1080, 1080), screen, 0)
    expected = _fit(_decode_png(blob, "base.png", (1080, 1080)), layout)
    grown = _grow_to_screen(_decode_png(blob, "base.png", (1080, 1080)), layout)
    assert grown is not None and grown.shape == (screen[1], screen[0], 3)
    np.testing.assert_array_equal(grown, expected)
    top = (screen[1] - 1080) // 2
    assert not grown[:top].any() and not grown[top + 1080:].any()
    turned = make_layout((1080, 1080), (1920, 1080), 90)  # turned or scaled: built the ordinary way
    assert _grow_to_screen(_decode_png(blob, "base.png", (1080, 1080)), turned) is None
