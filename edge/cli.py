"""``mona-edge``: one command for both sides of the product.

Subcommands are found through the ``mona_edge.commands`` entry-point group, so the Pi's install (which
has no workstation extras) simply lacks the workstation's commands instead of failing to import them,
and ``edge`` never imports ``provisioning`` by name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from edge import __version__

#: A command module's ``register(subparsers)`` adds its parser and sets ``handler`` with
#: ``parser.set_defaults(handler=...)``; the handler takes the parsed namespace and returns an exit code.
Register = Callable[[argparse._SubParsersAction], None]


def _registered_commands() -> list[tuple[str, Register]]:
    found = []
    for ep in sorted(entry_points(group="mona_edge.commands"), key=lambda e: e.name):
        try:
            found.append((ep.name, ep.load()))
        except ImportError as exc:  # a workstation command on a Pi install: leave it out, say why on -v
            logging.getLogger(__name__).debug("command %s unavailable: %s", ep.name, exc)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mona-edge", description="A portrait whose eyes follow you.")
    parser.add_argument("--version", action="version", version=f"mona-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, register in _registered_commands():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:  # user-facing faults: one clear line, no traceback
        print(f"mona-edge {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
