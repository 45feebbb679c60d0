"""A wheelhouse for an offline Pi: the Pi's wheel and its ``[pi]`` dependencies, downloaded on the workstation.

``pip download`` resolves them for the *target's* Python and platform, not the workstation's: a 64-bit
Raspberry Pi OS (Bookworm) is CPython 3.11 on aarch64 with glibc 2.36, so every manylinux tag up to 2.36
fits. The versions are the lock's (``constraints.txt``) for that target: its markers are evaluated here for
the target's Python and machine (pip would evaluate them for the workstation's), and the result is kept in
the wheelhouse as ``mona-edge-constraints.txt``, which travels with it and constrains the Pi's own pip.
The lock already pins Raspberry Pi OS's numpy (Bookworm 1.24.2, Trixie 2.2.4), which the frame's venv
keeps because picamera2's compiled parts come from apt, built against it; ``--numpy`` pins another.
``mona-edge provision --wheelhouse DIR`` then installs from the folder with ``--no-index``.

A Pi's wheelhouse never holds what a Pi takes from its OS (``provisioning.plan.FROM_THE_OS``: pygame,
whose PyPI wheel bundles an SDL without KMS/DRM; Raspberry Pi OS's python3-pygame has it), even when an
extra asks for it: the venv sees the OS's copy through system site-packages.
"""

from __future__ import annotations

import argparse
import email
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ProvisioningError

#: Raspberry Pi OS Bookworm, 64-bit: aarch64, glibc 2.36.
PI_PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)]
PI_PYTHON = "3.11"


@dataclass(frozen=True)
class PiOS:
    """A Raspberry Pi OS generation (64-bit), as ``--os`` names it: what a wheelhouse for it is built for."""

    name: str
    debian: str
    python: str  #: its /usr/bin/python3, which the frame's venv is made from
    numpy: str  #: its python3-numpy, which the venv keeps (picamera2's and pygame's compiled parts use it)
    glibc_minor: int  #: its glibc 2.N: the newest manylinux tag its wheels may carry
    #: what the Pi must have from apt, because the frame takes it from the OS and no wheelhouse carries it
    apt: tuple[str, ...]

    @property
    def platforms(self) -> list[str]:
        return ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, self.glibc_minor + 1)]


#: python3-venv makes the venv; numpy, pygame (linked to the OS's SDL2, which has KMS/DRM) and picamera2
#: (Raspberry Pi's own archive, with libcamera) come through its system site-packages. Versions are
#: Debian's (apt-cache policy python3-numpy; trixie: its Packages list).
PI_OS = {
    "bookworm": PiOS("bookworm", "12", "3.11", "1.24.2", 36,
                     ("python3-venv", "python3-numpy", "python3-pygame", "python3-picamera2")),
    "trixie": PiOS("trixie", "13", "3.13", "2.2.4", 41,
                   ("python3-venv", "python3-numpy", "python3-pygame", "python3-picamera2")),
}


def pi_os(name: str) -> PiOS:
    """The :data:`PI_OS` entry ``--os`` names (one line naming what is allowed otherwise)."""
    try:
        return PI_OS[name]
    except KeyError:
        raise ProvisioningError(f"--os {name!r}: expected one of {', '.join(PI_OS)}") from None


def os_target(name: str, python: str | None, numpy_pin: str | None, platform_arg: str) -> tuple[str, str, list[str]]:
    """``--os``'s Python, numpy pin and platform tags; ``--python``/``--numpy``/``--platform`` given
    beside it must agree with it (a Trixie wheelhouse for Python 3.11 would install nowhere)."""
    target = pi_os(name)
    if python is not None and python != target.python:
        raise ProvisioningError(f"--python {python} with --os {name}: Raspberry Pi OS {name.capitalize()} has "
                                f"Python {target.python} (leave --python out)")
    if numpy_pin is not None and numpy_pin != target.numpy:
        raise ProvisioningError(f"--numpy {numpy_pin} with --os {name}: its python3-numpy is {target.numpy}, "
                                "which the frame's venv keeps (leave --numpy out)")
    if platform_arg not in ("pi64", *target.platforms):
        raise ProvisioningError(f"--platform {platform_arg} with --os {name}: a Pi is aarch64 (leave --platform out)")
    platforms = target.platforms if platform_arg == "pi64" else [platform_arg]
    return target.python, target.numpy, platforms


def os_needs(name: str) -> str:
    """The line that tells the user what the Pi must have from apt for a wheelhouse built ``--os name``."""
    target = pi_os(name)
    return (f"Raspberry Pi OS {name.capitalize()} (Debian {target.debian}, Python {target.python}): the Pi must "
            f"have from apt {', '.join(target.apt)} (numpy {target.numpy}); the wheelhouse carries none of them "
            f"but numpy's pin")


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


def download_argv(requirements: Sequence[str], out_dir: Path, python: str, platforms: Sequence[str] | None = None,
                  no_deps: bool = True, constraints: Path | None = None) -> list[str]:
    """The ``pip download`` command line; binary wheels only, since a Pi has no compilers to spare."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
            "--only-binary=:all:", "--python-version", python, "-d", str(out_dir)]
    if no_deps:
        argv.append("--no-deps")
    for platform_tag in platforms or []:
        argv += ["--platform", platform_tag]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    return argv + list(requirements)


def _download(requirements: Sequence[str], out_dir: Path, python: str, platforms: Sequence[str] | None,
              no_deps: bool = True, constraints: Path | None = None) -> None:
    done = subprocess.run(download_argv(requirements, out_dir, python, platforms, no_deps, constraints),
                          capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        errors = [line for line in lines if line.startswith("ERROR")] or lines
        raise ProvisioningError(f"pip download for Python {python} {'/'.join(platforms or ['this platform'])} "
                                f"failed: {errors[0]}")


def wheel_requirements(wheel: Path, extras: Sequence[str], env: dict[str, str]) -> list:
    """The wheel's Requires-Dist that apply on the target ``env`` with ``extras`` asked for."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(name))
    wanted = []
    for line in meta.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate(dict(env, extra=extra)) for extra in ("", *extras)):
            wanted.append(req)
    return wanted


def download_locked(wheel: Path, out_dir: Path, python: str, platforms: Sequence[str] | None,
                    pins: dict[str, str], extras: Sequence[str], from_os: Sequence[str] = ()) -> dict[str, str]:
    """Download ``wheel``'s dependency closure for the target at the ``pins``' versions; return what it took.

    ``from_os``: canonical names the target's OS provides, left out with everything only they need.

    Why not ``pip download wheel[pi]``: pip evaluates the dependencies' own markers
    (``numpy>=1.26.0; python_version >= "3.12"``) for the Python that runs it, not the target's, so a
    Python 3.13 workstation could not make a Bookworm (3.11) wheelhouse. The lock already is the whole
    resolution, so the closure is walked here with the markers evaluated for the target, one ``pip
    download --no-deps`` per level, reading each wheel's own requirements; pip still checks that every
    wheel fits the target's Python and platform tags.
    """
    from packaging.utils import canonicalize_name

    env = target_environment(python, platform_machine(platforms))
    taken: dict[str, str] = {}  # canonical name -> pin
    expanded: dict[str, set[str]] = {}  # canonical name -> the extras whose requirements were added
    todo = [(req, wheel) for req in wheel_requirements(wheel, extras, env)]
    while todo:
        level: dict[str, tuple[str, set[str]]] = {}  # name -> (pin, extras to add)
        for req, wanted_by in todo:
            name = canonicalize_name(req.name)
            if name in from_os:
                continue
            pin = pins.get(name)
            if pin is None:
                raise ProvisioningError(f"{req} (needed by {wanted_by.name}): not in constraints.txt for Python "
                                        f"{python} on {env['platform_machine']}; refresh the lock")
            if not req.specifier.contains(pin.split("==", 1)[1], prereleases=True):
                raise ProvisioningError(f"{wanted_by.name} needs {req}, but the lock has {pin} for Python {python} "
                                        f"on {env['platform_machine']}")
            more = set(req.extras) - expanded.get(name, set())
            if name in expanded and not more:
                continue  # checked against this requirement too, and already walked
            taken[name] = pin
            level.setdefault(name, (pin, set()))[1].update(more)
        fresh = sorted(pin for dist, (pin, _) in level.items() if _wheel_for(out_dir, dist, pin) is None)
        if fresh:
            _download(fresh, out_dir, python, platforms)
        todo = []
        for dist, (pin, more) in level.items():
            got = _wheel_for(out_dir, dist, pin)
            if got is None:
                raise ProvisioningError(f"pip download of {pin} left no wheel in {out_dir}")
            expanded.setdefault(dist, set()).update(more)
            todo += [(req, got) for req in wheel_requirements(got, sorted(more), env)]
    return taken


def _wheel_for(out_dir: Path, name: str, pin: str) -> Path | None:
    from packaging.utils import canonicalize_name, parse_wheel_filename

    version = pin.split("==", 1)[1]
    for path in sorted(out_dir.glob("*.whl")):
        dist, got, _build, _tags = parse_wheel_filename(path.name)
        if canonicalize_name(dist) == name and str(got) == version:
            return path
    return None


def pi_os_packages(machine: str) -> list[str]:
    """What a wheelhouse for ``machine`` leaves to the target's OS: on a Pi (aarch64), FROM_THE_OS."""
    from provisioning.plan import FROM_THE_OS

    return sorted(FROM_THE_OS) if machine == "aarch64" else []


def build_wheelhouse(wheel: Path, out_dir: Path, python: str = PI_PYTHON, platforms: Sequence[str] | None = None,
                     numpy_pin: str | None = None, extras: str = "pi", lock: Path | None = None) -> list[Path]:
    """Download the wheel's dependencies into ``out_dir`` (with the wheel itself) at the lock's versions
    for the target (``lock``: the checkout's ``constraints.txt`` by default); return the wheels."""
    from provisioning.plan import LOCK, REPO, SOFTWARE_CONSTRAINTS

    out_dir.mkdir(parents=True, exist_ok=True)
    if wheel.resolve().parent != out_dir.resolve():
        shutil.copy2(wheel, out_dir / wheel.name)
    lock = lock or REPO / LOCK
    machine = platform_machine(platforms)
    if lock.is_file():
        try:
            text = lock.read_text()
        except OSError as exc:
            raise ProvisioningError(f"{lock}: cannot read the lock ({exc.strerror or exc})") from None
        pins = constraints_for(text, target_environment(python, machine), numpy_pin)
        taken = download_locked(wheel, out_dir, python, platforms, pins, [e for e in extras.split(",") if e],
                                from_os=pi_os_packages(machine))
        # what travels states exactly what the folder holds
        write_constraints(lock, out_dir / SOFTWARE_CONSTRAINTS, python, machine, numpy_pin, only=set(taken))
    else:  # no lock (not a checkout): pip resolves, the OS's numpy is still the one pin that must hold
        constraints = None
        if numpy_pin:
            constraints = out_dir / SOFTWARE_CONSTRAINTS
            constraints.write_text(f"numpy=={numpy_pin}\n")
        _download([f"{wheel}[{extras}]"], out_dir, python, platforms, no_deps=False, constraints=constraints)
    return sorted(out_dir.glob("*.whl"))


def _run(args: argparse.Namespace) -> int:
    from provisioning.plan import REPO, build_wheel, check_pi_wheel

    if args.wheel:
        check_pi_wheel(args.wheel)
    wheel = args.wheel or build_wheel(REPO, args.out)
    platforms = None if args.platform == "native" else (PI_PLATFORMS if args.platform == "pi64" else [args.platform])
    python, numpy_pin = args.python or PI_PYTHON, args.numpy
    if args.os:
        python, numpy_pin, platforms = os_target(args.os, args.python, args.numpy, args.platform)
    wheels = build_wheelhouse(Path(wheel), args.out, python, platforms, numpy_pin)
    size = sum(w.stat().st_size for w in wheels)
    print(f"{args.out}: {len(wheels)} wheels, {size / 1e6:.0f} MB, for Python {python} ({args.os or args.platform})")
    if args.os:
        print(os_needs(args.os))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("wheelhouse", help="download a Pi's dependencies for an offline install",
                                   description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to fill (give it to provision --wheelhouse)")
    parser.add_argument("--wheel", type=Path, help="the Pi's project wheel (default: build it from this checkout)")
    parser.add_argument("--os", choices=sorted(PI_OS),
                        help="the Pi's Raspberry Pi OS: sets --python (bookworm 3.11, trixie 3.13), --numpy (its "
                             "apt's: 1.24.2, 2.2.4) and the platform tags, and says what the Pi needs from apt")
    parser.add_argument("--python", help=f"target Python version (default {PI_PYTHON}, or --os's)")
    parser.add_argument("--platform", default="pi64",
                        help="pi64 (Raspberry Pi OS 64-bit, default), native (this machine), or a pip platform tag")
    parser.add_argument("--numpy", help="pin numpy to the target OS's version (the lock has Bookworm's "
                                        "1.24.2 for Python 3.11 and Trixie's 2.2.4 for 3.13 on aarch64)")
    parser.set_defaults(handler=_run)
