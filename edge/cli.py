"""``mona-edge``: one command for both sides of the product.

Two kinds of commands, registered two ways, because they fail in different ways:

* The Pi's own (``run``, ``status``, ``snapshot``, ``calibrate``, ``doctor``, ``detect``, ``demo``) are
  listed in :data:`PI_COMMANDS` and registered directly, never through entry points: they cannot vanish.
  If one of their modules cannot be imported that is a bug in mona-edge and shows as one (traceback,
  :attr:`ExitStatus.BUG`). It used to be swallowed at debug level by the entry-point loop, before logging
  was configured, leaving ``invalid choice: 'run'`` and no hint: under systemd, a silent crash loop.
* The workstation's come from the ``mona_edge.commands`` entry-point group, each declared with the extra
  it needs (``quantize = "provisioning.quantize_cli:register [workstation]"``). A command whose extra is
  not installed (a Pi) is left out, with a debug line naming what is missing, and asking for it says how
  to install it. One that fails to load anyway is a WARNING naming the entry point, its module and the
  exception; every other command still works.

Only what the command line names is imported: ``mona-edge run`` and ``mona-edge status`` load
:mod:`edge.commands` and nothing of the workstation's (nor OpenCV: :mod:`edge.demo` imports it at the
top, so it is imported only for ``demo`` and for the full help), and not even :mod:`importlib.metadata`
(with email, zipfile and csv under it: 2 MB and 20 ms at every start), which only the workstation's
entry points need. Logging is configured from ``-v`` before
any of that, so whatever registration logs is seen.

Errors follow :mod:`edge.errors`: a :class:`MonaEdgeError` is the user's to fix and prints one line,
``mona-edge <command>: error: <text>``, and returns its exit status (``-v`` adds the traceback); any
other exception is a bug in mona-edge and prints its traceback and :attr:`ExitStatus.BUG`; Ctrl-C is 130;
argparse's usage errors stay 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.errors import ExitStatus, MonaEdgeError

if TYPE_CHECKING:  # importlib.metadata is imported when a workstation command is looked up, never for `run`
    from importlib.metadata import EntryPoint

log = logging.getLogger(__name__)

#: A command module's ``register(subparsers)`` adds its parser and sets ``handler`` with
#: ``parser.set_defaults(handler=...)``; the handler takes the parsed namespace and returns an
#: :class:`ExitStatus`.
Register = Callable[[argparse._SubParsersAction], None]

#: The Pi's commands by the ``module:function`` that registers them. Each module imports only light
#: things at the top (edge.demo aside, see the module docstring); handlers import the rest when they run.
PI_REGISTERS: dict[str, tuple[str, ...]] = {
    "edge.commands:register": ("run", "status", "snapshot", "calibrate", "doctor"),
    "edge.detect_cli:register": ("detect",),
    "edge.demo:register": ("demo",),
}
PI_COMMANDS: tuple[str, ...] = tuple(name for names in PI_REGISTERS.values() for name in names)
_PI_MODULES = frozenset(target.partition(":")[0] for target in PI_REGISTERS)

#: Where workstation commands are declared (pyproject.toml's ``[project.entry-points]``).
ENTRY_POINT_GROUP = "mona_edge.commands"

_GLOBAL_HELP = ("-h", "--help")
_VERBOSE = ("-v", "--verbose")
# `extra == "workstation"` in a requirement's environment marker, either quote.
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*(['"])(.*?)\1""")
# A requirement starts with its distribution name (PEP 508): `torch>=2.1`, `scikit-image[data] ; ...`.
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


# --- reading the command line before the parser exists ------------------------------------------------
def _global_options(argv: Sequence[str]) -> Iterable[str]:
    """The options before the command: the only place ``mona-edge``'s own ``-v`` and ``-h`` can be."""
    for token in argv:
        if not token.startswith("-") or token == "--":
            return
        yield token


def wants_verbose(argv: Sequence[str]) -> bool:
    """Whether ``-v``/``--verbose`` comes before the command (so logging can be set up first)."""
    return any(token in _VERBOSE for token in _global_options(argv))


def requested_command(argv: Sequence[str]) -> str | None:
    """The command the line names, or None when it names none or asks for the top-level help."""
    if any(token in _GLOBAL_HELP for token in _global_options(argv)):
        return None
    for token in argv:
        if token == "--":
            return None
        if not token.startswith("-"):
            return token
    return None


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


# --- workstation commands: entry points, checked against their extras -----------------------------------
def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def _dist_name(ep: EntryPoint) -> str:
    """The distribution that declares ``ep``; mona-edge for one built by hand, which has none."""
    return ep.dist.name if ep.dist is not None else "mona-edge"


def missing_requirements(ep: EntryPoint) -> list[str]:
    """The distributions that ``ep``'s extras require and this environment lacks (empty: loadable).

    Read from the distribution's own metadata (``Requires-Dist: torch>=2.1; extra == "workstation"``),
    without the ``packaging`` library, which a Pi may not have: the name is the start of the requirement,
    and a requirement counts when its marker names one of the extras. Other marker conditions are not
    evaluated (mona-edge's extras have none), versions are not compared: an installed but unusable
    dependency shows when the module is loaded, as a warning.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    extras = {_normalise(extra) for extra in ep.extras}
    if not extras:
        return []
    try:
        requires = distribution(_dist_name(ep)).requires or []
    except PackageNotFoundError:  # cannot tell: let the import decide
        return []
    missing: list[str] = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        if not any(_normalise(m.group(2)) in extras for m in _EXTRA_MARKER.finditer(marker)):
            continue
        match = _REQUIREMENT_NAME.match(requirement)
        if match and not _installed(match.group(1)) and match.group(1) not in missing:
            missing.append(match.group(1))
    return missing


def _workstation_entry_points() -> list[EntryPoint]:
    """The group's entry points, minus any for the Pi's own modules.

    Older metadata (and an install not yet re-run after pyproject.toml changed) still lists ``detect``,
    ``ops`` and ``demo`` here; the Pi's commands are registered directly, so those are skipped rather
    than registered twice.
    """
    from importlib.metadata import entry_points

    found = entry_points(group=ENTRY_POINT_GROUP)
    return sorted((ep for ep in found if ep.name not in PI_COMMANDS and ep.module not in _PI_MODULES),
                  key=lambda ep: ep.name)


def add_workstation_commands(sub: argparse._SubParsersAction, only: str | None = None) -> dict[str, str]:
    """Register the workstation's commands (just ``only`` if an entry point has that name); return the
    commands left out, each with the reason, so asking for one can say why it is not there."""
    eps = _workstation_entry_points()
    if only is not None and any(ep.name == only for ep in eps):
        eps = [ep for ep in eps if ep.name == only]
    unavailable: dict[str, str] = {}
    for ep in eps:
        missing = missing_requirements(ep)
        if missing:
            extras = ",".join(ep.extras)
            log.debug("command %s left out: extra [%s] needs %s, not installed", ep.name, extras, ", ".join(missing))
            unavailable[ep.name] = (f"not installed here: it needs the {extras} extra "
                                    f"(pip install '{_dist_name(ep)}[{extras}]'; missing {', '.join(missing)})")
            continue
        try:
            register = ep.load()
            register(sub)
        except Exception as exc:  # one broken plugin must not take the other commands down
            log.warning("command %s unavailable: loading entry point %s = %s (module %s) failed: %s: %s",
                        ep.name, ep.name, ep.value, ep.module, type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            unavailable[ep.name] = (f"could not be loaded from module {ep.module} "
                                    f"({type(exc).__name__}: {exc})")
    return unavailable


# --- the parser ------------------------------------------------------------------------------------------
def _pi_register(target: str) -> Register:
    module, _, function = target.partition(":")
    register: Register = getattr(importlib.import_module(module), function)
    return register


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser for ``command`` (None: every command, for the help and for a name we do not know),
    and the workstation commands left out, with the reason.

    A Pi command gets only its own module registered; anything else gets every Pi command and the
    workstation's (only the named one when an entry point has that name).
    """
    parser = argparse.ArgumentParser(prog="mona-edge", description="A portrait whose eyes follow you.")
    parser.add_argument("--version", action="version", version=f"mona-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages; tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for target, names in PI_REGISTERS.items():
        if command not in PI_COMMANDS or command in names:
            _pi_register(target)(sub)
    unavailable: dict[str, str] = {}
    if command not in PI_COMMANDS:
        unavailable = add_workstation_commands(sub, only=command)
    return parser, unavailable


# --- running a command -----------------------------------------------------------------------------------
def report_bug(command: str, exc: BaseException) -> ExitStatus:
    """An exception that is not a MonaEdgeError: our defect. Its traceback, and how to report it."""
    traceback.print_exception(type(exc), exc, exc.__traceback__)
    where = f"mona-edge {command}" if command else "mona-edge"
    print(f"{where}: internal error: {type(exc).__name__}: {exc}\n"
          f"This is a bug in mona-edge {__version__}, not a fault in your setup. Please report it, with the "
          "traceback above, the command you ran and the output of `mona-edge --version`.", file=sys.stderr)
    return ExitStatus.BUG


def run_handler(args: argparse.Namespace, verbose: bool) -> int:
    """Run the parsed command's handler under the error model (see the module docstring)."""
    command = getattr(args, "command", None) or ""
    handler: Callable[[argparse.Namespace], Any] = args.handler
    try:
        status = handler(args)
    except MonaEdgeError as exc:
        if verbose:
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        print(f"mona-edge {command}: error: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except Exception as exc:
        return report_bug(command, exc)
    return ExitStatus.OK if status is None else status


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verbose = wants_verbose(args_list)
    configure_logging(verbose)
    command = requested_command(args_list)
    try:
        parser, unavailable = build_parser(command)
    except Exception as exc:  # a Pi command's module does not import: a broken install or a bug, loudly
        return report_bug(command or "", exc)
    if command in unavailable:
        print(f"mona-edge {command}: error: {unavailable[command]}", file=sys.stderr)
        return ExitStatus.USAGE
    args = parser.parse_args(args_list)  # usage errors exit 2 here, as argparse does
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return ExitStatus.USAGE
    return run_handler(args, verbose or bool(getattr(args, "verbose", False)))


if __name__ == "__main__":
    sys.exit(main())
