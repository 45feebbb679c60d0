"""Full-integer int8 BlazeFace, calibrated on faces as a picture frame's camera sees them.

Why our own rewriter instead of a generic converter: the MediaPipe files need care a generic tool does not
take (see :mod:`provisioning.tflite_graph`), and the detector's accuracy lives in its last layer. A
single int8 regressor output spans roughly [-84, 145] model pixels, a step of ~0.9 px at the input and ~4 px
in a 640-wide frame, far from the 2 px we need. So every *head* convolution (one whose output reaches a
model output only through reshapes) is rescaled per output channel: its weights and bias are multiplied so
that each channel's calibrated range fills int8 on its own, and after the int8 convolution a DEQUANTIZE plus
a float per-channel multiply-add (a few thousand values) restores the original units. Every CONV_2D and
DEPTHWISE_CONV_2D runs on int8; only the tiny tail (dequantize, affine, reshape, concatenate) is float. The
short range's first convolution reads the input folded 2x2 into 12 channels (SPACE_TO_DEPTH): exactly the
same integer arithmetic, but int8 kernels without the dot product (a Pi 4's) waste most of their work on 3
channels (the full range's 3x3 one stays: folded, it would cost a Pi 5 more; see space_to_depth_input).

Channel ranges of the regressor heads come from the anchors that actually see faces (score > 0.05 on the
float model): values at background anchors are never decoded, so clipping them costs nothing and buys
precision. Internal activations are first equalized across channels (:mod:`provisioning.equalize`); their
ranges are then a percentile of the per-frame extremes, so the rare huge values that wreck min/max
calibration are clipped, and the result does not depend on the order of the calibration frames. The
percentile and the equalization strength are searched, the kept pair being the one whose model agrees best
with the float model on the calibration frames (:func:`quantize_model`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edge.blazeface import SPECS
from edge.detector import FaceDetector, input_levels, iou
from edge.errors import ModelError
from provisioning import equalize
from provisioning.tflite_graph import (
    ACT_NONE,
    ACT_RELU,
    ACT_RELU6,
    OP_CODES,
    FloatGraph,
    Node,
    load_float_graph,
    reference_interpreter,
    serialize,
    space_to_depth_input,
)

TOOL_VERSION = "mona-edge-quantize 2"  # 2: the first convolution reads a SPACE_TO_DEPTH of the input
#: Operators that only move int8 values around: their output must share the input's scale and zero point.
PASS_THROUGH = {"PAD", "MAX_POOL_2D", "RESHAPE", "DEPTH_TO_SPACE", "RESIZE_BILINEAR", "SPACE_TO_DEPTH"}
#: Operators allowed between a head convolution and a model output.
SHAPE_ONLY = {"RESHAPE", "DEPTH_TO_SPACE", "CONCATENATION"}
COMPUTE = {"CONV_2D", "DEPTHWISE_CONV_2D"}
#: Op versions that cover int8 (and float for the tail) in both tflite-runtime 2.14 and ai-edge-litert.
INT8_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "ADD": 2, "PAD": 2, "MAX_POOL_2D": 2, "RESHAPE": 1,
                 "DEPTH_TO_SPACE": 2, "SPACE_TO_DEPTH": 2, "RESIZE_BILINEAR": 3, "DEQUANTIZE": 2, "MUL": 1, "CONCATENATION": 1}
#: Range percentiles (of per-frame extremes) and equalization exponents tried; the quantizer keeps the
#: pair whose int8 model agrees best with the float model on the calibration frames themselves.
PERCENTILES = (90.0, 97.0, 99.5)
EXPONENTS = (0.5, 1.0)
MAX_EQUALIZATION = 64.0
POSITIVE_SCORE = 0.05
HEAD_MARGIN = 0.15  # widen face-anchor channel ranges by this fraction of their span on each side
LOGIT_FLOOR = -12.0  # classifier logits below this are a score of 6e-6: clip them


@dataclass
class TensorStats:
    """Each calibration frame's min and max of one tensor.

    The range is a percentile of the per-frame extremes: the rare frame with a huge internal value does
    not stretch the range for all the others (what wrecks plain min/max), and unlike a moving average the
    result does not depend on the order of the frames.
    """

    frame_lo: list[float] = field(default_factory=list)
    frame_hi: list[float] = field(default_factory=list)

    def observe(self, values: np.ndarray) -> None:
        self.frame_lo.append(float(values.min()))
        self.frame_hi.append(float(values.max()))

    def range(self, non_negative: bool, percentile: float) -> tuple[float, float]:
        lo = 0.0 if non_negative else min(0.0, float(np.percentile(self.frame_lo, 100.0 - percentile)))
        hi = max(float(np.percentile(self.frame_hi, percentile)), lo + 1e-6)
        return lo, hi


def qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 scale and zero point for [lo, hi] (widened to contain 0, as TFLite requires)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zero = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return float(scale), zero


# --- calibration ------------------------------------------------------------------------------------

@dataclass
class Calibration:
    activations: dict[int, TensorStats]
    channel_ranges: dict[int, tuple[np.ndarray, np.ndarray]]  # head tensor -> per-channel (lo, hi)
    equalization: dict[int, np.ndarray]  # tensor -> per-channel gain its values are multiplied by
    groups: list[equalize.Group]
    gains: list[np.ndarray]
    class_heads: set
    frames: int
    percentile: float
    logit_correction: float = 0.0  # added to the classifier heads' float tail (see quantize_model)


def apply_equalization(graph: FloatGraph, calib: Calibration) -> None:
    """Fold the calibrated per-channel gains into the weights (exact in float)."""
    equalize.apply(graph, calib.groups, calib.gains)


def head_nodes(graph: FloatGraph) -> list[Node]:
    """Convolutions whose output reaches a model output only through shape operators."""
    heads = []
    for node in graph.nodes:
        if node.op not in COMPUTE:
            continue
        frontier, ok, reached = [node.outputs[0]], True, False
        while frontier and ok:
            tensor = frontier.pop()
            if tensor in graph.outputs:
                reached = True
                continue
            for consumer in graph.consumers(tensor):
                if consumer.op not in SHAPE_ONLY:
                    ok = False
                frontier.extend(consumer.outputs)
        if ok and reached:
            heads.append(node)
    return heads


def trace_head_elements(graph: FloatGraph, heads: Sequence[Node]) -> dict[int, np.ndarray]:
    """For each model output, which head tensor and element every output value comes from.

    Encoded as ``tensor * 2**32 + flat_index``, pushed through the same reshapes, depth-to-space and
    concatenations the model applies, so no layout is assumed.
    """
    ids: dict[int, np.ndarray] = {}
    for node in heads:
        t = node.outputs[0]
        ids[t] = (np.int64(t) << 32) + np.arange(int(np.prod(graph.shapes[t])), dtype=np.int64).reshape(graph.shapes[t])
    pending = [n for n in graph.nodes if n.op in SHAPE_ONLY]
    progress = True
    while pending and progress:
        progress = False
        for node in list(pending):
            data_inputs = node.inputs[:1] if node.op != "CONCATENATION" else node.inputs
            if not all(t in ids for t in data_inputs):
                continue
            out_shape = graph.shapes[node.outputs[0]]
            if node.op == "RESHAPE":
                ids[node.outputs[0]] = ids[node.inputs[0]].reshape(out_shape)
            elif node.op == "CONCATENATION":
                ids[node.outputs[0]] = np.concatenate([ids[t] for t in node.inputs], axis=node.options.axis)
            else:  # DEPTH_TO_SPACE, NHWC, TFLite's depth-column-row order
                x = ids[node.inputs[0]]
                b = node.options.blockSize
                n, h, w, c = x.shape
                x = x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
                ids[node.outputs[0]] = x.reshape(n, h * b, w * b, c // (b * b))
            pending.remove(node)
            progress = True
    return {t: ids[t] for t in graph.outputs}


def calibrate(graph: FloatGraph, model_bytes: bytes, spec_name: str, frames: Sequence[np.ndarray],
              float_model: Path, percentile: float, exponent: float) -> Calibration:
    """Run the float model on every frame and gather what the int8 graph needs to know."""
    letterboxer = FaceDetector(float_model, spec_name)
    interpreter = reference_interpreter(model_bytes)
    input_index = interpreter.get_input_details()[0]["index"]
    activations = {t: TensorStats() for t in _activation_tensors(graph)}
    heads = head_nodes(graph)
    element_ids = trace_head_elements(graph, heads)
    spec = SPECS[spec_name]
    regress_out = next(t for t in graph.outputs if graph.shapes[t][-1] == spec.num_coords)
    class_out = next(t for t in graph.outputs if graph.shapes[t][-1] == 1)
    head_values: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {n.outputs[0]: [] for n in heads}
    groups = equalize.find_groups(graph, excluded=[n.outputs[0] for n in heads])
    group_peaks: list[list[np.ndarray]] = [[] for _ in groups]
    positive_logit = np.log(POSITIVE_SCORE / (1 - POSITIVE_SCORE))

    def run(frame: np.ndarray) -> None:
        letterboxer.letterbox(frame)
        interpreter.set_tensor(input_index, letterboxer.input_tensor)
        interpreter.invoke()

    for frame in frames:  # pass 1: per-channel peaks for equalization, head values at face anchors
        run(frame)
        for group, peaks in zip(groups, group_peaks):
            peak = np.zeros(group.channels)
            for t in group.tensors:
                values = interpreter.get_tensor(t)
                channel_max = np.abs(values).reshape(-1, values.shape[-1]).max(axis=0)
                peak[:channel_max.size] = np.maximum(peak[:channel_max.size], channel_max)
            peaks.append(peak)
        positive = interpreter.get_tensor(class_out).reshape(-1) > positive_logit
        for out in (regress_out, class_out):
            ids = element_ids[out].reshape(element_ids[out].shape[1], -1)
            values = interpreter.get_tensor(out).reshape(ids.shape)
            keep = positive if out == regress_out else slice(None)
            chosen_ids, chosen_values = ids[keep].reshape(-1), values[keep].reshape(-1)
            for tensor in head_values:
                mine = (chosen_ids >> 32) == tensor
                if mine.any():
                    head_values[tensor].append((chosen_ids[mine] & 0xFFFFFFFF, chosen_values[mine]))

    gains = [equalize.gains_from_peaks(np.percentile(np.stack(peaks), percentile, axis=0),
                                       exponent, MAX_EQUALIZATION) for peaks in group_peaks]
    equalization = equalize.tensor_gains(groups, gains, graph.shapes)

    for frame in frames:  # pass 2: per-frame extremes of every activation, as the int8 graph will see them
        run(frame)
        for t, stats in activations.items():
            values = interpreter.get_tensor(t)
            stats.observe(values * equalization[t] if t in equalization else values)

    class_heads = set(int(t) for t in np.unique(element_ids[class_out] >> 32))
    channel_ranges = {}
    for node in heads:
        t = node.outputs[0]
        channels = graph.shapes[t][-1]
        lo = np.full(channels, np.inf)
        hi = np.full(channels, -np.inf)
        for flat, values in head_values[t]:
            ch = flat % channels
            np.minimum.at(lo, ch, values)
            np.maximum.at(hi, ch, values)
        fallback = activations[t].range(False, 100.0)
        missing = ~np.isfinite(lo)
        lo[missing], hi[missing] = fallback[0], fallback[1]
        if t in class_heads:
            lo = np.maximum(lo, LOGIT_FLOOR)
            hi = np.maximum(hi, lo + 1.0)
        span = np.maximum(hi - lo, 1e-3)
        channel_ranges[t] = (lo - HEAD_MARGIN * span, hi + HEAD_MARGIN * span)
    return Calibration(activations=activations, channel_ranges=channel_ranges, equalization=equalization,
                       groups=groups, gains=gains, class_heads=class_heads, frames=len(frames),
                       percentile=percentile)


def _activation_tensors(graph: FloatGraph) -> list[int]:
    tensors = list(graph.inputs)
    for node in graph.nodes:
        tensors.extend(t for t in node.outputs if t not in tensors)
    return tensors


# --- emission -----------------------------------------------------------------------------------------

@dataclass
class _Builder:
    """Accumulates the int8 model's tensors, buffers and operators."""

    tensors: list = field(default_factory=list)
    buffers: list = field(default_factory=lambda: [schema.BufferT()])
    operators: list = field(default_factory=list)
    opcodes: list = field(default_factory=list)

    def buffer(self, array: np.ndarray | None) -> int:
        buf = schema.BufferT()
        if array is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
        self.buffers.append(buf)
        return len(self.buffers) - 1

    def tensor(self, name: str, shape: Sequence[int], ttype: int, data: np.ndarray | None = None,
               scale=None, zero=None, axis: int = 0) -> int:
        t = schema.TensorT()
        t.name = name.encode()
        t.shape = np.array(shape, dtype=np.int32)
        t.type = ttype
        t.buffer = self.buffer(data) if data is not None else 0
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zero)]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def operator(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options=None, options_type=0) -> None:
        version = INT8_VERSIONS[op]
        code = OP_CODES[op]
        key = (code, version)
        keys = [(c.builtinCode, c.version) for c in self.opcodes]
        if key not in keys:
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = version
            self.opcodes.append(oc)
            keys.append(key)
        o = schema.OperatorT()
        o.opcodeIndex = keys.index(key)
        o.inputs = np.array(inputs, dtype=np.int32)
        o.outputs = np.array(outputs, dtype=np.int32)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)


def _quantize_weights(weights: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 weights (zero point 0, range ±127, as TFLite's int8 kernels require)."""
    moved = np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)
    scale = np.abs(moved).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1e-8)
    shape = [1] * weights.ndim
    shape[axis] = -1
    q = np.clip(np.round(weights / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def build_int8_model(graph: FloatGraph, calib: Calibration, provenance: dict) -> bytes:
    """Emit the int8 model; outputs stay float32 with the float model's names and shapes.

    The first convolution is emitted over a SPACE_TO_DEPTH of the input where :func:`space_to_depth_input`
    finds that worth it (short range): the same integer sums, at 0.59x the instructions on a Pi 4.
    """
    graph = space_to_depth_input(graph)
    b = _Builder()
    qmap: dict[int, tuple[float, int]] = {}  # float tensor -> int8 (scale, zero)
    new_id: dict[int, int] = {}  # float tensor -> new tensor
    floats = set()  # float tensors that live in the float tail

    def activation(t: int, non_negative: bool = False) -> tuple[float, int]:
        if t not in qmap:
            qmap[t] = qparams(*calib.activations[t].range(non_negative, calib.percentile))
        return qmap[t]

    in_t = graph.inputs[0]
    qmap[in_t] = qparams(-1.0, 1.0)
    new_id[in_t] = b.tensor(graph.names[in_t], graph.shapes[in_t], schema.TensorType.INT8,
                            scale=qmap[in_t][0], zero=qmap[in_t][1])
    heads = {n.outputs[0] for n in head_nodes(graph)}
    first_convs = _first_convolutions(graph)
    input_offset = _input_offset(graph.shapes[in_t], *qmap[in_t])

    def const_input(t: int) -> int:
        if t not in new_id:
            data = graph.constants[t]
            ttype = schema.TensorType.INT32 if data.dtype == np.int32 else schema.TensorType.FLOAT32
            new_id[t] = b.tensor(graph.names[t], data.shape, ttype, data=data)
        return new_id[t]

    for node in graph.nodes:
        out = node.outputs[0]
        name = graph.names[out]
        shape = graph.shapes[out]
        if node.op in COMPUTE:
            x = node.inputs[0]
            weights = graph.constants[node.inputs[1]].astype(np.float64)
            channels = shape[-1]
            has_bias = len(node.inputs) > 2 and node.inputs[2] >= 0
            bias = graph.constants[node.inputs[2]].astype(np.float64) if has_bias else np.zeros(channels)
            axis = 0 if node.op == "CONV_2D" else 3
            if node in first_convs:  # the int8 input reads input_offset off the true value: undo it
                bias = bias - input_offset * weights.sum(axis=tuple(a for a in range(weights.ndim) if a != axis))
            if out in heads:  # per-channel affine so each channel fills int8 on its own
                lo, hi = calib.channel_ranges[out]
                gain = 2.0 / (hi - lo)
                mid = (hi + lo) / 2.0
                shape_w = [1] * weights.ndim
                shape_w[axis] = -1
                weights = weights * gain.reshape(shape_w)
                bias = (bias - mid) * gain
                out_q = qparams(-1.0, 1.0)
            else:
                out_q = activation(out, non_negative=node.activation in (ACT_RELU, ACT_RELU6))
            qmap[out] = out_q
            in_scale = qmap[x][0]
            wq, wscale = _quantize_weights(weights, axis)
            w_id = b.tensor(graph.names[node.inputs[1]], wq.shape, schema.TensorType.INT8, data=wq,
                            scale=wscale, zero=np.zeros(channels, dtype=np.int64), axis=axis)
            bscale = in_scale * wscale.astype(np.float64)
            bq = np.clip(np.round(bias / bscale), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
            b_id = b.tensor(name + "/bias_int32", (channels,), schema.TensorType.INT32, data=bq,
                            scale=bscale, zero=np.zeros(channels, dtype=np.int64))
            q_out = b.tensor(name, shape, schema.TensorType.INT8, scale=out_q[0], zero=out_q[1])
            b.operator(node.op, [new_id[x], w_id, b_id], [q_out], node.options, node.options_type)
            if out in heads:
                offset = mid + calib.logit_correction if out in calib.class_heads else mid
                new_id[out] = _float_tail(b, name, shape, q_out, gain, offset)
                floats.add(out)
            else:
                new_id[out] = q_out
        elif node.op == "ADD" and not any(t in floats for t in node.inputs):
            out_q = activation(out, non_negative=node.activation in (ACT_RELU, ACT_RELU6))
            qmap[out] = out_q
            new_id[out] = b.tensor(name, shape, schema.TensorType.INT8, scale=out_q[0], zero=out_q[1])
            b.operator("ADD", [new_id[t] for t in node.inputs], [new_id[out]], node.options, node.options_type)
        elif node.op in PASS_THROUGH or node.op == "CONCATENATION":
            data_inputs = node.inputs if node.op == "CONCATENATION" else node.inputs[:1]
            inputs = [new_id[t] if t in new_id and t not in graph.constants else const_input(t) for t in node.inputs]
            if all(t in floats for t in data_inputs):
                new_id[out] = b.tensor(name, shape, schema.TensorType.FLOAT32)
                floats.add(out)
            elif node.op in PASS_THROUGH and not any(t in floats for t in data_inputs):
                qmap[out] = qmap[node.inputs[0]]
                new_id[out] = b.tensor(name, shape, schema.TensorType.INT8, scale=qmap[out][0], zero=qmap[out][1])
            else:
                raise ModelError(f"{node.op} at {name}: mixes int8 and float inputs; this graph is not supported")
            b.operator(node.op, inputs, [new_id[out]], node.options, node.options_type)
        else:
            raise ModelError(f"operator {node.op} at {name} is not supported by the int8 rewriter")

    for t in graph.outputs:
        if t not in floats:
            raise ModelError(f"output {graph.names[t]} is not produced by a head convolution")

    sub = schema.SubGraphT()
    sub.tensors = b.tensors
    sub.operators = b.operators
    sub.inputs = np.array([new_id[graph.inputs[0]]], dtype=np.int32)
    sub.outputs = np.array([new_id[t] for t in graph.outputs], dtype=np.int32)
    sub.name = b"main"
    model = schema.ModelT()
    model.version = 3
    model.description = b"BlazeFace full-integer int8 (mona-edge)"
    model.operatorCodes = b.opcodes
    model.subgraphs = [sub]
    meta = schema.MetadataT()
    meta.name = b"mona_edge_quantization"
    meta.buffer = b.buffer(np.frombuffer(json.dumps(provenance, sort_keys=True).encode(), dtype=np.uint8))
    model.metadata = [meta]
    model.buffers = b.buffers
    return serialize(model)


def _input_offset(shape: Sequence[int], scale: float, zero: int) -> float:
    """How far the detector's int8 input sits from the true input value (the same for every pixel)."""
    pixels = -1.0 + np.arange(256) * 2.0 / 255.0
    represented = (input_levels(pixels, scale, zero) - zero) * scale
    offset = represented - pixels
    if np.ptp(offset) > 1e-6:
        raise ValueError("input quantization does not map pixels at a constant offset")
    return float(offset.mean())


def _first_convolutions(graph: FloatGraph) -> list[Node]:
    """The convolutions that read the model input directly or through pass-through ops (PAD)."""
    found, frontier = [], list(graph.inputs)
    while frontier:
        tensor = frontier.pop()
        for consumer in graph.consumers(tensor):
            if consumer.op in COMPUTE and consumer.inputs[0] == tensor:
                found.append(consumer)
            elif consumer.op in PASS_THROUGH:
                frontier.extend(consumer.outputs)
    return found


def _float_tail(b: _Builder, name: str, shape: Sequence[int], q_out: int, gain: np.ndarray, mid: np.ndarray) -> int:
    """DEQUANTIZE, then undo the per-channel gain and offset in float: value = q / gain + mid."""
    deq = b.tensor(name + "/dequantized", shape, schema.TensorType.FLOAT32)
    b.operator("DEQUANTIZE", [q_out], [deq])
    inv = b.tensor(name + "/channel_scale", (shape[-1],), schema.TensorType.FLOAT32, data=(1.0 / gain).astype(np.float32))
    scaled = b.tensor(name + "/rescaled", shape, schema.TensorType.FLOAT32)
    mul = schema.MulOptionsT()
    mul.fusedActivationFunction = ACT_NONE
    b.operator("MUL", [deq, inv], [scaled], mul, schema.BuiltinOptions.MulOptions)
    offset = b.tensor(name + "/channel_offset", (shape[-1],), schema.TensorType.FLOAT32, data=mid.astype(np.float32))
    restored = b.tensor(name + "/restored", shape, schema.TensorType.FLOAT32)
    add = schema.AddOptionsT()
    add.fusedActivationFunction = ACT_NONE
    b.operator("ADD", [scaled, offset], [restored], add, schema.BuiltinOptions.AddOptions)
    return restored


#: Faces within this much of the score threshold flip in and out with any perturbation (the float model's
#: own included); agreement counts a miss or an extra face only beyond it.
SCORE_MARGIN = 0.1


def agreement(float_faces: Sequence[list], int8_model: bytes, spec_name: str, frames: Sequence[np.ndarray]) -> dict:
    """How well an int8 model reproduces the float model's faces: confident faces missed or invented, and
    eye offsets as a fraction of the face's width (so a 300 px face does not outweigh twenty 30 px ones).

    ``float_faces`` come from the float model run with its threshold lowered by :data:`SCORE_MARGIN`.
    """
    threshold = SPECS[spec_name].min_score
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.tflite"
        path.write_bytes(int8_model)
        detector = FaceDetector(path, spec_name, min_score=threshold - SCORE_MARGIN)
        misses = extras = 0
        offsets = []
        for frame, expected in zip(frames, float_faces):
            got = detector.detect(frame)
            matched = set()
            for face in expected:
                overlaps = [iou(face.box, g.box[None])[0] for g in got]
                best = int(np.argmax(overlaps)) if got else -1
                if best < 0 or overlaps[best] < 0.5:
                    misses += face.score >= threshold + SCORE_MARGIN
                    continue
                matched.add(best)
                offset = float(np.abs(face.keypoints[:2] - got[best].keypoints[:2]).max())
                offsets.append(offset / max(face.width, 1.0))
            extras += sum(1 for i, g in enumerate(got) if i not in matched and g.score >= threshold + SCORE_MARGIN)
    offsets_arr = np.array(offsets or [0.0])
    return {"misses": int(misses), "extras": int(extras), "faces": len(offsets),
            "eye_p50_of_width": round(float(np.median(offsets_arr)), 4),
            "eye_p95_of_width": round(float(np.percentile(offsets_arr, 95)), 4)}


def quantize_model(float_model: Path, spec_name: str, frames: Sequence[np.ndarray], provenance: dict,
                   percentiles: Sequence[float] = PERCENTILES, exponents: Sequence[float] = EXPONENTS,
                   log=lambda message: None) -> tuple[bytes, dict]:
    """Float BlazeFace file -> (int8 model bytes, the search record).

    Each (percentile, exponent) pair is calibrated and built; the kept model is the one with the fewest
    missed or extra faces, then the smallest 95th-percentile eye offset, against the float model on the
    calibration frames. The search is recorded in the model's metadata and JSON record.
    """
    model_bytes = Path(float_model).read_bytes()
    reference = FaceDetector(float_model, spec_name, min_score=SPECS[spec_name].min_score - SCORE_MARGIN)
    float_faces = [reference.detect(frame) for frame in frames]
    best, trials = None, []
    for percentile in percentiles:
        for exponent in exponents:
            graph = load_float_graph(float_model)
            calib = calibrate(graph, model_bytes, spec_name, frames, float_model, percentile, exponent)
            apply_equalization(graph, calib)
            candidate = build_int8_model(graph, calib, provenance)
            score = agreement(float_faces, candidate, spec_name, frames)
            trials.append({"percentile": percentile, "exponent": exponent, **score})
            log(f"  percentile {percentile:g}, exponent {exponent:g}: {score}")
            key = (score["misses"] + score["extras"], score["eye_p95_of_width"])
            if best is None or key < best[0]:
                best = (key, percentile, exponent)
    assert best is not None, "no percentile/exponent candidates to search"
    _, percentile, exponent = best
    graph = load_float_graph(float_model)
    calib = calibrate(graph, model_bytes, spec_name, frames, float_model, percentile, exponent)
    apply_equalization(graph, calib)
    correct_biases(graph, calib, model_bytes, spec_name, frames, float_model)
    calib.logit_correction = -logit_bias(float_model, build_int8_model(graph, calib, provenance), spec_name, frames)
    chosen = {"percentile": percentile, "exponent": exponent, "logit_correction": round(calib.logit_correction, 4),
              "trials": trials}
    log(f"  kept percentile {percentile:g}, exponent {exponent:g}; logit correction {calib.logit_correction:+.3f}")
    return build_int8_model(graph, calib, dict(provenance, search=chosen)), chosen


#: Frames used for bias correction: the mean error per channel settles long before the whole set.
BIAS_FRAMES = 48


def correct_biases(graph: FloatGraph, calib: Calibration, model_bytes: bytes, spec_name: str,
                   frames: Sequence[np.ndarray], float_model: Path) -> None:
    """Sequential empirical bias correction of the convolutions without an activation.

    Rounding in a depthwise network does not average out: each layer's int8 output drifts off the float
    one by a per-channel mean, and the drift compounds. Layer by layer, in execution order, the int8
    model (with every earlier correction already in it) runs on calibration frames, the mean error of the
    layer's output per channel is measured where the float value lies inside the int8 range (clipping is
    deliberate), and subtracted from that layer's bias. Heads are left alone (their ranges are per channel
    already) and so are convolutions with a fused ReLU (their error before the ReLU cannot be seen).
    """
    heads = {n.outputs[0] for n in head_nodes(graph)}
    targets = [n for n in graph.nodes if n.op in COMPUTE and n.activation == ACT_NONE and n.outputs[0] not in heads
               and len(n.inputs) > 2 and n.inputs[2] >= 0]
    chosen = list(frames[::max(1, len(frames) // BIAS_FRAMES)][:BIAS_FRAMES])
    letterboxer = FaceDetector(float_model, spec_name)
    reference = reference_interpreter(model_bytes)
    inputs: list[np.ndarray] = []
    expected: dict[int, list[np.ndarray]] = {n.outputs[0]: [] for n in targets}
    for frame in chosen:
        letterboxer.letterbox(frame)
        x = letterboxer.input_tensor.copy()
        reference.set_tensor(reference.get_input_details()[0]["index"], x)
        reference.invoke()
        for node in targets:
            out = node.outputs[0]
            value = reference.get_tensor(out).astype(np.float32)
            expected[out].append(value * calib.equalization[out] if out in calib.equalization else value)
        inputs.append(x)
    for node in targets:
        out = node.outputs[0]
        candidate = reference_interpreter(build_int8_model(graph, calib, {}))
        detail = candidate.get_input_details()[0]
        scale_in, zero_in = detail["quantization"]
        found = next(d for d in candidate.get_tensor_details() if d["name"] == graph.names[out])
        scale, zero = found["quantization"]
        lo, hi = (-128 - zero) * scale, (127 - zero) * scale
        total = np.zeros(graph.shapes[out][-1])
        count = np.zeros(graph.shapes[out][-1])
        for x, want in zip(inputs, expected[out]):
            candidate.set_tensor(detail["index"], np.clip(input_levels(x, scale_in, zero_in), -128, 127).astype(np.int8))
            candidate.invoke()
            got = (candidate.get_tensor(found["index"]).astype(np.float32) - zero) * scale
            inside = (want > lo) & (want < hi)
            total += np.where(inside, got - want, 0.0).reshape(-1, total.size).sum(axis=0)
            count += inside.reshape(-1, total.size).sum(axis=0)
        graph.constants[node.inputs[2]] = (graph.constants[node.inputs[2]] - total / np.maximum(count, 1)).astype(np.float32)


#: Anchors whose float logit is above this (score 0.27) are the ones a threshold decision can hinge on.
BIAS_LOGIT = -1.0


def logit_bias(float_model: Path, int8_model: bytes, spec_name: str, frames: Sequence[np.ndarray]) -> float:
    """Mean int8-minus-float classifier logit over the anchors near or above the score threshold.

    Rounding through the whole network leaves the int8 scores systematically low (about -0.5 logit for
    the full-range model), which costs faces right at the threshold; the quantizer adds the negative of this
    to the classifier heads' float tail.
    """
    reference = FaceDetector(float_model, spec_name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidate.tflite"
        path.write_bytes(int8_model)
        candidate = FaceDetector(path, spec_name)
        diffs = []
        for frame in frames:
            _, expected = reference.raw_outputs(frame)
            _, got = candidate.raw_outputs(frame)
            near = expected > BIAS_LOGIT
            diffs.append(got[near] - expected[near])
    values = np.concatenate(diffs) if diffs else np.zeros(0)
    return float(values.mean()) if values.size else 0.0
