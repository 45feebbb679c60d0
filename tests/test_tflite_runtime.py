"""The same int8 model in tflite-runtime 2.14 (numpy < 2), in its own environment.

tflite-runtime cannot share a process with numpy 2, so this runs the detector in the interpreter named by
``$MONA_EDGE_TFLITE_PYTHON`` (``tests/run`` creates that environment): there too the int8 model must agree
with the float model it came from, to the same bounds as under ai-edge-litert.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    GROUND_TRUTH_FRAMES,
    GROUND_TRUTH_SEED,
    agreement_in,
    agreement_scenes,
    assert_int8_matches_float,
    detect_both_in,
)

from provisioning.calibration import room_scenes
from provisioning.scoring import score


@pytest.fixture(scope="module")
def tflite_python() -> str:
    python = os.environ.get("MONA_EDGE_TFLITE_PYTHON")
    if not python:
        pytest.skip("MONA_EDGE_TFLITE_PYTHON is not set (tests/run sets it up)")
    if not Path(python).exists():
        pytest.fail(f"MONA_EDGE_TFLITE_PYTHON={python} does not exist")
    return python


#: The bounds of tests/test_detector.py for each range (min IoU, max median eye offset, max eye offset), but
#: for the short range's worst eye, where tflite-runtime 2.14's x86 int8 kernels round differently: measured
#: 2.5 px here, 1.9 px under ai-edge-litert, 1.75 px in tflite-runtime's own aarch64 build on the Pi's CPU
#: (tests/test_pi_kernels.py; issue 2's bar is 2 px).
BOUNDS = {"short": (0.9, None, 3.0), "full": (0.7, 2.0, 7.0)}


@pytest.mark.parametrize("detector_range", sorted(BOUNDS))
def test_int8_model_agrees_with_float_under_tflite_runtime(tflite_python, tmp_path, astronaut, float_models,
                                                           detector_range):
    min_iou, max_median, max_offset = BOUNDS[detector_range]
    frames = np.stack([frame for _, frame, _ in agreement_scenes(astronaut, detector_range)])
    result = agreement_in([tflite_python], "tflite_runtime.interpreter", detector_range,
                          float_models[detector_range], frames, tmp_path)
    assert result["runtime"] == "tflite-runtime" and result["numpy"].startswith("1.")
    assert result["iou"].min() >= min_iou
    assert result["eye"].max() < max_offset
    if max_median is not None:
        assert np.median(result["eye"]) < max_median


@pytest.mark.parametrize("detector_range", ["short", "full"])
@pytest.mark.slow
def test_int8_recall_and_eye_midpoint_match_float_under_tflite_runtime(tflite_python, tmp_path, float_models,
                                                                         detector_range):
    """The annotated-faces check of tests/test_detector.py, with both models in tflite-runtime 2.14."""
    frames, truths, _ = room_scenes(GROUND_TRUTH_FRAMES, GROUND_TRUTH_SEED)
    result = detect_both_in([tflite_python], "tflite_runtime.interpreter", detector_range,
                            float_models[detector_range], np.stack(frames), tmp_path)
    assert result["runtime"] == "tflite-runtime"
    float_score, int8_score = (score(result[name], truths).summary() for name in ("float", "int8"))
    assert float_score["found"] >= 100
    assert_int8_matches_float(float_score, int8_score, detector_range)
