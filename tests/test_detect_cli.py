"""``mona-edge detect IMAGE...`` on real image files: text, JSON, annotated PNGs, phone photos, bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ASTRONAUT_LEFT_EYE, ASTRONAUT_RIGHT_EYE
from PIL import Image

from edge.cli import main
from edge.detector import FaceDetector

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
