"""Cross-layer equalization: give every channel of an int8 tensor a fair share of its 256 levels.

Int8 activations have one scale per tensor, and BlazeFace's tensors have channels whose ranges differ by
orders of magnitude: the small ones drown in the big ones' rounding. A positive per-channel gain g_c
passes unchanged through everything that is linear or ReLU-like per channel (ADD, zero PAD, MAX_POOL,
bilinear RESIZE, a fused ReLU), so for a *group* of tensors joined by such operators, multiplying the
output channels of every convolution that writes into the group by g and dividing the input channels of
every convolution that reads from it by g leaves the float model's output exactly the same, while the
int8 model sees channels of similar range. A residual stream (the ADDs of consecutive blocks and their
skip paths) is one such group; a depthwise -> pointwise pair is the smallest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from provisioning.tflite_graph import ACT_NONE, ACT_RELU, FloatGraph, Node

COMPUTE = ("CONV_2D", "DEPTHWISE_CONV_2D")
#: Operators a positive per-channel gain passes through unchanged (ReLU fused or not).
LINKS = ("ADD", "PAD", "MAX_POOL_2D", "RESIZE_BILINEAR")


@dataclass
class Group:
    """Tensors that must share one gain vector, with the convolutions that write and read them."""

    tensors: list[int] = field(default_factory=list)
    producers: list[Node] = field(default_factory=list)
    consumers: list[Node] = field(default_factory=list)
    channels: int = 0


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _pad_keeps_channel_order(graph: FloatGraph, node: Node) -> bool:
    """Spatial padding, or channels appended at the end: channel c stays channel c."""
    paddings = graph.constants.get(node.inputs[1])
    return paddings is not None and int(paddings[-1][0]) == 0


def _is_link(graph: FloatGraph, node: Node) -> bool:
    if node.op == "PAD":
        return _pad_keeps_channel_order(graph, node)
    if node.op == "ADD":
        return node.activation in (ACT_NONE, ACT_RELU)
    return node.op in LINKS


def find_groups(graph: FloatGraph, excluded: Sequence[int] = ()) -> list[Group]:
    """Every group of activation tensors that can be equalized exactly (``excluded``: tensors to keep as is,
    such as the output heads, whose scales are set per channel elsewhere)."""
    uf = _UnionFind()
    activations = set()
    for node in graph.nodes:
        for t in node.outputs:
            activations.add(t)
            uf.find(t)
        if _is_link(graph, node):
            for t in node.inputs:
                if t >= 0 and t not in graph.constants:
                    uf.union(t, node.outputs[0])
    members: dict[int, list[int]] = {}
    for t in activations:
        members.setdefault(uf.find(t), []).append(t)
    groups = []
    for tensors in members.values():
        group = _build_group(graph, sorted(tensors), set(excluded))
        if group is not None:
            groups.append(group)
    return groups


def _build_group(graph: FloatGraph, tensors: list[int], excluded: set) -> Group | None:
    group = Group(tensors=tensors, channels=max(graph.shapes[t][-1] for t in tensors))
    for t in tensors:
        if t in excluded or t in graph.outputs or t in graph.inputs:
            return None
        producer = graph.producer(t)
        if producer is None:
            return None
        if producer.op in COMPUTE:
            if producer.activation not in (ACT_NONE, ACT_RELU):
                return None
            group.producers.append(producer)
        elif not _is_link(graph, producer):
            return None
        for consumer in graph.consumers(t):
            if _is_link(graph, consumer):
                continue
            if consumer.op not in COMPUTE or consumer.inputs[0] != t:
                return None
            if consumer.op == "DEPTHWISE_CONV_2D" and graph.constants[consumer.inputs[1]].shape[3] != graph.shapes[t][-1]:
                return None  # a depth multiplier > 1 would need each gain repeated
            if all(consumer is not c for c in group.consumers):
                group.consumers.append(consumer)
    return group if group.producers else None


def gains_from_peaks(peaks: np.ndarray, exponent: float, limit: float) -> np.ndarray:
    """Per-channel gains that lift each channel's peak towards the largest one's."""
    peaks = np.maximum(peaks, 1e-6 * max(float(peaks.max()), 1e-12))
    return np.clip((peaks.max() / peaks) ** exponent, 1.0, limit)


def tensor_gains(groups: Sequence[Group], gains: Sequence[np.ndarray], shapes: dict[int, tuple]) -> dict[int, np.ndarray]:
    """The gain vector each member tensor ends up multiplied by (fewer channels: the leading ones)."""
    out = {}
    for group, gain in zip(groups, gains):
        for t in group.tensors:
            out[t] = gain[:shapes[t][-1]]
    return out


def apply(graph: FloatGraph, groups: Sequence[Group], gains: Sequence[np.ndarray]) -> None:
    """Fold the gains into the weights and biases (exact in float)."""
    for group, gain in zip(groups, gains):
        for producer in group.producers:
            g = gain[:graph.shapes[producer.outputs[0]][-1]]
            axis = 0 if producer.op == "CONV_2D" else 3
            shape = [1, 1, 1, 1]
            shape[axis] = -1
            graph.constants[producer.inputs[1]] = graph.constants[producer.inputs[1]] * g.reshape(shape)
            if len(producer.inputs) > 2 and producer.inputs[2] >= 0:
                graph.constants[producer.inputs[2]] = graph.constants[producer.inputs[2]] * g
        for consumer in group.consumers:
            g = gain[:graph.shapes[consumer.inputs[0]][-1]]
            # Input channels are the last axis for CONV_2D (O,H,W,I) and DEPTHWISE_CONV_2D (1,H,W,C).
            graph.constants[consumer.inputs[1]] = graph.constants[consumer.inputs[1]] / g.reshape(1, 1, 1, -1)
