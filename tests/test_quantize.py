"""The int8 rewriter: committed model structure, a fresh quantization end to end, and its pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from conftest import MODELS, REPO, place_astronaut

from edge.detector import FaceDetector, iou
from edge.errors import ExitStatus, ModelError
from provisioning.quantize import TensorStats, head_nodes, qparams, trace_head_elements
from provisioning.tflite_graph import load_float_graph, op_name

SHORT_INT8 = MODELS / "face_detection_short_range_int8.tflite"
FULL_INT8 = MODELS / "face_detection_full_range_int8.tflite"


def conv_tensor_types(path: Path):
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = model.subgraphs[0]
    for op in graph.operators:
        name = op_name(model, op.opcodeIndex)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            yield name, [graph.tensors[i].type for i in list(op.inputs[:2]) + list(op.outputs)]


@pytest.mark.parametrize("model, convs", [(SHORT_INT8, 37), (FULL_INT8, 91)])
def test_committed_models_run_every_convolution_on_int8(model, convs):
    # MediaPipe's graphs: short range 21 CONV_2D + 16 DEPTHWISE_CONV_2D; full range 49 + 42.
    found = list(conv_tensor_types(model))
    assert len(found) == convs
    for name, types in found:
        assert types == [schema.TensorType.INT8] * 3, name


@pytest.mark.parametrize("model", [SHORT_INT8, FULL_INT8])
def test_committed_model_records_match_the_files(model):
    record = json.loads(model.with_suffix(".json").read_text())
    from edge.install import file_sha256 as sha256_of

    assert record["sha256"] == sha256_of(model)
    assert record["source"]["wheel"] == "mediapipe==0.10.14"
    assert record["calibration"]["frames"] >= 100
    chosen = record["search"]
    assert len(chosen["trials"]) >= 2 and {"percentile", "exponent"} <= set(chosen)


@pytest.mark.slow
def test_quantize_command_end_to_end(tmp_path, float_models, astronaut):
    """`mona-edge quantize` on a small calibration set makes a working all-int8 model and its record."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "edge.cli", "quantize", "--range", "short", "--frames", "24", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    model = tmp_path / "face_detection_short_range_int8.tflite"
    record = json.loads(model.with_suffix(".json").read_text())
    assert record["calibration"]["frames"] == 24 and record["bytes"] == model.stat().st_size
    assert all(types == [schema.TensorType.INT8] * 3 for _, types in conv_tensor_types(model))
    frame, _ = place_astronaut(astronaut, 150, 320, 240)
    reference = FaceDetector(float_models["short"], "short").detect(frame)
    got = FaceDetector(model, "short").detect(frame)
    assert len(got) == 1 and iou(reference[0].box, got[0].box[None])[0] > 0.85


def test_quantize_refuses_a_file_that_is_not_a_model(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0" * 64)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "edge.cli", "quantize", "--range", "short", "--float-model",
                           str(junk), "--frames", "2", "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == ExitStatus.MODEL
    errors = [line for line in done.stderr.splitlines() if not line.startswith("INFO ")]  # "unchecked" notes
    assert len(errors) == 1 and errors[0].startswith("mona-edge quantize: error: ") and "junk.tflite" in errors[0]


def test_qparams_always_represent_zero():
    for lo, hi in [(-1.0, 1.0), (0.0, 6.0), (2.0, 5.0), (-7.0, -3.0)]:
        scale, zero = qparams(lo, hi)
        assert -128 <= zero <= 127 and scale > 0
        assert (-128 - zero) * scale <= 1e-9 and (127 - zero) * scale >= -1e-9


def test_ranges_ignore_frame_order_and_rare_outliers():
    rng = np.random.default_rng(0)
    frames = [rng.normal(0, 1, 1000) for _ in range(50)]
    frames[7][3] = 500.0  # one huge value in one frame
    forward, backward = TensorStats(), TensorStats()
    for f in frames:
        forward.observe(f)
    for f in frames[::-1]:
        backward.observe(f)
    assert forward.range(False, 90.0) == backward.range(False, 90.0)
    lo, hi = forward.range(False, 90.0)
    assert 2.5 < hi < 5.0 and -5.0 < lo < -2.5
    assert forward.range(True, 90.0)[0] == 0.0


def test_head_elements_trace_back_to_their_convolution_channels(float_models):
    graph = load_float_graph(float_models["short"])
    heads = head_nodes(graph)
    assert sorted(graph.names[n.outputs[0]] for n in heads) == [
        "classificator_16", "classificator_8", "regressor_16", "regressor_8"]
    ids = trace_head_elements(graph, heads)
    regressors = next(t for t in graph.outputs if graph.shapes[t][-1] == 16)
    table = ids[regressors][0]
    tensor_of = {graph.names[n.outputs[0]]: n.outputs[0] for n in heads}
    # anchor 1 (second anchor of the first 16x16 cell), coordinate 5 -> regressor_8 channel 16 + 5
    assert table[1, 5] >> 32 == tensor_of["regressor_8"] and (table[1, 5] & 0xFFFFFFFF) == 21
    # the first 8x8 anchor -> regressor_16, cell 0, channel k
    assert table[512, 3] >> 32 == tensor_of["regressor_16"] and (table[512, 3] & 0xFFFFFFFF) == 3


def test_float_graph_has_fp32_weights_and_fused_relus(float_models):
    graph = load_float_graph(float_models["short"])
    assert not any(n.op in ("RELU", "DEQUANTIZE") for n in graph.nodes)
    conv = next(n for n in graph.nodes if n.op == "CONV_2D")
    weights = graph.constants[conv.inputs[1]]
    assert weights.dtype == np.float32 and weights.shape == (24, 5, 5, 3) and np.abs(weights).max() > 0.1
    with pytest.raises(ModelError, match="not a TFLite"):
        bad = Path(float_models["short"]).parent / "does-not-parse.tflite"
        bad.write_bytes(b"garbage")
        try:
            load_float_graph(bad)
        finally:
            bad.unlink()
