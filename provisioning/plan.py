"""What a provisioning run would install, named by content, and what it has to send for a given target.

Everything is identified by hashes so that a second run with nothing changed is recognised from the
target's answer alone: the software by the *contents* of its wheels (a rebuilt but identical wheel has new
zip timestamps, not new code) and of the constraints it is installed with, the pack by its file checksums,
config and unit by their bytes.

The software a Pi gets is the Pi's wheel (``edge`` only, no workstation commands: ``setup.py``), built
from the checkout, and the checkout's lock (``constraints.txt``), which travels with it as
``mona-edge-constraints.txt`` so that the target's pip installs the locked versions; a wheelhouse brings
its own copy, already narrowed to the target's Python and platform.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ProvisioningError
from edge.install import file_sha256, tree_digest, tree_sums

REPO = Path(__file__).resolve().parent.parent
PROJECT_DIST = "mona_edge"
#: The Python the Pi's software needs (pyproject's requires-python).
MIN_PYTHON = (3, 11)
#: The checkout's lock: exact versions for the build backend, the Pi's dependencies and the tests'.
LOCK = "constraints.txt"
#: Packages a Pi takes from its OS (apt), never from PyPI, with the apt package that has them: PyPI's pygame
#: bundles an SDL built without KMS/DRM, Raspberry Pi OS's python3-pygame uses the OS's SDL, which has it.
FROM_THE_OS = {"pygame": "python3-pygame"}
#: The name the constraints travel under with the software; the target's pip installs with them.
SOFTWARE_CONSTRAINTS = "mona-edge-constraints.txt"
#: What a wheel is built from: what setup.py and pyproject's data-files read, and nothing else.
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "NOTICE", "edge", "provisioning",
                 "assets", "systemd")
#: The wheel variants setup.py builds (``MONA_EDGE_WHEEL``): the Pi's, and the full project.
WHEEL_VARIANTS = ("pi", "full")


# -------------------------------------------------------------------------------------------- artifacts

@dataclass(frozen=True)
class Software:
    """The project wheel and any wheelhouse carried along, as one content-named version."""

    project_wheel: str
    files: dict[str, Path]  # file name -> local path: wheels, and the constraints file if any
    sums: dict[str, str]  # file name -> sha256 of the file
    hash: str
    no_deps: bool
    offline: bool
    extras: tuple[str, ...]
    constraints: str | None = None  # SOFTWARE_CONSTRAINTS when it travels along

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


@dataclass(frozen=True)
class Pack:
    root: Path
    files: dict[str, str]  # relative path -> sha256
    sha: str

    @property
    def size(self) -> int:
        return sum((self.root / rel).stat().st_size for rel in self.files)


@dataclass(frozen=True)
class Blob:
    """A small file sent inline with the install command (config, unit)."""

    source: str
    data: bytes

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def spec(self) -> dict:
        return {"sha": self.sha, "data": base64.b64encode(self.data).decode()}


@dataclass(frozen=True)
class Artifacts:
    software: Software
    unit: Blob
    pack: Pack | None = None
    config: Blob | None = None


def locked_version(lock: Path, name: str) -> str | None:
    """The version the lock pins ``name`` to on every platform, or None (absent, or pinned per marker)."""
    try:
        lines = lock.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        req = line.split("#", 1)[0].strip()
        if req.lower().startswith(f"{name.lower()}==") and ";" not in req:
            return req.split("==", 1)[1].strip()
    return None


def _installed_version(python: str, dist: str) -> str | None:
    done = subprocess.run([python, "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _copy_sources(project_dir: Path, dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in WHEEL_SOURCES:
        src = project_dir / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
        else:
            raise ProvisioningError(f"{project_dir}: no {name}; is it a mona-edge checkout?")


def build_wheel(project_dir: Path, out_dir: Path, variant: str = "pi") -> Path:
    """Build the project's wheel into ``out_dir`` and return it: the Pi's (``edge`` only) by default.

    ``variant`` is ``pi`` (what every Pi deployment installs: SSH, ``--sd``, the wheelhouse) or ``full``
    (``edge`` and ``provisioning``); setup.py reads it from ``MONA_EDGE_WHEEL``.

    It never depends on the running venv's setuptools (the README's venv has 65.5 and no ``wheel``, which
    cannot build this project): pip builds in an isolated build environment with pyproject's build
    requirement, pinned to the lock's setuptools (``PIP_CONSTRAINT`` for pip < 26.2,
    ``PIP_BUILD_CONSTRAINT`` after), so every workstation builds the same bytes. Only when this venv's
    setuptools is exactly the locked one is it used directly (``--no-build-isolation``): the same
    result, and it builds offline. The build runs on a fresh copy of the sources, because setuptools
    reuses ``build/`` and would carry one variant's files, or a deleted module, into the next wheel.
    """
    if variant not in WHEEL_VARIANTS:
        raise ProvisioningError(f"wheel variant {variant!r}: allowed are {', '.join(WHEEL_VARIANTS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = project_dir / LOCK
    env = dict(os.environ, MONA_EDGE_WHEEL=variant)
    with tempfile.TemporaryDirectory(prefix="mona-wheel-src-") as tmp:
        src, wheels = Path(tmp) / "src", Path(tmp) / "wheels"
        src.mkdir()
        _copy_sources(project_dir, src)
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                "-w", str(wheels), str(src)]
        pinned = locked_version(lock, "setuptools")
        if pinned and _installed_version(sys.executable, "setuptools") == pinned:
            argv.insert(4, "--no-build-isolation")
        elif lock.is_file():
            env.update(PIP_CONSTRAINT=str(lock), PIP_BUILD_CONSTRAINT=str(lock))
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        if done.returncode != 0:  # the last lines say why (setuptools' own error, then pip's)
            why = [line.strip() for line in done.stderr.splitlines() if line.strip()][-3:] or [f"exit {done.returncode}"]
            raise ProvisioningError(f"{project_dir}: building the {variant} wheel failed: {'; '.join(why)[-500:]}")
        built = sorted(wheels.glob(f"{PROJECT_DIST}-*.whl"))
        if len(built) != 1:
            raise ProvisioningError(f"{project_dir}: pip wheel wrote {[w.name for w in built]}, not one wheel")
        target = out_dir / built[0].name
        shutil.move(str(built[0]), target)
    return target


def wheel_entry_points(path: Path) -> dict[str, list[str]]:
    """The wheel's entry points, group -> ``name = value`` lines (its dist-info ``entry_points.txt``)."""
    groups: dict[str, list[str]] = {}
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(names[0]).decode() if names else ""
    group = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            groups[group] = []
        elif line and group is not None:
            groups[group].append(line)
    return groups


def check_pi_wheel(path: Path) -> None:
    """Refuse a project wheel that carries the workstation's code or commands onto the Pi."""
    try:
        with zipfile.ZipFile(path) as zf:
            workstation = [n for n in zf.namelist() if n.startswith("provisioning/")]
        commands = wheel_entry_points(path).get("mona_edge.commands", [])
    except zipfile.BadZipFile:
        raise ProvisioningError(f"{path}: not a wheel (bad zip file)") from None
    if workstation or commands:
        raise ProvisioningError(f"{path}: a full mona-edge wheel ({len(workstation)} provisioning/ files, "
                                f"{len(commands)} workstation commands); the Pi gets the Pi's wheel: leave "
                                f"out --wheel, or build it with MONA_EDGE_WHEEL=pi pip wheel --no-deps .")


def wheel_content_hash(path: Path) -> str:
    """sha256 over member names and bytes, ignoring zip timestamps."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                digest.update(name.encode() + b"\0")
                digest.update(hashlib.sha256(zf.read(name)).digest())
    except zipfile.BadZipFile:
        raise ProvisioningError(f"{path}: not a wheel (bad zip file)") from None
    except OSError as exc:
        raise ProvisioningError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def load_software(project_wheel: Path, wheelhouse: Path | None = None, no_deps: bool = False,
                  extras: Sequence[str] = ("pi",), constraints: Path | None = None) -> Software:
    """With a wheelhouse the target installs offline (``--no-index``) from it; without one, the
    dependencies come from the target's package index. ``no_deps`` installs the project wheel alone
    over what the target's system site-packages already hold.

    The constraints the target installs with: ``constraints``, else the wheelhouse's own
    (``mona-edge wheelhouse`` writes one for the target's Python and platform), else the checkout's lock,
    whose markers the target's pip evaluates for itself; none with ``no_deps``."""
    if not project_wheel.name.startswith(f"{PROJECT_DIST}-") or project_wheel.suffix != ".whl":
        raise ProvisioningError(f"{project_wheel}: not a {PROJECT_DIST} wheel")
    if not project_wheel.is_file():
        raise ProvisioningError(f"{project_wheel}: no such file")
    check_pi_wheel(project_wheel)
    files = {project_wheel.name: project_wheel}
    if wheelhouse is not None:
        if not wheelhouse.is_dir():
            raise ProvisioningError(f"--wheelhouse {wheelhouse}: not a folder")
        for wheel in sorted(wheelhouse.glob("*.whl")):
            if not wheel.name.startswith(f"{PROJECT_DIST}-"):
                files[wheel.name] = wheel
        if constraints is None and (wheelhouse / SOFTWARE_CONSTRAINTS).is_file():
            constraints = wheelhouse / SOFTWARE_CONSTRAINTS
    if constraints is None and (REPO / LOCK).is_file():
        constraints = REPO / LOCK
    if no_deps:
        constraints = None
    content = {name: wheel_content_hash(path) for name, path in files.items()}
    if constraints is not None:
        if not constraints.is_file():
            raise ProvisioningError(f"constraints {constraints}: no such file")
        files[SOFTWARE_CONSTRAINTS] = constraints
        content[SOFTWARE_CONSTRAINTS] = file_sha256(constraints)
    options = {"no_deps": no_deps, "offline": wheelhouse is not None, "extras": sorted(extras)}
    version = hashlib.sha256(json.dumps({"wheels": content, "options": options}, sort_keys=True).encode())
    return Software(project_wheel=project_wheel.name, files=files,
                    sums={name: file_sha256(path) for name, path in files.items()},
                    hash=version.hexdigest()[:32], no_deps=no_deps, offline=wheelhouse is not None,
                    extras=tuple(sorted(extras)), constraints=SOFTWARE_CONSTRAINTS if constraints else None)


def manifest_checksums(manifest: dict) -> dict[str, str]:
    """Per-file sha256 a pack's manifest.json declares: ``files`` as {path: sha} or {path: {sha256}}
    or a list of {path, sha256}."""
    files = manifest.get("files", {})
    if isinstance(files, dict):
        items = [(rel, v.get("sha256") if isinstance(v, dict) else v) for rel, v in files.items()]
    elif isinstance(files, list):
        items = [(f.get("path") or f.get("name"), f.get("sha256")) for f in files if isinstance(f, dict)]
    else:
        raise ProvisioningError(f"manifest.json: 'files' must be an object or a list, not {type(files).__name__}")
    return {str(rel): str(sha).lower() for rel, sha in items if rel and sha}


def load_pack(root: Path) -> Pack:
    """Checksum every file; refuse a pack whose files no longer match its own manifest."""
    manifest_path = root / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ProvisioningError(f"--pack {root}: not a gaze pack (no manifest.json)") from None
    except OSError as exc:
        raise ProvisioningError(f"--pack {root}: cannot read {manifest_path.name} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ProvisioningError(f"{manifest_path}: not valid JSON ({exc})") from None
    try:
        sums = tree_sums(root)
    except OSError as exc:
        raise ProvisioningError(f"--pack {root}: cannot read {exc.filename} ({exc.strerror or exc})") from None
    for rel, want in sorted(manifest_checksums(manifest).items()):
        got = sums.get(rel)
        if got is None:
            raise ProvisioningError(f"{root / rel}: listed in manifest.json but missing")
        if got != want:
            raise ProvisioningError(f"{root / rel}: checksum mismatch with manifest.json (expected {want[:12]}, "
                                    f"got {got[:12]}); refusing the pack")
    return Pack(root=root, files=sums, sha=tree_digest(sums))


def load_config(path: Path) -> Blob:
    """The config's bytes, once they parse as TOML (its keys are the daemon's to judge)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProvisioningError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    try:
        tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProvisioningError(f"--config {path}: not valid TOML ({exc})") from None
    return Blob(str(path), data)


def default_unit_file() -> Path:
    """The repository's unit, or the copy a wheel install puts in share/mona-edge/systemd."""
    for candidate in (REPO / "systemd/mona-edge.service",
                      Path(sys.prefix) / "share/mona-edge/systemd/mona-edge.service"):
        if candidate.is_file():
            return candidate
    raise ProvisioningError("mona-edge.service: not found in the repository's systemd/ or share/mona-edge/systemd")


def render_unit(text: str, prefix: str) -> bytes:
    """The unit as installed under ``prefix``: its own paths moved there (a no-op for /)."""
    root = prefix.rstrip("/")
    if root:
        for path in ("/opt/mona-edge", "/etc/mona-edge", "/var/lib/mona-edge"):
            text = text.replace(path, root + path)
    return text.encode()


def load_unit(path: Path | None, prefix: str) -> Blob:
    path = path or default_unit_file()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisioningError(f"--unit {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    return Blob(str(path), render_unit(text, prefix))


# ------------------------------------------------------------------------------------- target checks

def _wheel_fits(name: str, machine: str, python: str) -> bool:
    parts = name[:-4].split("-")
    pytag, abi, plat = parts[-3], parts[-2], parts[-1]
    major, minor = python.split(".")[:2]
    plat_ok = any(t == "any" or t.endswith(machine) for t in plat.split("."))
    py_ok = any(not t.startswith("cp") or abi == "abi3" or t == f"cp{major}{minor}" for t in pytag.split("."))
    return plat_ok and py_ok


def configured_sink(config: Blob | None) -> str:
    """The ``[display] sink`` the config sent along names (``auto``, the daemon's default, without one)."""
    if config is None:
        return "auto"
    display = tomllib.loads(config.data.decode()).get("display", {})
    return str(display.get("sink", "auto")) if isinstance(display, dict) else "auto"


def check_pygame(probe: dict, artifacts: Artifacts) -> tuple[list[str], list[str]]:
    """The screen's pygame: the OS's on a Pi. ``sink = "pygame"`` cannot start without one (refused before
    anything is sent); ``auto`` without one can only use the framebuffer (a warning); PyPI's pygame
    carried to a Pi is refused, since its SDL cannot drive a console screen."""
    errors, warnings = [], []
    apt = FROM_THE_OS["pygame"]
    carried = sorted(name for name in artifacts.software.files if name.lower().startswith("pygame-"))
    if carried and probe.get("pi_model"):
        errors.append(f"wheelhouse {carried[0]}: PyPI's pygame has no KMS/DRM; a Pi uses its OS's "
                      f"(sudo apt install {apt} on the target), so build the wheelhouse without it")
    has = probe.get("system_pygame") or carried
    sink = configured_sink(artifacts.config)
    if not has and sink == "pygame":
        errors.append(f'target has no pygame for [display] sink = "pygame": sudo apt install {apt} on the target')
    elif not has and sink == "auto":
        warnings.append(f'target has no pygame: [display] sink = "auto" can use only /dev/fb0, not KMS/DRM '
                        f"(sudo apt install {apt} on the target)")
    return errors, warnings


def check_target(probe: dict, artifacts: Artifacts) -> tuple[list[str], list[str]]:
    """Errors stop the run before anything is sent; warnings are printed and the run goes on."""
    errors, warnings = [], []
    python = probe["python"]
    if tuple(int(v) for v in python.split(".")[:2]) < MIN_PYTHON:
        errors.append(f"target Python {python}: mona-edge needs {'.'.join(map(str, MIN_PYTHON))} or newer")
    machine = probe["machine"]
    for name in artifacts.software.files:
        if name.endswith(".whl") and not _wheel_fits(name, machine, python):
            errors.append(f"wheel {name}: not installable on the target ({machine}, Python {python})")
    os_numpy = probe.get("system_numpy")
    if os_numpy and artifacts.software.offline and not artifacts.software.no_deps:
        carried = sorted({name.split("-")[1] for name in artifacts.software.files if name.startswith("numpy-")})
        if carried and carried != [os_numpy]:
            # pip on the target pins numpy to the OS's (picamera2 is built against it); offline, it
            # could only fail after the whole wheelhouse was sent.
            errors.append(f"wheelhouse numpy {', '.join(carried)}: the target's OS has numpy {os_numpy}, "
                          f"which its venv keeps; download the wheelhouse with the constraint "
                          f"numpy=={os_numpy} (and packages that accept it)")
    osr = probe["os_release"]
    if "debian" not in (osr.get("ID", ""), *osr.get("ID_LIKE", "").split()):
        warnings.append(f"target OS {osr.get('PRETTY_NAME', 'unknown')}: not Debian-based; untested")
    if not probe["pi_model"]:
        warnings.append(f"target is not a Raspberry Pi ({machine}): the picamera2 import check is skipped")
    elif not probe["system_picamera2"]:
        warnings.append("target has no python3-picamera2 (apt install python3-picamera2): "
                        "the camera falls back to OpenCV")
    if not probe["camera"]:
        warnings.append("target has no camera device (/dev/video*): the eyes will rest at centre")
    if not probe["display"]:
        warnings.append("target has no display device (/dev/dri/card*, /dev/fb0)")
    pygame_errors, pygame_warnings = check_pygame(probe, artifacts)
    errors += pygame_errors
    warnings += pygame_warnings
    if probe["service_manager"].startswith("unusable"):
        errors.append(probe["service_manager"][len("unusable: "):])
    need_opt = 0 if probe["software_installed"] else 3 * artifacts.software.size + (
        64 << 20 if artifacts.software.no_deps else 512 << 20)
    need_lib = 0 if (artifacts.pack is None or probe["pack_installed"]) else 2 * artifacts.pack.size + (8 << 20)
    for where, need in (("opt", need_opt), ("lib", need_lib)):
        free = probe["free_bytes"][where]
        if need > free:
            errors.append(f"target free space under {where}: {free >> 20} MiB, needs about {need >> 20} MiB")
    return errors, warnings


# ------------------------------------------------------------------------------------------------ plan

@dataclass
class Upload:
    """Files to send into one staging folder on the target (only those not already there intact)."""

    what: str
    dest: str  # path on the target
    files: list[tuple[Path, str]] = field(default_factory=list)  # (local path, relative name)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p, _ in self.files)


@dataclass
class Plan:
    uploads: list[Upload]
    activate: dict
    changes: list[str]
    skipped: list[str]

    @property
    def nothing_to_do(self) -> bool:
        return not self.changes


#: What the daemon imports to run (its modules, their libraries, a TFLite runtime), checked in the new
#: venv before anything is switched: a wheelhouse missing a package, or a wheel that does not load on the
#: target, fails the install by name while the old version keeps running, instead of as a READY timeout.
DAEMON_IMPORTS = ("import edge.service, edge.detector, edge.pack, edge.camera, edge.display, numpy, cv2, PIL; "
                  "from edge.tflite import runtime_module; runtime_module()")


def import_checks(software: Software) -> list[str]:
    """With ``no_deps`` the libraries are the target's own business (system site-packages): only the
    project itself is checked."""
    return ["import edge"] if software.no_deps else [DAEMON_IMPORTS]


def software_spec(software: Software, check_imports: list[str]) -> dict:
    """The software part of the target-side ``activate`` argument (SSH plan and SD card alike).

    ``wheels`` names every file that travels, the constraints file included (the target checks each
    against ``sums`` and keeps it with the version); ``constraints`` names the one the target's pip
    installs with (``--constraint``)."""
    return {"hash": software.hash, "project_wheel": software.project_wheel, "wheels": sorted(software.files),
            "sums": software.sums, "no_deps": software.no_deps, "offline": software.offline,
            "extras": list(software.extras), "constraints": software.constraints,
            "check_imports": check_imports, "check_pi_camera": True}


def _missing(want: dict[str, str], staged: dict[str, str], local: dict[str, Path]) -> list[tuple[Path, str]]:
    return [(local[rel], rel) for rel, sha in sorted(want.items()) if staged.get(rel) != sha]


def make_plan(artifacts: Artifacts, probe: dict, prefix: str, service_manager: str,
              ready_command: list[str] | None = None, ready_timeout: float = 60.0) -> Plan:
    from edge.install import Layout

    layout = Layout(prefix)
    deployed = probe.get("deployed") or {}
    sw = artifacts.software
    uploads, changes, skipped = [], [], []
    activate: dict = {"prefix": prefix, "service_manager": service_manager, "ready_timeout": ready_timeout}
    if ready_command:
        activate["ready_command"] = ready_command
    if deployed.get("software") == sw.hash and probe["software_installed"]:
        skipped.append(f"software {sw.hash[:12]}: already current")
    else:
        activate["software"] = software_spec(sw, import_checks(sw))
        if probe["software_installed"]:
            changes.append(f"software {sw.hash[:12]}: installed earlier, switch to it")
        else:
            up = Upload("software", str(layout.software_staging(sw.hash)),
                        _missing(sw.sums, probe["staged"]["software"], sw.files))
            uploads.append(up)
            changes.append(f"software {sw.hash[:12]}: send {len(up.files)} file(s), {up.size} bytes; "
                           f"build a venv ({'no deps' if sw.no_deps else 'offline' if sw.offline else 'deps from the index'})")
    pack = artifacts.pack
    if pack is None:
        if not deployed.get("pack"):
            raise ProvisioningError("the target has no gaze pack yet: pass --pack DIR")
        skipped.append("pack: none given, the target's stays")
    elif deployed.get("pack") == pack.sha and probe["pack_installed"]:
        skipped.append(f"pack {pack.sha[:12]}: already current")
    else:
        activate["pack"] = {"sha": pack.sha, "files": pack.files}
        if probe["pack_installed"]:
            changes.append(f"pack {pack.sha[:12]}: installed earlier, switch to it")
        else:
            local = {rel: pack.root / rel for rel in pack.files}
            up = Upload("pack", str(layout.pack_staging(pack.sha)), _missing(pack.files, probe["staged"]["pack"], local))
            uploads.append(up)
            changes.append(f"pack {pack.sha[:12]}: send {len(up.files)} of {len(pack.files)} files, {up.size} bytes")
    config = artifacts.config
    if config is None and not deployed.get("config"):
        config = Blob("(empty: every setting at its default)", b"")
    for kind, blob in (("config", config), ("unit", artifacts.unit)):
        if blob is None:
            skipped.append(f"{kind}: none given, the target's stays")
        elif deployed.get(kind) == blob.sha:
            skipped.append(f"{kind} {blob.sha[:12]}: already current")
        else:
            activate[kind] = blob.spec()
            changes.append(f"{kind} {blob.sha[:12]}: from {blob.source}, {len(blob.data)} bytes")
    if not changes and probe["service_state"] != "active":
        changes.append(f"service is {probe['service_state']}: restart it")
    return Plan(uploads=[u for u in uploads if u.files], activate=activate,
                changes=changes, skipped=skipped)


def format_plan(plan: Plan, target: str) -> str:
    lines = [f"plan for {target}:"]
    lines += [f"  change: {c}" for c in plan.changes] or ["  nothing to change: nothing sent, nothing restarted"]
    lines += [f"  keep:   {s}" for s in plan.skipped]
    if plan.changes:
        lines.append("  then:   switch the current links, install config and unit, restart, wait for READY; "
                     "on failure switch back")
    return "\n".join(lines)

