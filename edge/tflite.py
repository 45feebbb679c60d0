"""Load a TFLite model with whichever runtime this machine has.

``ai-edge-litert`` is the maintained successor and works with numpy 2; ``tflite-runtime`` 2.14 is what
older Raspberry Pi OS images carry and needs numpy < 2. Both expose the same ``Interpreter`` class, so the
rest of the code never needs to know which one it got.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edge.errors import ModelError

#: Tried in order; the first importable one wins unless a caller asks for one by name.
RUNTIMES: tuple[str, ...] = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def runtime_module(prefer: str | None = None) -> Any:
    """Return the first importable runtime module (or exactly ``prefer`` when given); a :class:`ModelError`
    saying what to install when there is none (the machine's setup, not a bug)."""
    candidates = (prefer,) if prefer else RUNTIMES
    errors = []
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ImportError as exc:  # numpy-2 vs tflite-runtime also lands here
            errors.append(f"{name}: {exc}")
    raise ModelError("no TFLite runtime could be imported; install ai-edge-litert (numpy 2) "
                     "or tflite-runtime (numpy < 2). Tried: " + "; ".join(errors))


def runtime_name(module: Any) -> str:
    """The distribution name a runtime module came from, for status and benchmark output."""
    return module.__name__.split(".")[0].replace("_", "-")


def load_interpreter(model_path: Path, threads: int = 1, prefer: str | None = None) -> Any:
    """Create and allocate an interpreter; a missing or corrupt model is a one-line error naming the file."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    module = runtime_module(prefer)
    try:
        interpreter = module.Interpreter(model_path=str(path), num_threads=int(threads))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable TFLite model ({first})") from exc
    interpreter.runtime_name = runtime_name(module)
    return interpreter
