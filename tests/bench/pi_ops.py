"""Per-operator work on the Pi's own CPU: guest instructions of each operator of our int8 BlazeFace models and
of the float models they came from, on an emulated Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76).

tests/bench/pi_work.py counts whole frames; this says *where* int8 costs more than float on a Pi 4. How:
cumulative truncation. For k = 1..N, a copy of the model keeps only its first k compute operators (with the
constant DEQUANTIZE/DENSIFY ops that unpack their weights), and every tensor they produce that nothing kept
consumes becomes a model output, so nothing is dead and nothing after op k exists to run. Each copy is
loaded as the daemon loads a model (ai-edge-litert, XNNPACK, one thread), invoked once to warm up, then
``--invokes`` times between two marks (tests/pi/count_marks.c prints the instruction count at a mark), all
in one emulated process. Op k's cost = cumulative(k) - cumulative(k-1); op 1 also carries the fixed cost of
an ``invoke`` call. Whether XNNPACK takes an operator is asked of a one-op model holding only it (the
interpreter then lists a DELEGATE node or not).

Rows pair each int8 operator with the float operators computing the same tensor (by name): a float RELU
folded into its ADD by the quantizer shares the ADD's row; the int8 float tail (DEQUANTIZE, MUL, ADD after
each head) has no float peer. XNNPACK fuses some pairs itself (a convolution's RELU), so one of the pair
may count near zero and the other carry both. XNNPACK also decides some things for a whole graph (the
float full-range model runs 18.7 M cheaper complete than cut before its last op, most likely its sparse NCHW
float path), so a single op can show a negative count; the totals are exact. Each table ends with the rows
summed by operator type. Instructions are not time (see pi_work.py).

    .venv/bin/python tests/bench/pi_ops.py [--ranges short full] [--boards pi4 pi5] [--invokes 2]
                                           [--os bookworm|trixie]

Needs the emulated Pi (tests/pi/setup) and gcc.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge.detector import MODEL_FILES  # noqa: E402
from provisioning.mediapipe_wheel import FULL_RANGE_MEMBER, SHORT_RANGE_MEMBER, extract_member  # noqa: E402
from provisioning.tflite_graph import CONSTANT_PRODUCERS, op_name, serialize  # noqa: E402

PI = REPO / "tests" / "pi"
PI_ROOT = Path(os.environ.get("MONA_EDGE_PI_ROOT", REPO / ".emulated-pi"))
MODELS = REPO / "assets" / "models"
BOARD_CPU = {"pi4": "Cortex-A72: NEON, no dot product", "pi5": "Cortex-A76: NEON + dot product (asimddp)"}

#: Runs in the Pi's Python. argv: a file listing one model a line ("count PATH" or "check PATH"), invokes.
GUEST = """
import ctypes, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
mark = ctypes.CDLL(None).syscall
lines = open(sys.argv[1]).read().splitlines()
invokes = int(sys.argv[2])
rng = np.random.default_rng(0)
for i, line in enumerate(lines):
    what, path = line.split(" ", 1)
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    delegates = sum(d["op_name"] == "DELEGATE" for d in interpreter._get_ops_details())
    print("model", i, delegates, flush=True)
    if what != "count":
        continue
    for d in interpreter.get_input_details():
        info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
        x = (rng.integers(info.min, info.max + 1, size=d["shape"]) if info is not None
             else rng.uniform(-1, 1, size=d["shape"]))
        interpreter.set_tensor(d["index"], x.astype(d["dtype"]))
    interpreter.invoke()
    mark(0x4d4f, 2 * i)
    for _ in range(invokes):
        interpreter.invoke()
    mark(0x4d4f, 2 * i + 1)
"""


@dataclass
class Op:
    index: int  # in the model's operator list
    kind: str
    output_name: str


def read_model(path: Path) -> Any:
    data = path.read_bytes()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def constant_ops(model: Any) -> tuple[set[int], set[int]]:
    """(operator indices that only unpack weights, tensors that are constant once the model is loaded)."""
    graph = model.subgraphs[0]
    constant = {i for i, t in enumerate(graph.tensors)
                if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)}
    ops = set()
    for i, op in enumerate(graph.operators):
        if op_name(model, op.opcodeIndex) in CONSTANT_PRODUCERS and all(int(t) in constant for t in op.inputs if t >= 0):
            ops.add(i)
            constant.update(int(t) for t in op.outputs)
    return ops, constant


def compute_ops(model: Any) -> list[Op]:
    graph = model.subgraphs[0]
    skip, _ = constant_ops(model)
    return [Op(i, op_name(model, op.opcodeIndex), graph.tensors[int(op.outputs[0])].name.decode())
            for i, op in enumerate(graph.operators) if i not in skip]


def sub_model(model: Any, keep: list[int], inputs: list[int] | None = None) -> bytes:
    """The model with only the operators ``keep`` (plus the weight unpacking they need); every tensor they
    produce that none of them consumes is an output. ``inputs`` replaces the model inputs (one-op models)."""
    graph = model.subgraphs[0]
    unpack, constant = constant_ops(model)
    kept = [graph.operators[i] for i in keep]
    consumed = {int(t) for op in kept for t in op.inputs}
    producer = {int(t): i for i in unpack for t in graph.operators[i].outputs}
    needed: set[int] = set()
    frontier = [t for t in consumed if t in producer]
    while frontier:
        i = producer[frontier.pop()]
        if i not in needed:
            needed.add(i)
            frontier.extend(int(t) for t in graph.operators[i].inputs if int(t) in producer)
    operators = [graph.operators[i] for i in sorted(needed)] + kept
    outputs = [int(t) for op in kept for t in op.outputs if int(t) not in consumed and int(t) not in constant]
    saved = (graph.operators, graph.outputs, graph.inputs, model.signatureDefs)
    try:
        graph.operators = operators
        graph.outputs = np.array(outputs, dtype=np.int32)
        if inputs is not None:
            graph.inputs = np.array(inputs, dtype=np.int32)
        model.signatureDefs = None
        return serialize(model)
    finally:
        graph.operators, graph.outputs, graph.inputs, model.signatureDefs = saved


def one_op_inputs(model: Any, index: int) -> list[int]:
    _, constant = constant_ops(model)
    return [int(t) for t in model.subgraphs[0].operators[index].inputs if t >= 0 and int(t) not in constant]


def build_models(path: Path, workdir: Path, tag: str) -> tuple[list[Op], list[str]]:
    """Write the truncated copies and one-op copies of ``path``; the guest's job lines."""
    model = read_model(path)
    ops = compute_ops(model)
    jobs = []
    for k in range(1, len(ops) + 1):
        target = workdir / f"{tag}-upto{k:03d}.tflite"
        target.write_bytes(sub_model(model, [op.index for op in ops[:k]]))
        jobs.append(f"count {target}")
    for op in ops:
        target = workdir / f"{tag}-only{op.index:03d}.tflite"
        target.write_bytes(sub_model(model, [op.index], one_op_inputs(model, op.index)))
        jobs.append(f"check {target}")
    return ops, jobs


def run_guest(plugin: Path, board: str, os_name: str, jobs: list[str], workdir: Path, invokes: int
              ) -> tuple[list[float], list[bool]]:
    """Per-invoke cumulative counts of the "count" jobs, and whether each "check" job's op was delegated."""
    listing = workdir / f"jobs-{board}.txt"
    listing.write_text("\n".join(jobs) + "\n")
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", MONA_EDGE_PI_ROOT=str(PI_ROOT),
               QEMU_PLUGIN=f"file={plugin}", QEMU_LOG="plugin", MONA_EDGE_PI_OS=os_name)
    done = subprocess.run([str(PI / "python"), board, "litert", "-c", GUEST, str(listing), str(invokes)],
                          capture_output=True, text=True, env=env, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"{board}: exit {done.returncode}: {done.stderr[-1500:]}")
    marks = {int(a): int(b) for a, b in re.findall(r"^mark (\d+) (\d+)$", done.stderr, re.M)}
    delegates = {int(a): int(b) for a, b in re.findall(r"^model (\d+) (\d+)$", done.stdout, re.M)}
    counts, checks = [], []
    for i, job in enumerate(jobs):
        if job.startswith("count"):
            counts.append((marks[2 * i + 1] - marks[2 * i]) / invokes)
        else:
            checks.append(delegates[i] > 0)
    return counts, checks


def per_op(cumulative: list[float]) -> list[float]:
    return [c - p for c, p in zip(cumulative, [0.0] + cumulative[:-1])]


def pair_rows(int8_ops: list[Op], float_ops: list[Op]) -> dict[int, list[int]]:
    """int8 op position -> positions of the float ops computing the same tensor. A float op whose output
    the int8 model does not have (an ADD whose RELU was folded into it) joins the next one that matches."""
    by_name = {op.output_name: j for j, op in enumerate(int8_ops)}
    rows: dict[int, list[int]] = defaultdict(list)
    pending: list[int] = []
    for i, op in enumerate(float_ops):
        pending.append(i)
        if op.output_name in by_name:
            rows[by_name[op.output_name]].extend(pending)
            pending = []
    if pending:
        rows[len(int8_ops) - 1].extend(pending)
    return rows


def short_name(name: str) -> str:
    return name if len(name) <= 44 else "…" + name[-43:]


def report(rng: str, board: str, int8_ops: list[Op], float_ops: list[Op], int8_n: list[float],
           float_n: list[float], int8_deleg: list[bool], float_deleg: list[bool]) -> None:
    rows = pair_rows(int8_ops, float_ops)
    print(f"\n{rng} range on {board} ({BOARD_CPU[board]}): instructions per invoke, thousands "
          "(X = XNNPACK takes the op; - = runs in TFLite's own kernels)")
    print(f"  {'#':>3s} {'int8 op':18s} {'tensor':44s} {'int8 K':>8s} {'float op(s)':22s} {'float K':>8s} "
          f"{'float/int8':>10s}")
    for j, op in enumerate(int8_ops):
        peers = rows.get(j, [])
        fk = sum(float_n[i] for i in peers)
        kinds = "+".join(f"{float_ops[i].kind}{'X' if float_deleg[i] else '-'}" for i in peers) or "(none)"
        ratio = f"{fk / int8_n[j]:10.2f}" if peers and int8_n[j] > 1000 else f"{'':10s}"
        print(f"  {op.index:3d} {op.kind + ('X' if int8_deleg[j] else '-'):18s} {short_name(op.output_name):44s} "
              f"{int8_n[j] / 1e3:8.1f} {kinds:22s} {fk / 1e3:8.1f} {ratio}")
    print(f"  by type (the int8 op's, with its float peers): {'ops':>4s} {'int8 M':>8s} {'float M':>8s} {'float/int8':>10s}")
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for j, op in enumerate(int8_ops):
        kind = op.kind if rows.get(j) else f"{op.kind} (int8 only)"
        totals[kind][0] += int8_n[j]
        totals[kind][1] += sum(float_n[i] for i in rows.get(j, []))
        totals[kind][2] += 1
    for kind, (a, b, n) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        ratio = f"{b / a:10.2f}" if a > 0 and b > 0 else f"{'':10s}"
        print(f"  {kind:47s} {int(n):4d} {a / 1e6:8.2f} {b / 1e6:8.2f} {ratio}")
    a, b = sum(int8_n), sum(float_n)
    print(f"  total: int8 {a / 1e6:.2f} M, float {b / 1e6:.2f} M, float/int8 = {b / a:.2f}x "
          f"({sum(int8_deleg)}/{len(int8_deleg)} int8 ops and {sum(float_deleg)}/{len(float_deleg)} float ops "
          "taken by XNNPACK)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranges", nargs="+", default=["short", "full"], choices=["short", "full"])
    parser.add_argument("--boards", nargs="+", default=["pi4", "pi5"], choices=["pi4", "pi5"])
    parser.add_argument("--invokes", type=int, default=2, help="measured invokes per truncated model")
    parser.add_argument("--os", default="bookworm", choices=["bookworm", "trixie"])
    parser.add_argument("--int8-dir", type=Path, default=MODELS, help="where the int8 models are")
    args = parser.parse_args()
    if not (PI_ROOT / args.os / "sysroot" / "usr" / "bin" / "python3").exists():
        print(f"no emulated Pi at {PI_ROOT}: run tests/pi/setup first", file=sys.stderr)
        return 1
    floats = {"short": extract_member(SHORT_RANGE_MEMBER), "full": extract_member(FULL_RANGE_MEMBER)}
    print(f"ai-edge-litert aarch64 on emulated boards ({args.os}), one thread, XNNPACK; per operator by "
          f"cumulative truncation, {args.invokes} invokes a model after one warm-up")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plugin = workdir / "count_marks.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(plugin), str(PI / "count_marks.c")], check=True)
        for rng in args.ranges:
            int8_ops, int8_jobs = build_models(args.int8_dir / MODEL_FILES[rng], workdir, f"{rng}-int8")
            float_ops, float_jobs = build_models(floats[rng], workdir, f"{rng}-float")
            for board in args.boards:
                int8_n, int8_d = run_guest(plugin, board, args.os, int8_jobs, workdir, args.invokes)
                float_n, float_d = run_guest(plugin, board, args.os, float_jobs, workdir, args.invokes)
                report(rng, board, int8_ops, float_ops, per_op(int8_n), per_op(float_n), int8_d, float_d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
