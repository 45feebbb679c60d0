"""Gaze packs cannot hurt the daemon: bounded manifests, streamed and checked archives, only regular files
opened, and a memory budget known from the manifest before anything is decoded.

Each test here is a defect found on main (issue 11): a manifest of ``[`` x 100000 raised RecursionError; a
truncated or corrupt ``.tar.gz`` raised EOFError or zlib.error; a 1.9 GiB tar bomb was unpacked whole before
its manifest was looked at; a FIFO named ``manifest.json`` blocked the loader for ever; a symlinked
``manifest.json`` out of the pack was read; a 1.1 MB pack of 255 whole-canvas frames took 3.1 GB; and a
head-patch pack held its crops and its patches at once while loading (twice its size).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.config import ConfigError, PackConfig, config_from_dict, dump_default_config  # noqa: E402
from edge.pack import (  # noqa: E402
    BASE,
    DEFAULT_MEMORY_BUDGET_MB,
    MANIFEST,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    GazePack,
    PackError,
    expected_files,
    extract_archive,
    frame_name,
    load_pack,
    write_pack,
)

TEST_PACK = REPO / "assets" / "packs" / "test"
CREDITS = [{"work": "w", "author": "a", "source": "s", "licence": "l"}]
GIB = 1 << 30


@pytest.fixture
def pack_dir(tmp_path) -> Path:
    """A fresh copy of the committed test pack (192x256 canvas, 9 frames of a 72x40 patch)."""
    return Path(shutil.copytree(TEST_PACK, tmp_path / "pack"))


def _archive(folder: Path, path: Path, mode: str = "w:gz", order: list[str] | None = None) -> Path:
    """A pack archive with the manifest first (the order the streaming reader prefers)."""
    names = order if order is not None else [MANIFEST, BASE, "frames"] + expected_files(
        json.loads((folder / MANIFEST).read_text())["frame_count"])[1:]
    with tarfile.open(path, mode) as tar:
        for name in names:
            tar.add(folder / name, arcname=name, recursive=False)
    return path


def _hand_made_pack(folder: Path, canvas: tuple[int, int], patch, base_png: bytes, frame_pngs: list[bytes]) -> Path:
    """Write a schema-valid pack from ready PNG bytes (the same bytes may serve many frames: cheap big packs)."""
    import hashlib

    count = len(frame_pngs)
    blobs = {BASE: base_png} | {frame_name(i, count): b for i, b in enumerate(frame_pngs)}
    (folder / "frames").mkdir(parents=True)
    for name, blob in blobs.items():
        (folder / name).write_bytes(blob)
    w, h = canvas
    manifest = {
        "format": "mona-edge-gaze-pack", "format_version": 1, "name": "hand-made", "frame_count": count,
        "canvas": {"width": w, "height": h},
        "patch": None if patch is None else dict(zip(("x", "y", "width", "height"), patch)),
        "eyes": {"right": [w * 0.4, h * 0.3], "left": [w * 0.6, h * 0.3]},
        "gaze": {"span_deg": [-30.0, 30.0], "measured": None},
        "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v)} for k, v in blobs.items()},
        "generator": {"method": "test", "tool": "test", "parameters": {}}, "credits": CREDITS,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=2))
    return folder


def _solid_png(size: tuple[int, int], value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buf, format="PNG")
    return buf.getvalue()


# --- the manifest: bounded before the parser runs --------------------------------------------------------------
def test_a_deeply_nested_manifest_is_refused_before_json_recurses(pack_dir):
    """Main: RecursionError from json.loads (a traceback, and on SIGHUP a dead daemon)."""
    (pack_dir / MANIFEST).write_bytes(b"[" * 100_000)
    with pytest.raises(PackError, match=rf"manifest\.json: .*nested deeper than {MAX_JSON_DEPTH} levels"):
        load_pack(pack_dir)
    # Brackets inside strings are not nesting: a manifest may say "[[[[" in its credits.
    data = json.loads((TEST_PACK / MANIFEST).read_text())
    data["credits"][0]["work"] = "[" * 150 + "{" * 40 + '"\\'
    (pack_dir / MANIFEST).write_text(json.dumps(data))
    assert load_pack(pack_dir).manifest.credits[0]["work"].startswith("[[[[")
    # Just past the limit, in the free-form generator parameters.
    deep: object = 1
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    data["generator"]["parameters"] = {"deep": deep}
    (pack_dir / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(PackError, match="nested deeper"):
        load_pack(pack_dir)


def test_an_unterminated_string_of_escaped_quotes_is_scanned_in_linear_time(pack_dir):
    """The depth scan must not go quadratic on what a regex would backtrack over."""
    (pack_dir / MANIFEST).write_bytes(b'{"a": "' + b'\\"' * (MAX_MANIFEST_BYTES // 2 - 8) + b"\\")
    started = time.perf_counter()
    with pytest.raises(PackError, match="not valid UTF-8 JSON"):
        load_pack(pack_dir)
    assert time.perf_counter() - started < 1.0


def test_huge_and_unparseable_manifests_are_pack_errors_naming_the_limit(pack_dir):
    manifest = pack_dir / MANIFEST
    with open(manifest, "wb") as f:  # 10 GiB, sparse: refused from its size, never read
        f.truncate(10 * GIB)
    started = time.perf_counter()
    with pytest.raises(PackError, match=rf"manifest\.json: 10737418240 bytes, larger than {MAX_MANIFEST_BYTES} bytes"):
        load_pack(pack_dir)
    assert time.perf_counter() - started < 1.0
    # Just over the limit with valid JSON: main's 1 MiB limit let a 300 KB manifest through to the parser.
    data = json.loads((TEST_PACK / MANIFEST).read_text())
    data["generator"]["parameters"] = {"padding": "x" * (MAX_MANIFEST_BYTES + 10)}
    manifest.write_text(json.dumps(data))
    with pytest.raises(PackError, match=f"larger than {MAX_MANIFEST_BYTES} bytes"):
        load_pack(pack_dir)
    # An integer longer than Python converts: a ValueError that is not a JSONDecodeError (main: traceback).
    manifest.write_bytes(b'{"frame_count": ' + b"9" * 5000 + b"}")
    with pytest.raises(PackError, match="not valid UTF-8 JSON: Exceeds the limit"):
        load_pack(pack_dir)
    data = json.loads((TEST_PACK / MANIFEST).read_text())
    data["generator"]["parameters"] = {"x": float("nan")}
    manifest.write_text(json.dumps(data))
    with pytest.raises(PackError, match="NaN is not a JSON number"):
        load_pack(pack_dir)


# --- only regular files inside the pack are opened -------------------------------------------------------------
_LOAD_IN_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from edge.pack import load_pack, PackError
    try:
        load_pack({path!r})
    except PackError as exc:
        print("PackError:", exc)
""")


def _load_in_child(path: Path, timeout: float = 20.0) -> str:
    """load_pack in a child process, so that a loader that blocks fails the test instead of hanging it."""
    code = _LOAD_IN_CHILD.format(repo=str(REPO), path=str(path))
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_pack({path}) still blocked after {timeout} s")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("name", [MANIFEST, "frames/03.png", BASE])
def test_a_fifo_in_a_folder_pack_is_refused_without_blocking(pack_dir, name):
    """Main: opening a FIFO named manifest.json waited for a writer for ever (the loader thread, and every
    later reload with it)."""
    (pack_dir / name).unlink()
    os.mkfifo(pack_dir / name)
    out = _load_in_child(pack_dir)
    assert out.startswith("PackError:") and f"{name}: a FIFO, not a regular file" in out


def test_a_symlinked_manifest_out_of_the_pack_is_refused(pack_dir, tmp_path):
    """Main followed it (the service may read files the pack's author should not see through it)."""
    outside = tmp_path / "elsewhere.json"
    shutil.move(pack_dir / MANIFEST, outside)
    (pack_dir / MANIFEST).symlink_to(outside)
    with pytest.raises(PackError, match=r"manifest\.json: resolves outside the pack folder"):
        load_pack(pack_dir)
    # A link that stays inside the pack is a file of the pack.
    (pack_dir / MANIFEST).unlink()
    shutil.move(outside, pack_dir / "real-manifest.json")
    (pack_dir / MANIFEST).symlink_to("real-manifest.json")
    assert load_pack(pack_dir).frame_count == 9


def test_a_device_or_a_folder_in_place_of_a_frame_is_refused(pack_dir):
    (pack_dir / "frames" / "02.png").unlink()
    (pack_dir / "frames" / "02.png").symlink_to("/dev/zero")
    with pytest.raises(PackError, match="outside the pack folder"):
        load_pack(pack_dir)
    (pack_dir / "frames" / "02.png").unlink()
    (pack_dir / "frames" / "02.png").mkdir()
    with pytest.raises(PackError, match=r"frames/02\.png: a folder, not a regular file"):
        load_pack(pack_dir)


def test_a_fifo_given_as_the_pack_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pack.tar.gz")
    assert "a FIFO; expected a pack folder" in _load_in_child(tmp_path / "pack.tar.gz")
    with pytest.raises(PackError, match="a FIFO, not a regular file"):
        extract_archive(tmp_path / "pack.tar.gz", tmp_path / "dest")


# --- archives: streamed, each member judged from its header before its data --------------------------------
def _write_bomb(path: Path, name: str, size: int, before: list[tuple[str, bytes]] = ()) -> Path:
    """A tar.gz whose member ``name`` declares ``size`` bytes of zeros, made of concatenated gzip members
    (one 16 MiB block of zeros compressed once), so a 1.9 GiB bomb takes a second to write, 2 MB on disk."""
    prefix = b""
    for member_name, data in before:
        info = tarfile.TarInfo(member_name)
        info.size = len(data)
        prefix += info.tobuf(format=tarfile.GNU_FORMAT) + _pad(data)
    info = tarfile.TarInfo(name)
    info.size = size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    block = 16 << 20
    zeros = gzip.compress(b"\0" * block, compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(prefix + header))
        for _ in range(size // block + 2):
            f.write(zeros)
    return path


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _members_before_end(folder: Path, names: list[str]) -> list[tuple[str, bytes]]:
    return [(n, (folder / n).read_bytes()) for n in names]


@pytest.mark.parametrize("case", ["no manifest yet", "after its manifest", "badly named"])
def test_a_tar_bomb_is_refused_at_its_header_before_anything_is_written(tmp_path, pack_dir, case):
    """Main unpacked all 1.9 GiB (9 s) before looking for the manifest. Now the member's header is enough."""
    size = int(1.9 * GIB)
    if case == "no manifest yet":
        bomb = _write_bomb(tmp_path / "bomb.tar.gz", BASE, size)
        match = "no manifest.json within the first 64.0 MiB"
    elif case == "after its manifest":
        bomb = _write_bomb(tmp_path / "bomb.tar.gz", BASE, size, _members_before_end(pack_dir, [MANIFEST]))
        match = rf"member 'base.png': {size} bytes, the manifest says"
    else:
        bomb = _write_bomb(tmp_path / "bomb.tar.gz", "zeros.bin", size)
        match = "not a file a gaze pack holds"
    dest = tmp_path / "dest"
    dest.mkdir()
    started = time.perf_counter()
    with pytest.raises(PackError, match=match):
        extract_archive(bomb, dest)
    elapsed = time.perf_counter() - started
    print(f"\n1.9 GiB tar bomb ({case}) refused in {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0 and list(dest.iterdir()) == []
    started = time.perf_counter()
    with pytest.raises(PackError, match=match):
        load_pack(bomb)
    assert time.perf_counter() - started < 1.0


def test_an_archive_whose_manifest_lists_a_bomb_is_refused_at_the_manifest(tmp_path, pack_dir):
    data = json.loads((pack_dir / MANIFEST).read_text())
    data["files"][BASE]["bytes"] = int(1.9 * GIB)
    (pack_dir / MANIFEST).write_text(json.dumps(data))
    bomb = _write_bomb(tmp_path / "bomb.tar.gz", BASE, int(1.9 * GIB), _members_before_end(pack_dir, [MANIFEST]))
    dest = tmp_path / "dest"
    started = time.perf_counter()
    with pytest.raises(PackError, match=r"lists 1945\.\d MiB of files, more than 512\.0 MiB \(the limit: 2x the memory"):
        extract_archive(bomb, dest)
    assert time.perf_counter() - started < 1.0 and not dest.exists()


def test_a_manifest_late_in_a_big_archive_is_refused_and_what_was_unpacked_removed(tmp_path, pack_dir):
    frames = expected_files(9)[1:]
    late = _archive(pack_dir, tmp_path / "late.tar", "w", [BASE, "frames"] + frames + [MANIFEST])
    assert load_pack(late).frame_count == 9  # small: the manifest is within the first 64 MiB
    big = tmp_path / "big.tar.gz"
    _write_bomb(big, "frames/00.png", 70 << 20, _members_before_end(pack_dir, [BASE]))
    dest = tmp_path / "dest"
    with pytest.raises(PackError, match="put it first: tar -czf pack.tar.gz -C PACK manifest.json"):
        extract_archive(big, dest)
    assert not dest.exists()  # base.png was unpacked before the refusal, and removed again


def test_truncated_and_corrupt_archives_are_pack_errors_naming_the_archive(tmp_path, pack_dir):
    """Main: EOFError and zlib.error escaped (from tarfile.open itself, before its own except)."""
    for mode, suffix in (("w:gz", ".tar.gz"), ("w", ".tar"), ("w:xz", ".tar.xz"), ("w:bz2", ".tar.bz2")):
        whole = _archive(pack_dir, tmp_path / f"whole{suffix}", mode).read_bytes()
        assert load_pack(tmp_path / f"whole{suffix}").frame_count == 9
        damaged = tmp_path / f"damaged{suffix}"
        for cut in sorted({1, 10, 100, 512, 1000} | {len(whole) * k // 23 for k in range(1, 23)}):
            damaged.write_bytes(whole[:cut])
            with pytest.raises(PackError, match=r"damaged\.tar"):
                load_pack(damaged)
        rng = np.random.default_rng(11)
        for _ in range(40):
            blob = bytearray(whole)
            for at in rng.integers(0, len(blob), 3):
                blob[at] ^= int(rng.integers(1, 256))
            damaged.write_bytes(bytes(blob))
            try:
                load_pack(damaged)
            except PackError as exc:
                assert "damaged.tar" in str(exc) and "\n" not in str(exc)


@pytest.mark.parametrize("kind, linkname", [
    (tarfile.SYMTYPE, "/etc/passwd"), (tarfile.SYMTYPE, "base.png"), (tarfile.LNKTYPE, "base.png"),
    (tarfile.CHRTYPE, ""), (tarfile.BLKTYPE, ""), (tarfile.FIFOTYPE, ""), (tarfile.GNUTYPE_SPARSE, ""),
])
def test_links_devices_fifos_and_sparse_members_are_refused_before_writing(tmp_path, pack_dir, kind, linkname):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(pack_dir / MANIFEST, arcname=MANIFEST)
        info = tarfile.TarInfo("frames/00.png")
        info.type, info.linkname = kind, linkname
        tar.addfile(info)
    dest = tmp_path / "dest"
    with pytest.raises(PackError, match="only regular files and folders are allowed"):
        extract_archive(archive, dest)
    assert not dest.exists() or list(dest.iterdir()) == []
    with pytest.raises(PackError, match="only regular files"):
        load_pack(archive)


def test_archive_members_must_be_the_packs_own_files(tmp_path, pack_dir):
    def refused(names_data: list[tuple[str, bytes]], match: str) -> None:
        archive = tmp_path / "a.tar"
        with tarfile.open(archive, "w") as tar:
            for name, data in names_data:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        with pytest.raises(PackError, match=match):
            load_pack(archive)

    manifest = (pack_dir / MANIFEST).read_bytes()
    base = (pack_dir / BASE).read_bytes()
    refused([(MANIFEST, manifest), ("frames/99.png", base)], r"'frames/99.png': not listed in the archive's manifest")
    refused([(MANIFEST, manifest), (BASE, base[:-1])], r"'base.png': \d+ bytes, the manifest says")
    refused([(MANIFEST, manifest), (BASE, base), (BASE, base)], "appears twice")
    refused([("a/" + MANIFEST, manifest), ("b/" + BASE, base)], "outside the top folder 'a'")
    refused([(BASE, b"x" * 10), (MANIFEST, manifest)], r"member 'base.png': 10 bytes, the manifest says")
    refused([(".bashrc", b"x")], "not a file a gaze pack holds")
    refused([("frames/00.png/x", b"x")], "not a file a gaze pack holds")


def test_a_nested_archive_in_one_top_folder_loads(tmp_path, pack_dir):
    archive = tmp_path / "nested.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(pack_dir, arcname="my-pack")
    packed = load_pack(archive, screen_size=(320, 240), rotation=90)
    folder = load_pack(pack_dir, screen_size=(320, 240), rotation=90)
    np.testing.assert_array_equal(packed.base, folder.base)
    # Messages about an archive's files name the archive, not its temporary folder.
    data = json.loads((pack_dir / MANIFEST).read_text())
    data["files"]["frames/04.png"]["sha256"] = "0" * 64
    (pack_dir / MANIFEST).write_text(json.dumps(data))
    _archive(pack_dir, tmp_path / "bad.tar.gz")
    with pytest.raises(PackError, match=r"bad\.tar\.gz: frames/04\.png: sha256 .* does not match"):
        load_pack(tmp_path / "bad.tar.gz")


# --- memory: the budget from the manifest, the peak during load ------------------------------------------------
def test_a_255_frame_whole_canvas_pack_is_refused_by_the_budget_before_decoding(tmp_path):
    """Main: this 1 MB pack took 3.1 GB (255 screen-sized frames, crops and patches both held)."""
    canvas = (1080, 1920)
    frame = _solid_png(canvas, 90)
    pack = _hand_made_pack(tmp_path / "big", canvas, None, _solid_png(canvas, 80), [frame] * 255)
    assert sum(p.stat().st_size for p in pack.rglob("*.png")) < 4_000_000  # a few MB on disk, 1.6 GB decoded
    started = time.perf_counter()
    with pytest.raises(PackError, match=r"loading needs about 15\d\d\.\d MiB \(255 frames of up to 1080x1920 px for a "
                                        r"1080x1920 screen, .* more than the memory budget of 256\.0 MiB "
                                        r"\(\[pack\] memory_budget_mb\)"):
        load_pack(pack, screen_size=(1080, 1920))
    assert time.perf_counter() - started < 1.0
    archive = _archive(pack, tmp_path / "big.tar.gz")
    with pytest.raises(PackError, match="more than the memory budget of 256.0 MiB"):
        load_pack(archive, screen_size=(1080, 1920))


def test_the_budget_is_checked_before_any_image_is_read(pack_dir):
    """The refusal needs only the manifest: here no image is even there."""
    for name in expected_files(9):
        (pack_dir / name).unlink()
    with pytest.raises(PackError, match=r"more than the memory budget of 16\.0 MiB"):
        load_pack(pack_dir, screen_size=(4000, 3000), memory_budget_mb=16)
    with pytest.raises(PackError, match="memory budget 0 MiB: expected a positive number"):
        load_pack(pack_dir, memory_budget_mb=0)


def test_the_configured_budget_reaches_the_pipelines_pack(tmp_path):
    from edge.pipeline import make_pack

    config = config_from_dict({"pack": {"path": str(TEST_PACK), "memory_budget_mb": 16}})
    with pytest.raises(PackError, match=r"more than the memory budget of 16\.0 MiB \(\[pack\] memory_budget_mb\)"):
        make_pack(config, (4000, 3000))
    assert isinstance(make_pack(config, (800, 480)), GazePack)


def test_memory_budget_mb_is_a_validated_config_key_with_the_loaders_default():
    assert PackConfig().memory_budget_mb == DEFAULT_MEMORY_BUDGET_MB == 256
    assert config_from_dict({"pack": {"memory_budget_mb": 1024}}).pack.memory_budget_mb == 1024
    for bad in (0, 15, 1.5, "256", True, 10 ** 6):
        with pytest.raises(ConfigError, match="memory_budget_mb"):
            config_from_dict({"pack": {"memory_budget_mb": bad}})
    assert "\nmemory_budget_mb = 256\n" in dump_default_config()


_MEASURE = textwrap.dedent("""
    import gc, json, sys, tracemalloc
    sys.path.insert(0, {repo!r})
    from edge.pack import load_pack, estimate_load, make_layout, read_manifest

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    path, screen, rotation = {path!r}, {screen!r}, {rotation!r}
    manifest = read_manifest(path)
    estimate = estimate_load(manifest, make_layout(manifest.canvas, screen, rotation))
    load_pack({small!r}, screen_size=(64, 48), rotation=rotation)  # warm: lazy imports, OpenCV's set-up
    gc.collect()
    if {trace!r}:
        tracemalloc.start()
        pack = load_pack(path, screen_size=screen, rotation=rotation)
        peak = tracemalloc.get_traced_memory()[1]
    else:
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
            f.write("5")
        pack = load_pack(path, screen_size=screen, rotation=rotation)
        peak = status("VmHWM") - before
    print(json.dumps(dict(peak=peak, nbytes=pack.nbytes, kept=estimate.kept, estimate=estimate.peak)))
""")


def _measure(path: Path, screen, rotation: int, trace: bool) -> dict:
    code = _MEASURE.format(repo=str(REPO), path=str(path), screen=screen, rotation=rotation, trace=trace,
                          small=str(TEST_PACK))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def head_pack(tmp_path_factory) -> Path:
    """33 frames of a 512x512 head patch (24.8 MiB of patches, FOMM-like) on a 1080x1920 portrait canvas."""
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:1920, 0:1080]
    base = np.stack([xs * 255 // 1079, ys * 255 // 1919, (xs + ys) % 256], axis=2).astype(np.uint8)
    frames = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(33)]
    return write_pack(tmp_path_factory.mktemp("head") / "head", base=base, frames=frames, patch=(284, 400, 512, 512),
                      name="head", eyes={"right": [480, 600], "left": [600, 600]}, generator={"method": "test"},
                      credits=CREDITS)


@pytest.mark.parametrize("screen, rotation", [((1080, 1920), 0), ((1920, 1080), 90)])
def test_load_peak_is_at_most_1_2x_the_loaded_pack(head_pack, screen, rotation):
    """Main held every frame's crop and every patch at once: +65 MiB for this 33 MiB pack. Now one frame's
    working set above the pack itself (numpy's allocations, by tracemalloc, in a fresh process); the RSS
    high-water mark, which also sees the PNG decoder's buffers and the allocator, is printed beside it."""
    traced = _measure(head_pack, screen, rotation, trace=True)
    rss = _measure(head_pack, screen, rotation, trace=False)
    mib = 1 << 20
    print(f"\n33 x 512x512 head patches, screen {screen} rotation {rotation}: loaded {traced['nbytes'] / mib:.1f} MiB, "
          f"load peak {traced['peak'] / mib:.1f} MiB traced ({traced['peak'] / traced['nbytes']:.2f}x), "
          f"{rss['peak'] / mib:.1f} MiB RSS ({rss['peak'] / rss['nbytes']:.2f}x); "
          f"estimated {traced['estimate'] / mib:.1f} MiB")
    assert traced["peak"] <= 1.2 * traced["nbytes"]
    assert rss["peak"] <= 1.3 * rss["nbytes"]
    assert traced["nbytes"] <= traced["kept"] and traced["peak"] <= traced["estimate"] <= 1.3 * traced["nbytes"]


def test_the_estimate_bounds_the_peak_on_rescaled_and_whole_frame_packs(tmp_path):
    """Where the canvas must be rescaled (kept whole to compose on) or frames are whole canvases."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (400, 300, 3), dtype=np.uint8)
    patched = write_pack(tmp_path / "patched", base=base, frames=[rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)
                                                                  for _ in range(12)],
                         patch=(100, 80, 100, 120), name="p", eyes={"right": [130, 130], "left": [170, 130]},
                         generator={"method": "test"}, credits=CREDITS)
    whole = write_pack(tmp_path / "whole", base=base, frames=[np.roll(base, i, axis=1) for i in range(6)], patch=None,
                       name="w", eyes={"right": [130, 130], "left": [170, 130]}, generator={"method": "test"},
                       credits=CREDITS)
    for path, screen, rotation in ((patched, (800, 480), 90), (patched, (200, 150), 0), (whole, (640, 480), 270)):
        m = _measure(path, screen, rotation, trace=True)
        print(f"\n{path.name} on {screen} rotation {rotation}: loaded {m['nbytes'] / 1e6:.2f} MB, "
              f"traced peak {m['peak'] / 1e6:.2f} MB, estimate {m['estimate'] / 1e6:.2f} MB")
        assert m["nbytes"] <= m["kept"] and m["peak"] <= m["estimate"]


# --- fuzzing: a damaged archive is a PackError, nothing else ---------------------------------------------------
def _test_pack_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in [MANIFEST, BASE, "frames"] + expected_files(9)[1:]:
            tar.add(TEST_PACK / name, arcname=name, recursive=False)
    return buf.getvalue()


TEST_TAR = _test_pack_tar()
_NAMES = st.sampled_from([MANIFEST, BASE, "frames", "frames/00.png", "frames/09.png", "frames/000.png", "../x",
                          "/etc/passwd", "a/manifest.json", "frames/../base.png", "", ".", "./base.png",
                          "x" * 300, "frames/0\x00.png"])
_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                          tarfile.CHRTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE, b"Z"])


def _rebuilt(edits: list[tuple[int, str | None, bytes | None, int | None]]) -> bytes:
    """The test pack's tar with members renamed, retyped or given a header size that lies (index, name,
    type, size), assembled block by block: each header as tarfile writes it, then the member's own data."""
    src = tarfile.open(fileobj=io.BytesIO(TEST_TAR))
    members = [(m, src.extractfile(m).read() if m.isfile() else b"") for m in src.getmembers()]
    for index, name, kind, size in edits:
        member = members[index % len(members)][0]
        if name is not None:
            member.name = name
        if kind is not None:
            member.type = kind
        if size is not None:
            member.size = size
    out = b""
    for member, data in members:
        try:
            header = member.tobuf(format=tarfile.GNU_FORMAT)
        except ValueError:  # a name or size the writer itself cannot encode: left out
            continue
        out += header + _pad(data)
    return out + b"\0" * 1024


_mutations = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, len(TEST_TAR) - 1), st.integers(1, 255)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.integers(0, len(TEST_TAR))),
    st.tuples(st.just("edit"), st.lists(st.tuples(st.integers(0, 20), st.none() | _NAMES, st.none() | _TYPES,
                                                  st.none() | st.sampled_from([0, 1, 511, 512, 4096, 1 << 33])),
                                        min_size=1, max_size=3)),
)


@settings(max_examples=200, deadline=timedelta(seconds=5), derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutation=_mutations, compress=st.booleans(), after_compressing=st.booleans())
def test_a_mutated_pack_archive_loads_or_is_a_pack_error(tmp_path_factory, mutation, compress, after_compressing):
    """Main: 101 of 300 mutated .tar.gz packs raised something else (EOFError, zlib.error, ...)."""
    kind, detail = mutation
    blob = TEST_TAR if kind != "edit" else _rebuilt(detail)
    if compress and not after_compressing:
        blob = gzip.compress(blob, mtime=0)
    if kind == "flip":
        mutable = bytearray(blob)
        for at, xor in detail:
            mutable[at % len(mutable)] ^= xor
        blob = bytes(mutable)
    elif kind == "truncate":
        blob = blob[:detail % (len(blob) + 1)]
    if compress and after_compressing:
        blob = gzip.compress(blob, mtime=0)
    path = tmp_path_factory.mktemp("fuzz") / "pack.tar.gz"
    path.write_bytes(blob)
    try:
        pack = load_pack(path, screen_size=(96, 128))
    except PackError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(pack, GazePack) and pack.frame_count >= 2
    shutil.rmtree(path.parent)



@pytest.mark.parametrize("cut", [1, 2, 3, 5, 9])
def test_a_gzip_header_cut_short_is_one_pack_error(tmp_path, cut):
    """Found by fuzzing the running daemon: tarfile's stream reader raised TypeError (ord() of an empty
    read) on a .tar.gz cut inside its gzip header, which safe mode reported as a bug."""
    archive = tmp_path / "pack.tar.gz"
    archive.write_bytes(gzip.compress(b"x" * 100)[:cut])
    with pytest.raises(PackError, match="pack.tar.gz"):
        load_pack(archive)
