"""Which DRM card drives a screen: the kernel's connector states under ``/sys/class/drm``.

Why read sysfs rather than ask SDL: SDL's kmsdrm driver opens ``/dev/dri/card0`` unless told otherwise
(``SDL_KMSDRM_DEVICE_INDEX``), and on a Pi 5 card0 is the render-only V3D GPU while the HDMI ports
belong to card1 (on a Pi 4 the order depends on which driver probed first). The kernel publishes every
connector as ``/sys/class/drm/card<N>-<connector>/status`` (``connected``, ``disconnected`` or
``unknown``), readable by any user, before anything opens a device: the card with a connected connector
is the one to drive, so no card index has to be configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Where the kernel lists DRM cards and their connectors.
SYSFS_DRM = Path("/sys/class/drm")
#: ``card1-HDMI-A-1``: the card's index, then the connector's name.
_CONNECTOR = re.compile(r"^card(\d+)-(.+)$")


@dataclass(frozen=True)
class Connector:
    """One output of a DRM card, as the kernel reports it."""

    card: int
    name: str  #: e.g. ``HDMI-A-1``, ``DSI-1``, ``Composite-1``
    status: str  #: ``connected``, ``disconnected`` or ``unknown`` (what the status file says)

    def __str__(self) -> str:
        return f"card{self.card}-{self.name} {self.status}"


def list_connectors(root: Path = SYSFS_DRM) -> list[Connector]:
    """Every connector under ``root`` (card order, then name); none when the folder is absent (no DRM)."""
    found: list[Connector] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return found
    for entry in entries:
        match = _CONNECTOR.match(entry.name)
        if match is None:
            continue
        try:
            status = (entry / "status").read_text().strip()
        except OSError:  # a connector folder without a readable status (writeback outputs have one too)
            continue
        found.append(Connector(int(match.group(1)), match.group(2), status))
    return sorted(found, key=lambda c: (c.card, c.name))


def connected_card(root: Path = SYSFS_DRM) -> tuple[int | None, list[Connector]]:
    """The lowest-numbered card with a connected connector (None if no card has one), and every
    connector seen, so a caller can say what it looked at."""
    connectors = list_connectors(root)
    card = next((c.card for c in connectors if c.status == "connected"), None)
    return card, connectors


def describe(connectors: list[Connector]) -> str:
    """The connectors as one short phrase for a log line or an error."""
    return ", ".join(str(c) for c in connectors) if connectors else "no DRM connectors"
