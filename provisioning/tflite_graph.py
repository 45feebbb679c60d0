"""Read a float TFLite model into a small editable graph, and write TFLite flatbuffers back.

MediaPipe's BlazeFace files are not plain float graphs: the short-range file uses the old schema where
every operator code has ``builtinCode`` 0 and the real operator only in ``deprecatedBuiltinCode``; the
weights are fp16 behind DEQUANTIZE ops; the full-range file also hides them behind DENSIFY (sparse
storage). This module hides all of that: it resolves every constant to fp32 by running the model once
with all tensors preserved (so the runtime's own DEQUANTIZE/DENSIFY kernels do the unpacking), and fuses
standalone RELUs into their producers, which keeps the int8 graph in few XNNPACK partitions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edge.errors import ModelError

OP_NAMES: dict[int, str] = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
OP_CODES: dict[str, int] = {k: v for v, k in OP_NAMES.items()}
#: Operators whose output is a constant once the model is loaded: their outputs become fp32 weights.
CONSTANT_PRODUCERS = {"DEQUANTIZE", "DENSIFY"}
#: Fused activation codes of the schema (ActivationFunctionType).
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


@dataclass
class Node:
    """One operator of the float graph, with tensor indices of the original model."""

    op: str
    inputs: list[int]
    outputs: list[int]
    options: Any
    options_type: int
    activation: int = ACT_NONE


@dataclass
class FloatGraph:
    """A single-subgraph float model: operators in execution order and every constant as fp32."""

    model: Any  # schema.ModelT of the source file
    nodes: list[Node]
    constants: dict[int, np.ndarray]
    inputs: list[int]
    outputs: list[int]
    names: dict[int, str] = field(default_factory=dict)
    shapes: dict[int, tuple] = field(default_factory=dict)

    def consumers(self, tensor: int) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def producer(self, tensor: int) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None


def reference_interpreter(model_bytes: bytes) -> Interpreter:
    """An interpreter whose every intermediate tensor is readable after ``invoke``.

    The default XNNPACK delegate would swallow the weights and intermediates (reading them back gives
    zeros or stale values), so it is switched off: these runs are for measuring, not for speed.
    """
    interpreter = Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def op_name(model: Any, opcode_index: int) -> str:
    """The operator's name, reading whichever of the two builtin-code fields is set."""
    code = model.operatorCodes[opcode_index]
    return OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]


def load_float_graph(path: Path) -> FloatGraph:
    """Parse ``path`` and resolve its constants; a :class:`ModelError` naming the file if it is not usable
    (it is the user's ``--float-model``, or a member of a downloaded wheel)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the float model: {exc.strerror or exc}") from exc
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except Exception as exc:  # flatbuffers raises assorted errors on garbage
        raise ModelError(f"{path}: not a TFLite flatbuffer ({type(exc).__name__})") from exc
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ModelError(f"{path}: expected one subgraph, found {len(model.subgraphs or [])}")
    graph = model.subgraphs[0]
    constants: dict[int, np.ndarray] = {}
    for index, tensor in enumerate(graph.tensors):
        buffer = model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data) and tensor.sparsity is None:  # sparse: DENSIFY's job
            dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32,
                     schema.TensorType.FLOAT16: np.float16, schema.TensorType.INT8: np.int8}.get(tensor.type)
            if dtype is not None:
                constants[index] = np.frombuffer(bytes(bytearray(buffer.data)), dtype=dtype).reshape(tensor.shape)
    # Let the runtime unpack fp16 and sparse weights: read the outputs of DEQUANTIZE/DENSIFY after one run.
    interpreter = reference_interpreter(data)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=np.float32))
    interpreter.invoke()
    nodes: list[Node] = []
    for operator in graph.operators:
        name = op_name(model, operator.opcodeIndex)
        if name in CONSTANT_PRODUCERS:
            out = int(operator.outputs[0])
            constants[out] = interpreter.get_tensor(out).astype(np.float32)
            continue
        options = operator.builtinOptions
        nodes.append(Node(op=name, inputs=[int(i) for i in operator.inputs], outputs=[int(o) for o in operator.outputs],
                          options=options, options_type=operator.builtinOptionsType,
                          activation=int(getattr(options, "fusedActivationFunction", 0) or 0)))
    fg = FloatGraph(model=model, nodes=nodes, constants=constants,
                    inputs=[int(i) for i in graph.inputs], outputs=[int(o) for o in graph.outputs],
                    names={i: t.name.decode() for i, t in enumerate(graph.tensors)},
                    shapes={i: tuple(int(d) for d in t.shape) for i, t in enumerate(graph.tensors)})
    _fuse_relus(fg)
    return fg


def _fuse_relus(graph: FloatGraph) -> None:
    """Fold a standalone RELU into the ADD/CONV that feeds only it (int8 kernels clamp for free)."""
    fused = []
    for node in graph.nodes:
        if node.op != "RELU":
            continue
        source = graph.producer(node.inputs[0])
        if (source is None or source.op not in ("ADD", "CONV_2D", "DEPTHWISE_CONV_2D")
                or source.activation != ACT_NONE or len(graph.consumers(node.inputs[0])) != 1
                or node.inputs[0] in graph.outputs):
            continue
        source.activation = ACT_RELU
        source.options.fusedActivationFunction = ACT_RELU
        source.outputs = list(node.outputs)
        fused.append(node)
    graph.nodes = [n for n in graph.nodes if all(n is not f for f in fused)]


def serialize(model: Any) -> bytes:
    """Pack a ``schema.ModelT`` into TFLite flatbuffer bytes (file identifier ``TFL3``)."""
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


#: Fold the input (:func:`space_to_depth_input`) only if the folded convolution's multiplies, input channels
#: counted in fours, are at most this multiple of the original's.
MAX_FOLD_COST = 1.2


def space_to_depth_input(graph: FloatGraph) -> FloatGraph:
    """The same network with its first convolution fed a SPACE_TO_DEPTH (block 2) of the model input.

    Why: the first convolution (stride 2 over the 3-channel RGB input) is the dearest operator of the int8
    models on a Pi 4 (short range: 8.2 M instructions of 21.9 M, against 4.6 M in fp32; counted by
    tests/bench/pi_ops.py). Without the dot product, XNNPACK's int8 kernels round each kernel tap's
    input channels up to a block of 8 or 16, so 3 channels waste most of every multiply. Folding 2x2 pixels
    into 12 channels turns a k x k stride-2 convolution into a ceil(k/2)-ish stride-1 one over 12 channels,
    whose weights are the old ones moved into place with zeros elsewhere: the same products summed, so the
    int8 model computes exactly what it did (same per-channel weight scales, same integer sums).

    The convolution may read the input directly (SAME or VALID padding) or through one zero PAD; its
    padding is then re-expressed in blocks (a PAD of whole blocks, or SAME where that is the same). Graphs
    that do not have this shape, or whose fold would cost dot-product cores more (:data:`MAX_FOLD_COST`;
    the full range's 3x3 convolution), come back unchanged.
    """
    source = graph.inputs[0]
    n, height, width, channels = graph.shapes[source]
    readers = graph.consumers(source)
    if len(readers) != 1 or height % 2 or width % 2 or channels > 4:
        return graph
    pad: Node | None = None
    conv = readers[0]
    before = [0, 0]  # zero rows / columns in front of the input, as the convolution sees it
    if conv.op == "PAD" and len(graph.consumers(conv.outputs[0])) == 1 and conv.inputs[1] in graph.constants:
        paddings = graph.constants[conv.inputs[1]].reshape(4, 2)
        if paddings[0].any() or paddings[3].any():
            return graph
        pad, conv = conv, graph.consumers(conv.outputs[0])[0]
        before = [int(paddings[1][0]), int(paddings[2][0])]
    options = conv.options
    if (conv.op != "CONV_2D" or conv.inputs[1] not in graph.constants or (options.strideH, options.strideW) != (2, 2)
            or (options.dilationHFactor, options.dilationWFactor) != (1, 1) or (pad is not None and options.padding != 1)):
        return graph
    weights = graph.constants[conv.inputs[1]]
    out_channels, kh, kw, _ = weights.shape
    _, out_h, out_w, _ = graph.shapes[conv.outputs[0]]
    if out_h != height // 2 or out_w != width // 2:
        return graph
    if pad is None and options.padding == 0:  # SAME: TFLite puts the smaller half of the padding first
        before = [max((out_h - 1) * 2 + kh - height, 0) // 2, max((out_w - 1) * 2 + kw - width, 0) // 2]
    blocks_before = [-(-t // 2) for t in before]  # whole zero blocks in front
    taps = [pb + (k - 1 - t) // 2 + 1 for pb, k, t in zip(blocks_before, (kh, kw), before)]
    blocks_after = [size - pb + nk - 1 - side // 2 for pb, nk, size, side in
                    zip(blocks_before, taps, (out_h, out_w), (height, width))]
    if min(blocks_after) < 0:
        return graph
    # Cores with the dot product (a Pi 5's) take input channels 4 at a time, so the fold costs them the
    # zero taps: 5x5 over 3 channels -> 3x3 over 12 is 1.08x the multiplies (measured 2.51 -> 2.14 M
    # instructions there: fewer, larger taps), 3x3 -> 2x2 over 12 is 1.33x (2.46 -> 2.83 M), which
    # the Pi 5 would pay to save a Pi 4 2.3 M of the full range's 67 M. Fold only when it is nearly free.
    if taps[0] * taps[1] * 4 * channels > MAX_FOLD_COST * kh * kw * 4 * -(-channels // 4):
        return graph
    moved = np.zeros((out_channels, taps[0], taps[1], 4 * channels), dtype=weights.dtype)  # equalized: float64
    for ky in range(kh):
        a = ky - before[0] + 2 * blocks_before[0]
        for kx in range(kw):
            b = kx - before[1] + 2 * blocks_before[1]
            depth = ((a % 2) * 2 + b % 2) * channels  # SPACE_TO_DEPTH's order: row in block, column, channel
            moved[:, a // 2, b // 2, depth:depth + channels] = weights[:, ky, kx, :]

    names, shapes, constants = dict(graph.names), dict(graph.shapes), dict(graph.constants)
    next_id = max(max(names), max(shapes)) + 1

    def new_tensor(name: str, shape: tuple, value: np.ndarray | None = None) -> int:
        nonlocal next_id
        tensor, next_id = next_id, next_id + 1
        names[tensor], shapes[tensor] = name, tuple(int(d) for d in shape)
        if value is not None:
            constants[tensor] = value
        return tensor

    folded = new_tensor(names[source] + "/space_to_depth", (n, height // 2, width // 2, 4 * channels))
    s2d_options = schema.SpaceToDepthOptionsT()
    s2d_options.blockSize = 2
    nodes = [Node("SPACE_TO_DEPTH", [source], [folded], s2d_options, schema.BuiltinOptions.SpaceToDepthOptions)]
    conv_options = copy.copy(options)
    conv_options.strideH = conv_options.strideW = 1
    same = all(pb == (nk - 1) // 2 and pa == nk // 2 for pb, pa, nk in zip(blocks_before, blocks_after, taps))
    conv_input = folded
    if same:
        conv_options.padding = 0
    else:
        conv_options.padding = 1
        block_pads = np.array([[0, 0], [blocks_before[0], blocks_after[0]], [blocks_before[1], blocks_after[1]], [0, 0]],
                              dtype=np.int32)
        paddings_id = new_tensor(names[folded] + "/paddings", (4, 2), block_pads)
        conv_input = new_tensor(names[folded] + "/padded", (n, height // 2 + blocks_before[0] + blocks_after[0],
                                                           width // 2 + blocks_before[1] + blocks_after[1],
                                                           4 * channels))
        nodes.append(Node("PAD", [folded, paddings_id], [conv_input], schema.PadOptionsT(),
                          schema.BuiltinOptions.PadOptions))
    weights_id = new_tensor(names[conv.inputs[1]] + "/space_to_depth", moved.shape, moved)
    nodes.append(Node("CONV_2D", [conv_input, weights_id, *conv.inputs[2:]], list(conv.outputs), conv_options,
                      conv.options_type, conv.activation))
    replaced = [conv] if pad is None else [pad, conv]
    at = min(i for i, node in enumerate(graph.nodes) if any(node is r for r in replaced))
    rest = [node for node in graph.nodes if all(node is not r for r in replaced)]
    return FloatGraph(model=graph.model, nodes=rest[:at] + nodes + rest[at:], constants=constants,
                      inputs=list(graph.inputs), outputs=list(graph.outputs), names=names, shapes=shapes)
