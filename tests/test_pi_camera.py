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

import sys
import types

import cv2
import numpy as np
import pytest

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
