"""``mona-edge detect IMAGE...`` on real image files: text, JSON, annotated PNGs, phone photos, bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import ASTRONAUT_LEFT_EYE, ASTRONAUT_RIGHT_EYE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edge.cli import main
from edge.detector import FaceDetector
from edge.errors import ExitStatus

#: EXIF orientation 6: the stored pixels must be turned 90 degrees clockwise to be seen upright (a phone
#: held upright with its camera sensor in landscape).
EXIF_ORIENTATION = 0x0112


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def photo(tmp_path, astronaut) -> Path:
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


def eyes_of(face: dict) -> np.ndarray:
    return np.array([face["right_eye"], face["left_eye"]])


def test_json_gives_her_face_with_eyes_on_her_eyes(photo, capsys):
    code, out, err = run(["detect", str(photo), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["model"].endswith("face_detection_full_range_int8.tflite") and report["runtime"]
    (result,) = report["results"]
    assert (result["image"], result["width"], result["height"]) == (str(photo), 512, 512)
    (face,) = result["faces"]
    assert face["score"] > 0.8 and len(face["box"]) == 4
    assert np.abs(eyes_of(face) - [ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE]).max() < 6.0


def test_text_output_and_the_short_range_model(photo, capsys):
    code, out, _ = run(["detect", str(photo), "--range", "short"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"{photo}: 1 face(s)"
    assert lines[1].startswith("  score ") and "right eye [" in lines[1] and "left eye [" in lines[1]


def test_annotated_png_marks_the_face(photo, tmp_path, capsys):
    out_png = tmp_path / "marked"
    code, _, _ = run(["detect", str(photo), "--annotate", str(out_png)], capsys)
    assert code == 0
    with Image.open(out_png) as img:
        assert img.format == "PNG" and img.size == (512, 512)
        marked = np.asarray(img.convert("RGB"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    changed = np.any(marked != original, axis=2)
    ys, xs = np.nonzero(changed)
    # The drawing (box, keypoints) sits around her face and nowhere else.
    assert changed.sum() > 200
    assert 120 < xs.min() and xs.max() < 330 and ys.max() < 260


def test_several_images_each_get_their_own_annotation(photo, tmp_path, capsys):
    empty = tmp_path / "wall.png"
    Image.fromarray(np.full((480, 640, 3), 140, np.uint8)).save(empty)
    code, out, _ = run(["detect", str(photo), str(empty), "--json", "--annotate", str(tmp_path / "out.png")], capsys)
    assert code == 0
    results = json.loads(out)["results"]
    assert [len(r["faces"]) for r in results] == [1, 0]
    assert (tmp_path / "out-astronaut.png").exists() and (tmp_path / "out-wall.png").exists()


def test_phone_photo_is_read_upright(astronaut, tmp_path, capsys):
    """A JPEG whose pixels lie sideways with an orientation tag: faces come out where people see them."""
    sideways = np.ascontiguousarray(np.rot90(astronaut, k=1))  # stored turned a quarter anticlockwise
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(sideways).save(path, quality=95, exif=exif)
    code, out, _ = run(["detect", str(path), "--json"], capsys)
    assert code == 0
    result = json.loads(out)["results"][0]
    assert (result["width"], result["height"]) == (512, 512)
    (face,) = result["faces"]
    assert np.abs(eyes_of(face) - [ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE]).max() < 6.0
    # Read as stored, her eyes would be reported a quarter turn away (the detector finds her on her side).
    (stored,) = FaceDetector(None, "full").detect(sideways)
    assert np.linalg.norm(stored.keypoints[:2] - [ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE], axis=1).min() > 100


def test_a_bad_file_is_one_line_and_the_others_still_run(photo, tmp_path, capsys):
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a picture")
    missing = tmp_path / "gone.png"
    code, out, err = run(["detect", str(junk), str(photo), str(missing), "--json"], capsys)
    assert code == 1
    errors = err.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"mona-edge detect: error: {junk}: not a readable image")
    assert errors[1] == f"mona-edge detect: error: {missing}: image not found"
    results = json.loads(out)["results"]
    assert "error" in results[0] and "error" in results[2]
    assert len(results[1]["faces"]) == 1


def test_the_installed_command(photo):
    """The console script itself, as a user runs it."""
    command = Path(sys.executable).with_name("mona-edge")
    done = subprocess.run([str(command), "detect", str(photo), "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["results"][0]["faces"]) == 1


# ------------------------------------------------------------------------------------ hostile inputs
# Each of these was a defect of `mona-edge detect` (issue 11): a traceback that ended the batch, a hang, an
# image that spoilt the ones after it, or 16-bit pixels clipped to white.

ERROR = "mona-edge detect: error: "


def detect_json(paths, capsys):
    """``mona-edge detect --json`` in-process: (exit status, results, stderr lines)."""
    code, out, err = run(["detect", *map(str, paths), "--json"], capsys)
    return code, json.loads(out)["results"], err.strip().splitlines()


def assert_her_face(result: dict):
    (face,) = result["faces"]
    assert np.abs(eyes_of(face) - [ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE]).max() < 6.0


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict:
    """Images far larger decoded than on disk: one over the budget only, one where Pillow itself would
    only warn (and then decode it), one where Pillow refuses; all blank, so a few hundred kB each."""
    folder = tmp_path_factory.mktemp("bombs")
    made = {}
    for name, size in (("over-budget", (9000, 8000)), ("pillow-warns", (10000, 10000)),
                       ("twenty-k", (20000, 20000))):
        made[name] = folder / f"{name}.png"
        Image.new("1", size).save(made[name])
    return made


@pytest.mark.parametrize("name, megapixels", [("over-budget", 72.0), ("pillow-warns", 100.0),
                                              ("twenty-k", 400.0)])
def test_a_decompression_bomb_is_refused_in_one_line_and_the_next_image_runs(bombs, name, megapixels, photo,
                                                                            capsys):
    from edge.images import MAX_PIXELS

    code, results, errors = detect_json([bombs[name], photo], capsys)
    assert code == ExitStatus.ERROR
    assert len(errors) == 1 and errors[0].startswith(f"{ERROR}{bombs[name]}: the image ")
    assert f"{megapixels:.1f} MP" in errors[0]
    assert f"at most {MAX_PIXELS / 1e6:.1f} MP are allowed" in errors[0]
    assert results[0] == {"image": str(bombs[name]), "error": errors[0].removeprefix(ERROR)}
    assert_her_face(results[1])


def test_a_bomb_is_refused_unread(bombs):
    """Refused from its header: the reader never holds the 400 MB its pixels would take."""
    # VmHWM (peak resident memory) of the child's own address space; ru_maxrss would include this
    # process's, which made the bombs, as Linux keeps it across exec.
    probe = ("import sys\n"
             "from edge.errors import ImageError\n"
             "from edge.images import read_rgb\n"
             "try:\n    read_rgb(sys.argv[1])\nexcept ImageError as exc:\n    print(exc)\n"
             "status = open('/proc/self/status').read()\n"
             "print(status.split('VmHWM:')[1].split()[0])\n")
    done = subprocess.run([sys.executable, "-c", probe, str(bombs["twenty-k"])], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    message, peak_kib = done.stdout.splitlines()
    assert "400.0 MP" in message
    assert int(peak_kib) < 200 * 1024


def test_a_fifo_is_refused_at_once_and_the_next_image_runs(photo, tmp_path):
    """A named pipe would block the read forever: the installed command answers within its timeout."""
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    command = Path(sys.executable).with_name("mona-edge")
    done = subprocess.run([str(command), "detect", str(fifo), str(photo), "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == ExitStatus.ERROR
    errors = [line for line in done.stderr.splitlines() if line.startswith("mona-edge")]
    assert errors == [f"{ERROR}{fifo}: is a named pipe (FIFO); the image must be a regular file"]
    results = json.loads(done.stdout)["results"]
    assert "error" in results[0]
    assert_her_face(results[1])


@pytest.mark.parametrize("kind", ["directory", "character device", "socket"])
def test_anything_but_a_regular_file_is_refused_and_a_symlink_to_one_is_read(kind, photo, tmp_path, capsys):
    import socket

    if kind == "directory":
        path, said = tmp_path, "a directory"
    elif kind == "character device":
        path, said = Path("/dev/null"), "a character device"
    else:
        path, said = tmp_path / "s", "a socket"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    code, results, errors = detect_json([path, link], capsys)
    assert code == ExitStatus.ERROR
    assert errors == [f"{ERROR}{path}: is {said}; the image must be a regular file"]
    assert_her_face(results[1])


def test_the_portrait_reader_refuses_a_fifo_too(tmp_path):
    """``build-pack --portrait`` reads with the same reader; checked in a child so a regression hangs only it."""
    fifo = tmp_path / "portrait.png"
    os.mkfifo(fifo)
    probe = ("import sys\nfrom edge.errors import ImageError\nfrom edge.images import read_rgb\n"
             "try:\n    read_rgb(sys.argv[1], 'portrait')\nexcept ImageError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(fifo)], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == f"{fifo}: is a named pipe (FIFO); the portrait must be a regular file"


def test_an_image_wider_than_the_detector_takes_is_shrunk_for_it_and_spoils_nothing_after_it(photo, tmp_path,
                                                                                           capsys):
    from edge.detector import MAX_SIDE

    wide = tmp_path / "panorama.png"
    Image.new("RGB", (MAX_SIDE + 616, 300), (120, 110, 100)).save(wide)
    tall = tmp_path / "scroll.png"
    Image.new("L", (40, 3 * MAX_SIDE), 90).save(tall)
    code, results, errors = detect_json([wide, photo, tall, photo], capsys)
    assert code == ExitStatus.OK and errors == []
    assert (results[0]["width"], results[0]["height"], results[0]["faces"]) == (MAX_SIDE + 616, 300, [])
    assert (results[2]["width"], results[2]["height"], results[2]["faces"]) == (40, 3 * MAX_SIDE, [])
    assert_her_face(results[1])
    assert results[3] == results[1]


def test_faces_found_in_a_shrunk_image_are_reported_in_the_files_own_pixels(photo):
    """What the shrinking does, on a face: her eyes come back where they are in the 512 px file."""
    from edge.detect_cli import detect_image

    detector = FaceDetector(None, "full")
    rgb, (face,) = detect_image(detector, photo, max_side=256)
    assert rgb.shape == (512, 512, 3)
    assert np.abs(face.keypoints[:2] - [ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE]).max() < 8.0
    assert 90 < face.width < 130  # her face is about 106 px wide in the file, 53 px in what was detected


def _save_16bit_grey(path: Path, values: np.ndarray, exif: Image.Exif | None = None) -> None:
    Image.fromarray(values.astype(np.uint16)).save(path, **({"exif": exif} if exif else {}))


def test_16_bit_grey_is_scaled_by_its_real_range_not_clipped(tmp_path):
    """A ramp 1000..5080 in a 16-bit PNG: every level lands where the stretch puts it; none is clipped.

    (Pillow's own conversion clips at 255: all but the darkest 0.4 % of this ramp became white.)"""
    from edge.images import read_rgb

    levels = 1000 + 16 * np.arange(256)
    path = tmp_path / "ramp16.png"
    _save_16bit_grey(path, np.tile(levels, (8, 1)))
    with Image.open(path) as img:
        assert img.mode == "I;16"
    rgb = read_rgb(path)
    expected = np.floor((levels - 1000) * 255 / 4080 + 0.5).astype(np.uint8)
    assert rgb.shape == (8, 256, 3)
    assert (rgb == expected[None, :, None]).all()
    assert (rgb == 255).mean() == pytest.approx(1 / 256)


@pytest.mark.parametrize("mode", ["I;16B", "I", "F"])
def test_other_deep_grey_modes_are_stretched_the_same_way(mode, tmp_path):
    from edge.images import read_rgb

    levels = (1000 + 16 * np.arange(256)).astype(np.float64)
    dtype = {"I;16B": ">u2", "I": np.int32, "F": np.float32}[mode]
    img = Image.fromarray(np.tile(levels, (4, 1)).astype(dtype), mode if mode != "I;16B" else None)
    path = tmp_path / "ramp.tiff"
    img.save(path)
    with Image.open(path) as back:
        assert back.mode == mode
    expected = np.floor((levels - 1000) * 255 / 4080 + 0.5).astype(np.uint8)
    assert (read_rgb(path) == expected[None, :, None]).all()


def test_16_bit_colour_is_read_at_16_bits_and_stretched(tmp_path):
    """Pillow keeps the high byte of a 16-bit RGB PNG: 12-bit data (0..4095) read as a black 0..15."""
    import cv2

    from edge.images import read_rgb

    rgb16 = np.zeros((4, 256, 3), np.uint16)
    rgb16[..., 0] = 16 * np.arange(256)          # red: 0..4080
    rgb16[..., 1] = 2040                           # green: the middle
    rgb16[..., 2] = 4080 - 16 * np.arange(256)    # blue: 4080..0
    path = tmp_path / "colour16.png"
    assert cv2.imwrite(str(path), rgb16[..., ::-1])  # OpenCV writes BGR
    got = read_rgb(path)
    ramp = np.floor(16 * np.arange(256) * 255 / 4080 + 0.5).astype(np.uint8)
    assert (got[..., 0] == ramp).all() and (got[..., 2] == ramp[::-1]).all()
    assert (got[..., 1] == 128).all()


def test_a_16_bit_grey_phone_photo_is_turned_upright_too(tmp_path):
    from edge.images import read_rgb

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored = np.zeros((20, 60), np.uint16)
    stored[:, :10] = 4000  # a bright band on the stored left: upright (turned clockwise) it is the top
    path = tmp_path / "sideways16.png"
    _save_16bit_grey(path, stored, exif)
    rgb = read_rgb(path)
    assert rgb.shape == (60, 20, 3)
    assert (rgb[:10] == 255).all() and (rgb[10:] == 0).all()


@pytest.mark.parametrize("depth", ["grey", "colour"])
def test_her_face_is_found_in_a_12_bit_photo(depth, astronaut, tmp_path, capsys):
    """The point of the stretch: a 12-bit picture of her in a 16-bit file is a face, not white or black."""
    import cv2

    twelve = astronaut.astype(np.uint16) * 16  # 0..4080
    path = tmp_path / f"astronaut-{depth}-12bit.png"
    if depth == "grey":
        _save_16bit_grey(path, np.round(twelve @ [0.299, 0.587, 0.114]))
    else:
        assert cv2.imwrite(str(path), twelve[..., ::-1])
    code, results, errors = detect_json([path], capsys)
    assert code == 0 and errors == []
    assert_her_face(results[0])


def test_formats_that_hand_the_file_to_other_programs_are_not_opened(photo, tmp_path, capsys):
    """An EPS would be rendered by Ghostscript; only photo formats are asked for, and the line says which."""
    eps = tmp_path / "drawing.eps"
    eps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    code, results, errors = detect_json([eps, photo], capsys)
    assert code == ExitStatus.ERROR
    assert errors == [f"{ERROR}{eps}: not a readable image (not any of JPEG, PNG, TIFF, WEBP, AVIF, BMP, GIF, "
                      "PPM, TGA, JPEG2000, QOI)"]
    assert_her_face(results[1])


def test_an_annotation_that_cannot_be_written_is_that_images_error_and_the_batch_goes_on(photo, tmp_path,
                                                                                       capsys):
    out = tmp_path / "no-such-folder" / "marked.png"
    other = tmp_path / "wall.png"
    Image.fromarray(np.full((48, 64, 3), 140, np.uint8)).save(other)
    code, out_text, err = run(["detect", str(photo), str(other), "--annotate", str(out)], capsys)
    assert code == ExitStatus.ERROR
    errors = err.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"{ERROR}{photo}: --annotate {out.with_name('marked-astronaut.png')}: cannot write")
    assert errors[1].startswith(f"{ERROR}{other}: --annotate {out.with_name('marked-wall.png')}: cannot write")


# ------------------------------------------------------------------------------------------- fuzzing

#: Modes Pillow can write, and the formats that keep each (checked by round trip when this was written).
FUZZ_MODES = {
    "1": ["PNG", "TIFF", "BMP", "PPM"], "L": ["PNG", "TIFF", "JPEG", "BMP", "GIF", "WEBP", "PPM", "TGA"],
    "P": ["PNG", "TIFF", "GIF", "BMP"], "RGB": ["PNG", "TIFF", "JPEG", "BMP", "WEBP", "PPM", "TGA", "QOI"],
    "RGBA": ["PNG", "TIFF", "WEBP", "TGA", "QOI"], "LA": ["PNG", "TIFF"], "CMYK": ["TIFF", "JPEG"],
    "I;16": ["PNG", "TIFF"], "I;16B": ["TIFF"], "I": ["TIFF", "PPM"], "F": ["TIFF"],
    "YCbCr": ["TIFF", "JPEG"], "LAB": ["TIFF"], "PA": ["TIFF"],
}


def _fuzz_image(rng: np.random.Generator, mode: str, fmt: str, w: int, h: int) -> bytes:
    import io

    if mode.startswith("deep-"):  # 16-bit colour, which Pillow cannot write: OpenCV can
        import cv2

        channels = {"deep-rgb": 3, "deep-rgba": 4}[mode]
        arr = rng.integers(0, 1 << int(rng.integers(9, 17)), (h, w, channels), dtype=np.uint16)
        ok, buf = cv2.imencode(f".{fmt.lower()}", arr)
        assert ok
        return buf.tobytes()
    # Random bytes as pixels: for "F" that includes NaN and infinities, which the reader must survive.
    img = Image.frombytes(mode, (w, h), rng.bytes(len(Image.new(mode, (w, h)).tobytes())))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


#: What the TensorFlow Lite runtime itself prints on fd 2 when the detector starts.
TFLITE_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@st.composite
def fuzz_files(draw):
    """One file's bytes and whether it must be readable: a fresh image, the same spoilt, or noise."""
    kind = draw(st.sampled_from(["image", "image", "truncated", "flipped", "noise", "empty"]))
    if kind == "noise":
        return draw(st.binary(min_size=1, max_size=512)), False
    if kind == "empty":
        return b"", False
    mode = draw(st.sampled_from(sorted(FUZZ_MODES) + ["deep-rgb", "deep-rgba"]))
    fmt = draw(st.sampled_from(FUZZ_MODES.get(mode, ["PNG", "TIFF"])))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    data = _fuzz_image(np.random.default_rng(draw(st.integers(0, 2**32 - 1))), mode, fmt, w, h)
    if kind == "image":
        return data, True
    if kind == "truncated":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))], False
    spoilt = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        spoilt[draw(st.integers(0, len(spoilt) - 1))] = draw(st.integers(0, 255))
    return bytes(spoilt), False


@settings(max_examples=100, derandomize=True, deadline=timedelta(seconds=20),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(files=st.lists(fuzz_files(), min_size=1, max_size=3))
def test_any_file_is_a_result_or_one_error_line_and_the_files_after_it_still_run(files, photo, capfd):
    """Random small images of every mode, size and bit depth Pillow writes (and 16-bit colour), the same
    truncated or with bytes changed, and plain noise: each one is a result or one error line naming it,
    never a traceback, and her photo after them is still found.

    The terminal's whole stderr is checked (capfd): what libtiff, libpng or OpenCV print by themselves on
    a damaged file must not appear beside the line that names it. The one line allowed besides is
    TensorFlow Lite's own banner when the detector starts."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, (data, _) in enumerate(files):
            paths.append(Path(folder) / f"f{i}.img")
            paths[-1].write_bytes(data)
        code, out, err = run(["detect", *map(str, paths), str(photo), "--json"], capfd)
    assert "Traceback" not in err and code in (ExitStatus.OK, ExitStatus.ERROR), err
    results = json.loads(out)["results"]
    assert [r["image"] for r in results] == [*map(str, paths), str(photo)]
    failed = [r for r in results if "error" in r]
    said = [line for line in err.splitlines() if line != TFLITE_BANNER]
    assert said == [f"{ERROR}{r['error']}" for r in failed]
    assert all(r["error"].startswith(f"{r['image']}: ") for r in failed)
    assert code == (ExitStatus.ERROR if failed else ExitStatus.OK)
    for (_, readable), result in zip(files, results):
        if readable:
            assert "faces" in result, result
    assert_her_face(results[-1])
