"""Install PyPI's aarch64 wheels for an emulated Pi OS into a ``--target`` folder, as the Pi's own pip would.

    python tests/pi/site.py SYSROOT PYTHON_VERSION PLATFORMS_CSV OUT REQUIREMENT...

On a Raspberry Pi the frame's venv sees the OS's packages (system site-packages) and installs under the
travelling lock with the OS's numpy pinned (``edge.install.target_constraints``), so numpy, Pillow and
pygame come from apt and only the rest from PyPI. This does the same for ``SYSROOT`` (the emulated OS's
root): the lock narrowed to the target (``provisioning.wheelhouse.write_constraints``, numpy pinned to the
OS's), pip's resolution for the target's Python and platform (``--dry-run --report``), then the
resolution without what the OS already has, installed ``--no-deps``. Run by this machine's Python (the
test venv's), so nothing runs under emulation.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from provisioning.wheelhouse import write_constraints  # noqa: E402


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def os_packages(sysroot: Path) -> dict[str, str]:
    """The distributions apt put in the OS's ``dist-packages``: canonical name -> version."""
    found: dict[str, str] = {}
    for meta in (sysroot / "usr/lib/python3/dist-packages").glob("*-*.*-info"):
        name, _, rest = meta.name.partition("-")
        version = re.sub(r"(\.dist-info|\.egg-info)$", "", rest).split("-py")[0]
        found[canonical(name)] = version
    return found


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


def main(argv: list[str]) -> int:
    sysroot, python, platforms, out, requirements = Path(argv[0]), argv[1], argv[2].split(","), Path(argv[3]), argv[4:]
    own = os_packages(sysroot)
    if "numpy" not in own:
        raise SystemExit(f"tests/pi/site.py: {sysroot} has no python3-numpy in usr/lib/python3/dist-packages")
    target = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python,
              "--abi", f"cp{python.replace('.', '')}", *(f"--platform={tag}" for tag in platforms)]
    with tempfile.TemporaryDirectory() as tmp:
        constraints = write_constraints(REPO / "constraints.txt", Path(tmp) / "constraints.txt", python, "aarch64",
                                        numpy_pin=own["numpy"])
        # the lock's pins for what the OS has are dropped, as on the Pi (its copy is used where it fits)
        lines = [line for line in constraints.read_text().splitlines()
                 if line.startswith("#") or canonical(re.split(r"[=<>!~ ;]", line, maxsplit=1)[0]) not in own]
        constraints.write_text("\n".join(lines + [f"numpy=={own['numpy']}"]) + "\n")
        report = Path(tmp) / "report.json"
        pip("install", "--dry-run", "--ignore-installed", "--report", str(report), "--target", str(Path(tmp) / "x"),
            *target, "-c", str(constraints), *requirements)
        planned = json.loads(report.read_text())["install"]
        wanted, skipped = [], []
        for item in planned:
            name, version = item["metadata"]["name"], item["metadata"]["version"]
            if canonical(name) in own:
                if canonical(name) == "numpy" and version != own["numpy"]:
                    raise SystemExit(f"tests/pi/site.py: pip planned numpy {version}, the OS has {own['numpy']}")
                skipped.append(f"{name} {own[canonical(name)]}")
            else:
                wanted.append(f"{name}=={version}")
        pip("install", "--no-warn-conflicts", "--no-deps", "--target", str(out), *target, *wanted)
    print(f"{out}: {', '.join(sorted(wanted))}; from the OS: {', '.join(sorted(skipped)) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
