"""Memory and start-up of the daemon: what a real ``mona-edge run`` costs, measured from outside it.

A real ``mona-edge run`` subprocess (the installed console script) with a video-file camera (the bundled
clip, paced, looping), the default detector and pack, and a framebuffer-file sink at 1080x1920 (the
screen the issue's 100 MB goal is for). Printed:

* the daemon's RSS: ``VmHWM`` (peak) and ``VmRSS`` (now) from its ``/proc/<pid>/status``, after it has
  run the clip for a few seconds, with ``RssAnon``/``RssFile`` (anonymous memory is ours; file-backed
  is mostly shared libraries), and the same RSS by mapping from its ``/proc/<pid>/smaps`` (which library,
  the heap, the framebuffer file). What the sink keeps mapped of the framebuffer *file* is page cache
  counted in the daemon's RSS: since edge/framebuffer.py maps only a patch's rows, 0.25 MiB for the
  default pack (it was the whole screen's 8 MiB at 1080x1920x32 bpp; how much of a real ``/dev/fb0``
  mapping counts depends on the driver: none where it is mapped by PFN, all of it where fbdev emulation
  backs it with ordinary pages), so the figures are printed with and without that mapping;
* time from exec to the portrait on screen (the framebuffer file polled from outside), and to the first
  camera frame through the pipeline (the status socket's ``frames``);
* ``python -X importtime`` of the same ``mona-edge run``: total import time and the biggest imports, and
  which of the modules the daemon has no use for it loaded (there should be none);
* pack load: tracemalloc's peak during :func:`edge.pack.load_pack` (numpy's arrays are traced) and the
  process's VmHWM growth, against the loaded pack's own size (``GazePack.nbytes``), for the default pack
  and for FOMM-like ones (33 head-sized changes, as patches and as whole frames), each in a fresh process.

``--clip i420`` plays the clip as raw I420 (.avi, made with OpenCV first): FFmpeg then only demuxes
(0.24 ms a frame), closer to a Pi camera's hand-over than the default H.264/MPEG-4 decode, whose
decoder's code and buffers are the video file's cost, not the daemon's on a Pi.

``--against REV`` measures a git revision's ``edge/`` (unpacked with ``git archive``, nothing checked
out) in the same run, beside this tree: the peer the figures are compared with. Figures are of this
machine (a shared one: start-up times vary by tens of ms between runs); the ratios (peak / loaded) and
the differences between trees are what carries over to a Pi.

    .venv/bin/python tests/bench/memory.py [--clip mp4|i420] [--rev REV] [--against REV]

(``--rev REV``: measure that revision, unpacked the same way, instead of this checkout.)
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)
MONA_EDGE = PYTHON.parent / "mona-edge"
SCREEN = (1080, 1920)
RUN_SECONDS = 8.0
ROUNDS = 5
PYCACHE = Path(tempfile.gettempdir()) / "mona-edge-bench-pycache"
#: Modules ``mona-edge run`` has no use for: other commands', the workstation's, test tools.
UNUSED = re.compile(r"^(provisioning|edge\.(demo|detect_cli|viewerclip|install|images)|torch|skimage|"
                    r"matplotlib|importlib\.metadata|email|csv|zipfile|_?hashlib)(\.|$)")


def cpu_features() -> str:
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimddp")
    return ", ".join(f for f in wanted if f in flags) or "none of " + "/".join(wanted)


def proc_status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/<pid>/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


CLIP = REPO / "assets" / "clips" / "viewer-walk.mp4"


def write_config(folder: Path, clip: Path = CLIP) -> tuple[Path, Path, Path]:
    fb, sock = folder / "fb", folder / "status.sock"
    cfg = folder / "config.toml"
    cfg.write_text("\n".join([
        "[camera]", 'source = "video"', f'path = "{clip}"',
        "realtime = true", "loop = true", "",
        "[display]", 'sink = "file"', f"width = {SCREEN[0]}", f"height = {SCREEN[1]}", f'output = "{fb}"', "",
        "[pack]", f'path = "{REPO / "assets" / "packs" / "default"}"', "",
        "[service]", f'status_socket = "{sock}"', "watchdog = false", ""]))
    return cfg, fb, sock


def _portrait_shown(fb: Path) -> bool:
    """Whether the file sink holds a picture: a row through the portrait's middle is not all zero."""
    try:
        with open(fb, "rb") as f:
            f.seek(SCREEN[0] * 4 * (SCREEN[1] // 2))
            return any(f.read(SCREEN[0] * 4))
    except OSError:
        return False


def _frames(sock: Path) -> int:
    sys.path.insert(0, str(REPO))
    from edge.status import query_status

    try:
        return int(query_status(sock, timeout=0.5).get("frames") or 0)
    except Exception:
        return 0


def launcher(tree: Path | None) -> list[str]:
    """This checkout's ``mona-edge`` console script, or the same two lines it runs with ``tree``'s
    ``edge`` first on the path (a peer revision, unpacked by ``git archive``)."""
    if tree is None:
        return [str(MONA_EDGE)]
    return ["-c", f"import sys; sys.path.insert(0, {str(tree)!r}); from edge.cli import main; sys.exit(main())"]


#: RSS by mapping: (row, test on the mapping's path), the first that matches; anonymous ones by name.
FAMILIES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("OpenCV's bundled FFmpeg (libav*, libsw*, libvpx)",
     lambda p: "opencv" in p and re.search(r"/lib(av|sw|vpx)", p) is not None),
    ("OpenCV (cv2 and its other bundled libraries: OpenBLAS, gfortran, OpenSSL 1.1, png)",
     lambda p: "/cv2/" in p or "opencv" in p),
    ("LiteRT", lambda p: "ai_edge_litert" in p or "tflite_runtime" in p),
    ("numpy (and its OpenBLAS)", lambda p: "/numpy" in p),
    ("libpython", lambda p: "libpython" in p),
    ("the system's libcrypto/libssl (hashlib's OpenSSL)", lambda p: re.search(r"/lib(crypto|ssl)\.so", p) is not None),
    ("other shared libraries and Python extension modules", lambda p: p.startswith("/")),
)


def smaps_rss(pid: int, fb: Path) -> dict[str, int]:
    """kB of RSS by mapping family (:data:`FAMILIES`, the framebuffer file, the heap, other anonymous)."""
    out: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:  # a mapping's header line
            path = fields[5] if len(fields) > 5 else ""
            if path == str(fb):
                name = "the framebuffer file"
            elif path == "[heap]":
                name = "[heap] (malloc's main arena)"
            elif not path.startswith("/"):
                name = "other anonymous (Python's arenas, big arrays, threads' arenas and stacks)"
            else:
                name = next((row for row, match in FAMILIES if match(path)), path)
        elif fields and fields[0] == "Rss:":
            out[name] = out.get(name, 0) + int(fields[1])
    return out


def i420_clip(folder: Path) -> Path:
    """The bundled clip as raw I420 in an .avi (OpenCV's fourcc "I420"), at its own frame rate."""
    import cv2

    cap = cv2.VideoCapture(str(CLIP))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    out = folder / "viewer-walk-i420.avi"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"I420"), fps, size)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(frame)
    writer.release()
    cap.release()
    return out


def run_daemon(importtime: bool = False, tree: Path | None = None, clip: Path = CLIP) -> dict:
    """One real ``mona-edge run``; its figures."""
    with tempfile.TemporaryDirectory(prefix="me-bench-", dir="/tmp") as tmp:
        cfg, fb, sock = write_config(Path(tmp), clip)
        argv = [str(PYTHON)] + (["-X", "importtime"] if importtime else []) + launcher(tree)
        # Bytecode cached, as a pip install leaves it (this environment may say not to write any: then
        # every start would compile every module from source).
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "PYTHONDONTWRITEBYTECODE")}
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv + ["run", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env)
        out: dict = {}
        try:
            while not _portrait_shown(fb):
                if proc.poll() is not None:
                    raise RuntimeError(f"mona-edge run ended: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.002)
            out["portrait_s"] = time.perf_counter() - t0
            if importtime:
                return out
            while _frames(sock) == 0:
                if proc.poll() is not None or time.perf_counter() - t0 > 60:
                    raise RuntimeError("no camera frame through the pipeline within 60 s")
                time.sleep(0.01)
            out["first_frame_s"] = time.perf_counter() - t0
            time.sleep(RUN_SECONDS)
            out["frames"] = _frames(sock)
            out["status"] = proc_status(proc.pid)
            out["smaps"] = smaps_rss(proc.pid, fb)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            out["stderr"] = err
        return out


def importtime_table(stderr: str) -> tuple[float, list[tuple[float, str]], list[str]]:
    """Total import seconds (top-level imports' cumulative times), the biggest top-level imports, and every
    module imported."""
    top: list[tuple[float, str]] = []
    names = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        names.append(m.group(4))
        if len(m.group(3)) == 1:
            top.append((int(m.group(2)) / 1e6, m.group(4)))
    return sum(t for t, _ in top), sorted(top, reverse=True), names


PACK_PROBE = r"""
import json, sys, tracemalloc
sys.path.insert(0, sys.argv[2])
import numpy, cv2, PIL.Image
from edge import pack as P
def status():
    return {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.rstrip().endswith('kB')}
before = status()
tracemalloc.start()
loaded = P.load_pack(sys.argv[1], screen_size=(1080, 1920))
current, peak = tracemalloc.get_traced_memory()
after = status()
print(json.dumps({"nbytes": loaded.nbytes, "peak": peak, "held": current, "frames": loaded.frame_count,
                  "rect": list(loaded.rect), "hwm_growth_kb": after["VmHWM"] - before["VmRSS"],
                  "rss_growth_kb": after["VmRSS"] - before["VmRSS"]}))
"""


def fomm_like_pack(folder: Path, whole_frames: bool) -> Path:
    """33 head-sized changes (a FOMM pack moves the whole head, not only the eyes): a 460x560 region of the
    default portrait's canvas, different everywhere in every frame; stored as patches, or as whole frames
    (``patch`` None in the manifest)."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(REPO))
    from edge.pack import read_manifest, write_pack

    default = REPO / "assets" / "packs" / "default"
    manifest = read_manifest(default)
    base = np.asarray(Image.open(default / "base.png").convert("RGB"))
    x, y, w, h = 310, 60, 460, 560
    rng = np.random.default_rng(0)
    head = base[y:y + h, x:x + w].astype(np.int16)
    frames = []
    for _ in range(33):
        moved = np.clip(head + rng.integers(-12, 13, head.shape), 0, 255).astype(np.uint8)
        if whole_frames:
            frame = base.copy()
            frame[y:y + h, x:x + w] = moved
            moved = frame
        frames.append(moved)
    name = "fomm-like-" + ("whole" if whole_frames else "patches")
    return write_pack(folder / name, base=base, frames=frames, patch=None if whole_frames else (x, y, w, h),
                      name=name, eyes=manifest.eyes, generator={"method": "bench", "parameters": {}},
                      credits=[{"work": "bench", "author": "-", "licence": "-", "source": "-"}])


def pack_load(path: Path, tree: Path) -> dict:
    done = subprocess.run([str(PYTHON), "-c", PACK_PROBE, str(path), str(tree)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def mib(n: float) -> str:
    return f"{n / (1 << 20):6.1f} MiB"


def daemon_figures(trees: dict[str, Path | None], rounds: int = ROUNDS,
                   clip: Path = CLIP) -> dict[str, dict[str, str]]:
    """The daemon's rows for each tree. The trees' runs alternate (a shared machine's load then falls on
    all of them alike); memory is the median of ``rounds`` runs, times the median and the best."""
    for tree in trees.values():
        run_daemon(importtime=True, tree=tree, clip=clip)  # warm-up: fills the bytecode cache
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    timed: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            runs[name].append(run_daemon(tree=tree, clip=clip))
            timed[name].append(run_daemon(importtime=True, tree=tree, clip=clip))
    families = [row for row, _ in FAMILIES] + ["[heap] (malloc's main arena)",
                                              "other anonymous (Python's arenas, big arrays, threads' arenas and stacks)"]
    out = {}
    for name in trees:
        def median(get, rs=runs[name]) -> float:
            return float(statistics.median(get(r) for r in rs))

        def ms(key: str, rs=runs[name]) -> str:
            values = [r[key] * 1000 for r in rs]
            return f"{statistics.median(values):.0f} ms (best {min(values):.0f})"

        imports = [importtime_table(r["stderr"]) for r in timed[name]]
        total = statistics.median(t for t, _, _ in imports)
        best_total = min(t for t, _, _ in imports)
        _, top, names = imports[0]
        unused = sorted({n.split(".")[0] if n.startswith(("email", "importlib")) else n
                         for n in names if UNUSED.match(n)})
        kib = lambda key: median(lambda run: run["status"].get(key, 0)) / 1024  # noqa: E731
        mapped = lambda row: median(lambda run: run["smaps"].get(row, 0)) / 1024  # noqa: E731
        fb = mapped("the framebuffer file")
        without_fb = median(lambda run: run["status"]["VmRSS"] - run["smaps"].get("the framebuffer file", 0)) / 1024
        out[name] = {
            "VmHWM (peak RSS)": f"{kib('VmHWM'):.1f} MiB",
            f"VmRSS after {RUN_SECONDS:g} s": f"{kib('VmRSS'):.1f} MiB ({kib('VmRSS') * 1.048576:.1f} MB)",
            "  of it RssAnon / RssFile": f"{kib('RssAnon'):.1f} / {kib('RssFile'):.1f} MiB",
            "  of it the framebuffer file's mapping": f"{fb:.1f} MiB",
            "VmRSS without it (a PFN-mapped /dev/fb0 is not RSS)":
                f"{without_fb:.1f} MiB ({without_fb * 1.048576:.1f} MB)",
            **{f"  {row}": f"{mapped(row):.1f} MiB" for row in families},
            "exec to portrait on screen": ms("portrait_s"),
            "exec to first camera frame through the pipeline": ms("first_frame_s"),
            f"camera frames in {RUN_SECONDS:g} s": str(int(median(lambda r: r["frames"]))),
            "imports to the portrait (-X importtime)": f"{total * 1000:.0f} ms (best {best_total * 1000:.0f}), "
                                                       f"{len(names)} modules",
            "modules `run` has no use for": ", ".join(unused) if unused else "none",
        }
    return out


def peer_tree(rev: str, folder: Path) -> Path:
    """``rev``'s edge/ and assets/ (its bundled models, found beside the package) unpacked with git archive:
    no checkout is touched."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "edge", "assets"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="REV", help="also measure this git revision (e.g. HEAD~3) beside it")
    parser.add_argument("--rev", metavar="REV", help="measure this git revision instead of this checkout")
    parser.add_argument("--clip", choices=("mp4", "i420"), default="mp4",
                        help="the bundled clip as it is, or as raw I420 (the camera's stand-in)")
    args = parser.parse_args(argv)
    print(f"# mona-edge run memory and start-up: {platform.machine()}, {os.cpu_count()} cores, "
          f"CPU features: {cpu_features()}, Python {platform.python_version()}")
    print(f"# screen {SCREEN[0]}x{SCREEN[1]} (file sink), default pack, bundled clip paced and looping, "
          f"default detector; {RUN_SECONDS:g} s of frames before RSS is read; bytecode cached; {ROUNDS} runs "
          f"each, the trees alternating; clip: {args.clip}\n")
    with tempfile.TemporaryDirectory(prefix="me-bench-peer-") as tmp:
        clip = i420_clip(Path(tmp)) if args.clip == "i420" else CLIP
        here = args.rev or "this tree"
        launched: dict[str, Path | None] = {here: None}
        trees: dict[str, Path] = {here: REPO}
        if args.rev:
            (Path(tmp) / "rev").mkdir()
            trees[here] = launched[here] = peer_tree(args.rev, Path(tmp) / "rev")
        if args.against:
            (Path(tmp) / "against").mkdir()
            trees[args.against] = launched[args.against] = peer_tree(args.against, Path(tmp) / "against")
        columns = daemon_figures(launched, clip=clip)
        names = list(columns)
        print("| daemon | " + " | ".join(names) + " |")
        print("| --- |" + " --- |" * len(names))
        for row in columns[here]:
            print(f"| {row} | " + " | ".join(columns[n][row] for n in names) + " |")

        print("\n| pack load at 1080x1920 | tree | loaded (nbytes) | tracemalloc peak | peak / loaded | VmHWM growth |")
        print("| --- | --- | --- | --- | --- | --- |")
        with tempfile.TemporaryDirectory(prefix="me-bench-pack-") as packs:
            for label, path in (("default (eye-warp, 33 frames)", REPO / "assets" / "packs" / "default"),
                                ("FOMM-like, 33 head-sized patches", fomm_like_pack(Path(packs), False)),
                                ("FOMM-like, 33 whole frames", fomm_like_pack(Path(packs), True))):
                for name, tree in trees.items():
                    r = pack_load(path, tree)
                    rect = r["rect"]
                    print(f"| {label}, patch {rect[2]}x{rect[3]} | {name} | {mib(r['nbytes'])} | {mib(r['peak'])} | "
                          f"{r['peak'] / r['nbytes']:.2f} | {r['hwm_growth_kb'] / 1024:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
