"""The detector on real photographs: float reference, committed int8 models, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    ASTRONAUT_LEFT_EYE,
    ASTRONAUT_RIGHT_EYE,
    GROUND_TRUTH_FRAMES,
    GROUND_TRUTH_SEED,
    MODELS,
    agreement_scenes,
    assert_int8_matches_float,
)

from edge.blazeface import FULL_RANGE, SHORT_RANGE, anchor_centres
from edge.detector import FaceDetector, default_model_path, iou, weighted_nms
from edge.errors import ModelError
from provisioning.calibration import DEFAULT_SEED, room_scenes
from provisioning.scoring import int8_beside_float, score

#: "On her real eyes": within this fraction of the face width of the hand-measured eye centres (the eyes
#: are about 0.4 face widths apart, so this cannot confuse one eye with the other or with the brows).
ON_EYE = 0.15


def eyes_in_image_order(face):
    kps = face.keypoints[:2]
    return kps[np.argsort(kps[:, 0])]


def test_anchor_layout_matches_mediapipe_options():
    short = anchor_centres(SHORT_RANGE)
    full = anchor_centres(FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # 16x16 cells with 2 anchors each, then 8x8 cells with 6 (three stride-16 layers, two anchors each).
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8]) and np.allclose(short[512:518], short[512])
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])
    assert short.min() > 0 and short.max() < 1 and full.min() > 0 and full.max() < 1


def test_weighted_nms_averages_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float32)
    kps = np.stack([np.full((6, 2), v, np.float32) for v in (0.0, 3.0, 9.0)])
    scores = np.array([0.9, 0.3, 0.8], dtype=np.float32)
    kept = weighted_nms(boxes, kps, scores, 0.3)
    assert len(kept) == 2
    box, points, score = kept[0]
    assert score == pytest.approx(0.9)
    assert box[0] == pytest.approx(0.3 / 1.2) and points[0, 0] == pytest.approx(0.9 / 1.2)
    assert np.allclose(kept[1][0], boxes[2])
    assert iou(boxes[0], boxes[1:2])[0] == pytest.approx(90 / 110)


@pytest.mark.parametrize("detector_range", ["short", "full"])
def test_float_model_puts_the_eyes_on_her_eyes(float_models, astronaut, detector_range):
    detector = FaceDetector(float_models[detector_range], detector_range)
    faces = detector.detect(astronaut)
    assert len(faces) == 1 and faces[0].score > 0.85
    found = eyes_in_image_order(faces[0])
    assert np.abs(found - [ASTRONAUT_RIGHT_EYE, ASTRONAUT_LEFT_EYE]).max() < 6.0


@pytest.mark.parametrize("detector_range", ["short", "full"])
def test_float_model_in_a_room_sized_frame(float_models, astronaut, detector_range):
    detector = FaceDetector(float_models[detector_range], detector_range)
    for key, frame, eyes in agreement_scenes(astronaut, detector_range):
        faces = detector.detect(frame)
        assert len(faces) == 1, key
        width = key[0]
        assert np.abs(eyes_in_image_order(faces[0]) - eyes).max() < ON_EYE * width, key


def test_int8_short_range_agrees_with_float(float_models, astronaut):
    """Every scene: found, box IoU >= 0.9 with float, eyes close to float's and on her real eyes."""
    reference = FaceDetector(float_models["short"], "short")
    int8 = FaceDetector(None, "short")
    assert int8.is_quantized
    worst_eye = 0.0
    for key, frame, eyes in agreement_scenes(astronaut, "short"):
        expected = reference.detect(frame)
        got = int8.detect(frame)
        assert len(got) == 1, f"int8 missed the face in scene {key}"
        assert iou(expected[0].box, got[0].box[None])[0] >= 0.9, key
        eye_error = float(np.abs(expected[0].keypoints[:2] - got[0].keypoints[:2]).max())
        worst_eye = max(worst_eye, eye_error)
        assert np.abs(eyes_in_image_order(got[0]) - eyes).max() < ON_EYE * key[0], key
    # Issue 2's bar: each eye within 2 px of the float model's at 640x480 (measured 1.9 px).
    assert worst_eye < 2.0


def test_int8_full_range_agrees_with_float(float_models, astronaut):
    """Faces 60-180 px: found every time, on her real eyes, close to the float model's eyes."""
    reference = FaceDetector(float_models["full"], "full")
    int8 = FaceDetector(None, "full")
    assert int8.is_quantized
    offsets = []
    for key, frame, eyes in agreement_scenes(astronaut, "full"):
        expected = reference.detect(frame)
        got = int8.detect(frame)
        assert len(got) == 1, f"int8 missed the face in scene {key}"
        assert iou(expected[0].box, got[0].box[None])[0] >= 0.7, key
        assert np.abs(eyes_in_image_order(got[0]) - eyes).max() < ON_EYE * key[0], key
        offsets.append(float(np.abs(expected[0].keypoints[:2] - got[0].keypoints[:2]).max()))
    # Measured IoU >= 0.73, eyes p50 1.7 / max 6.5 px at 640x480; the goal (issue 2) is IoU 0.9 and 2 px,
    # which the float model itself does not hold against sensor noise on these scenes (next test).
    assert np.median(offsets) < 2.0 and max(offsets) < 7.0


@pytest.fixture(scope="module")
def annotated_scenes():
    assert GROUND_TRUTH_SEED != DEFAULT_SEED
    frames, truths, _ = room_scenes(GROUND_TRUTH_FRAMES, GROUND_TRUTH_SEED)
    return frames, truths


def test_float_model_finds_annotated_faces_and_their_eyes(float_models, annotated_scenes):
    """The yardstick itself: on faces 160 px and wider the float short-range model finds nearly all and
    puts the eye midpoint within 3% of the face width of the hand-measured one (astronaut, Grace Hopper)."""
    frames, truths = annotated_scenes
    large = [[f for f in truth if f.box[2] - f.box[0] >= 160] for truth in truths]
    detector = FaceDetector(float_models["short"], "short")
    result = score([detector.detect(frame) for frame in frames], large).summary()
    assert result["faces"] >= 50 and result["recall"] >= 0.95, result
    assert result["eye_faces"] >= 20 and result["midpoint_p50"] < 0.03, result


@pytest.mark.parametrize("detector_range", ["short", "full"])
def test_int8_recall_and_eye_midpoint_match_float(float_models, annotated_scenes, detector_range):
    scores = int8_beside_float(float_models[detector_range], detector_range, *annotated_scenes)
    assert scores["float"]["found"] >= 100
    assert_int8_matches_float(scores["float"], scores["int8"], detector_range)


def own_noise_floor(detector, astronaut, detector_range, draws=3):
    """Per scene, how far the float model moves its own eyes (max px) and box (min IoU) when +-1 grey
    level of sensor-like noise is added to the frame: the yardstick for any int8 comparison."""
    rng = np.random.default_rng(0)
    eyes, ious = [], []
    for key, frame, _ in agreement_scenes(astronaut, detector_range):
        clean = detector.detect(frame)[0]
        worst_eye, worst_iou = 0.0, 1.0
        for _ in range(draws):
            noisy = np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)
            found = detector.detect(noisy)
            assert len(found) == 1, key
            worst_eye = max(worst_eye, float(np.abs(found[0].keypoints[:2] - clean.keypoints[:2]).max()))
            worst_iou = min(worst_iou, float(iou(clean.box, found[0].box[None])[0]))
        eyes.append(worst_eye)
        ious.append(worst_iou)
    return np.array(eyes), np.array(ious)


def test_full_range_float_model_is_not_repeatable_to_the_2px_bar(float_models, astronaut):
    """Why the full-range bar (every scene IoU >= 0.9, eyes within 2 px) is out of reach for any int8 model:
    the float model misses it against itself once +-1 grey level of noise is added (measured: eyes p50
    0.27 / max 2.37 px, IoU min 0.89). Short range holds it comfortably (max 0.86 px, IoU >= 0.98), so
    there the bar is meaningful and the int8 test asserts it."""
    full_eyes, full_ious = own_noise_floor(FaceDetector(float_models["full"], "full"), astronaut, "full")
    assert full_eyes.max() > 2.0 or full_ious.min() < 0.9
    assert np.median(full_eyes) < 0.5  # it is the worst scenes that move, not all of them
    short_eyes, short_ious = own_noise_floor(FaceDetector(float_models["short"], "short"), astronaut, "short")
    assert short_eyes.max() < 1.5 and short_ious.min() > 0.95


@pytest.mark.parametrize("detector_range", ["short", "full"])
def test_no_face_gives_no_detection(detector_range):
    import skimage.data

    detector = FaceDetector(None, detector_range)
    for name in ("coffee", "rocket", "brick"):
        image = getattr(skimage.data, name)()
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        assert detector.detect(image) == [], name
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_odd_images_give_an_empty_result_or_a_clear_error(astronaut):
    detector = FaceDetector(None, "short")
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.detect(np.full((3000, 4000, 3), 128, np.uint8)) == []
    grey = astronaut.mean(axis=2).astype(np.uint8)
    assert len(detector.detect(grey)) == 1  # grey is accepted and still has her face
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert len(detector.detect(rgba)) == 1
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(astronaut.astype(np.float32))
    with pytest.raises(ValueError, match="empty"):
        detector.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ValueError, match="larger than"):
        detector.detect(np.zeros((20000, 2, 3), np.uint8))
    # Alternating sizes must not leave stale letterbox borders behind.
    first = detector.detect(astronaut)[0]
    detector.detect(np.zeros((480, 640, 3), np.uint8))
    again = detector.detect(astronaut)[0]
    assert np.allclose(first.keypoints, again.keypoints)


def test_missing_or_corrupt_model_is_a_one_line_error(tmp_path, float_models):
    with pytest.raises(ModelError, match="nowhere.tflite"):
        FaceDetector(tmp_path / "nowhere.tflite", "short")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ModelError, match="junk.tflite"):
        FaceDetector(junk, "short")
    with pytest.raises(ModelError, match="range"):
        FaceDetector(None, "medium")
    with pytest.raises(ModelError, match="min_score 1.5"):
        FaceDetector(None, "short", min_score=1.5)
    # A real model of the other range is refused by its shape, not run with wrong anchors.
    with pytest.raises(ModelError, match="input shape"):
        FaceDetector(float_models["full"], "short")


def test_no_tflite_runtime_is_a_model_error_saying_what_to_install(monkeypatch):
    import edge.tflite

    monkeypatch.setattr(edge.tflite, "RUNTIMES", ("no_such_runtime_module.interpreter",))
    with pytest.raises(ModelError, match="install ai-edge-litert .*no_such_runtime_module"):
        FaceDetector(None, "short")


@pytest.mark.parametrize("detector_range", ["short", "full"])
def test_bundled_models_are_found_and_int8(detector_range):
    path = default_model_path(detector_range)
    assert path.parent == MODELS and path.name == f"face_detection_{detector_range}_range_int8.tflite"
    assert FaceDetector(path, detector_range).is_quantized


# --- model integrity: the record beside each model, [detector] sha256, failures when run ------------------
#: One byte of the full-range model that the runtime's flatbuffer verifier does not notice when flipped
#: (bit 3 of byte 592): the model loads and then fails on every invoke ("Input tensor 215 lacks data").
FLIP_AT, FLIP_MASK = 592, 0x08
FULL = "face_detection_full_range_int8"


def model_copy(folder, *, flip=False, record=True, truncate=False):
    """A copy of the bundled full-range model (and its record, if ``record``) in ``folder``."""
    import shutil

    data = bytearray((MODELS / f"{FULL}.tflite").read_bytes())
    if flip:
        data[FLIP_AT] ^= FLIP_MASK
    if truncate:
        data = data[:-100]
    path = folder / f"{FULL}.tflite"
    path.write_bytes(bytes(data))
    if record:
        shutil.copy(MODELS / f"{FULL}.json", folder / f"{FULL}.json")
    return path


def bundled_sha256():
    import json

    return json.loads((MODELS / f"{FULL}.json").read_text())["sha256"]


def test_a_flipped_byte_is_refused_at_load_by_the_record_beside_the_model(tmp_path):
    import hashlib

    path = model_copy(tmp_path, flip=True)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ModelError) as refused:
        FaceDetector(path, "full")
    message = str(refused.value)
    assert message.startswith(f"{path}: sha256 {actual}, but its record {FULL}.json expects {bundled_sha256()}")
    assert "\n" not in message
    # A truncated copy is named by its size.
    path = model_copy(tmp_path, truncate=True)
    with pytest.raises(ModelError, match=rf"{path}: 821236 bytes, but its record {FULL}.json says 821336 bytes"):
        FaceDetector(path, "full")


def test_a_flipped_byte_is_refused_at_load_by_a_configured_sha256(tmp_path):
    from edge.config import config_from_dict
    from edge.pipeline import make_detector

    path = model_copy(tmp_path, flip=True, record=False)
    with pytest.raises(ModelError, match=rf"{path}: sha256 [0-9a-f]{{64}}, but \[detector\] sha256 expects "
                                         rf"{bundled_sha256()}"):
        FaceDetector(path, "full", sha256=bundled_sha256())
    # The same through the config, as the daemon and a reload build it (digests are kept in lower case).
    config = config_from_dict({"detector": {"range": "full", "model": str(path), "sha256": bundled_sha256().upper()}})
    assert config.detector.sha256 == bundled_sha256()
    with pytest.raises(ModelError, match=r"\[detector\] sha256 expects"):
        make_detector(config)
    # The right digest loads (the configured digest and the record both checked when both are there).
    (tmp_path / "good").mkdir()
    good = model_copy(tmp_path / "good")
    assert FaceDetector(good, "full", sha256=bundled_sha256()).is_quantized


def test_the_sha256_key_is_validated(tmp_path):
    from edge.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r'\[detector\] sha256 = "abc": expected a SHA-256 digest: 64 '
                                          r"hexadecimal digits"):
        config_from_dict({"detector": {"sha256": "abc"}})
    with pytest.raises(ConfigError, match="sha256"):
        config_from_dict({"detector": {"sha256": "g" * 64}})


def test_a_model_without_a_record_or_digest_loads_with_one_info_line(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="edge.tflite")
    FaceDetector(model_copy(tmp_path, record=False), "full")
    unchecked = [r for r in caplog.records if "unchecked" in r.getMessage()]
    assert len(unchecked) == 1 and unchecked[0].levelno == logging.INFO
    assert f"{FULL}.tflite: no record ({FULL}.json) and no [detector] sha256" in unchecked[0].getMessage()
    caplog.clear()
    FaceDetector(model_copy(tmp_path), "full")  # with its record: checked, nothing said
    assert not [r for r in caplog.records if "unchecked" in r.getMessage()]


def test_bundled_models_must_match_their_record_and_a_broken_record_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MONA_EDGE_MODELS", str(tmp_path))
    model_copy(tmp_path, record=False)
    with pytest.raises(ModelError, match=rf"{FULL}.tflite: its record {FULL}.json is missing; reinstall"):
        FaceDetector(None, "full")
    (tmp_path / f"{FULL}.json").write_text("{not json")
    with pytest.raises(ModelError, match=rf"{FULL}.json: model record unreadable"):
        FaceDetector(None, "full")
    (tmp_path / f"{FULL}.json").write_text('{"model": "x"}')
    with pytest.raises(ModelError, match=rf"{FULL}.json: model record without a sha256"):
        FaceDetector(None, "full")


_FAIL_THREE_TIMES = """
import json, sys, numpy as np
from edge.detector import FaceDetector
from edge.errors import ModelError
detector = FaceDetector(sys.argv[1], "full", runtime=sys.argv[2])
out = {"runtime": detector.runtime_name, "errors": []}
for _ in range(3):
    try:
        detector.detect(np.zeros((480, 640, 3), np.uint8))
    except ModelError as exc:
        out["errors"].append([str(exc), str(exc.__cause__)])
print(json.dumps(out))
"""


def _failing_invokes(python, model, runtime):
    import json
    import os
    import subprocess

    from conftest import REPO

    done = subprocess.run([python, "-c", _FAIL_THREE_TIMES, str(model), runtime], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_each_failure_says_only_its_own(result, runtime_name):
    assert result["runtime"] == runtime_name and len(result["errors"]) == 3
    lacks = "Input tensor 215 lacks data"
    # What the runtime raises accumulates: every earlier message again, with no separator.
    assert [cause.count(lacks) for _, cause in result["errors"]] == [1, 2, 3]
    # What the detector reports is that call's message alone, the same each time.
    expected = f"{FULL}.tflite: inference failed: {lacks}"
    assert [message for message, _ in result["errors"]] == [expected] * 3


def test_a_model_the_runtime_loads_but_cannot_run_reports_each_failure_alone(tmp_path):
    import sys

    model = model_copy(tmp_path, flip=True, record=False)  # unchecked: the runtime gets to load it
    result = _failing_invokes(sys.executable, model, "ai_edge_litert.interpreter")
    _assert_each_failure_says_only_its_own(result, "ai-edge-litert")


def test_the_same_under_tflite_runtime(tmp_path):
    import os

    python = os.environ.get("MONA_EDGE_TFLITE_PYTHON")
    if not python:
        pytest.skip("MONA_EDGE_TFLITE_PYTHON is not set (tests/run sets it up)")
    model = model_copy(tmp_path, flip=True, record=False)
    result = _failing_invokes(python, model, "tflite_runtime.interpreter")
    _assert_each_failure_says_only_its_own(result, "tflite-runtime")


def test_error_text_takes_what_the_latest_call_added():
    from edge.tflite import ErrorText

    errors = ErrorText()
    assert errors.new(RuntimeError("A failed")) == "A failed"
    assert errors.new(RuntimeError("A failedA failed")) == "A failed"  # accumulated, no separator
    assert errors.new(RuntimeError("A failedA failed\nNode 3 (CONV_2D)\n")) == "Node 3 (CONV_2D)"
    assert errors.new(RuntimeError("B")) == "B"  # a runtime that resets its messages: kept whole
    assert errors.new(RuntimeError("B")) == "B"  # the same again with nothing added: still said
    assert errors.new(RuntimeError("two\nlines")) == "two lines"  # one log line
