"""One error model for the whole product: what a user can fix is a :class:`MonaEdgeError`, anything else is a bug.

Why one base: the command line (``edge.cli``) and the daemon's start and reload boundaries must tell a
fault in the user's input (a bad key, a broken pack, an unreadable model, a camera that is not there)
from a fault in our code. The first is one line naming the file, key or value and what is allowed, with
its own exit status; the second keeps its traceback so it gets reported and fixed. Built-in exceptions
(``ValueError``, ``OSError``, ...) are therefore never shown as user errors by themselves: code that meets
one at a boundary it understands (opening the user's file, parsing the user's TOML) wraps it in the
domain's error with ``raise ...Error(...) from exc``.

Each domain has one subclass, and each carries the exit status the CLI returns for it
(:class:`ExitStatus`), so a script or a systemd unit can tell a bad config from a missing camera.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What ``mona-edge`` returns. 0-2 follow the shell's habits; the rest name the domain at fault."""

    OK = 0
    ERROR = 1          #: a user error outside the domains below
    USAGE = 2          #: the command line itself is wrong (argparse's own status)
    CONFIG = 3
    PACK = 4
    MODEL = 5
    CAMERA = 6
    DISPLAY = 7
    PROVISIONING = 8
    NOT_RUNNING = 9    #: the daemon's status socket does not answer
    BUG = 70           #: an unexpected exception: a defect in mona-edge (EX_SOFTWARE)
    INTERRUPTED = 130  #: Ctrl-C


class MonaEdgeError(Exception):
    """A fault the user can fix; its text is the whole message (one line: what, where, what is allowed)."""

    exit_status: ExitStatus = ExitStatus.ERROR


class ConfigError(MonaEdgeError):
    """The config file or one of its keys is unusable."""

    exit_status = ExitStatus.CONFIG


class PackError(MonaEdgeError):
    """A gaze pack is missing, malformed, over budget, or fails its checksums."""

    exit_status = ExitStatus.PACK


class ModelError(MonaEdgeError):
    """A model (the detector's TFLite file, a float model to quantize, a FOMM checkpoint) or its settings
    cannot be used, or the runtime it needs (a TFLite interpreter, CUDA) is not installed."""

    exit_status = ExitStatus.MODEL


class CameraError(MonaEdgeError):
    """A camera source cannot be opened or read."""

    exit_status = ExitStatus.CAMERA


class DisplayError(MonaEdgeError):
    """No screen can be opened or drawn to."""

    exit_status = ExitStatus.DISPLAY


class ProvisioningError(MonaEdgeError):
    """Building, sending or installing software, packs or models for a Pi failed."""

    exit_status = ExitStatus.PROVISIONING


class ImageError(MonaEdgeError):
    """An input image the user named (a photo for ``detect``, a portrait for ``build-pack``) cannot be read."""


class StatusError(MonaEdgeError):
    """The status socket cannot be served (its path is taken by a file or by another daemon), or the daemon
    answered with an error or with something that is not its protocol."""


class NotRunningError(StatusError):
    """The daemon does not answer on its status socket (no socket, nobody listening, no permission).

    A :class:`StatusError` too, so one ``except StatusError`` covers every way a status request fails; it
    has its own exit status because scripts (and ``systemctl``-style checks) ask "is it running?"."""

    exit_status = ExitStatus.NOT_RUNNING
