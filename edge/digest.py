"""SHA-256 for the daemon's start-up checks (pack files, model files, the crash count's inputs), without
OpenSSL.

``hashlib`` loads OpenSSL's libcrypto through ``_hashlib`` and enumerates its providers at import: 3.1 MiB
of libcrypto's pages and 0.45 MiB of Python objects in the daemon's RSS here (tests/bench/memory.py), for
a few megabytes hashed once per start. CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before;
the code ``hashlib`` falls back to when OpenSSL is absent) costs nothing to load. It is slower: 20 ms for
the default pack and models here against 3.4 ms (OpenSSL uses the CPU's SHA instructions), once per
start or reload. Where neither built-in module exists (a Python built without them) ``hashlib``'s is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def _constructor() -> Callable[..., Digest]:
    for name in ("_sha2", "_sha256"):
        try:
            made: Callable[..., Digest] = importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return made
    import hashlib

    return hashlib.sha256


#: ``new_sha256(data=b"")``: a new digest object, as ``hashlib.sha256(data)``.
new_sha256: Callable[..., Digest] = _constructor()
