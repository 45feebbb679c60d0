"""Operating the frame over SSH: ``mona-edge run | status | snapshot | calibrate | doctor``.

Everything but ``run`` talks to the running daemon through its status socket (or, for ``doctor``, looks
at the machine): the daemon owns the camera and the screen, so no command opens either behind its back.

``edge.cli`` imports this module to register the commands, on every ``mona-edge`` call: so it imports only
the standard library and :mod:`edge.status` at the top, and each handler imports what it needs. Handlers
return an :class:`~edge.errors.ExitStatus` and raise :class:`~edge.errors.MonaEdgeError` for what the
user can fix; the CLI prints that as one line.
"""

from __future__ import annotations

import argparse
import base64
import grp
import json
import os
import pwd
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from edge.errors import (
    ConfigError,
    ExitStatus,
    ModelError,
    MonaEdgeError,
    NotRunningError,
    PackError,
    StatusError,
)
from edge.status import DEFAULT_SOCKET, query_status

#: The user the systemd unit runs the daemon as, and the groups it needs for camera and screen.
SERVICE_USER = "mona-edge"
NEEDED_GROUPS = ("video", "render")


# --- helpers -------------------------------------------------------------------------------------------
def _config_path(arg: Path | None) -> Path | None:
    """``--config`` if given, else the system config if it exists, else None (built-in defaults)."""
    from edge.config import DEFAULT_CONFIG_PATH

    if arg is not None:
        return arg
    return Path(DEFAULT_CONFIG_PATH) if Path(DEFAULT_CONFIG_PATH).is_file() else None


def _socket_path(args: argparse.Namespace) -> Path:
    """``--socket`` if given, else the one in the config, else the default.

    A config named with ``--config`` that cannot be read is an error, not a quiet fall back to the
    default socket: under a prefix (or with a moved socket) that would ask some other daemon, or none,
    and report it as not running. Only the implicit system config may be unreadable (a fresh install).
    """
    if getattr(args, "socket", None):
        return Path(args.socket)
    from edge.config import load_config

    explicit = getattr(args, "config", None)
    try:
        return Path(load_config(_config_path(explicit)).service.status_socket)
    except ConfigError:
        if explicit is not None:
            raise
        return DEFAULT_SOCKET


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h}h {m}m"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s}s" if m else f"{s}s"


def _num(value, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


# --- run -----------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> ExitStatus:
    """The daemon; a bad config, pack, model or screen is a MonaEdgeError: one line in the journal."""
    from edge.service import run_daemon

    return ExitStatus(run_daemon(_config_path(args.config)))


# --- status --------------------------------------------------------------------------------------------
def format_status(s: dict) -> str:
    """The human form of the daemon's status object."""
    cam = s.get("camera") or {}
    lines = [f"mona-edge {s.get('version', '?')}: {s.get('state')}, up {_duration(s.get('uptime_s') or 0)}, "
             f"pid {s.get('pid')}"]
    cam_line = f"{cam.get('name')} {cam.get('state')}"
    if cam.get("state") != "ok" and cam.get("retry_in_s") is not None:
        cam_line += f" (next try in {cam['retry_in_s']:.0f} s)"
    cam_line += f", {cam.get('failures', 0)} failure(s), {cam.get('recoveries', 0)} recovery(ies)"
    lines.append(f"  camera    {cam_line}")
    detect = s.get("detect_ms") or {}
    lines.append(f"  speed     {_num(s.get('fps'), ' fps')}, detection p50 {_num(detect.get('p50'), ' ms')} "
                 f"p95 {_num(detect.get('p95'), ' ms')}")
    stages = s.get("stage_ms") or {}
    # capture includes waiting for the camera's next frame: at 15 fps it is mostly that wait
    lines.append("  stages    " + ", ".join(f"{k} {_num(stages.get(k), ' ms', 2)}"
                                           for k in ("capture", "detect", "gaze", "draw"))
                 + " (capture includes waiting for the next frame)")
    if s.get("viewer_present"):
        viewer = f"present, eyes at x={_num(s.get('viewer_x'), ' px', 0)}"
        if s.get("angle_deg") is not None:
            viewer += f", {s['angle_deg']:+.1f} deg"
    else:
        viewer = "nobody"
    lines.append(f"  viewer    {viewer}")
    lines.append(f"  portrait  frame {s.get('index')} of 0..{(s.get('frame_count') or 1) - 1}, pack {s.get('pack')}")
    if s.get("model"):
        lines.append(f"  model     {s['model']}")
    errors = s.get("errors") or {}
    lines.append("  errors    " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
    if s.get("last_error"):
        lines.append(f"  last      {s['last_error']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> ExitStatus:
    """Not running is an answer here, not an error: it is printed (as JSON with ``--json``, for scripts)."""
    path = _socket_path(args)
    try:
        status = query_status(path, timeout=args.timeout)
    except NotRunningError as exc:
        if args.json:
            print(json.dumps({"state": "NOT_RUNNING", "error": str(exc)}))
        else:
            print(f"mona-edge is not running: {exc}", file=sys.stderr)
        return ExitStatus.NOT_RUNNING
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return ExitStatus.OK


# --- snapshot ------------------------------------------------------------------------------------------
def cmd_snapshot(args: argparse.Namespace) -> ExitStatus:
    path = _socket_path(args)
    source = "camera" if args.camera else "display"
    reply = query_status(path, timeout=args.timeout, request={"command": "snapshot", "source": source})
    data = base64.b64decode(reply["png_base64"])
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as exc:
        raise MonaEdgeError(f"{out}: cannot write the snapshot: {exc.strerror or exc}") from exc
    what = "camera frame (debug capture)" if args.camera else f"screen (frame {reply.get('index')})"
    print(f"{out}: {what}, {len(data)} bytes")
    return ExitStatus.OK


# --- calibrate -----------------------------------------------------------------------------------------
POSITIONS = ("left", "centre", "right")


def sample_viewer_x(path: Path, seconds: float = 1.5, interval: float = 0.1,
                    query: Callable[..., dict] = query_status) -> tuple[float, int]:
    """Median eye-midpoint X (camera px) over ``seconds`` of daemon status, and the camera frame width."""
    xs: list[float] = []
    width = 0
    end = time.monotonic() + seconds
    while True:
        status = query(path, timeout=2.0)
        if status.get("viewer_present") and status.get("viewer_x") is not None:
            xs.append(float(status["viewer_x"]))
            width = int(status.get("frame_width") or width)
        if time.monotonic() >= end:
            break
        time.sleep(interval)
    if not xs:
        raise MonaEdgeError("nobody seen: stand in front of the camera, facing the portrait, and try again")
    xs.sort()
    return xs[len(xs) // 2], width


def calibration_values(left: float, centre: float, right: float, frame_width: float | None = None) -> dict:
    """The ``[gaze]`` keys written for three measured viewer positions (eye-midpoint X, camera px when
    ``frame_width`` is given, else 0..1 of the frame width)."""
    from edge.config import calibration_keys

    values = (float(left), float(centre), float(right))
    if not (values[0] < values[1] < values[2] or values[0] > values[1] > values[2]):
        raise ConfigError(f"calibration: left {values[0]:g}, centre {values[1]:g}, right {values[2]:g} "
                          "are not in order; stand clearly apart at each position")
    spread = abs(values[2] - values[0]) / (frame_width or 1.0)
    if spread < 0.05:
        raise ConfigError(f"calibration: left and right are only {spread:.0%} of the frame apart; stand farther apart")
    return calibration_keys(*values, frame_width=frame_width)


def read_calibration(config) -> tuple[float, float, float] | None:
    """The calibration in a loaded config, ``(left, centre, right)`` as fractions of the frame width."""
    return config.gaze.calibration


def cmd_calibrate(args: argparse.Namespace, stdin: TextIO = sys.stdin) -> ExitStatus:
    from edge.config import write_config_values

    config = args.config or _config_path(None)
    if config is None:
        from edge.config import DEFAULT_CONFIG_PATH

        config = Path(DEFAULT_CONFIG_PATH)
    if args.non_interactive:
        left, centre, right = args.non_interactive
        width = args.frame_width
    else:
        path = _socket_path(args)
        try:
            query_status(path)
        except NotRunningError as exc:
            raise NotRunningError(f"{exc}; start it first: sudo systemctl start mona-edge") from exc
        measured = {}
        for position in POSITIONS:
            where = {"left": "at the LEFT edge of where people stand to look at the portrait",
                     "centre": "straight in front of the portrait",
                     "right": "at the RIGHT edge of where people stand"}[position]
            print(f"Stand {where}, facing the portrait, then press Enter (Ctrl-C to abort).", flush=True)
            if not stdin.readline():
                raise MonaEdgeError("calibration aborted (end of input); the config is unchanged")
            x, width = sample_viewer_x(path, seconds=args.seconds)
            measured[position] = x
            print(f"  {position}: eyes at x={x:.0f} px of {width}", flush=True)
        left, centre, right = measured["left"], measured["centre"], measured["right"]
    values = calibration_values(left, centre, right, frame_width=width)
    write_config_values(config, "gaze", values)
    print(f"{config}: [gaze] " + ", ".join(f"{k} = {v}" for k, v in values.items()))
    print("Apply it with: sudo systemctl reload mona-edge")
    return ExitStatus.OK


# --- doctor --------------------------------------------------------------------------------------------
class Check:
    """One doctor line: a name, OK or FAIL, what was found, and how to fix it."""

    def __init__(self, name: str, ok: bool, detail: str, fix: str = "") -> None:
        self.name, self.ok, self.detail, self.fix = name, ok, detail, fix

    def as_dict(self) -> dict:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}

    def __str__(self) -> str:
        line = f"{'OK  ' if self.ok else 'FAIL'}  {self.name:<10} {self.detail}"
        return line if self.ok or not self.fix else f"{line}\n      {'':<10} fix: {self.fix}"


def _user_groups(user: str) -> set | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    try:
        names.add(grp.getgrgid(entry.pw_gid).gr_name)
    except KeyError:
        pass
    return names


def _access(path: Path, write: bool = True) -> bool:
    return os.access(path, os.R_OK | (os.W_OK if write else 0))


def doctor_checks(config_arg: Path | None, socket_arg: Path | None = None,
                  service_user: str = SERVICE_USER) -> list[Check]:
    """Every check, in the order an installer would fix them."""
    from edge.config import load_config

    checks: list[Check] = []
    config_path = _config_path(config_arg)
    try:
        config = load_config(config_path)
        checks.append(Check("config", True, f"{config_path or 'built-in defaults'}"))
    except ConfigError as exc:
        checks.append(Check("config", False, str(exc), "edit the file; the message names the key and the allowed values"))
        return checks

    daemon: dict | None = None
    socket_path = Path(socket_arg) if socket_arg else Path(config.service.status_socket)
    try:
        daemon = query_status(socket_path, timeout=2.0)
        checks.append(Check("daemon", True, f"{daemon.get('state')} on {socket_path}, up {_duration(daemon.get('uptime_s') or 0)}"))
    except NotRunningError as exc:
        checks.append(Check("daemon", False, str(exc), "sudo systemctl enable --now mona-edge; journalctl -u mona-edge"))
    except StatusError as exc:
        checks.append(Check("daemon", False, str(exc), "journalctl -u mona-edge"))
    safe_mode = daemon.get("safe_mode") if daemon is not None else None
    if isinstance(safe_mode, dict):  # running, but on defaults for what it could not use (edge.service)
        checks.append(Check("safe mode", False, f"since {safe_mode.get('since')}: {safe_mode.get('reason')}",
                            "fix what it names (the lines below say more), then: sudo systemctl reload mona-edge"))

    checks.append(_check_model(config))
    checks.append(_check_pack(config))
    checks.append(_check_camera(config, daemon))
    checks.extend(_check_display(config, daemon))
    checks.append(_check_screen_power(config, daemon))
    checks.append(_check_groups(config, service_user))
    checks.append(_check_socket_dir(socket_path, daemon))
    return checks


def _check_screen_power(config, daemon: dict | None) -> Check:
    """``[screen]``: when the screen blanks, what the running daemon reports, and a configured CEC adapter
    that ``cec-ctl`` cannot reach (a FAIL: the TV would stay on)."""
    import shutil

    s = config.screen
    when = [f"after {s.idle_minutes:g} min with nobody seen"] if s.idle_minutes > 0 else []
    when += [f"at night ({s.night})"] if s.night else []
    detail = "blanks " + " and ".join(when) if when else "never blanks ([screen] idle_minutes = 0, no night)"
    running = daemon.get("screen") if daemon is not None else None
    errors = running.get("errors") or [] if isinstance(running, dict) else []
    if isinstance(running, dict):
        detail += f"; now {running.get('state')}" + (f" ({running.get('why')})" if running.get("why") else "")
        detail += f", by {', '.join(running.get('by') or []) or 'nothing this display can do'}"
    if s.cec_device and shutil.which("cec-ctl") is None:
        return Check("screen", False, f"{detail}; cec_device {s.cec_device}: cec-ctl is not installed",
                     "sudo apt install v4l-utils")
    if s.cec_device and not os.path.exists(s.cec_device):
        return Check("screen", False, f"{detail}; cec_device {s.cec_device}: no such CEC adapter",
                     "check the HDMI cable and the KMS overlay (vc4-kms-v3d has CEC), or remove cec_device")
    if errors:
        return Check("screen", False, f"{detail}; " + "; ".join(map(str, errors)), "journalctl -u mona-edge")
    return Check("screen", True, detail)


def _check_model(config) -> Check:
    try:
        from edge.detector import FaceDetector

        d = config.detector
        detector = FaceDetector(d.model, d.range, threads=1, sha256=d.sha256, precision=d.precision)
        detail = f"{detector.model_path} ({detector.runtime_name}; {detector.choice.why})"
        if d.crop:  # the crops' short-range model is always a bundled one, chosen the same way
            crop = FaceDetector(None, "short", threads=1, precision=d.precision)
            detail += f"; crops: {crop.model_path.name} ({crop.choice.why})"
        return Check("model", True, detail)
    except (ModelError, ImportError) as exc:  # ImportError: a dependency of the detector is not installed
        return Check("model", False, str(exc), "reinstall mona-edge (bundles the models) or fix [detector] model or precision; "
                     "the runtime is ai-edge-litert (pip) or tflite-runtime")


def _check_pack(config) -> Check:
    try:
        from edge.pack import load_pack

        pack = load_pack(config.pack.path)
        return Check("pack", True, f"{pack.name}: {pack.frame_count} frames from {config.pack.path}, checksums verified")
    except PackError as exc:
        return Check("pack", False, str(exc), "re-provision the pack (mona-edge provision) or fix [pack] path")


def _check_camera(config, daemon: dict | None) -> Check:
    cam = config.camera
    if daemon is not None:  # the daemon holds the camera: ask it rather than fight over the device
        state = (daemon.get("camera") or {})
        ok = state.get("state") == "ok"
        detail = f"{state.get('name')} {state.get('state')} (in use by the daemon)"
        if not ok and state.get("last_error"):
            detail += f": {state['last_error']}"
        return Check("camera", ok, detail, "" if ok else "check the ribbon cable or USB; libcamera-hello --list-cameras")
    if cam.source == "picamera2":
        try:
            import picamera2  # noqa: F401  (type: ignore[import-not-found])
        except ImportError:
            return Check("camera", False, "picamera2 is not importable",
                         "sudo apt install python3-picamera2; make the venv with --system-site-packages")
        nodes = sorted(Path("/dev").glob("video*")) + sorted(Path("/dev").glob("media*"))
        if not nodes:
            return Check("camera", False, "no /dev/video* or /dev/media* nodes", "connect the camera; check camera_auto_detect=1 in config.txt")
        denied = [str(n) for n in nodes if not _access(n)]
        if denied:
            return Check("camera", False, f"no access to {', '.join(denied[:3])}", "run as a member of the video group")
        return Check("camera", True, f"picamera2 importable, {len(nodes)} camera device node(s)")
    if cam.source == "opencv":
        device = str(cam.device if cam.device is not None else 0)
        node = Path(device if device.startswith("/dev/") else f"/dev/video{device}")
        if not node.exists():
            return Check("camera", False, f"{node}: no such device", "plug in the USB camera; ls /dev/video*; set [camera] device")
        if not _access(node):
            return Check("camera", False, f"{node}: permission denied", "add the user to the video group")
        return Check("camera", True, f"{node} accessible")
    path = Path(str(cam.path))
    if not path.is_file():
        return Check("camera", False, f"{path}: no such video file", "fix [camera] path")
    return Check("camera", True, f"video file {path}")


#: What the doctor tells a Pi that lacks a pygame with KMS/DRM (the OS's is linked to an SDL that has it).
OS_PYGAME_FIX = "sudo apt install python3-pygame (the OS's: its SDL has kmsdrm; PyPI's wheel has not)"
#: Variables of a desktop login that the service (started by systemd) does not have.
DESKTOP_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY")


def _check_sdl(required: bool) -> Check:
    """SDL's compiled video drivers, asked of the SDL library pygame loads (edge.sdl_drivers)."""
    from edge.errors import DisplayError
    from edge.sdl_drivers import sdl_video

    try:
        video = sdl_video()
    except DisplayError as exc:
        return Check("sdl", not required, str(exc), OS_PYGAME_FIX if required else "")
    detail = f"pygame {video.pygame}, SDL {video.version} ({video.library}): video drivers {', '.join(video.drivers)}"
    if "kmsdrm" in video.drivers:
        return Check("sdl", True, detail)
    return Check("sdl", not required, detail + " (no kmsdrm: cannot drive a console screen)",
                 OS_PYGAME_FIX + "; remove a pip-installed pygame from the venv" if required else "")


def _check_display(config, daemon: dict | None = None) -> list[Check]:
    d = config.display
    if d.kind in ("headless", "file"):
        return [Check("display", True, f"{d.kind} (nothing on a screen)")]
    if d.kind == "fbdev":  # the config stores "framebuffer" under the display module's name
        return [_check_framebuffer(Path(d.device or "/dev/fb0"))]
    if d.kind == "auto":
        chosen = daemon.get("display") if daemon is not None else None
        if isinstance(chosen, str):  # the daemon says what auto chose when it started (edge.display.choice_of)
            return [_check_sdl(required=False), Check("display", True, f"{chosen} (in use by the daemon)")]
        return [_check_sdl(required=False), _check_auto(config)]
    checks = [_check_sdl(required=not any(os.environ.get(v) for v in DESKTOP_VARIABLES))]
    cards = sorted(Path("/dev/dri").glob("card*"))
    if not cards:
        return checks + [Check("display", False, "no /dev/dri/card*",
                               "enable KMS: dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt")]
    denied = [str(c) for c in cards if not _access(c)]
    if denied:
        return checks + [Check("display", False, f"no access to {', '.join(denied)}",
                               "add the user to the video and render groups")]
    return checks + [Check("display", True, f"pygame, {', '.join(c.name for c in cards)} accessible")]


def _check_framebuffer(node: Path, chosen: str = "") -> Check:
    if not node.exists():
        return Check("display", False, f"{chosen}{node}: no such framebuffer",
                     "enable the display (dtoverlay) or use display kind pygame (KMS/DRM)")
    if not _access(node):
        return Check("display", False, f"{chosen}{node}: permission denied", "add the user to the video group")
    return Check("display", True, f"{chosen}{node} writable")


def _check_auto(config) -> Check:
    """Which sink ``auto`` will use and why, judged as the service sees the machine: started by systemd,
    it has no desktop session's DISPLAY or WAYLAND_DISPLAY even when the doctor's shell has."""
    from edge.display import DisplayError, choose_sink

    d = config.display
    environ = {k: v for k, v in os.environ.items() if k not in DESKTOP_VARIABLES}
    try:
        choice = choose_sink(device=d.device, drm_card=d.drm_card, environ=environ)
    except DisplayError as exc:
        return Check("display", False, str(exc), f"connect and power on the screen; {OS_PYGAME_FIX}")
    chosen = f"auto will use {choice}"
    if choice.sink == "fbdev":
        node = Path(str(choice.device))
        if not _access(node):  # it exists (choose_sink checked)
            return Check("display", False, f"{chosen}; but {node}: permission denied", "add the user to the video group")
        return Check("display", True, f"{chosen} ({node} writable)")
    if choice.drm_card is not None:
        node = Path(f"/dev/dri/card{choice.drm_card}")
        if not node.exists():
            return Check("display", False, f"{chosen}; but {node} does not exist",
                         "enable KMS: dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt")
        if not _access(node):
            return Check("display", False, f"{chosen}; but {node}: permission denied",
                         "add the user to the video and render groups")
        return Check("display", True, f"{chosen} ({node} accessible)")
    return Check("display", True, chosen)


def _check_groups(config, service_user: str) -> Check:
    groups = _user_groups(service_user)
    who = service_user
    if groups is None:  # no service user on this machine (a dev box): check whoever runs the doctor
        who = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            return Check("groups", True, f"running as root; service user {service_user!r} not created yet")
        groups = {grp.getgrgid(g).gr_name for g in os.getgroups() if _gid_exists(g)}
    needed = [g for g in NEEDED_GROUPS if _group_exists(g)]
    missing = [g for g in needed if g not in groups]
    if missing:
        return Check("groups", False, f"{who} is not in {', '.join(missing)}",
                     f"sudo usermod -aG {','.join(missing)} {who}")
    absent = [g for g in NEEDED_GROUPS if g not in needed]
    note = f" (no {', '.join(absent)} group on this system)" if absent else ""
    return Check("groups", True, f"{who} in {', '.join(needed) or 'no needed groups'}{note}")


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _gid_exists(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
        return True
    except KeyError:
        return False


def _check_socket_dir(socket_path: Path, daemon: dict | None) -> Check:
    if daemon is not None:
        mode = socket_path.stat().st_mode & 0o777
        ok = not mode & 0o007
        return Check("socket", ok, f"{socket_path} mode {mode:04o}",
                     "" if ok else "the socket must not be world-accessible; restart the daemon")
    folder = socket_path.parent
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return Check("socket", True, f"{folder} writable (the daemon can create {socket_path.name})")
    return Check("socket", False, f"{folder}: missing or not writable",
                 "the unit's RuntimeDirectory=mona-edge creates it; or set [service] status_socket")


def cmd_doctor(args: argparse.Namespace) -> ExitStatus:
    checks = doctor_checks(args.config, args.socket)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        for check in checks:
            print(check)
        failed = sum(not c.ok for c in checks)
        print(f"{len(checks) - failed} OK, {failed} FAIL")
    return ExitStatus.OK if all(c.ok for c in checks) else ExitStatus.ERROR


# --- registration --------------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, socket: bool = True) -> None:
    parser.add_argument("--config", type=Path, help="config file (default: /etc/mona-edge/config.toml if present)")
    if socket:
        parser.add_argument("--socket", type=Path, help="status socket (default: from the config)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the daemon (what the systemd unit starts)",
                              description="Camera -> detector -> gaze -> screen until SIGTERM; SIGHUP reloads.")
    _common(p, socket=False)
    p.set_defaults(handler=cmd_run)

    p = subparsers.add_parser("status", help="what the running daemon is doing",
                              description="Ask the daemon over its status socket; exit "
                              f"{int(ExitStatus.NOT_RUNNING)} if it is not running.")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the raw JSON object")
    p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("snapshot", help="save what the screen shows now as PNG",
                              description="The daemon writes its display as PNG; with --camera, one camera "
                              "frame instead (a debug capture: the only way a camera frame reaches a disk).")
    p.add_argument("out", type=Path, help="output PNG")
    p.add_argument("--camera", action="store_true", help="save the current camera frame (debug capture)")
    p.add_argument("--timeout", type=float, default=5.0)
    _common(p)
    p.set_defaults(handler=cmd_snapshot)

    p = subparsers.add_parser("calibrate", help="stand left, centre, right: teaches the frame where you are",
                              description="Guided calibration over SSH; writes [gaze] calibration to the config.")
    _common(p)
    p.add_argument("--seconds", type=float, default=1.5, help="how long to watch each position")
    p.add_argument("--non-interactive", nargs=3, type=float, metavar=("LEFT", "CENTRE", "RIGHT"),
                   help="write these eye-midpoint X values without asking (0..1 of the frame width, or "
                   "camera px with --frame-width)")
    p.add_argument("--frame-width", type=float, help="with --non-interactive: the values are pixels of this width")
    p.set_defaults(handler=cmd_calibrate)

    p = subparsers.add_parser("doctor", help="check camera, display, model, pack, permissions",
                              description="Each check OK or FAIL with a fix; exit 1 if any failed.")
    _common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_doctor)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge.commands ...`` is ``mona-edge ...``: the same parser, logging and error model."""
    from edge.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
