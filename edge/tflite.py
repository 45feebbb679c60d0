"""Load a TFLite model with whichever runtime this machine has, after checking it is the file it should be.

``ai-edge-litert`` is the maintained successor and works with numpy 2; ``tflite-runtime`` 2.14 is what
older Raspberry Pi OS images carry and needs numpy < 2. Both expose the same ``Interpreter`` class, so the
rest of the code never needs to know which one it got.

Why models are checked before the runtime sees them: the runtime's own verifier only proves the file is a
well-formed flatbuffer. A model with one flipped byte (a bad SD card, a half-copied file) can pass it, load,
and then fail on every frame (``Input tensor 215 lacks data``) or, worse, quietly find no one. So each
model is read once, its size and SHA-256 compared with the record the quantizer wrote beside it
(``<model>.json``, fields ``bytes`` and ``sha256``) and with ``[detector] sha256`` if the config gives one,
and the interpreter is made from exactly the bytes that were checked (no window in which the file could
change between the check and the load).

Why :class:`ErrorText`: both runtimes' Python wrappers keep every error message an interpreter ever
reported and raise the whole lot each time (their ``PythonErrorReporter::message()`` calls
``std::stringstream::clear()``, which resets the stream's state flags, not its text). A model that fails
on every frame therefore raises "A", then "AA", then "AAA"...: the log grows quadratically and each line
carries all the earlier ones. :class:`ErrorText` takes only what the latest call added.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

from edge.digest import new_sha256
from edge.errors import ModelError

log = logging.getLogger(__name__)

#: Tried in order; the first importable one wins unless a caller asks for one by name.
RUNTIMES: tuple[str, ...] = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
#: Largest model file read: BlazeFace is under 1 MB; anything this big is a wrong path, not a face detector.
MAX_MODEL_BYTES = 64 * 1024 * 1024
#: Largest record read (the quantizer's are about 2 kB).
MAX_RECORD_BYTES = 1024 * 1024


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


def record_path(model_path: Path) -> Path:
    """The record the quantizer writes beside a model: ``face_x.tflite`` -> ``face_x.json``."""
    return Path(model_path).with_suffix(".json")


def read_record(model_path: Path) -> dict[str, Any] | None:
    """The model's record (its ``sha256`` and ``bytes``), or None if it has none. A record that is there
    but unreadable or without those fields is a :class:`ModelError` naming it: a broken record must not
    silently turn the check off."""
    path = record_path(model_path)
    if not path.exists():
        return None
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise ModelError(f"{path}: model record larger than {MAX_RECORD_BYTES} bytes")
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model record unreadable ({exc})") from exc
    sha = record.get("sha256") if isinstance(record, dict) else None
    size = record.get("bytes") if isinstance(record, dict) else None
    if not (isinstance(sha, str) and len(sha) == 64) or not (isinstance(size, int) and size > 0):
        raise ModelError(f"{path}: model record without a sha256 (64 hex digits) and bytes (a size); "
                         "re-run mona-edge quantize or remove the record")
    return record


def read_model(model_path: Path, sha256: str | None = None, *, require_record: bool = False) -> bytes:
    """The model's bytes, checked against its record and against ``sha256`` (from the config) when given.

    A mismatch is a :class:`ModelError` naming the file, what was expected (and where that came from) and
    what the file has. A model with neither a record nor a configured digest is loaded, with one INFO
    line saying it is unchecked; ``require_record`` (the bundled models, which always ship with theirs)
    makes a missing record an error instead.
    """
    path = Path(model_path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ModelError(f"{path}: not a model file")
        if size > MAX_MODEL_BYTES:
            raise ModelError(f"{path}: {size} bytes is not a face detector (at most {MAX_MODEL_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model: {exc.strerror or exc}") from exc
    record = read_record(path)
    if record is None and require_record:
        raise ModelError(f"{path}: its record {record_path(path).name} is missing; reinstall mona-edge")
    actual = new_sha256(data).hexdigest()
    expected: list[tuple[str, str, int | None]] = []
    if record is not None:
        expected.append((f"its record {record_path(path).name}", record["sha256"].lower(), record["bytes"]))
    if sha256 is not None:
        expected.append(("[detector] sha256", sha256.lower(), None))
    for source, digest, nbytes in expected:
        if nbytes is not None and nbytes != len(data):
            raise ModelError(f"{path}: {len(data)} bytes, but {source} says {nbytes} bytes "
                             "(a truncated or different model; copy it again)")
        if digest != actual:
            raise ModelError(f"{path}: sha256 {actual}, but {source} expects {digest} "
                             "(a damaged or different model; copy it again)")
    if not expected:
        log.info("%s: no record (%s) and no [detector] sha256: loading it unchecked (sha256 %s)", path,
                 record_path(path).name, actual)
    return data


def load_interpreter(model_path: Path, threads: int = 1, prefer: str | None = None, *,
                     sha256: str | None = None, require_record: bool = False) -> Any:
    """Check the model (:func:`read_model`), then create and allocate an interpreter from those bytes; a
    missing, damaged or corrupt model is a one-line :class:`ModelError` naming the file."""
    path = Path(model_path)
    data = read_model(path, sha256, require_record=require_record)
    module = runtime_module(prefer)
    try:
        interpreter = module.Interpreter(model_content=data, num_threads=int(threads))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable TFLite model ({first})") from exc
    interpreter.runtime_name = runtime_name(module)
    return interpreter


class ErrorText:
    """What one interpreter's latest failed call reported, without the messages of the calls before it.

    Both runtimes raise every message their interpreter has reported so far, concatenated without a
    separator (see the module docstring). So the text of the previous error is remembered, and a new
    error that starts with it is cut to what follows. A runtime that does reset its messages simply never
    starts with the previous text, and its message is kept whole.
    """

    def __init__(self) -> None:
        self._seen = ""

    def new(self, exc: BaseException) -> str:
        text = str(exc)
        fresh = text[len(self._seen):] if self._seen and text.startswith(self._seen) else text
        self._seen = text
        fresh = fresh.strip()
        if not fresh:  # the same text again with nothing added: say so rather than print nothing
            lines = text.strip().splitlines()
            fresh = lines[-1] if lines else type(exc).__name__
        return " ".join(fresh.split())  # one log line, whatever the runtime put in it
