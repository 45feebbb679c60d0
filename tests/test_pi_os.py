"""The frame's daemon on each Raspberry Pi OS generation: Bookworm and Trixie, emulated.

Raspberry Pi OS Bookworm is Debian 12 (Python 3.11, numpy 1.24.2, pygame 2.1.2 with SDL 2.26); Trixie is
Debian 13 (Python 3.13, numpy 2.2.4, pygame 2.6.1 with SDL 2.32). ``tests/pi/setup`` unpacks each from
Debian's own arm64 packages and puts PyPI's aarch64 wheels (ai-edge-litert, OpenCV) on top as the Pi's pip
would; ``tests/pi/python`` runs it under qemu-user with the Pi 5's CPU model.

In each, the daemon itself (:class:`edge.service.EdgeService`: display and portrait first, model, status
socket, camera) runs the bundled int8 detector on the bundled clip (``[camera] source = "video"``) into a
framebuffer file (``[display] sink = "file"``), and what it showed must be what the same daemon shows on
this x86 machine. Not bit for bit: the int8 kernels of ai-edge-litert's x86 and aarch64 builds round
differently, so the eyes they find differ by a few pixels (tests/test_pi_kernels.py: up to ~2 px short
range, ~6 px full range), and a few pixels can move the shown frame by one index near a boundary, or a
frame earlier or later. So the per-frame index sequences are compared with that slack, and the final
framebuffer pixel for pixel where both show the same frame.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from edge.pack import load_pack

LAUNCHER = REPO / "tests" / "pi" / "python"
CLIP = REPO / "assets" / "clips" / "viewer-walk.mp4"
PACK = REPO / "assets" / "packs" / "default"
#: Camera frames the daemon runs: the visitor walks in, across and out (the clip has 404 at 15 fps).
FRAMES = 300
SCREEN = (240, 320)
#: The OS's own versions, as its apt has them (what the frame's venv keeps through system site-packages).
OS = {"bookworm": {"python": "3.11", "numpy": "1.24.2", "pygame": "2.1.2", "sdl": "2.26"},
      "trixie": {"python": "3.13", "numpy": "2.2.4", "pygame": "2.6.1", "sdl": "2.32"}}

#: Runs in the Python under test: the daemon on the clip for ``frames`` camera frames, then what it showed.
DAEMON = """
import json, platform, sys
from pathlib import Path
import numpy
from edge.config import load_config
from edge.service import EdgeService
config_path, frames = Path(sys.argv[1]), int(sys.argv[2])
config = load_config(config_path)
service = EdgeService(config, config_path)
rows = []
service.start()
try:
    while len(rows) < frames:
        result = service.step()
        if result.frame is None:
            if result.camera_down:
                break
            continue
        rows.append([result.index, result.viewer_x, len(result.faces)])
    state = service.health.state
finally:
    service.shutdown()
try:
    import pygame
    versions = {"pygame": pygame.version.ver, "sdl": ".".join(map(str, pygame.get_sdl_version()))}
except ImportError:
    versions = {}
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "numpy": numpy.__version__,
                  "numpy_file": numpy.__file__, "runtime": service.parts.detector.runtime_name
                  if hasattr(service.parts.detector, "runtime_name") else "", "state": str(state),
                  "rows": rows, **versions}))
"""


def daemon_config(workdir: Path) -> Path:
    path = workdir / "frame.toml"
    path.write_text(f"""
[camera]
source = "video"
path = "{CLIP}"
realtime = false
loop = false

[detector]
threads = 1

[display]
sink = "file"
output = "{workdir / 'fb'}"
width = {SCREEN[0]}
height = {SCREEN[1]}

[pack]
path = "{PACK}"

[service]
status_socket = "{workdir / 'status.sock'}"
""")
    return path


def run_daemon(python: list[str], workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="0", SDL_VIDEODRIVER="dummy")
    done = subprocess.run([*python, "-c", DAEMON, str(daemon_config(workdir)), str(FRAMES)], capture_output=True,
                          text=True, timeout=1800, env=env, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["fb"] = np.fromfile(workdir / "fb", np.uint8)
    return out


@pytest.fixture(scope="module")
def x86_run(tmp_path_factory) -> dict:
    return run_daemon([sys.executable], tmp_path_factory.mktemp("x86"))


def test_the_daemon_on_the_clip_repeats_itself_on_this_machine(x86_run, tmp_path):
    """The comparison below needs one: the same daemon on the same clip shows the same frames twice
    (the clip's own timestamps drive the tracker, not the wall clock)."""
    again = run_daemon([sys.executable], tmp_path)
    assert again["rows"] == x86_run["rows"]
    assert np.array_equal(again["fb"], x86_run["fb"])


def index_mismatches(pi: list[int], x86: list[int], shift: int = 2, slack: int = 1) -> list[int]:
    """Frames where the Pi's index is more than ``slack`` from every index x86 showed within ``shift``
    frames of it: a face found a frame later (a viewer walking in at the edge) moves a change by a frame
    or two, and a few pixels of eye move the index by one near a boundary; anything else is a mismatch."""
    bad = []
    for i, index in enumerate(pi):
        near = x86[max(0, i - shift):i + shift + 1]
        if min(abs(index - other) for other in near) > slack:
            bad.append(i)
    return bad


@pytest.mark.emulated_pi
@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("os_name,board", [("bookworm", "pi4"), ("trixie", "pi5")])
def test_the_daemon_on_the_pi_os_shows_what_it_shows_on_x86(pi_root, x86_run, tmp_path, os_name, board):
    """300 frames of the clip through the daemon on the emulated OS (its own Python, numpy and pygame, the
    aarch64 ai-edge-litert), against the same on x86. Measured (Pi 5 model, both OSes): the index differs on
    3 (bookworm) and 22 (trixie) of 300 frames, each by one, or by a return to centre one frame earlier
    after a face at the frame's edge (x ~620 of 640) was found on x86 and not on aarch64; faces found
    differ on 1-2 frames; the followed eye midpoint differs by at most 4.9 px; the final framebuffers were
    identical until the walker stayed followed to the clip's last frame (a2b78b0), where the index is 31 on
    aarch64 and 32 on x86: each board's framebuffer is its own index's pack frame."""
    pi = run_daemon([str(LAUNCHER), os_name, board, "litert"], tmp_path)
    want = OS[os_name]
    assert pi["machine"] == "aarch64" and pi["runtime"] == "ai-edge-litert" and pi["state"] == "READY"
    assert pi["python"].rsplit(".", 1)[0] == want["python"]
    assert pi["numpy"] == want["numpy"] and "/sysroot/usr/lib/python3/dist-packages/" in pi["numpy_file"]
    assert pi["pygame"] == want["pygame"] and pi["sdl"].startswith(want["sdl"] + ".")

    ours, theirs = pi["rows"], x86_run["rows"]
    assert len(ours) == len(theirs) == FRAMES
    indices, x86_indices = [row[0] for row in ours], [row[0] for row in theirs]
    assert index_mismatches(indices, x86_indices) == []
    assert sum(a != b for a, b in zip(indices, x86_indices)) <= FRAMES // 10
    assert sum(a[2] != b[2] for a, b in zip(ours, theirs)) <= FRAMES // 50  # faces found
    both = [(a[1], b[1]) for a, b in zip(ours, theirs) if a[1] is not None and b[1] is not None]
    assert len(both) >= FRAMES // 2 and max(abs(a - b) for a, b in both) <= 8.0  # eye midpoint, camera px
    # The last frame shown: the pack frame of its index, drawn as x86 draws that frame (a pixel's rounding
    # of the pack's scaling may differ between CPUs' OpenCV builds: one level allowed). The index itself
    # is within one of x86's, like every other frame's: the clip ends with the walker near the frame's
    # edge, still followed, where a few pixels of eye move the index by one.
    assert abs(indices[-1] - x86_indices[-1]) <= 1
    assert pi["fb"].shape == x86_run["fb"].shape == (SCREEN[0] * SCREEN[1] * 4,)
    shown = pi["fb"].reshape(SCREEN[1], SCREEN[0], 4)[..., 2::-1]  # XRGB8888: bytes B, G, R, X
    expected = load_pack(PACK, screen_size=SCREEN).frame_image(indices[-1])
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
    if indices[-1] == x86_indices[-1]:
        assert np.abs(pi["fb"].astype(int) - x86_run["fb"].astype(int)).max() <= 1


def test_index_mismatches_allows_a_frame_of_timing_and_one_index():
    x86 = [16, 16, 20, 20, 1, 1, 1, 15, 16, 16, 16, 16]
    assert index_mismatches([16, 17, 20, 21, 2, 2, 15, 16, 16, 16, 16, 16], x86) == []
    assert index_mismatches([16, 16, 20, 20, 1, 1, 1, 1, 1, 1, 1, 1], x86) == [9, 10, 11]  # never back at centre
    assert index_mismatches([16, 16, 24, 20, 1, 1, 1, 15, 16, 16, 16, 16], x86) == [2]


# --- mona-edge wheelhouse --os ----------------------------------------------------------------------------
def test_os_sets_the_python_numpy_and_platforms_and_refuses_what_contradicts_it():
    from edge.errors import ProvisioningError
    from provisioning.wheelhouse import PI_PLATFORMS, os_needs, os_target

    assert os_target("bookworm", None, None, "pi64") == ("3.11", "1.24.2", PI_PLATFORMS)
    python, numpy_pin, platforms = os_target("trixie", "3.13", None, "pi64")
    assert (python, numpy_pin, platforms[-1]) == ("3.13", "2.2.4", "manylinux_2_41_aarch64")
    for args, says in ((("trixie", "3.11", None, "pi64"), "--python 3.11 with --os trixie: Raspberry Pi OS Trixie "
                                                          "has Python 3.13 (leave --python out)"),
                       (("bookworm", None, "2.2.4", "pi64"), "--numpy 2.2.4 with --os bookworm: its python3-numpy "
                                                             "is 1.24.2"),
                       (("bookworm", None, None, "native"), "--platform native with --os bookworm: a Pi is aarch64"),
                       (("jessie", None, None, "pi64"), "--os 'jessie': expected one of bookworm, trixie")):
        with pytest.raises(ProvisioningError, match="^" + says.replace("(", r"\(").replace(")", r"\)")):
            os_target(*args)
    assert "from apt python3-venv, python3-numpy, python3-pygame, python3-picamera2 (numpy 2.2.4)" in os_needs("trixie")


@pytest.fixture(scope="module")
def trixie_wheelhouse(tmp_path_factory) -> tuple[Path, list[str]]:
    """``mona-edge wheelhouse --os trixie``: the folder and what the command printed."""
    out = tmp_path_factory.mktemp("trixie") / "wh"
    done = subprocess.run([sys.executable, "-m", "edge.cli", "wheelhouse", "--out", str(out), "--os", "trixie"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout.strip().splitlines()


@pytest.mark.network
def test_a_trixie_wheelhouse_is_python_3_13_aarch64_with_trixies_numpy(trixie_wheelhouse):
    from packaging.utils import parse_wheel_filename

    from provisioning.plan import SOFTWARE_CONSTRAINTS

    out, lines = trixie_wheelhouse
    assert lines[-2].endswith("for Python 3.13 (trixie)")
    assert lines[-1].startswith("Raspberry Pi OS Trixie (Debian 13, Python 3.13): the Pi must have from apt "
                                "python3-venv, python3-numpy, python3-pygame, python3-picamera2 (numpy 2.2.4)")
    names = sorted(p.name for p in out.glob("*.whl"))
    assert any(n.startswith("ai_edge_litert-2.3.0-cp313-") for n in names), names
    assert not any(n.lower().startswith("pygame-") for n in names)  # the OS's (apt), with KMS/DRM
    for name in names:
        _dist, _version, _build, tags = parse_wheel_filename(name)
        assert any(t.interpreter in ("cp313", "py3", "cp37", "cp38", "cp39") or t.abi == "abi3" for t in tags), name
        assert any(t.platform == "any" or t.platform.endswith("aarch64") for t in tags), name
    pins = dict(line.split("==") for line in (out / SOFTWARE_CONSTRAINTS).read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["numpy"] == "2.2.4"


#: Runs on the emulated Trixie with only the OS's packages and the wheelhouse installed: the Pi's wheel finds
#: a face with its bundled model, on the wheelhouse's ai-edge-litert and OpenCV and the OS's numpy.
WHEELHOUSE_GUEST = """
import json, sys, numpy, cv2, edge
from edge.detector import FaceDetector
frame = numpy.load(sys.argv[1])
faces = FaceDetector(None, "full").detect(frame)
print(json.dumps({"edge": edge.__file__, "numpy": numpy.__version__, "numpy_file": numpy.__file__,
                  "cv2": cv2.__version__, "faces": len(faces)}))
"""


@pytest.mark.network
@pytest.mark.emulated_pi
@pytest.mark.root
def test_the_trixie_wheelhouse_installs_offline_and_detects_on_the_emulated_trixie(pi_root, trixie_wheelhouse,
                                                                                  tmp_path, astronaut):
    """What ``provision --wheelhouse`` would install on the Pi (every wheel but the OS's own numpy),
    unpacked for the target by pip with no index, then run by Trixie's own Python 3.13."""
    from conftest import place_astronaut

    from provisioning.wheelhouse import PI_OS

    out, _lines = trixie_wheelhouse
    wheels = [str(w) for w in sorted(out.glob("*.whl")) if not w.name.startswith("numpy-")]
    target = tmp_path / "site"
    trixie = PI_OS["trixie"]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
                    "--python-version", trixie.python, "--abi", "cp313",
                    *(f"--platform={tag}" for tag in trixie.platforms), *wheels], check=True, timeout=600)
    frame, _eyes = place_astronaut(astronaut, 130, 320, 240)
    np.save(tmp_path / "frame.npy", frame)
    done = subprocess.run([str(LAUNCHER), "trixie", "pi5", "none", "-c", WHEELHOUSE_GUEST, str(tmp_path / "frame.npy")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          # pip --target puts the wheel's data files (the models) in share/, which a venv's
                          # sys.prefix would hold: the daemon's asset override points there instead
                          env=dict(os.environ, PYTHONPATH=str(target), MONA_EDGE_ASSETS=str(target / "share/mona-edge")))
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["edge"].startswith(str(target)) and got["faces"] == 1 and got["cv2"].startswith("4.14.")
    assert got["numpy"] == "2.2.4" and "/sysroot/usr/lib/python3/dist-packages/" in got["numpy_file"]
