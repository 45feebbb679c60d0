"""Fuzzing the running frame: mutated configs, manifests, pack archives and models, fed to a real daemon by
SIGHUP and at start. Whatever the input, the daemon stays up, keeps drawing its previous good pack,
answers its status socket within the deadline and stays within its memory.

Hypothesis drives the mutations (seeded: ``derandomize=True``, so a CI failure reproduces anywhere). The
daemon is ``mona-edge run --config X`` as systemd starts it (tests/test_safe_mode.py's ``Daemon``), on an
empty looping clip, so the eyes rest at the centre and the framebuffer file must show exactly the good
pack's centre frame whenever a candidate was refused.

The last test prints the figures the README quotes (inputs per kind, handled cleanly, crashes, hangs,
state lost, worst RSS, worst reload time).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_safe_mode import FPS, MODELS, SHORT, SIZE, TEST_PACK, Daemon, centre_frame, config_text, screen

from edge.assets import default_pack_path
from edge.errors import ExitStatus, StatusError
from edge.pack import load_pack
from edge.status import query_status
from edge.viewerclip import write_clip

pytestmark = pytest.mark.slow

#: A status request must be answered within this (edge/status.py's own deadline is 2 s).
STATUS_DEADLINE = 2.5
#: How long a SIGHUP may take to be decided (edge/reload.py refuses a candidate after 30 s).
RELOAD_DEADLINE = 40.0
#: The daemon's RSS may never pass this (the pack memory budget plus the runtime's own ~150 MB).
RSS_BUDGET_MB = 450.0
#: Examples per kind; a longer run by hand: MONA_EDGE_FUZZ_EXAMPLES=500 .venv/bin/pytest -m "" tests/test_fuzz_daemon.py
EXAMPLES_PER_KIND = int(os.environ.get("MONA_EDGE_FUZZ_EXAMPLES", "25"))
START_EXAMPLES_PER_KIND = max(1, EXAMPLES_PER_KIND // 5)
#: Stands for the daemon's folder in a generated config until the candidate is written.
FOLDER = "@FOLDER@"
KINDS = ("config", "manifest", "archive", "model")

FIGURES: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

# --- mutations -------------------------------------------------------------------------------------------
#: Values a careless or hostile user writes; TOML text, placed after `key = `.
NASTY_TOML_VALUES = [
    "1" + "0" * 400, "-1", "0", "nan", "inf", "-inf", "1e309", "0x" + "f" * 4000, '""', '"' + "x" * 5000 + '"',
    "[" * 3000 + "]" * 3000, "{a = {b = {c = 1}}}", '"/dev/zero"', '"/nonexistent/pack"', "true", "0o777",
    '[1, "a", {b = 2}]', '"\\u0000"', "1979-05-27T07:32:00Z", '"' + "é" * 100 + '"',
]
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                      st.lists(st.integers(-5, 5000), max_size=6))


def _config_mutation(good: str, draw) -> str:
    lines = good.splitlines()
    how = draw(st.sampled_from(["value", "text", "delete", "bytes", "truncate", "section"]))
    keyed = [i for i, line in enumerate(lines) if " = " in line]
    i = draw(st.sampled_from(keyed))
    key = lines[i].split(" = ", 1)[0]
    if how == "value":
        lines[i] = f"{key} = {draw(st.sampled_from(NASTY_TOML_VALUES))}"
    elif how == "text":
        lines[i] = f"{key} = {json.dumps(draw(st.text(max_size=40)))}"
    elif how == "delete":
        del lines[i]
    elif how == "section":
        lines.insert(i, draw(st.sampled_from(["[camera]", "[nonsense]", "[[pack]]", "[service.x]", "[gaze"])))
    text = "\n".join(lines) + "\n"
    if how == "bytes":
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.binary(min_size=1, max_size=12)).decode("latin-1") + text[at:]
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    return text


def _leaf_paths(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(v, (*path, k))
    elif isinstance(value, list) and value:
        for k, v in enumerate(value):
            yield from _leaf_paths(v, (*path, k))
    else:
        yield path


def _manifest_mutation(good: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["leaf", "leaf", "leaf", "drop", "flip", "truncate", "deep", "huge"]))
    if how == "flip":
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    if how == "deep":
        return b"[" * draw(st.sampled_from([100, 5000, 100_000]))
    if how == "huge":
        return good[:-1] + b', "padding": "' + b"x" * (8 << 20) + b'"}'
    doc = json.loads(good)
    path = draw(st.sampled_from(sorted(_leaf_paths(doc), key=str)))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if how == "drop" and isinstance(parent, dict):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = draw(json_leaf)
    return json.dumps(doc).encode()


def _archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buf.getvalue()


def _archive_mutation(good: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["flip", "flip", "truncate", "symlink", "bomb"]))
    if how == "flip":
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        if how == "symlink":
            link = tarfile.TarInfo("manifest.json")
            link.type, link.linkname = tarfile.SYMTYPE, draw(st.sampled_from(["/etc/passwd", "../../x", "/dev/zero"]))
            tar.addfile(link)
        else:  # 512 MiB of zeros in a few hundred KB
            info = tarfile.TarInfo("frames/00.png")
            info.size = 512 << 20
            tar.addfile(info, _Zeros(info.size))
    return buf.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _model_mutation(good: bytes, draw) -> bytes:
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@st.composite
def candidates(draw, kind: str) -> tuple[str, object]:
    """(what it is, the bytes/text to write) for one bad (or, by chance, good) candidate of ``kind``."""
    if kind == "config":
        return kind, _config_mutation(config_text(Path(FOLDER)), draw)
    if kind == "manifest":
        return kind, _manifest_mutation((TEST_PACK / "manifest.json").read_bytes(), draw)
    if kind == "archive":
        return kind, _archive_mutation(GOOD_ARCHIVE, draw)
    keep_record = draw(st.booleans())
    return ("model" if keep_record else "model-without-record"), _model_mutation(GOOD_MODEL, draw)


GOOD_ARCHIVE = _archive(TEST_PACK)
GOOD_MODEL = (MODELS / f"{SHORT}.tflite").read_bytes()


def write_candidate(folder: Path, kind: str, payload: object, n: int) -> str:
    """Write the candidate under ``folder`` and return the config text that points at it."""
    where = folder / f"c{n}"
    where.mkdir()
    if kind == "config":
        return str(payload).replace(FOLDER, str(folder))
    if kind == "manifest":
        shutil.copytree(TEST_PACK, where / "pack")
        (where / "pack" / "manifest.json").write_bytes(payload)  # type: ignore[arg-type]
        return config_text(folder, pack=where / "pack")
    if kind == "archive":
        (where / "pack.tar.gz").write_bytes(payload)  # type: ignore[arg-type]
        return config_text(folder, pack=where / "pack.tar.gz")
    model = where / f"{SHORT}.tflite"
    model.write_bytes(payload)  # type: ignore[arg-type]
    if kind == "model":
        shutil.copy(MODELS / f"{SHORT}.json", where / f"{SHORT}.json")
    return config_text(folder, model=model)


# --- the running daemon ----------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def timed_status(daemon: Daemon) -> dict:
    started = time.monotonic()
    status = query_status(daemon.folder / "status.sock", timeout=STATUS_DEADLINE)
    assert time.monotonic() - started < STATUS_DEADLINE
    return status


def reload_and_wait(daemon: Daemon, config: str) -> tuple[str, float, dict]:
    """Write ``config``, SIGHUP, and wait until the daemon has taken or refused it: ("taken"|"refused"|
    "hang"|"crash", seconds, last status)."""
    before = timed_status(daemon)
    (daemon.folder / "config.toml").write_text(config, errors="surrogateescape")
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGHUP)
    while time.monotonic() - started < RELOAD_DEADLINE:
        if daemon.proc.poll() is not None:
            return "crash", time.monotonic() - started, before
        try:
            now = timed_status(daemon)
        except StatusError:
            return "crash" if daemon.proc.poll() is not None else "hang", time.monotonic() - started, before
        if now["reloads"] > before["reloads"]:
            return "taken", time.monotonic() - started, now
        if now["errors"].get("reload", 0) > before["errors"].get("reload", 0):
            return "refused", time.monotonic() - started, now
        time.sleep(0.05)
    return "hang", RELOAD_DEADLINE, before


def pack_frames(path: Path) -> list[np.ndarray]:
    """Every picture ``path``'s pack can put on the test screen (the eyes may glance about when alone)."""
    pack = load_pack(path, screen_size=SIZE)
    return [pack.frame_image(i) for i in range(pack.frame_count)]


def shows_one_of(folder: Path, pictures: list[np.ndarray]) -> bool:
    shown = screen(folder)
    return any(np.array_equal(shown, p) for p in pictures)


@pytest.fixture(scope="module")
def running():
    folder = Path(tempfile.mkdtemp(prefix="mf-", dir="/tmp"))  # AF_UNIX paths must stay short
    write_clip(folder / "clip.avi", [[] for _ in range(15)], FPS, photo=np.zeros((512, 512, 3), np.uint8))
    (folder / "config.toml").write_text(config_text(folder))
    daemon = Daemon(folder)
    daemon.status_when(lambda s: s["state"] == "READY")
    good = pack_frames(TEST_PACK)
    assert np.array_equal(screen(folder), centre_frame(TEST_PACK))
    yield daemon, good
    output = daemon.finish()
    shutil.rmtree(folder, ignore_errors=True)
    assert "Traceback" not in output, output[-3000:]


_counter = iter(range(10**9))


def _check_one(running, candidate) -> None:
    daemon, good = running
    kind, payload = candidate
    figures = FIGURES[f"SIGHUP {kind}"]
    figures["tried"] += 1
    config = write_candidate(daemon.folder, kind, payload, next(_counter))
    outcome, seconds, _status = reload_and_wait(daemon, config)
    figures["worst reload s"] = max(figures["worst reload s"], seconds)
    if outcome in ("crash", "hang"):  # the daemon's own words, then stop it: nothing after this is meaningful
        print(f"{outcome} on a {kind} candidate; the daemon said:\n{daemon.finish()[-4000:]}")
    assert outcome not in ("crash", "hang"), f"{outcome} on a {kind} candidate: {config[:400]!r}"
    if outcome == "taken":  # the mutation happened to be valid: go back to the good config
        figures["valid by chance"] += 1
        back, seconds, _ = reload_and_wait(daemon, config_text(daemon.folder))
        assert back == "taken", f"the good config after a valid {kind} candidate: {back}"
        deadline = time.monotonic() + 5  # the switch draws the whole portrait once
        while not shows_one_of(daemon.folder, good) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert shows_one_of(daemon.folder, good), f"state lost after {kind}: the screen no longer shows the good pack"
    rss = rss_mb(daemon.proc.pid)
    figures["worst RSS MB"] = max(figures["worst RSS MB"], rss)
    assert rss < RSS_BUDGET_MB
    figures["handled cleanly"] += 1


# No shrinking: every example runs against the one daemon, and a failure's first example is what matters.
FUZZ = settings(max_examples=EXAMPLES_PER_KIND, derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@FUZZ
@given(candidate=candidates("config"))
def test_sighup_with_mutated_configs_keeps_the_frame(running, candidate):
    _check_one(running, candidate)


@FUZZ
@given(candidate=candidates("manifest"))
def test_sighup_with_mutated_manifests_keeps_the_frame(running, candidate):
    _check_one(running, candidate)


@FUZZ
@given(candidate=candidates("archive"))
def test_sighup_with_mutated_pack_archives_keeps_the_frame(running, candidate):
    _check_one(running, candidate)


@FUZZ
@given(candidate=candidates("model"))
def test_sighup_with_mutated_models_keeps_the_frame(running, candidate):
    _check_one(running, candidate)


# --- at start: safe mode, never a black screen -----------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=START_EXAMPLES_PER_KIND, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])
@given(data=st.data())
def test_a_daemon_started_on_mutated_input_shows_a_portrait_and_serves(kind, data):
    folder = Path(tempfile.mkdtemp(prefix="ms-", dir="/tmp"))
    try:
        write_clip(folder / "clip.avi", [[] for _ in range(15)], FPS, photo=np.zeros((512, 512, 3), np.uint8))
        kind, payload = data.draw(candidates(kind))
        figures = FIGURES[f"start {kind}"]
        figures["tried"] += 1
        (folder / "config.toml").write_text(write_candidate(folder, kind, payload, 0), errors="surrogateescape")
        daemon = Daemon(folder)
        started = time.monotonic()
        try:
            while daemon.proc.poll() is None and not (folder / "status.sock").exists():
                assert time.monotonic() - started < 30, "no status socket after 30 s"
                time.sleep(0.05)
            if daemon.proc.poll() is not None:
                # The one thing safe mode cannot replace is a screen: a config whose [display] cannot be
                # opened here (this machine has no KMS/DRM for the default sink) ends with one line.
                output = daemon.finish()
                assert kind == "config" and daemon.proc.returncode == ExitStatus.DISPLAY, output[-3000:]
                assert "Traceback" not in output and "error: display" in output, output[-3000:]
                figures["handled cleanly"] += 1
                figures["no screen: exit 7"] += 1
                return
            status = daemon.status_when(lambda s: s["state"] in ("READY", "DEGRADED"), timeout=30)
            figures["worst reload s"] = max(figures["worst reload s"], time.monotonic() - started)
            figures["worst RSS MB"] = max(figures["worst RSS MB"], rss_mb(daemon.proc.pid))
            portraits = pack_frames(TEST_PACK) + pack_frames(default_pack_path())
            assert shows_one_of(folder, portraits), "neither the configured nor the default pack is on screen"
            assert status["state"] == "READY" or status["reasons"], status
        finally:
            output = daemon.finish()
        assert "Traceback" not in output, output[-3000:]
        figures["handled cleanly"] += 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_fuzz_figures(capsys):
    """The figures for the README, printed whatever -s says (runs after the fuzz tests above)."""
    if not FIGURES:
        pytest.skip("the fuzz tests did not run in this session")
    lines = ["fuzzing the running daemon (inputs, handled cleanly, valid by chance, worst reload/start s, worst RSS MB):"]
    for name in sorted(FIGURES):
        f = FIGURES[name]
        lines.append(f"  {name:<28} {int(f['tried']):4d} tried, {int(f['handled cleanly']):4d} clean, "
                     f"{int(f['valid by chance']):3d} valid, {f['worst reload s']:5.2f} s, {f['worst RSS MB']:6.1f} MB"
                     + (f", {int(f['no screen: exit 7'])} without a screen" if f["no screen: exit 7"] else ""))
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert all(f["handled cleanly"] == f["tried"] for f in FIGURES.values())

