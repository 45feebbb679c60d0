"""``mona-edge provision | rollback | logs``: put the frame's software on a Pi and look after it.

    mona-edge provision pi@frame.local --pack packs/mona --config frame.toml
    mona-edge provision pi@frame.local --accept-host-key SHA256:...      (first contact, after checking it)
    mona-edge provision --sd /media/$USER/bootfs /media/$USER/rootfs --pack packs/mona --wheelhouse wh/
    mona-edge rollback pi@frame.local
    mona-edge logs pi@frame.local -f

Also runnable as ``python -m provisioning.commands ...`` before the entry points are installed.

Failures are :class:`~edge.errors.ProvisioningError` (SSH, host keys, transfers, target checks, bad
arguments), or the pack's and config's own errors; ``edge.cli`` prints each as one line with its exit
status, and anything else as a bug.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.config import load_config as load_daemon_config
from edge.errors import ExitStatus, ProvisioningError
from edge.pack import DEFAULT_MEMORY_BUDGET_MB
from edge.pack import load_pack as load_daemon_pack
from provisioning import flash
from provisioning.plan import (
    REPO,
    Artifacts,
    build_wheel,
    configured_sink,
    load_config,
    load_pack,
    load_software,
    load_unit,
)
from provisioning.remote import SshTarget, parse_destination
from provisioning.sdcard import write_card


def _ssh_arguments(parser: argparse.ArgumentParser, destination: str | None = "?") -> None:
    parser.add_argument("destination", nargs=destination, metavar="USER@HOST[:PORT]")
    parser.add_argument("--known-hosts", type=Path, help="known_hosts file (default ~/.ssh/known_hosts)")
    parser.add_argument("--identity", "-i", type=Path, help="private key (default: ssh's own choice / agent)")
    parser.add_argument("--accept-host-key", metavar="SHA256:...",
                        help="record the target's host key if, and only if, it has this fingerprint")
    parser.add_argument("--prefix", default="/", help="root of the install on the target (default /)")
    parser.add_argument("--service-manager", choices=["auto", "systemd", "process"], default="auto",
                        help="auto: systemd when it is PID 1 on the target, else a plain supervised process")


def _ready_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ready-command", type=shlex.split,
                        help="command on the target printing the status JSON "
                             "(default: PREFIX/opt/mona-edge/current/bin/mona-edge status --json)")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for READY")


def open_target(args: argparse.Namespace) -> SshTarget:
    """The destination's SSH target, its host key accepted if asked; ``with`` it starts the connection
    (once: opening it here as well started a second master, left running for ControlPersist)."""
    user, host, port = parse_destination(args.destination)
    target = SshTarget(user, host, port, known_hosts=args.known_hosts, identity=args.identity)
    if args.accept_host_key:
        target.accept_host_key(args.accept_host_key)
    return target


def refuse_what_the_frame_would(pack: Path | None, config: Path | None) -> None:
    """Judge the pack and config with the daemon's own readers before anything is built, sent or written:
    a card that says "ready" for a pack the frame then refuses boots into safe mode, not into the owner's
    portrait. Raises the daemon's own one-line :class:`ConfigError` or :class:`PackError` (the pack at its
    own size, within the config's ``[pack] memory_budget_mb``, or the default budget)."""
    budget = DEFAULT_MEMORY_BUDGET_MB
    if config is not None:
        budget = load_daemon_config(config).pack.memory_budget_mb
    if pack is not None:
        load_daemon_pack(pack, memory_budget_mb=budget)


def artifacts_from_args(args: argparse.Namespace, prefix: str, workdir: Path) -> Artifacts:
    refuse_what_the_frame_would(args.pack, args.config)
    wheel = args.wheel or build_wheel(REPO, workdir)
    return Artifacts(
        software=load_software(wheel, args.wheelhouse, no_deps=args.no_deps, extras=args.extras.split(",")
                               if args.extras else ()),
        unit=load_unit(args.unit, prefix),
        pack=load_pack(args.pack) if args.pack else None,
        config=load_config(args.config) if args.config else None,
    )


def _provision(args: argparse.Namespace) -> ExitStatus:
    with tempfile.TemporaryDirectory(prefix="mona-wheel-") as workdir:
        if args.sd:
            if args.destination:
                raise ProvisioningError("give either USER@HOST or --sd BOOT ROOT, not both")
            artifacts = artifacts_from_args(args, "/", Path(workdir))
            card = write_card(Path(args.sd[0]), Path(args.sd[1]), artifacts)
            for line in card.written + card.boot_changes:
                print(line)
            if configured_sink(artifacts.config) in ("auto", "pygame"):  # no probe of a card: say what it needs
                print("the Pi's screen needs its OS's pygame (PyPI's has no KMS/DRM): sudo apt install python3-pygame "
                      "on the Pi if its OS lacks it (first boot installs no apt packages)")
            print("card ready: on first power-up the Pi finishes the install and starts the frame")
            return ExitStatus.OK
        if not args.destination:
            raise ProvisioningError("give USER@HOST (or --sd BOOT ROOT)")
        artifacts = artifacts_from_args(args, args.prefix, Path(workdir))
        options = flash.ProvisionOptions(prefix=args.prefix, service_manager=args.service_manager,
                                         ready_command=args.ready_command, ready_timeout=args.ready_timeout,
                                         dry_run=args.dry_run)
        with open_target(args) as target:
            report = flash.provision(target, artifacts, options)
        print(f"sent {len(report.transfer.files)} file(s), {report.transfer.bytes} bytes")
        return ExitStatus.OK


def _rollback(args: argparse.Namespace) -> ExitStatus:
    with open_target(args) as target:
        result = flash.rollback(target, args.prefix, args.service_manager, args.ready_command, args.ready_timeout)
    print(f"{target.name}: rolled back ({', '.join(result['changed']) or 'nothing differed'}); READY")
    return ExitStatus.OK


def _logs(args: argparse.Namespace) -> int:
    """The target's own exit status of the log command (journalctl's or tail's), passed through."""
    with open_target(args) as target:
        return flash.logs(target, args.lines, args.follow, args.prefix, args.service_manager)


def register_provision(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("provision", help="install or upgrade the frame over SSH or onto an SD card",
                                   description=__doc__.split("\n\n")[0])
    _ssh_arguments(parser)
    parser.add_argument("--sd", nargs=2, metavar=("BOOT_MOUNT", "ROOT_MOUNT"),
                        help="write onto a freshly flashed Raspberry Pi OS card instead of over SSH")
    parser.add_argument("--pack", type=Path, help="gaze pack folder (default: keep the target's)")
    parser.add_argument("--config", type=Path, help="config.toml (default: keep the target's, or all defaults)")
    parser.add_argument("--wheel", type=Path, help="a built mona_edge wheel (default: build one from this checkout)")
    parser.add_argument("--wheelhouse", type=Path,
                        help="folder of dependency wheels for the target; installs offline from it")
    parser.add_argument("--no-deps", action="store_true",
                        help="install only the mona-edge wheel; dependencies must already be on the target's "
                             "system site-packages")
    parser.add_argument("--extras", default="pi", help="comma-separated extras to install (default: pi)")
    parser.add_argument("--unit", type=Path, help="systemd unit to install (default: systemd/mona-edge.service)")
    parser.add_argument("--dry-run", action="store_true", help="check the target and print the plan; change nothing")
    _ready_arguments(parser)
    parser.set_defaults(handler=_provision)


def register_rollback(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rollback", help="switch a Pi back to its previous deployment")
    _ssh_arguments(parser, destination=None)
    _ready_arguments(parser)
    parser.set_defaults(handler=_rollback)


def register_logs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("logs", help="show the frame service's log on a Pi")
    _ssh_arguments(parser, destination=None)
    parser.add_argument("-n", "--lines", type=int, default=50)
    parser.add_argument("-f", "--follow", action="store_true")
    parser.set_defaults(handler=_logs)


def main(argv: Sequence[str] | None = None) -> int:
    """These three commands alone, with ``mona-edge``'s logging and error model (``edge.cli``)."""
    from edge.cli import configure_logging, run_handler, wants_verbose

    args_list = list(sys.argv[1:] if argv is None else argv)
    verbose = wants_verbose(args_list)
    configure_logging(verbose)
    parser = argparse.ArgumentParser(prog="python -m provisioning.commands")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages; tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in (register_provision, register_rollback, register_logs):
        register(sub)
    return run_handler(parser.parse_args(args_list), verbose)


if __name__ == "__main__":
    sys.exit(main())
