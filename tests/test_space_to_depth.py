"""The quantizer's space-to-depth rewrite of the first convolution (provisioning.tflite_graph.space_to_depth_input)
computes what the original convolution computes: checked against TFLite's own float kernel on both BlazeFace
graphs (short: 5x5 SAME; full: PAD then 3x3 VALID, folded here although its cost rule keeps the committed
full-range model unfolded), and the committed short-range int8 model carries it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edge.detector import MODEL_FILES
from provisioning import tflite_graph
from provisioning.mediapipe_wheel import FULL_RANGE_MEMBER, SHORT_RANGE_MEMBER, extract_member
from provisioning.tflite_graph import load_float_graph, op_name, reference_interpreter, space_to_depth_input

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


def run_rewritten(graph, x: np.ndarray) -> tuple[int, np.ndarray]:
    """Execute the rewritten graph's leading SPACE_TO_DEPTH, optional PAD and CONV_2D in numpy."""
    nodes = iter(graph.nodes)
    s2d = next(nodes)
    assert s2d.op == "SPACE_TO_DEPTH" and s2d.options.blockSize == 2
    n, h, w, c = x.shape
    y = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)
    node = next(nodes)
    if node.op == "PAD":
        y = np.pad(y, graph.constants[node.inputs[1]].reshape(4, 2))
        node = next(nodes)
    assert node.op == "CONV_2D" and (node.options.strideH, node.options.strideW) == (1, 1)
    weights, bias = graph.constants[node.inputs[1]], graph.constants[node.inputs[2]]
    _, kh, kw, _ = weights.shape
    if node.options.padding == 0:  # SAME, stride 1
        y = np.pad(y, [(0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)])
    out_h, out_w = y.shape[1] - kh + 1, y.shape[2] - kw + 1
    out = np.zeros((n, out_h, out_w, weights.shape[0]), dtype=np.float64)
    for ky in range(kh):
        for kx in range(kw):
            out += np.einsum("nhwc,oc->nhwo", y[:, ky:ky + out_h, kx:kx + out_w], weights[:, ky, kx, :])
    out += bias
    return node.outputs[0], np.maximum(out, 0.0) if node.activation == 1 else out


@pytest.mark.parametrize("member", [SHORT_RANGE_MEMBER, FULL_RANGE_MEMBER])
def test_rewrite_matches_tflite_first_convolution(member, monkeypatch):
    monkeypatch.setattr(tflite_graph, "MAX_FOLD_COST", 2.0)  # fold the full range's 3x3 too
    path = extract_member(member)
    graph = load_float_graph(path)
    rewritten = space_to_depth_input(graph)
    assert len(rewritten.nodes) >= len(graph.nodes) and graph.nodes[0].op in ("CONV_2D", "PAD")
    interpreter = reference_interpreter(path.read_bytes())
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(3).uniform(-1, 1, size=detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    tensor, ours = run_rewritten(rewritten, x.astype(np.float64))
    theirs = interpreter.get_tensor(tensor)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, float(np.abs(theirs).max()))


def test_graph_without_the_pattern_is_unchanged():
    graph = load_float_graph(extract_member(SHORT_RANGE_MEMBER))
    once = space_to_depth_input(graph)
    assert space_to_depth_input(once) is once  # the input now feeds a SPACE_TO_DEPTH, not a convolution


def test_the_fold_is_kept_only_where_dot_product_cores_do_not_pay_for_it():
    short = space_to_depth_input(load_float_graph(extract_member(SHORT_RANGE_MEMBER)))
    full = load_float_graph(extract_member(FULL_RANGE_MEMBER))
    assert short.nodes[0].op == "SPACE_TO_DEPTH"
    assert space_to_depth_input(full) is full  # 3x3 -> 2x2 over 12 channels: 1.33x the multiplies


@pytest.mark.parametrize("detector_range, first", [("short", "SPACE_TO_DEPTH"), ("full", "PAD")])
def test_committed_int8_models_start_as_the_quantizer_makes_them(detector_range, first):
    data = (MODELS / MODEL_FILES[detector_range]).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    assert op_name(model, model.subgraphs[0].operators[0].opcodeIndex) == first
