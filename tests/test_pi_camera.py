"""The Pi camera's path: picamera2's YUV420 lores buffer to the detector's RGB, and the real picamera2.

On Pi 0-4 (the VC4 ISP) the lores stream can only be YUV420, and picamera2 hands it over as one 2D array
of ``(h * 3 / 2, stride)`` bytes (``picamera2.request.Helpers.make_array``): the Y plane, h rows of
``stride`` bytes (``stride`` >= width, rounded up by libcamera, the padding on the right of each row),
then U and V, each h/2 rows of ``stride / 2`` bytes packed two to an array row. ``Picamera2Source.read``
(edge/camera.py) converts that with OpenCV as I420 of width ``stride`` and crops the padding off.

Here a known image is laid out exactly so (padding filled with garbage) and must come back as the image
OpenCV's I420 conversion makes of the unpadded planes, whatever is in the padding. In the emulated Trixie
Pi (tests/pi) the same buffer is made by picamera2's own ``Helpers.make_array``, and the real picamera2
(PyPI's, on Debian trixie's python3-libcamera 0.4) is imported and the daemon's source driven through its
real configuration calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO

from edge.camera import Picamera2Source
from edge.errors import CameraError


def i420_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y (h, w), U and V (h/2, w/2) of ``rgb``, by OpenCV's BT.601 conversion (what the detector reverses)."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).ravel()
    y = i420[:w * h].reshape(h, w)
    u = i420[w * h:w * h * 5 // 4].reshape(h // 2, w // 2)
    v = i420[w * h * 5 // 4:].reshape(h // 2, w // 2)
    return y, u, v


def padded_buffer(rgb: np.ndarray, stride: int, pad: np.ndarray | int) -> np.ndarray:
    """The flat buffer libcamera fills for a YUV420 stream of ``rgb``'s size with ``stride``: planes one
    after the other, the chroma planes at half the stride, every row's padding set to ``pad``."""
    h, w = rgb.shape[:2]
    y, u, v = i420_planes(rgb)
    buf = np.empty(stride * h * 3 // 2, np.uint8)
    buf[...] = pad
    buf[:stride * h].reshape(h, stride)[:, :w] = y
    buf[stride * h:stride * h * 5 // 4].reshape(h // 2, stride // 2)[:, :w // 2] = u
    buf[stride * h * 5 // 4:].reshape(h // 2, stride // 2)[:, :w // 2] = v
    return buf


def as_picamera2_delivers(buf: np.ndarray, size: tuple[int, int], stride: int) -> np.ndarray:
    """``Helpers.make_array`` for YUV420 (picamera2 0.3.x): the whole buffer, padding kept, as (h*3/2, stride)."""
    return buf.reshape((size[1] * 3 // 2, stride))


class FakeVC4Camera:
    """Test stand-in for ``picamera2.Picamera2`` on a Pi 4: an RGB lores stream is refused (VC4 can only
    give YUV420), and every lores capture is the buffer given."""

    def __init__(self, lores: np.ndarray) -> None:
        self.lores = lores
        self.configured: dict | None = None
        self.started = False

    def create_video_configuration(self, main: dict, lores: dict, **kwargs) -> dict:
        return {"main": main, "lores": lores, **kwargs}

    def configure(self, config: dict) -> None:
        if config["lores"]["format"] != "YUV420":
            raise RuntimeError("lores stream must be YUV420 on VC4")
        self.configured = config

    def start(self) -> None:
        self.started = True

    def capture_array(self, name: str) -> np.ndarray:
        assert name == "lores" and self.started
        return self.lores

    def set_controls(self, controls: dict) -> None:
        pass

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass


@pytest.fixture
def scene(astronaut) -> np.ndarray:
    """A 330x246 view (even, and not a multiple of libcamera's 64-byte row alignment) of a real photograph."""
    return np.ascontiguousarray(cv2.resize(astronaut, (330, 246), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("stride", [330, 384])
def test_a_padded_yuv420_lores_buffer_becomes_the_right_rgb_image(monkeypatch, scene, stride):
    h, w = scene.shape[:2]
    reference = cv2.cvtColor(np.concatenate([p.ravel() for p in i420_planes(scene)]).reshape(h * 3 // 2, w),
                             cv2.COLOR_YUV2RGB_I420)
    got = []
    for pad in (0, 255, np.random.default_rng(1).integers(0, 256, stride * h * 3 // 2, dtype=np.uint8)):
        lores = as_picamera2_delivers(padded_buffer(scene, stride, pad), (w, h), stride)
        camera = FakeVC4Camera(lores)
        monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=lambda num, c=camera: c))
        source = Picamera2Source(size=(w, h), fps=15)
        source.open()
        assert camera.configured is not None and camera.configured["lores"] == {"size": (w, h), "format": "YUV420"}
        rgb, _t = source.read()
        assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
        # the Y plane as the motion gate sees it: the picture's own, no padding
        assert np.array_equal(source.luma, i420_planes(scene)[0])
        # OpenCV's I420 -> RGB of the unpadded planes (integer arithmetic; one level of slack between
        # its SIMD and scalar paths), and so close to the photograph (chroma at half resolution)
        assert np.abs(rgb.astype(int) - reference.astype(int)).max() <= 1
        assert np.abs(rgb.astype(int) - scene.astype(int)).mean() < 4.0
        got.append(rgb.copy())
        # the next frame reuses the buffers (nothing allocated per frame) and is right too
        scratch = source._padded
        again, _t = source.read()
        assert again is rgb and source._padded is scratch and np.array_equal(again, got[-1])
        source.close()
    assert all(np.array_equal(got[0], other) for other in got[1:])  # the padding never leaks in


def test_the_rgb_is_not_swapped_or_shifted(monkeypatch):
    """A red square left of a blue one: R,G,B in memory, where they were."""
    w, h, stride = 64, 48, 128
    scene = np.full((h, w, 3), 40, np.uint8)
    scene[8:24, 8:24] = (220, 30, 30)
    scene[24:40, 40:56] = (30, 30, 220)
    camera = FakeVC4Camera(as_picamera2_delivers(padded_buffer(scene, stride, 255), (w, h), stride))
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=lambda num: camera))
    source = Picamera2Source(size=(w, h), fps=15)
    source.open()
    rgb, _t = source.read()
    red, blue = rgb[12:20, 12:20].reshape(-1, 3).mean(0), rgb[28:36, 44:52].reshape(-1, 3).mean(0)
    assert red[0] > 180 and red[2] < 70 and blue[2] > 180 and blue[0] < 70


def test_a_camera_that_refuses_every_lores_format_is_one_camera_error(monkeypatch):
    class Refusing(FakeVC4Camera):
        def configure(self, config: dict) -> None:
            raise RuntimeError("no such stream")

    monkeypatch.setitem(sys.modules, "picamera2",
                        types.SimpleNamespace(Picamera2=lambda num: Refusing(np.zeros((6, 4), np.uint8))))
    with pytest.raises(CameraError, match=r"^picamera2:0: no usable lores configuration \(no such stream\)$"):
        Picamera2Source(size=(4, 4)).open()


# --- the real picamera2 on the emulated Trixie Pi ---------------------------------------------------------
LAUNCHER = REPO / "tests" / "pi" / "python"
#: Where Debian's libcamera 0.4 reads its virtual camera's configuration (PipelineHandler::configurationFile).
VIRTUAL_CONFIG = Path("usr/share/libcamera/pipeline/virtual/virtual.yaml")
LIBCAMERA = Path("usr/lib/aarch64-linux-gnu/libcamera.so.0.4")
#: Runs in the emulated Trixie. picamera2 imports pykms (python3-kms++, Raspberry Pi's archive only: not in
#: Debian, not on PyPI) for its DRM preview window, which the daemon never opens: an empty stand-in module
#: takes its place so that the rest of picamera2 is the real one.
GUEST = """
import json, sys, types
class _Formats:
    def __getattr__(self, name):
        return name
sys.modules.setdefault("pykms", types.SimpleNamespace(PixelFormat=_Formats()))
import numpy as np, cv2, libcamera, picamera2
from picamera2 import Picamera2
from picamera2.request import Helpers
from edge.camera import Picamera2Source
from edge.errors import CameraError
out = {"picamera2": picamera2.__file__, "libcamera": libcamera.__file__,
       "cameras": Picamera2.global_camera_info()}
source = Picamera2Source(size=(320, 240), fps=15)
try:
    source.open()
    out["opened"] = True
    source.close()
except CameraError as exc:
    out["error"] = str(exc)
if len(sys.argv) > 1:  # a buffer laid out by picamera2's own Helpers.make_array, through the source's read
    w, h, stride = 330, 246, 384
    flat = np.fromfile(sys.argv[1], np.uint8)
    lores = Helpers(None).make_array(flat, {"format": "YUV420", "size": (w, h), "stride": stride})
    class Camera:
        def capture_array(self, name):
            return lores
    source = Picamera2Source(size=(w, h))
    source._cam, source._yuv, source._rgb = Camera(), True, np.empty((h, w, 3), np.uint8)
    rgb, _t = source.read()
    np.save(sys.argv[2], rgb)
    out["lores_shape"] = list(lores.shape)
print(json.dumps(out))
"""


def run_trixie(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    root = os.environ.get("MONA_EDGE_PI_ROOT")
    if not root or not (Path(root) / "trixie/site-litert/picamera2").is_dir():
        pytest.skip("no emulated Trixie Pi with picamera2 (tests/run builds it with tests/pi/setup)")
    done = subprocess.run([str(LAUNCHER), "trixie", "pi5", "litert", "-c", GUEST, *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.emulated_pi
@pytest.mark.root
def test_the_real_picamera2_on_debians_libcamera_finds_no_sensor_and_the_source_says_so(tmp_path, scene):
    """Debian trixie's python3-libcamera 0.4 and PyPI's picamera2 0.3.38 import and start libcamera's
    camera manager under the Pi's Python; with no sensor, Picamera2Source.open() is one CameraError with
    picamera2's own reason (the daemon then shows "retrying" and keeps the portrait). The lores buffer
    picamera2's own Helpers.make_array lays out becomes, through the source's read on aarch64 OpenCV, the
    image x86 makes of it."""
    h, w, stride = 246, 330, 384
    padded_buffer(scene, stride, 255).tofile(tmp_path / "lores.bin")
    out = run_trixie(tmp_path, str(tmp_path / "lores.bin"), str(tmp_path / "rgb.npy"),
                     env={"LIBCAMERA_PIPELINES_MATCH_LIST": "rpi/vc4,rpi/pisp,uvcvideo,simple"})
    assert "/trixie/site-litert/picamera2/" in out["picamera2"]
    assert "/trixie/sysroot/usr/lib/python3/dist-packages/libcamera/" in out["libcamera"]
    assert out["cameras"] == []
    assert out["error"] == ('picamera2:0: cannot open the camera (No camera number 0 found - use "rpicam-hello '
                            '--list-cameras" to check connected cameras)')
    assert out["lores_shape"] == [h * 3 // 2, stride]
    on_pi = np.load(tmp_path / "rgb.npy")
    here = cv2.cvtColor(np.concatenate([p.ravel() for p in i420_planes(scene)]).reshape(h * 3 // 2, w),
                        cv2.COLOR_YUV2RGB_I420)
    assert on_pi.shape == (h, w, 3) and np.abs(on_pi.astype(int) - here.astype(int)).max() <= 1


@pytest.mark.emulated_pi
@pytest.mark.root
def test_libcameras_virtual_camera_is_found_but_picamera2_needs_a_raw_stream_it_lacks(tmp_path):
    """Debian's libcamera 0.4 has the virtual pipeline handler (test-pattern frames, no device needed):
    picamera2 lists its camera, then opening it stops at the sensor's raw modes, which a virtual camera
    does not have ("Requested stream role not supported: Raw"). So capture itself needs a real sensor."""
    sysroot = Path(os.environ.get("MONA_EDGE_PI_ROOT", "/nonexistent")) / "trixie/sysroot"
    if not (sysroot / LIBCAMERA).exists():
        pytest.skip("no emulated Trixie Pi with libcamera (tests/run builds it with tests/pi/setup)")
    # libcamera0.4 itself ships no data folder (its IPA package would): the folders it reads are made here
    config = sysroot / VIRTUAL_CONFIG
    made = [d for d in reversed(config.parents) if d.is_relative_to(sysroot) and not d.exists()]
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('%YAML 1.1\n---\n"Virtual0":\n  supported_formats:\n  - width: 640\n    height: 480\n'
                      '    frame_rates:\n    - 15\n    - 30\n  test_pattern: "bars"\n'
                      '  location: "CameraLocationFront"\n  model: "Virtual Video Device"\n')
    try:
        out = run_trixie(tmp_path)
    finally:
        config.unlink()
        for folder in reversed(made):
            folder.rmdir()
    assert out["cameras"] == [{"Location": 0, "Model": "Virtual Video Device", "Id": "Virtual0", "Num": 0}]
    assert out["error"] == "picamera2:0: cannot open the camera (Camera __init__ sequence did not complete.)"
