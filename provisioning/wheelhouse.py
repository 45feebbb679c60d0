"""A wheelhouse for an offline Pi: the Pi's wheel and its ``[pi]`` dependencies, downloaded on the workstation.

``pip download`` resolves them for the *target's* Python and platform, not the workstation's: a 64-bit
Raspberry Pi OS (Bookworm) is CPython 3.11 on aarch64 with glibc 2.36, so every manylinux tag up to 2.36
fits. The versions are the lock's (``constraints.txt``) for that target: its markers are evaluated here for
the target's Python and machine (pip would evaluate them for the workstation's), and the result is kept in
the wheelhouse as ``mona-edge-constraints.txt``, which travels with it and constrains the Pi's own pip.
The lock already pins Raspberry Pi OS's numpy (Bookworm 1.24.2, Trixie 2.2.4), which the frame's venv
keeps because picamera2's compiled parts come from apt, built against it; ``--numpy`` pins another.
``mona-edge provision --wheelhouse DIR`` then installs from the folder with ``--no-index``.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.errors import ProvisioningError

#: Raspberry Pi OS Bookworm, 64-bit: aarch64, glibc 2.36.
PI_PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)]
PI_PYTHON = "3.11"


def platform_machine(platforms: Sequence[str] | None) -> str:
    """The ``platform_machine`` marker value of pip platform tags (this machine's without any)."""
    machines = {re.sub(r"^(many|musl)linux(_\d+_\d+|\d+)_", "", tag) for tag in platforms or []}
    if not machines:
        return platform.machine()
    if len(machines) > 1:
        raise ProvisioningError(f"platform tags {', '.join(platforms or [])}: more than one machine "
                                f"({', '.join(sorted(machines))})")
    return machines.pop()


def target_environment(python: str, machine: str) -> dict[str, str]:
    """PEP 508 marker values for a Linux CPython ``python`` (``3.11`` or ``3.11.2``) on ``machine``."""
    parts = python.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ProvisioningError(f"--python {python}: expected a version such as 3.11")
    from packaging.markers import default_environment

    env: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
    env.update(python_version=".".join(parts[:2]), python_full_version=".".join((parts + ["0"])[:3]),
               implementation_name="cpython", platform_python_implementation="CPython", sys_platform="linux",
               platform_system="Linux", os_name="posix", platform_machine=machine)
    return env


def constraints_for(lock_text: str, env: dict[str, str], numpy_pin: str | None = None) -> dict[str, str]:
    """The lock's pins that apply to ``env``, as ``name -> name==version`` (markers resolved, so pip
    applies them as they are); ``numpy_pin`` replaces the lock's numpy."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for number, raw in enumerate(lock_text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ProvisioningError(f"lock line {number} {raw.strip()!r}: {str(exc).splitlines()[0]}") from None
        if req.marker is None or req.marker.evaluate(env):
            pins[canonicalize_name(req.name)] = f"{req.name}{req.specifier}"
    if numpy_pin:
        pins["numpy"] = f"numpy=={numpy_pin}"
    return pins


def write_constraints(lock: Path, out: Path, python: str, machine: str, numpy_pin: str | None = None,
                      only: set[str] | None = None) -> Path:
    """Write the lock narrowed to one target into ``out`` (what travels with the wheelhouse); ``only``:
    just these (canonical) names."""
    from packaging.utils import canonicalize_name

    from provisioning.plan import LOCK

    try:
        text = lock.read_text()
    except OSError as exc:
        raise ProvisioningError(f"{lock}: cannot read the lock ({exc.strerror or exc})") from None
    pins = constraints_for(text, target_environment(python, machine), numpy_pin)
    if only is not None:
        pins = {name: pin for name, pin in pins.items() if canonicalize_name(name) in only}
    locked_numpy = constraints_for(text, target_environment(python, machine)).get("numpy")
    head = [f"# {LOCK} for CPython {python} on Linux {machine}, written by `mona-edge wheelhouse`."]
    if numpy_pin and locked_numpy != f"numpy=={numpy_pin}":
        head.append(f"# numpy=={numpy_pin} from --numpy (the lock has {locked_numpy or 'no numpy'} here).")
    out.write_text("\n".join(head + [pins[name] for name in sorted(pins)]) + "\n")
    return out


def wheel_names(wheels: Sequence[Path]) -> set[str]:
    """The canonical distribution names of wheel files."""
    from packaging.utils import canonicalize_name

    return {canonicalize_name(w.name.split("-", 1)[0]) for w in wheels}


def download_argv(wheel: Path, out_dir: Path, python: str, platforms: Sequence[str] | None = None,
                  extras: str = "pi", constraints: Path | None = None) -> list[str]:
    """The ``pip download`` command line; binary wheels only, since a Pi has no compilers to spare."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
            "--only-binary=:all:", "--python-version", python, "-d", str(out_dir), f"{wheel}[{extras}]"]
    for platform_tag in platforms or []:
        argv += ["--platform", platform_tag]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    return argv


def build_wheelhouse(wheel: Path, out_dir: Path, python: str = PI_PYTHON, platforms: Sequence[str] | None = None,
                     numpy_pin: str | None = None, extras: str = "pi", lock: Path | None = None) -> list[Path]:
    """Download the wheel's dependencies into ``out_dir`` (with the wheel itself) at the lock's versions
    for the target (``lock``: the checkout's ``constraints.txt`` by default); return the wheels."""
    from provisioning.plan import LOCK, REPO, SOFTWARE_CONSTRAINTS

    out_dir.mkdir(parents=True, exist_ok=True)
    lock = lock or REPO / LOCK
    constraints = None
    if lock.is_file():
        constraints = write_constraints(lock, out_dir / SOFTWARE_CONSTRAINTS, python, platform_machine(platforms),
                                        numpy_pin)
    elif numpy_pin:  # no lock (not a checkout): the OS's numpy is still the one pin that must hold
        constraints = out_dir / SOFTWARE_CONSTRAINTS
        constraints.write_text(f"numpy=={numpy_pin}\n")
    done = subprocess.run(download_argv(wheel, out_dir, python, platforms, extras, constraints),
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        errors = [line for line in lines if line.startswith("ERROR")] or lines
        raise ProvisioningError(f"pip download for Python {python} {'/'.join(platforms or ['this platform'])} "
                                f"failed: {errors[0]}")
    wheels = sorted(out_dir.glob("*.whl"))
    if lock.is_file():  # what travels states exactly what the folder holds
        write_constraints(lock, out_dir / SOFTWARE_CONSTRAINTS, python, platform_machine(platforms), numpy_pin,
                          only=wheel_names(wheels))
    return wheels


def _run(args: argparse.Namespace) -> int:
    from provisioning.plan import REPO, build_wheel, check_pi_wheel

    if args.wheel:
        check_pi_wheel(args.wheel)
    wheel = args.wheel or build_wheel(REPO, args.out)
    platforms = None if args.platform == "native" else (PI_PLATFORMS if args.platform == "pi64" else [args.platform])
    wheels = build_wheelhouse(Path(wheel), args.out, args.python, platforms, args.numpy)
    size = sum(w.stat().st_size for w in wheels)
    print(f"{args.out}: {len(wheels)} wheels, {size / 1e6:.0f} MB, for Python {args.python} ({args.platform})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("wheelhouse", help="download a Pi's dependencies for an offline install",
                                   description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to fill (give it to provision --wheelhouse)")
    parser.add_argument("--wheel", type=Path, help="the Pi's project wheel (default: build it from this checkout)")
    parser.add_argument("--python", default=PI_PYTHON, help=f"target Python version (default {PI_PYTHON})")
    parser.add_argument("--platform", default="pi64",
                        help="pi64 (Raspberry Pi OS 64-bit, default), native (this machine), or a pip platform tag")
    parser.add_argument("--numpy", help="pin numpy to the target OS's version (the lock has Bookworm's "
                                        "1.24.2 for Python 3.11 and Trixie's 2.2.4 for 3.13 on aarch64)")
    parser.set_defaults(handler=_run)
