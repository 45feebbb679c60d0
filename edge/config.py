"""The one config file, ``/etc/mona-edge/config.toml``, validated into frozen dataclasses.

Why so strict: the frame hangs on a wall and is configured over SSH by someone who will not read a
traceback. Every key has a default, so a missing or empty file runs the portrait; every mistake is refused
at load with ONE line naming the file, the section, the key, the value and what is allowed; an unknown key
is a mistake too, because a typo that silently does nothing is the hardest bug to find on a wall.

The key reference is the field metadata below; :func:`dump_default_config` prints it as a commented TOML
file (``python3 -c 'from edge.config import dump_default_config as d; print(d())'``, as the README
says), which is also the documentation of every key. In brief:

=============  ==============================================================================================
section        keys
=============  ==============================================================================================
``[camera]``   source, device, path, width, height, fps, loop, realtime, hflip, vflip, retry_initial_s,
               retry_max_s
``[detector]`` range, model, precision, threads, min_score, sha256
``[gaze]``     mapping, fov_deg, camera_offset_mm = {x, y}, ipd_mm, mirror, one_euro_min_cutoff,
               one_euro_beta, one_euro_d_cutoff, hysteresis, max_speed_fps, gain, idle_seconds,
               static_seconds, static_px, static_widths, place_forget_s, screen_seconds, nearest_mm,
               sticky_margin, sticky_seconds, viewer_grace_s, dead_band_deg, saccade_base_ms,
               saccade_ms_deg, fixation_s, glance_every_s, glance_deg, glance_hold_s,
               calibration_left_x, calibration_centre_x, calibration_right_x
``[display]``  sink, device, drm_card, rotation, width, height, output
``[pack]``     path, memory_budget_mb
``[service]``  status_socket, socket_mode, log_level, watchdog, ready_timeout
=============  ==============================================================================================

Geometry conventions (shared with :mod:`edge.gaze`): "left" and "right" are always as seen by a viewer
standing in front of the picture and facing it. ``camera_offset_mm.x`` is the camera's position relative
to the portrait's eyes, positive when the camera is to the viewer's right of the eyes; ``.y`` is positive
when the camera is above the eyes.

Names that other modules use: :class:`CameraConfig` keeps ``source`` as the camera module names it
(``"file"``; ``"video"`` is accepted as the same thing) and offers ``size``/``retry_initial``/``retry_max``;
:class:`DisplayConfig` keeps ``sink`` as the display module names it (``"fbdev"``; ``"framebuffer"`` is
accepted as the same thing) and offers ``kind``/``size``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib as _toml
except ImportError:  # Python 3.9/3.10 on older Raspberry Pi OS images
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ImportError:
        _toml = None  # type: ignore[assignment]

from edge.errors import ConfigError  # re-exported: callers import it from here

DEFAULT_CONFIG_PATH = Path("/etc/mona-edge/config.toml")


def _require_toml():
    if _toml is None:
        raise ConfigError("reading config.toml needs Python 3.11+ (tomllib) or the 'tomli' package: "
                          "pip install tomli")
    return _toml


# --- TOML values: written by write_config_values, and quoted the same way in error messages -------
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_value(value: Any) -> str:
    """TOML for the value types a config holds (also how values are quoted in error messages)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (str, Path)):
        out = []
        for ch in str(value):
            if ch in _ESCAPES:
                out.append(_ESCAPES[ch])
            elif ord(ch) < 0x20 or ord(ch) == 0x7F:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a config value")


def _toml_key(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return _toml_value(key)


#: Longest quotation of a refused value (or unknown key) in an error message, in characters.
SHOWN_MAX = 80
#: Nesting shown of a refused array or table; deeper levels are written "[...]" / "{...}".
SHOWN_DEPTH = 2


def _shown(value: Any) -> str:
    """A value the user wrote, quoted as TOML for an error message: always one short line.

    Why not :func:`_toml_value`: that writes config files and must be complete, whereas an error line
    must stay one line whatever the file holds (a 1 MB string, an array nested 300 deep, a 4000-digit
    hex integer whose decimal form Python refuses to print, a line separator inside a key, a date)."""
    text = _brief(value, 0)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 3] + "..."


def _brief(value: Any, depth: int) -> str:
    if isinstance(value, bool) or isinstance(value, float):
        return _toml_value(value)
    if isinstance(value, int):
        if value.bit_length() > 128:
            try:
                digits = f"{len(str(abs(value)))}"
            except ValueError:  # past Python's 4300-digit limit for printing an int
                digits = f"about {int(value.bit_length() * math.log10(2)) + 1}"
            return f"<an integer of {digits} digits>"
        return str(value)
    if isinstance(value, (str, Path)):
        out = []
        for ch in str(value)[:SHOWN_MAX]:
            if ch in _ESCAPES:
                out.append(_ESCAPES[ch])
            elif not ch.isprintable():  # control characters, and line or paragraph separators
                out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + ('"' if len(str(value)) <= SHOWN_MAX else "...")
    if isinstance(value, (list, tuple)):
        if depth >= SHOWN_DEPTH and value:
            return "[...]"
        items = [_brief(v, depth + 1) for v in value[:4]]
        return "[" + ", ".join(items + (["..."] if len(value) > 4 else [])) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        if depth >= SHOWN_DEPTH:
            return "{...}"
        items = [f"{_brief_key(k)} = {_brief(v, depth + 1)}" for k, v in list(value.items())[:4]]
        return "{ " + ", ".join(items + (["..."] if len(value) > 4 else [])) + " }"
    if hasattr(value, "isoformat"):  # TOML dates, times and date-times
        return str(value.isoformat())
    return f"<{type(value).__name__}>"


def _brief_key(key: str) -> str:
    """A key as an error message names it: bare when it is a plain name, else quoted like a value."""
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return _brief(key, 0)



# --- rules: how one key's value is checked --------------------------------------------------------------
class _Invalid(Exception):
    """Raised by a rule; the builder turns it into the one-line :class:`ConfigError`."""


class _Rule:
    #: The phrase after "expected" in an error message, also printed in the default config.
    expected = ""

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        """How a refused value is quoted in the error message."""
        return _shown(value)


class _Choice(_Rule):
    """One of a few strings (or ints). ``store`` maps another accepted spelling to the value kept, so the
    documented name and the name the consuming module uses can differ without either side guessing."""

    def __init__(self, *accepted: Any, store: Mapping[Any, Any] | None = None) -> None:
        self.accepted = accepted
        self.store = dict(store or {})
        self.expected = "one of " + ", ".join(_toml_value(v) for v in accepted)

    def parse(self, value: Any) -> Any:
        if isinstance(value, bool) or value not in self.accepted:
            raise _Invalid
        return self.store.get(value, value)


class _Number(_Rule):
    """A finite number in ``lo..hi`` (inclusive); ``integer`` refuses fractions."""

    def __init__(self, lo: float, hi: float, integer: bool = False) -> None:
        self.lo, self.hi, self.integer = lo, hi, integer
        self.expected = f"{'an integer' if integer else 'a number'} in {_num(lo)}..{_num(hi)}"

    def parse(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid
        if self.integer and not isinstance(value, int):
            raise _Invalid
        # Compared as they are: TOML integers are unbounded (``0x`` and 4000 hex digits is valid), and
        # math.isfinite or float() of one past 1e308 raises OverflowError instead of saying "too big".
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid
        if not self.lo <= value <= self.hi:
            raise _Invalid
        return int(value) if self.integer else float(value)


class _Flag(_Rule):
    expected = "true or false"

    def parse(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise _Invalid
        return value


class _PathRule(_Rule):
    expected = "a file path (a non-empty string)"

    def parse(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid
        return Path(value)


class _CameraDevice(_Rule):
    expected = 'a camera number (integer >= 0) or a device path such as "/dev/video0"'

    def parse(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 63:
            return value
        if isinstance(value, str) and value.startswith("/dev/") and len(value) > 5:
            return value
        raise _Invalid


class _DevicePath(_Rule):
    expected = 'a device path such as "/dev/fb0"'

    def parse(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("/") and len(value) > 1:
            return value
        raise _Invalid


class _FileMode(_Rule):
    """The status socket's permissions. Others get nothing: the socket answers snapshots of the screen and,
    on request, of the camera, so it is for the service's group only (ARCHITECTURE.md, reliability rules;
    ``mona-edge doctor`` fails a world-accessible socket too). The owner keeps read-write: connecting
    needs write permission, and a starting daemon probes its own socket to tell a live one from a stale
    file, which a mode without it would make look stale and be replaced under the running daemon."""

    expected = ('a permission mode with read-write for the owner and nothing for others, such as 0o660 '
                '(the default: the service\'s group may ask) or 0o600 (the service user only); '
                'a TOML octal integer or a string such as "0660"')

    def parse(self, value: Any) -> Any:
        if isinstance(value, str) and value and all(c in "01234567" for c in value) and len(value) <= 4:
            mode = int(value, 8)
        elif isinstance(value, int) and not isinstance(value, bool):
            mode = value
        else:
            raise _Invalid
        if not 0 <= mode <= 0o777 or mode & 0o007 or mode & 0o600 != 0o600:
            raise _Invalid
        return mode

    def show(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 0o10000000:
            return f"0o{value:03o}"
        return super().show(value)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _key(rule: _Rule, default: Any, doc: str, example: Any = None) -> Any:
    """A dataclass field carrying its rule and its documentation (``example`` shown for optional keys)."""
    return field(default=default, metadata={"rule": rule, "doc": doc, "example": example})


# --- the schema ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraConfig:
    """Where frames come from. The detector letterboxes every frame to 128 (short) or 192 (full range)
    px, so capture size changes neither range nor keypoint precision much; 640x480 is a lores stream every
    camera offers cheaply."""

    source: str = _key(_Choice("picamera2", "opencv", "video", "file", store={"video": "file"}), "picamera2",
                       'picamera2 (Pi camera module, lores stream), opencv (USB camera), or "video" / "file" '
                       '(a video file played as a camera: demos, tests)')
    device: int | str | None = _key(_CameraDevice(), None,
                                         'camera number, or for opencv also a node such as "/dev/video0" '
                                         '(default: the first camera)', 0)
    path: Path | None = _key(_PathRule(), None, 'the video file, required when source = "video"',
                                "/var/lib/mona-edge/viewer.mp4")
    width: int = _key(_Number(64, 4096, integer=True), 640,
                      "capture width in pixels. 640x480 by measurement: the detector letterboxes, so its cost "
                      "is the same at 320x240 (1.66 against 1.67 ms short range here), while a crop around "
                      "a viewer at 5 m needs the pixels (a 16-18 px face at 640 is found in a crop, "
                      "tests/test_motion.py; at 320 it would be 8 px)")
    height: int = _key(_Number(48, 4096, integer=True), 480, "capture height in pixels")
    fps: float = _key(_Number(1, 120), 30.0, "frames per second asked of the camera (video: override the file's)")
    loop: bool = _key(_Flag(), True, "video: start again at the end instead of failing")
    realtime: bool = _key(_Flag(), True, "video: pace frames at the file's fps instead of as fast as they decode")
    hflip: bool = _key(_Flag(), False, "flip camera images left-right (if you do, set [gaze] mirror = true)")
    vflip: bool = _key(_Flag(), False, "flip camera images upside down (a camera mounted upside down)")
    retry_initial_s: float = _key(_Number(0.05, 600), 1.0, "first wait before reopening a failed camera, seconds")
    retry_max_s: float = _key(_Number(0.05, 3600), 30.0, "longest wait between reopen attempts (doubles up to it)")

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def retry_initial(self) -> float:
        return self.retry_initial_s

    @property
    def retry_max(self) -> float:
        return self.retry_max_s


class _Sha256(_Rule):
    """A SHA-256 digest as sha256sum prints it; kept in lower case, the way the models' records hold it."""

    expected = "a SHA-256 digest: 64 hexadecimal digits, as sha256sum prints them"

    def parse(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
            return value.lower()
        raise _Invalid


@dataclass(frozen=True)
class DetectorConfig:
    """The BlazeFace model. "full" range: a living room sees viewers 1-5 m away, beyond short range's ~2 m."""

    range: str = _key(_Choice("short", "full"), "full",
                      "BlazeFace model for whole frames: short (within ~2 m) or full (to ~5 m). Full: it finds "
                      "faces from about 30 px wide on the whole frame, and once found a viewer is "
                      "followed in crops by the short one, which sees them to 5 m, so its cost (4x short "
                      "here) is paid on a fraction of the frames. Short misses faces under about 70 px on "
                      "a 640 px whole frame (someone at 1.3 m), so its whole-frame searches also look at "
                      "one of four overlapping tiles in turn")
    model: Path | None = _key(_PathRule(), None, "a .tflite model instead of the bundled one for range",
                                 "/var/lib/mona-edge/models/face_detection_full_range_int8.tflite")
    precision: str = _key(_Choice("auto", "int8", "float"), "auto",
                          "which bundled model, per range (whole frames unless model is set, and crops): "
                          "our int8 or MediaPipe's float. auto: by the CPU's features (edge/precision.py): "
                          "a Pi 4 (no asimddp) runs the full range in float, 48.1 M instructions a frame "
                          "against int8's 67.6 M; a Pi 5 (and x86) int8 throughout")
    threads: int = _key(_Number(1, 4, integer=True), 1,
                        "interpreter threads. 1: measured (tests/bench/pipeline.py), two threads were slower "
                        "than one on these small models (1.7 vs 4.4 ms short range here); more only if the "
                        "Pi is otherwise idle and a bench on it says so")
    min_score: float | None = _key(_Number(0.01, 0.99), None,
                                      "face confidence threshold (default: the model's own, about 0.5)", 0.6)
    sha256: str | None = _key(_Sha256(), None,
                              "the whole-frame model file's SHA-256 (model's, or else the bundled one "
                              "precision chose), checked at load (as well as the record <model>.json "
                              "beside it, if there is one); a mismatch refuses the model",
                              "6b3d49b6cc3212dc1a5aa07e23ec0a84f8f85291f692be752d7c2aae9d220684")
    crop: bool = _key(_Flag(), True,
                      "while a viewer is followed, detect in a crop around them with the bundled short-range "
                      "model (a far face is large in it: cheaper than the whole frame, and it sees farther)")
    crop_widths: float = _key(_Number(2, 12), 4.0,
                              "crop side in the viewer's face widths: room for a walker's step between two "
                              "frames (1.2 m/s at 1 m is half a face width a frame at 15 fps) with the face "
                              "about a quarter of the crop, the size the short-range model finds best")
    full_scan_s: float = _key(_Number(0.05, 60), 1.0,
                              "while a viewer is followed in a crop, the whole frame is still searched this "
                              "often (someone nearer may come in) and at once whenever the crop loses the "
                              "viewer. 1 s: the room scenarios score the same as at 0.5 s (tests/bench/"
                              "rooms.py through make_detector), and a followed viewer's frames then average "
                              "about 14.8 M instructions on a Pi 5 (the per-model counts of tests/bench/"
                              "pi_work.py; 16.6 M at 0.5 s)")


@dataclass(frozen=True)
class MotionConfig:
    """Motion gating: with nobody followed and nothing changed since the frame the detector last saw, the
    detector is not run (its answer would be the same) and the camera slows down. The change test is on a
    small luma thumbnail (on the Pi the lores stream's Y plane, before any RGB conversion): cheap enough
    to run on every frame. Nothing is gated while a viewer is followed."""

    enabled: bool = _key(_Flag(), True, "skip detection on frames where nothing changed and nobody is followed")
    threshold: float = _key(_Number(1, 255), 10.0,
                            "grey levels a thumbnail cell (8x8 camera pixels, averaged: camera noise shrinks "
                            "eightfold) must differ by from the frame the detector last saw to count as changed")
    min_changed: float = _key(_Number(0, 1), 0.002,
                              "share of thumbnail cells that must change to wake the detector (0.002 of "
                              "80x60 is 10 cells: a face at 5 m with its shoulders, not one noisy cell)")
    scan_s: float = _key(_Number(0.05, 3600), 0.4,
                         "with nothing changing, the whole frame is still searched this often for settle_s "
                         "after the last change: a person who walked in and stopped where a frame's "
                         "detection missed them is found within this time")
    settle_s: float = _key(_Number(0, 86400), 10.0,
                           "how long after the last change the scan_s searches go on")
    idle_scan_s: float = _key(_Number(0.1, 86400), 30.0,
                              "after that, with the room unchanged, the whole frame is searched this often: "
                              "rarely, because a change is measured against the frame the detector last "
                              "saw, so even a slow one adds up and wakes it; this catches only what never "
                              "reaches the threshold (tests/bench/idle.py: a scan every 5 s was a quarter "
                              "of a settled empty room's CPU)")
    idle_fps: float = _key(_Number(0, 120), 3.0,
                           "camera frame rate while nothing happens (0: keep the camera's); the first "
                           "frame that changed wakes the detector and brings the full rate back. 3: a "
                           "person walking in is seen within a third of a second (tests/bench/idle.py: "
                           "found 0.13 s after entering the view), and a settled empty room costs under a "
                           "tenth of a busy one (at 5 fps: 13 %, the frames' fetch and thumbnail)")
    idle_after_s: float = _key(_Number(0, 3600), 1.0,
                               "seconds gated before the camera slows down (no back and forth on a pause)")
    face_grey: float = _key(_Number(0, 50), 2.0,
                            "a new face whose own pixels keep changing by this many grey levels more than "
                            "the whole frame's (against half a second before) for face_seconds is a person "
                            "even while it stays put: someone standing still sways and breathes, a photo "
                            "does not (README, Real rooms); 0: off")
    face_seconds: float = _key(_Number(0.2, 60), 1.0,
                               "... for this long without a break (a walker passing a photo changes its "
                               "pixels for less: at 0.5 s people crossing with their backs to the camera, "
                               "whom the detector does not see, made a photo a person; at 1.0 and 1.5 s "
                               "no room scenario had one)")


@dataclass(frozen=True)
class Offset:
    """The camera's position relative to the portrait's eyes, millimetres (see module docstring)."""

    x: float = _key(_Number(-5000, 5000), 0.0, "mm, positive: camera to the viewer's right of the eyes")
    y: float = _key(_Number(-5000, 5000), 0.0, "mm, positive: camera above the eyes")


@dataclass(frozen=True)
class GazeConfig:
    """From faces to a frame index: mapping, smoothing, and the rules that keep the eyes calm."""

    mapping: str = _key(_Choice("geometry", "linear"), "geometry",
                        "geometry: true angle from the portrait's eyes (fov, ipd, camera offset); "
                        "linear: camera X straight to frames (uses calibration_* if set)")
    fov_deg: float = _key(_Number(20, 170), 62.2,
                          "camera's horizontal field of view in degrees (Pi camera v2 62.2, v3 66, v3 wide 102)")
    camera_offset_mm: Offset = _key(None, Offset(),  # type: ignore[arg-type]
                                    "where the camera is relative to the portrait's eyes, mm: "
                                    "x > 0 = to the viewer's right, y > 0 = above")
    ipd_mm: float = _key(_Number(40, 90), 63.0, "viewer's inter-pupil distance in mm (adult average 63)")
    mirror: bool = _key(_Flag(), False,
                        "true when camera images are already mirrored (camera hflip, or a selfie-style webcam)")
    one_euro_min_cutoff: float = _key(_Number(0.01, 30), 0.8,
                                      "One Euro filter: cutoff (Hz) when the viewer is still; lower = calmer")
    one_euro_beta: float = _key(_Number(0, 10), 0.05,
                                "One Euro filter: how fast the cutoff rises with speed (per deg/s); higher = less lag")
    one_euro_d_cutoff: float = _key(_Number(0.01, 30), 1.0, "One Euro filter: cutoff (Hz) of the speed estimate")
    hysteresis: float = _key(_Number(0, 1), 0.3,
                             "the filtered angle must pass the shown frame's bin edge by this fraction of a "
                             "frame step before the frame changes")
    max_speed_fps: float = _key(_Number(1, 1000), 24.0,
                                "smooth pursuit moves the eyes at most this many frames per second "
                                "(saccades are faster: see saccade_*)")
    gain: float = _key(_Number(0.1, 3), 1.0,
                       "scales the eyes' deflection: 1 looks at the viewer, < 1 less far to the side, > 1 more")
    idle_seconds: float = _key(_Number(0, 3600), 1.0,
                               "after this long with nobody seen, the eyes go back to the centre and idle")
    static_seconds: float = _key(_Number(0.5, 86400), 2.5,
                                 "a face that stays put this long from when it is first seen is a picture, "
                                 "and its place is remembered")
    static_px: float = _key(_Number(0, 100), 4.0,
                            "'stays put': its smoothed eye midpoint moves less than static_px camera pixels "
                            "and static_widths of its width")
    static_widths: float = _key(_Number(0.01, 2), 0.2,
                                "a face that moves more than this fraction of its width from where it was "
                                "first seen is a person (pictures jitter less: see README, Real rooms)")
    place_forget_s: float = _key(_Number(1, 31536000), 1800.0,
                                       "a picture's place is forgotten after this long with nothing seen there")
    screen_seconds: float = _key(_Number(0, 86400), 20.0,
                                 "a face that moves about this many seconds in all without ever going "
                                 "three face widths is on a screen (a TV) and not followed, nor are faces "
                                 "later seen there; 0: never")
    nearest_mm: float = _key(_Number(50, 5000), 400.0,
                             "the closest a viewer's face comes to the camera, mm: wider 'faces' are dropped")
    sticky_margin: float = _key(_Number(0, 10), 0.3,
                                "another person must rank this fraction higher (nearer, more frontal) than "
                                "the viewer to take over")
    sticky_seconds: float = _key(_Number(0, 60), 0.5, "... and stay that much higher this many seconds")
    viewer_grace_s: float = _key(_Number(0, 10), 0.4,
                                       "a viewer unseen this long has left: someone else takes over at once")
    dead_band_deg: float = _key(_Number(0, 30), 2.5,
                                "fixation: the eyes do not move while the viewer stays within this angle")
    saccade_base_ms: float = _key(_Number(0, 500), 21.0,
                                  "saccade duration = base + per_deg * amplitude (main sequence; Carpenter 1988)")
    saccade_ms_deg: float = _key(_Number(0, 50), 2.2, "saccade duration per degree of amplitude, ms")
    fixation_s: float = _key(_Number(0, 5), 0.2,
                                       "the eyes fixate at least this long between saccades (Rayner 1998)")
    glance_every_s: float = _key(_Number(0, 3600), 4.0,
                                               "with nobody there, a glance aside about this often "
                                               "(0: never; the eyes stay at the centre)")
    glance_deg: float = _key(_Number(0, 90), 12.0, "idle glances go up to this far to either side")
    glance_hold_s: float = _key(_Number(0.05, 60), 0.8, "an idle glance is held about this long")
    calibration_left_x: float | None = _key(_Number(0, 1), None,
                                               "linear mapping: camera X (0..1 of frame width, as the camera "
                                               "delivers it) of a viewer the portrait should look fully left at; "
                                               "written by mona-edge calibrate", 0.82)
    calibration_centre_x: float | None = _key(_Number(0, 1), None,
                                                 "linear mapping: camera X of a viewer straight in front", 0.5)
    calibration_right_x: float | None = _key(_Number(0, 1), None,
                                                "linear mapping: camera X of a viewer to look fully right at", 0.18)

    @property
    def calibration(self) -> tuple[float, float, float] | None:
        """``(left_x, centre_x, right_x)`` or None; load_config guarantees all three or none, in order."""
        if self.calibration_left_x is None:
            return None
        return (self.calibration_left_x, self.calibration_centre_x, self.calibration_right_x)  # type: ignore


@dataclass(frozen=True)
class DisplayConfig:
    """Where the portrait is drawn. The screen is opened once: changes take effect on restart
    (systemctl restart mona-edge), not on reload."""

    sink: str = _key(_Choice("auto", "pygame", "framebuffer", "fbdev", "file", "headless",
                             store={"framebuffer": "fbdev"}),
                     "auto",
                     "auto (KMS/DRM via pygame where its SDL has kmsdrm and a screen is connected, else "
                     "/dev/fb0; mona-edge doctor says which and why), pygame (KMS/DRM full screen), "
                     "framebuffer (/dev/fb0), file (a raw framebuffer-layout file: tests), headless (memory only)")
    device: str | None = _key(_DevicePath(), None, "framebuffer and auto: the framebuffer device (default /dev/fb0)",
                              "/dev/fb1")
    drm_card: int | None = _key(_Number(0, 15, integer=True), None,
                                   "pygame and auto: /dev/dri/cardN to use (default: pygame card0, auto the card "
                                   "with a connected output)", 1)
    rotation: int = _key(_Choice(0, 90, 180, 270), 0, "degrees clockwise the picture is turned on screen")
    width: int | None = _key(_Number(16, 8192, integer=True), None,
                                "screen width in pixels (required for file and headless)", 1080)
    height: int | None = _key(_Number(16, 8192, integer=True), None,
                                 "screen height in pixels (required for file and headless)", 1920)
    output: Path | None = _key(_PathRule(), None, "file: the file to write frames into", "/tmp/mona-edge.fb")

    @property
    def kind(self) -> str:
        return self.sink

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.width is None else (self.width, self.height)  # type: ignore[return-value]


_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")


def parse_schedule(text: str) -> tuple[int, int]:
    """``"23:00-07:00"`` as minutes of the day (start, end); the window may run over midnight. A
    ValueError for anything else (the config rule turns it into the one-line error)."""
    start, sep, end = text.strip().partition("-")
    a, b = _HHMM.fullmatch(start.strip()), _HHMM.fullmatch(end.strip())
    if not sep or a is None or b is None:
        raise ValueError(f"{text!r}: expected HH:MM-HH:MM")
    first, last = int(a[1]) * 60 + int(a[2]), int(b[1]) * 60 + int(b[2])
    if first == last:
        raise ValueError(f"{text!r}: start and end are the same time")
    return first, last


class _Schedule(_Rule):
    expected = 'a local time window "HH:MM-HH:MM" such as "23:00-07:00" (it may run over midnight)'

    def parse(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise _Invalid
        try:
            parse_schedule(value)
        except ValueError:
            raise _Invalid from None
        return value.strip()


class _CecDevice(_DevicePath):
    expected = 'a device path such as "/dev/cec0"'


@dataclass(frozen=True)
class ScreenConfig:
    """Screen power (edge/screen_power.py): the panel off while nobody is seen, on for the next viewer, who
    always finds the portrait redrawn at the current gaze. Presence is a followed viewer (a photograph the
    detector keeps finding does not count); a camera that is down never blanks the screen. A reload
    applies these keys."""

    idle_minutes: float = _key(_Number(0, 1440), 10.0,
                               "blank the screen when nobody has been seen for this many minutes (0: never "
                               "for absence alone)")
    night: str | None = _key(_Schedule(), None,
                             "local time window when the screen stays dark unless someone is seen (it blanks "
                             "a minute after they leave)", "23:00-07:00")
    panel: str = _key(_Choice("auto", "none"), "auto",
                      "auto: power the panel down the display sink's way (DPMS on the KMS/DRM output for "
                      "pygame, FBIOBLANK for framebuffer and file); none: leave the panel alone (CEC only)")
    cec_device: str | None = _key(_CecDevice(), None,
                                  "HDMI-CEC adapter: also put the TV in standby and wake it with cec-ctl "
                                  "(apt install v4l-utils)", "/dev/cec0")


@dataclass(frozen=True)
class PackConfig:
    """The gaze pack shown; provisioning switches the ``current`` symlink atomically."""

    path: Path = _key(_PathRule(), Path("/var/lib/mona-edge/packs/current"), "the gaze pack folder or archive")
    memory_budget_mb: int = _key(_Number(16, 65536, integer=True), 256,
                                 "MiB a pack may take to load (decoded frames at screen size, base, patches); "
                                 "a bigger pack is refused before decoding, the running one kept. 256 fits a "
                                 "Pi 3 (1 GB) with the running pack still loaded during a reload")


@dataclass(frozen=True)
class ServiceConfig:
    """The daemon's own settings. A reload applies log_level; the others take effect on restart
    (systemctl restart mona-edge): the socket is bound once, the watchdog and ready timeout are start-up
    settings."""

    status_socket: Path = _key(_PathRule(), Path("/run/mona-edge/status.sock"),
                               "Unix socket answering mona-edge status (no network listener)")
    socket_mode: int = _key(_FileMode(), 0o660, "permissions of the status socket (group: the service's group)")
    log_level: str = _key(_Choice("debug", "info", "warning", "error"), "info", "journal verbosity")
    watchdog: bool = _key(_Flag(), True, "feed systemd's watchdog (WatchdogSec) while the loop really runs")
    ready_timeout: float = _key(_Number(1, 3600), 30.0,
                                "seconds to wait for the camera before reporting ready anyway (degraded)")


SECTIONS: dict[str, type] = {
    "camera": CameraConfig,
    "detector": DetectorConfig,
    "motion": MotionConfig,
    "gaze": GazeConfig,
    "display": DisplayConfig,
    "screen": ScreenConfig,
    "pack": PackConfig,
    "service": ServiceConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``path`` is the file it came from (None: built-in defaults)."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    gaze: GazeConfig = field(default_factory=GazeConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    path: Path | None = field(default=None, compare=False)


# --- building and checking ----------------------------------------------------------------------------
def _unknown(where: str, key: str, allowed: Sequence[str]) -> ConfigError:
    guess = difflib.get_close_matches(key, allowed, n=1)
    hint = f' (did you mean "{guess[0]}"?)' if guess else ""
    return ConfigError(f'{where} unknown key {_shown(key)}{hint}: expected one of {", ".join(allowed)}')


def _build(cls: type, table: Any, where: str, prefix: str = "") -> Any:
    """One section (or nested table) from its TOML table; ``where`` is ``"file: [section]"``."""
    known = {f.name: f for f in fields(cls)}
    for key in table:
        if key not in known:
            raise _unknown(where, prefix + key, [prefix + k for k in known])
    values = {}
    for name, f in known.items():
        if name not in table:
            continue
        value = table[name]
        rule = f.metadata["rule"]
        if rule is None:  # a nested table with its own fields
            if not isinstance(value, dict):
                raise ConfigError(f"{where} {prefix}{name} = {_shown(value)}: expected a table such as "
                                  f"{_toml_value(_dataclass_dict(f.default))}")
            values[name] = _build(type(f.default), value, where, prefix=f"{prefix}{name}.")
            continue
        try:
            values[name] = rule.parse(value)
        except _Invalid:
            raise ConfigError(f"{where} {prefix}{name} = {rule.show(value)}: expected {rule.expected}") from None
    return cls(**values)


def _fail(where: str, key: str, value: Any, message: str) -> ConfigError:
    return ConfigError(f"{where} {key} = {_shown(value)}: {message}")


def _cross_check(cfg: Config, name: str) -> None:
    """Rules between keys: each names the key that is wrong and the one it depends on."""
    cam = cfg.camera
    at = f"{name}: [camera]"
    if cam.source == "file" and cam.path is None:
        raise ConfigError(f'{at} path: required when source = "video" (the video file to play)')
    if cam.source != "file" and cam.path is not None:
        raise _fail(at, "path", str(cam.path), f'only used when source = "video" (source is "{cam.source}")')
    if cam.source == "file" and cam.device is not None:
        raise _fail(at, "device", cam.device, 'not used when source = "video"; use path')
    if cam.source == "picamera2" and isinstance(cam.device, str):
        raise _fail(at, "device", cam.device, 'expected a camera number (integer >= 0) for source = "picamera2"')
    if cam.retry_max_s < cam.retry_initial_s:
        raise _fail(at, "retry_max_s", cam.retry_max_s, f"expected a number >= retry_initial_s ({cam.retry_initial_s})")

    d = cfg.display
    at = f"{name}: [display]"
    shown = "framebuffer" if d.sink == "fbdev" else d.sink
    if (d.width is None) != (d.height is None):
        missing = "height" if d.height is None else "width"
        raise ConfigError(f"{at} {missing}: required when {'width' if missing == 'height' else 'height'} is set")
    if d.sink in ("file", "headless") and d.width is None:
        raise ConfigError(f'{at} width: required (with height) when sink = "{shown}"')
    if d.sink == "file" and d.output is None:
        raise ConfigError(f'{at} output: required when sink = "file" (the file to write frames into)')
    for key, value, wanted in (("output", d.output, ("file",)), ("device", d.device, ("fbdev", "auto")),
                               ("drm_card", d.drm_card, ("pygame", "auto"))):
        if value is not None and d.sink not in wanted:
            want = " or ".join(f'"{"framebuffer" if w == "fbdev" else w}"' for w in wanted)
            raise _fail(at, key, value if not isinstance(value, Path) else str(value),
                        f'only used when sink = {want} (sink is "{shown}")')

    g = cfg.gaze
    at = f"{name}: [gaze]"
    cal = {k: getattr(g, f"calibration_{k}") for k in ("left_x", "centre_x", "right_x")}
    given = [k for k, v in cal.items() if v is not None]
    if given and len(given) != 3:
        missing = next(k for k, v in cal.items() if v is None)
        raise ConfigError(f"{at} calibration_{missing}: required with calibration_{given[0]} "
                          "(left_x, centre_x and right_x go together)")
    if given:
        left, c, r = cal["left_x"], cal["centre_x"], cal["right_x"]
        if not (left < c < r or left > c > r):
            raise _fail(at, "calibration_centre_x", c, f"expected a value strictly between calibration_left_x ({left}) "
                        f"and calibration_right_x ({r})")


def _from_data(data: Mapping[str, Any], name: str, path: Path | None) -> Config:
    for key, value in data.items():
        if key not in SECTIONS:
            guess = difflib.get_close_matches(key, list(SECTIONS), n=1)
            hint = f" (did you mean [{guess[0]}]?)" if guess else ""
            what = (f"unknown section [{_brief_key(key)}]" if isinstance(value, dict)
                    else f"key {_shown(key)} outside any section")
            raise ConfigError(f"{name}: {what}{hint}: expected sections "
                              + ", ".join(f"[{s}]" for s in SECTIONS))
    built = {}
    for section, cls in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: {section} = {_shown(table)}: expected a [{section}] table")
        built[section] = _build(cls, table, f"{name}: [{section}]")
    cfg = Config(**built, path=path)
    _cross_check(cfg, name)
    return cfg


#: Largest config file read. The commented default is about 10 KB; a bigger file is not a config (a log,
#: an image, /dev/zero behind a symlink) and is refused before it is parsed into memory.
MAX_CONFIG_BYTES = 1 << 20
#: Arrays or inline tables nested deeper than this are named in the "nested too deeply" message (a
#: mona-edge config nests two levels: a section, and camera_offset_mm's table in it).
_NESTING_SHOWN = 32
_TOKENS = re.compile(r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]',
                     re.S)


def _too_deep(text: str) -> str:
    """Where a document nests arrays or inline tables too deeply: " (line N, key K)", or "" if not found.

    Only to name the place in the error message: tomllib itself decides that the document is too deep
    (it recurses once per level and stops with RecursionError a few hundred levels down)."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > _NESTING_SHOWN:
                line_no = text.count("\n", 0, match.start()) + 1
                start = text.rfind("\n", 0, match.start()) + 1
                key = text[start:match.start()].split("=", 1)[0].strip() if "=" in text[start:match.start()] else ""
                return f" (line {line_no}" + (f", key {_brief_key(key)})" if key else ")")
        elif token in "]}":
            depth = max(0, depth - 1)
    return ""


def _read_data(path: Path) -> dict[str, Any]:
    toml = _require_toml()
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB: not a mona-edge config "
                              "(the commented default is about 10 KiB)")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses per nesting level: the document's fault, not ours
        raise ConfigError(f"{path}: not valid TOML here: arrays or inline tables nested too deeply"
                          f"{_too_deep(text)}; a mona-edge config nests at most 2 levels") from exc
    except ValueError as exc:  # tomllib lets int()'s own refusal through (a decimal integer > 4300 digits)
        reason = str(exc).split(":", 1)[0]
        raise ConfigError(f"{path}: not valid TOML here: a number too long to read ({reason})") from exc


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML of a config file, not validated: for code that keeps what it can of a bad config
    (safe mode at boot keeps its valid sections). Every way the file cannot be read or parsed (too big,
    not UTF-8, not TOML, nested past the parser's recursion, a number too long) is a :class:`ConfigError`
    naming the file, never a bare RecursionError or ValueError."""
    return _read_data(Path(path))


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file.

    ``None`` means :data:`DEFAULT_CONFIG_PATH`. A missing or empty file gives the defaults when it is the
    default location (a fresh install has none); a path named explicitly must exist, because a mistyped
    ``--config`` silently running on defaults would look like the config being ignored.
    """
    explicit = path is not None
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not p.exists():
        if explicit and p != DEFAULT_CONFIG_PATH:
            raise ConfigError(f"{p}: no such config file")
        return Config()
    if not p.is_file():
        raise ConfigError(f"{p}: not a file")
    return _from_data(_read_data(p), str(p), p)


def config_from_dict(data: Mapping[str, Any], name: str = "<config>") -> Config:
    """Validate already-parsed TOML data (tests, tools that build a config in memory)."""
    return _from_data(data, name, None)


def calibration_keys(left_x: float, centre_x: float, right_x: float,
                     frame_width: float | None = None) -> dict[str, Any]:
    """The ``[gaze]`` values ``mona-edge calibrate`` writes for three measured eye-midpoint positions.

    Positions are normalised camera X (0..1); pass ``frame_width`` to give them in camera pixels instead.
    Calibrating also selects ``mapping = "linear"``: calibration numbers that the default geometry mapping
    ignored would be exactly the kind of setting that silently does nothing.
    """
    xs = [float(v) for v in (left_x, centre_x, right_x)]
    if frame_width is not None:
        if not frame_width > 0:
            raise ConfigError(f"calibration: frame width {frame_width!r} must be positive")
        xs = [x / float(frame_width) for x in xs]
    return {"mapping": "linear", "calibration_left_x": round(xs[0], 4), "calibration_centre_x": round(xs[1], 4),
            "calibration_right_x": round(xs[2], 4)}


# --- writing TOML -------------------------------------------------------------------------------------
def _emit(data: Mapping[str, Any]) -> str:
    """A whole document: plain keys first, then one ``[section]`` per table (nested tables inline)."""
    lines: list[str] = []
    for key, value in data.items():
        if not isinstance(value, dict):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            if lines:
                lines.append("")
            lines.append(f"[{_toml_key(key)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def _dataclass_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _header_name(line: str) -> str | None:
    """The table name of a ``[a.b]`` header line (bare keys only), else None."""
    s = line.strip()
    if not s.startswith("[") or s.startswith("[["):
        return None
    end = s.find("]")
    if end < 0 or s[end + 1:].strip()[:1] not in ("", "#"):
        return None
    parts = [p.strip() for p in s[1:end].split(".")]
    if not all(p and all(c.isascii() and (c.isalnum() or c in "_-") for c in p) for p in parts):
        return None
    return ".".join(parts)


def _is_header(line: str) -> bool:
    return line.lstrip().startswith("[")


def _line_key(line: str) -> str | None:
    s = line.strip()
    if not s or s.startswith("#") or "=" not in s:
        return None
    key = s.split("=", 1)[0].strip()
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else None


def _edit_text(text: str, section: str, values: Mapping[str, Any]) -> str:
    """Set ``values`` in ``[section]`` by editing lines, so the user's comments and layout survive.

    Handles the plain layout people write; anything cleverer (multi-line values, dotted keys, inline
    tables for the section) is caught by the caller, which re-parses the result and falls back to
    re-emitting the whole file.
    """
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _header_name(line) == section), None)
    pending = dict(values)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(f"[{section}]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in pending.items())
        return "\n".join(lines) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if _is_header(lines[i])), len(lines))
    last_key_line = start
    for i in range(start + 1, end):
        key = _line_key(lines[i])
        if key is None:
            continue
        last_key_line = i
        if key in pending:
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = f"{indent}{_toml_key(key)} = {_toml_value(pending.pop(key))}"
    new = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in pending.items()]
    lines[last_key_line + 1:last_key_line + 1] = new
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: bytes, like: os.stat_result | None) -> None:
    """Write next to ``path`` then rename over it: a power cut leaves the old file or the new, never half.

    The new file takes the mode, owner and group of ``like`` (the file it replaces): ``sudo mona-edge
    calibrate`` must not leave a root-only config the service user can no longer read.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, (like.st_mode & 0o7777) if like is not None else 0o644)
        if like is not None and hasattr(os, "chown"):
            try:
                os.chown(tmp, like.st_uid, like.st_gid)
            except PermissionError:  # not root: the file stays ours, which it already was
                pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_config_values(path: str | Path, section: str, values: Mapping[str, Any]) -> Config:
    """Set ``values`` in ``[section]`` of the config at ``path``, keeping everything else; returns the result.

    The merged config is validated first, so a bad value never reaches the file. Lines are edited in
    place (comments survive); if the file's layout defeats that, the document is re-emitted from its parsed
    data (values survive, comments do not). The previous file is kept as ``<path>.bak`` and the new one
    replaces it atomically.
    """
    p = Path(path)
    if section not in SECTIONS:
        raise ConfigError(f"{p}: unknown section [{section}]: expected one of "
                          + ", ".join(f"[{s}]" for s in SECTIONS))
    toml = _require_toml()
    exists = p.exists()
    old_text = ""
    old_bytes = b""
    if exists:
        data = _read_data(p)  # a ConfigError naming the file if it cannot be read or parsed
        try:
            old_bytes = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
        old_text = old_bytes.decode("utf-8")
    else:
        data = {}
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    table = merged.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{p}: {section} = {_shown(table)}: expected a [{section}] table")
    table.update(values)
    config = _from_data(merged, str(p), p)

    text = _edit_text(old_text, section, values)
    try:
        faithful = toml.loads(text) == merged
    except toml.TOMLDecodeError:
        faithful = False
    if not faithful:
        text = _emit(merged)
    try:
        like = p.stat() if exists else None
        if exists:
            _atomic_write(p.with_name(p.name + ".bak"), old_bytes, like)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(p, text.encode("utf-8"), like)
    except OSError as exc:  # typically calibrate without sudo on /etc/mona-edge: say which file and why
        hint = " (try sudo)" if isinstance(exc, PermissionError) else ""
        raise ConfigError(f"{p}: cannot write: {exc.strerror or exc}{hint}; the config is unchanged") from exc
    return config


def dump_default_config() -> str:
    """The default config as commented TOML: every key, its default, and what it does.

    Optional keys without a default are shown commented out with an example value. Loading the text
    gives exactly the defaults (a test checks).
    """
    out = ["# mona-edge configuration: /etc/mona-edge/config.toml",
           "# Every key is optional; these are the defaults. Left/right are as seen by a viewer facing the",
           "# picture. Unknown keys are refused. Reload with: sudo systemctl reload mona-edge", ""]
    for section, cls in SECTIONS.items():
        doc = " ".join((cls.__doc__ or "").replace("``", "").split())
        out.extend(_comment(doc))
        out.append(f"[{section}]")
        for f in fields(cls):
            rule, text, example = f.metadata["rule"], f.metadata["doc"], f.metadata["example"]
            allowed = f" [{rule.expected}]" if rule is not None else ""
            out.extend(_comment(text + allowed))
            if rule is None:
                out.append(f"{f.name} = {_toml_value(_dataclass_dict(f.default))}")
            elif f.default is None:
                out.append(f"# {f.name} = {_toml_value(example)}")
            else:
                out.append(f"{f.name} = {_display_value(f.name, f.default, rule)}")
        out.append("")
    return "\n".join(out)


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, 104)]


def _display_value(name: str, value: Any, rule: _Rule) -> str:
    """Defaults written the way a person would type them (a file mode in octal)."""
    if isinstance(rule, _FileMode):
        return f"0o{value:o}"
    return _toml_value(value)


__all__ = [
    "DEFAULT_CONFIG_PATH", "ConfigError", "Config", "CameraConfig", "DetectorConfig", "GazeConfig", "Offset",
    "DisplayConfig", "PackConfig", "ServiceConfig", "SECTIONS", "load_config", "config_from_dict",
    "write_config_values", "dump_default_config", "calibration_keys", "read_toml", "MAX_CONFIG_BYTES",
]
