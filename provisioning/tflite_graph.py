"""Read a float TFLite model into a small editable graph, and write TFLite flatbuffers back.

MediaPipe's BlazeFace files are not plain float graphs: the short-range file uses the old schema where
every operator code has ``builtinCode`` 0 and the real operator only in ``deprecatedBuiltinCode``; the
weights are fp16 behind DEQUANTIZE ops; the full-range file also hides them behind DENSIFY (sparse
storage). This module hides all of that: it resolves every constant to fp32 by running the model once
with all tensors preserved (so the runtime's own DEQUANTIZE/DENSIFY kernels do the unpacking), and fuses
standalone RELUs into their producers, which keeps the int8 graph in few XNNPACK partitions.
"""

from __future__ import annotations

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
