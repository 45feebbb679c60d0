"""Which bundled model, int8 or float, a CPU runs with less work: ``[detector] precision = "auto"``.

Why a choice at all: int8 is not cheaper everywhere. XNNPACK's int8 kernels beat its fp32 ones only where
the CPU multiplies int8 fast: with the Arm dot product (``asimddp``, a Pi 5's Cortex-A76: 16 int8
multiply-accumulates an instruction against fp32's 4) or x86's VNNI. Without it (a Pi 4's Cortex-A72) they
widen to 16 bits and do no more work an instruction than fp32's, and the full-range float model has
something int8 has no equivalent of: XNNPACK runs that whole graph with its sparse NCHW fp32 kernels (the
file is MediaPipe's ``face_detection_full_range_sparse.tflite``), which made it 18.7 M instructions cheaper
than any cut of it. No int8 graph change closes that (README, "Per operator, on the Pi's CPU"): int8
would have to shed 19.9 M of its 64.4 M an invoke, more than all its PAD and ADD operators cost together
(15.4 M), and the one cut measured, folding the first convolution, saves 2.3 M.

The rule is a small table (:data:`RULES`) read from ``/proc/cpuinfo`` (``Features`` on Arm, ``flags`` on
x86), first match wins; what it cannot place (no cpuinfo, another architecture) keeps int8, the
quantized models this project ships and tests against. Figures (emulated boards: ai-edge-litert
aarch64, XNNPACK, one thread, guest instructions counted by tests/bench/pi_work.py per frame and
tests/bench/pi_ops.py per invoke; x86: tests/bench/detector.py p50 ms on an AMD EPYC with avx2 and
fma, no avx512 or VNNI, at commit 9e77a84; an earlier run on AVX2 had 3.12 / 1.78 and 6.65 / 5.70)::

    CPU                        short int8 / float         full int8 / float                     picks
    Pi 5, Cortex-A76 asimddp   13.3 / 21.7 M a frame      39.9 / 48.1 M a frame                 int8, int8
    Pi 4, Cortex-A72 (NEON)    20.5 / 22.0 M a frame      67.6 / 48.1 M (64.4 / 44.5 M invoke)  int8, float
    x86-64 AVX2, no VNNI       1.95 / 1.58 ms             5.91 / 4.44 ms                        int8, int8 (*)
    x86-64 with VNNI           not measured (no such CPU here)                                  int8, int8

(*) Not the faster one, on purpose: x86 is a workstation, CI or a demo, not a frame, and there "auto" runs
the quantized models the Pi 5 runs, the same on every x86 box whether it has VNNI or not, so the tests of
the daemon's stack exercise what a frame runs and do not change with the machine CI lands on.
``precision = "float"`` takes the faster model on such a CPU.

Only the standard library: the daemon reads this on its way up.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

#: ``[detector] precision`` values: "auto" (this module decides), or a fixed "int8" / "float".
PRECISIONS = ("auto", "int8", "float")
RANGES = ("short", "full")
CPUINFO = Path("/proc/cpuinfo")
ARM = ("aarch64", "arm64")
X86 = ("x86_64", "amd64")


@dataclass(frozen=True)
class Rule:
    """CPUs of ``machines`` that have every feature in ``needs`` run ``short``/``full`` with that precision."""

    machines: tuple[str, ...]
    needs: tuple[str, ...]
    cpu: str  # the CPU in words, for status and doctor
    short: str
    full: str
    measured: str  # the figures behind it, short

    def precision(self, detector_range: str) -> str:
        return self.short if detector_range == "short" else self.full


#: First match wins: the specific (a feature present) before the general.
RULES: tuple[Rule, ...] = (
    Rule(ARM, ("asimddp",), "Arm with the dot product (asimddp; a Pi 5's Cortex-A76)", "int8", "int8",
         "int8/float instructions a frame: short 13.3/21.7 M, full 39.9/48.1 M"),
    Rule(ARM, (), "Arm without the dot product (no asimddp; a Pi 4's Cortex-A72)", "int8", "float",
         "int8/float instructions a frame: short 20.5/22.0 M, full 67.6/48.1 M"),
    Rule(X86, (), "x86-64 (a workstation or CI, not a frame)", "int8", "int8",
         "kept on purpose: with AVX2 and no VNNI float measured faster, p50 int8/float short 1.95/1.58 ms, "
         "full 5.91/4.44 ms; VNNI not measured; int8 keeps one model per range on every x86 box, the Pi 5's"),
)


@dataclass(frozen=True)
class Choice:
    """A range's precision and why (what ``mona-edge status`` and ``doctor`` print)."""

    precision: str
    why: str


def cpu_features(text: str) -> frozenset[str]:
    """The features every processor of a ``/proc/cpuinfo`` text lists (Arm ``Features``, x86 ``flags``)."""
    sets = [frozenset(line.split(":", 1)[1].split()) for line in text.splitlines()
            if ":" in line and line.split(":", 1)[0].strip() in ("Features", "flags")]
    return frozenset.intersection(*sets) if sets else frozenset()


def read_cpuinfo(path: Path = CPUINFO) -> str | None:
    """``/proc/cpuinfo``'s text, or None where there is none (not Linux) or it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def choose(detector_range: str, precision: str = "auto", *, machine: str | None = None,
           cpuinfo: str | None = None) -> Choice:
    """The precision of the bundled ``detector_range`` model to load. ``precision`` "int8"/"float" is the
    config's own choice; "auto" applies :data:`RULES` to ``machine`` (default ``platform.machine()``) and
    ``cpuinfo`` (default: this machine's ``/proc/cpuinfo``)."""
    if detector_range not in RANGES:
        raise ValueError(f"detector range {detector_range!r}: expected one of {', '.join(RANGES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return Choice(precision, f"[detector] precision = \"{precision}\"")
    machine = (machine or platform.machine()).lower()
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    if text is None:
        return Choice("int8", f"auto: {machine}, no /proc/cpuinfo to read its features: int8, the default")
    features = cpu_features(text)
    for rule in RULES:
        if machine in rule.machines and all(f in features for f in rule.needs):
            chosen = rule.precision(detector_range)
            return Choice(chosen, f"auto: {rule.cpu}: {chosen} ({rule.measured})")
    return Choice("int8", f"auto: {machine} is not in the measured table: int8, the default")
