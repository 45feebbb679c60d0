"""A wheelhouse for an offline Pi: the project wheel's ``[pi]`` dependencies, downloaded on the workstation.

``pip download`` resolves them for the *target's* Python and platform, not the workstation's: a 64-bit
Raspberry Pi OS (Bookworm) is CPython 3.11 on aarch64 with glibc 2.36, so every manylinux tag up to 2.36
fits. The OS's numpy can be pinned, because picamera2's compiled helpers come from apt, built against it.
``mona-edge provision --wheelhouse DIR`` then installs from the folder with ``--no-index``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: Raspberry Pi OS Bookworm, 64-bit: aarch64, glibc 2.36.
PI_PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{minor}_aarch64" for minor in range(17, 37)]
PI_PYTHON = "3.11"


def download_argv(wheel: Path, out_dir: Path, python: str, platforms: Sequence[str] | None = None,
                  extras: str = "pi", constraints: Path | None = None) -> list[str]:
    """The ``pip download`` command line; binary wheels only, since a Pi has no compilers to spare."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
            "--only-binary=:all:", "--python-version", python, "-d", str(out_dir), f"{wheel}[{extras}]"]
    for platform in platforms or []:
        argv += ["--platform", platform]
    if constraints is not None:
        argv += ["--constraint", str(constraints)]
    return argv


def build_wheelhouse(wheel: Path, out_dir: Path, python: str = PI_PYTHON, platforms: Sequence[str] | None = None,
                     numpy_pin: str | None = None, extras: str = "pi") -> list[Path]:
    """Download the wheel's dependencies into ``out_dir`` (with the wheel itself); return the wheels."""
    out_dir.mkdir(parents=True, exist_ok=True)
    constraints = None
    if numpy_pin:
        constraints = out_dir / ".numpy-pin.txt"
        constraints.write_text(f"numpy=={numpy_pin}\n")
    done = subprocess.run(download_argv(wheel, out_dir, python, platforms, extras, constraints),
                          capture_output=True, text=True)
    if constraints is not None:
        constraints.unlink()
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise OSError(f"pip download for Python {python} {'/'.join(platforms or ['this platform'])} failed: "
                      f"{lines[-1]}")
    return sorted(out_dir.glob("*.whl"))


def _run(args: argparse.Namespace) -> int:
    from provisioning.plan import REPO, build_wheel

    wheel = args.wheel or build_wheel(REPO, args.out)
    platforms = None if args.platform == "native" else (PI_PLATFORMS if args.platform == "pi64" else [args.platform])
    wheels = build_wheelhouse(Path(wheel), args.out, args.python, platforms, args.numpy)
    size = sum(w.stat().st_size for w in wheels)
    print(f"{args.out}: {len(wheels)} wheels, {size / 1e6:.0f} MB, for Python {args.python} ({args.platform})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("wheelhouse", help="download a Pi's dependencies for an offline install",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to fill (give it to provision --wheelhouse)")
    parser.add_argument("--wheel", type=Path, help="the project wheel (default: build it from this checkout)")
    parser.add_argument("--python", default=PI_PYTHON, help=f"target Python version (default {PI_PYTHON})")
    parser.add_argument("--platform", default="pi64",
                        help="pi64 (Raspberry Pi OS 64-bit, default), native (this machine), or a pip platform tag")
    parser.add_argument("--numpy", help="pin numpy to the target OS's version (Bookworm: 1.24.2)")
    parser.set_defaults(handler=_run)
