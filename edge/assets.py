"""Where the bundled assets are: the int8 models, the default and test packs, the demo's clip.

Why a module of its own: the demo needs the clip and a pack, the detector needs its models and their
records, and the daemon needs the default pack when the configured one cannot be shown (safe mode,
:mod:`edge.service`). All of them must look in the same places in the same order, or an installed frame
and a source checkout would disagree about what "the bundled pack" is. Only the standard library: the
daemon imports this on its way up, before anything that could fail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edge.errors import ModelError, MonaEdgeError, PackError

#: The bundled pack the daemon shows when the configured one cannot be used (safe mode).
DEFAULT_PACK = "default"


def asset_dirs(kind: str) -> list[Path]:
    """Where bundled assets of ``kind`` ("models", "packs", "clips") are looked for, in order:
    ``$MONA_EDGE_ASSETS/<kind>``, an installed wheel's share dir, then the source tree."""
    dirs = []
    if os.environ.get("MONA_EDGE_ASSETS"):
        dirs.append(Path(os.environ["MONA_EDGE_ASSETS"]) / kind)
    dirs.append(Path(sys.prefix) / "share" / "mona-edge" / kind)
    dirs.append(Path(__file__).resolve().parent.parent / "assets" / kind)
    return dirs


def find_asset(kind: str, name: str) -> Path:
    """The first ``<dir>/<name>`` that exists among :func:`asset_dirs` of ``kind``.

    Not found is a broken install, which reinstalling fixes: a :class:`PackError` for packs, a
    :class:`ModelError` for models, a :class:`MonaEdgeError` for anything else, naming every folder tried.
    """
    for folder in asset_dirs(kind):
        if (folder / name).exists():
            return folder / name
    error = {"packs": PackError, "models": ModelError}.get(kind, MonaEdgeError)
    raise error(f"{kind}/{name}: bundled asset not found in " + ", ".join(map(str, asset_dirs(kind))))


def default_pack_path() -> Path:
    """The bundled default pack (the portrait safe mode shows)."""
    return find_asset("packs", DEFAULT_PACK)
