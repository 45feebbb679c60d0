"""build-pack end to end: a real eye-warp pack from the astronaut, loaded back by the Pi's reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from edge.errors import ImageError, PackError
from edge.pack import load_pack
from provisioning.packer import PackPlan, build_pack

PORTRAIT = REPO / "assets" / "portraits" / "astronaut.png"
DEFAULT_PACK = REPO / "assets" / "packs" / "default"
CREDIT = [{"work": "Astronaut Eileen Collins, official NASA portrait", "author": "NASA",
           "source": "scikit-image data: astronaut.png", "licence": "public domain"}]


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory):
    out = tmp_path_factory.mktemp("packs") / "small"
    summary = build_pack(PackPlan(portrait=PORTRAIT, out_dir=out, frames=9, screen=(540, 960), credits=CREDIT),
                         log=lambda _: None)
    return out, summary


def test_pack_loads_and_its_frames_look_left_to_right(small_pack):
    out, summary = small_pack
    pack = load_pack(out)
    assert pack.frame_count == 9 and pack.centre_index == 4
    measured = json.loads((out / "manifest.json").read_text())["gaze"]["measured"]
    assert all(b >= a for a, b in zip(measured, measured[1:])) and measured[-1] - measured[0] > 0.2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator"]["method"] == "eyewarp" and manifest["credits"] == CREDIT
    assert summary["seconds"]["total"] > 0
    assert Path(summary["contact_sheet"]).stat().st_size > 0 and Path(summary["preview"]).stat().st_size > 0


def test_frames_change_only_the_eyes(small_pack):
    out, _ = small_pack
    pack = load_pack(out)
    base = pack.base
    x, y, w, h = pack.rect
    first, last = pack.frame_image(0), pack.frame_image(pack.frame_count - 1)
    outside = np.ones(base.shape[:2], bool)
    outside[y:y + h, x:x + w] = False
    assert np.array_equal(first[outside], base[outside]) and np.array_equal(last[outside], base[outside])
    assert np.abs(first.astype(int) - last.astype(int)).max() > 60  # the irises really moved


def test_bad_requests_are_one_line_errors(tmp_path):
    with pytest.raises(ImageError, match="nowhere.png"):
        build_pack(PackPlan(portrait=tmp_path / "nowhere.png", out_dir=tmp_path / "x"), log=lambda _: None)
    with pytest.raises(PackError, match="--frames"):
        build_pack(PackPlan(portrait=PORTRAIT, out_dir=tmp_path / "x", frames=1), log=lambda _: None)
    with pytest.raises(PackError, match="--driver"):
        build_pack(PackPlan(portrait=PORTRAIT, out_dir=tmp_path / "x", method="fomm"), log=lambda _: None)


# What "the same pack" means across CPUs. The eye-warp measures eyes and gaze with MediaPipe's float
# face-mesh and iris models, whose last bits depend on the CPU's kernels (AVX2, AVX-512, NEON, XNNPACK or
# not). Gaze selection keeps 33 of 66 candidates by measured gaze, so a measurement that moves by a
# thousandth can pick the neighbouring candidate for one frame. Measured (this pack rebuilt on an EPYC
# with AVX-512 VNNI, and with XNNPACK off, against the committed one): eyes within 0.01 px, gaze within
# 0.011, base.png max 1 level, frames mean |diff| <= 0.043 levels with <= 0.18 % of values off by more
# than 8. Committed frames two places apart differ by >= 0.10 levels and >= 0.38 %, so the bounds below
# pass a neighbouring candidate and fail any frame two or more places out of order.
EYE_TOLERANCE_PX = 0.25
GAZE_TOLERANCE = 0.02      # one frame step is about 0.014 of the eye's width
BASE_MAX_LEVELS = 2
FRAME_MEAN_LEVELS = 0.07
FRAME_FAR_LEVELS, FRAME_FAR_SHARE = 8, 0.003


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def pack_differences(ours: Path, committed: Path) -> list[str]:
    """What differs between two builds of a pack beyond float rounding (empty: the same pack)."""
    a = json.loads((ours / "manifest.json").read_text())
    b = json.loads((committed / "manifest.json").read_text())
    found = []
    fixed = {k: v for k, v in a.items() if k not in ("files", "eyes", "gaze")}
    if fixed != {k: v for k, v in b.items() if k not in ("files", "eyes", "gaze")}:
        found.append("manifest: fields other than files/eyes/gaze differ")
    if sorted(a["files"]) != sorted(b["files"]):
        found.append(f"manifest: file lists differ: {sorted(set(a['files']) ^ set(b['files']))}")
    if a["gaze"]["span_deg"] != b["gaze"]["span_deg"]:
        found.append("manifest: gaze.span_deg differs")
    for side in ("left", "right"):
        off = np.abs(np.subtract(a["eyes"][side], b["eyes"][side])).max()
        if off > EYE_TOLERANCE_PX:
            found.append(f"manifest: {side} eye moved {off:.2f} px")
    ga, gb = np.asarray(a["gaze"]["measured"]), np.asarray(b["gaze"]["measured"])
    if ga.shape != gb.shape:
        return found + ["manifest: frame counts differ"]
    if not (np.all(np.diff(ga) > 0) and np.all(np.diff(gb) > 0)):
        found.append("manifest: measured gaze is not strictly left to right")
    worst = int(np.abs(ga - gb).argmax())
    if abs(ga[worst] - gb[worst]) > GAZE_TOLERANCE:
        found.append(f"manifest: frame {worst} gaze {ga[worst]:+.4f} against {gb[worst]:+.4f}")
    base = np.abs(_rgb(ours / "base.png") - _rgb(committed / "base.png"))
    if base.max() > BASE_MAX_LEVELS:
        found.append(f"base.png: max difference {base.max()} levels")
    for i in range(len(ga)):
        name = f"frames/{i:02d}.png"
        x, y = _rgb(ours / name), _rgb(committed / name)
        if x.shape != y.shape:
            found.append(f"{name}: size {x.shape} against {y.shape}")
            continue
        diff = np.abs(x - y)
        mean, far = float(diff.mean()), float((diff > FRAME_FAR_LEVELS).mean())
        if mean > FRAME_MEAN_LEVELS or far > FRAME_FAR_SHARE:
            found.append(f"{name}: mean difference {mean:.3f} levels, {far:.2%} of values off by > "
                         f"{FRAME_FAR_LEVELS}")
    return found


@pytest.fixture(scope="module")
def default_rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "default"
    build_pack(PackPlan(portrait=PORTRAIT, out_dir=out, name="Astronaut (eye-warp)", credits=CREDIT),
               log=lambda _: None)
    return out


def test_default_pack_is_what_the_readme_command_makes(default_rebuilt):
    """The README's build-pack command remakes the committed pack, up to the CPU's float rounding."""
    assert pack_differences(default_rebuilt, DEFAULT_PACK) == []
    pack = load_pack(DEFAULT_PACK, screen_size=(1080, 1920))
    assert pack.frame_count == 33 and pack.base.shape == (1920, 1080, 3)


#: How much another CPU's float rounding is taken to move a model output, relative: an upper bound of the
#: accumulation-order differences between SIMD widths after networks this deep (single-precision
#: rounding is 6e-8 an operation). Applied as a fixed +/- pattern, so every machine sees the same inputs.
ROUNDING_RELATIVE = 1e-4


def test_default_pack_comparison_holds_under_other_float_rounding(tmp_path, monkeypatch):
    """Another CPU, simulated: the face-mesh and iris models run without XNNPACK (TFLite's reference
    kernels round differently) and their outputs are moved by ROUNDING_RELATIVE, and the rebuilt pack
    still counts as the committed one. (The reference kernels alone round as this machine's XNNPACK on
    some CPUs: on an AVX2 one the pack came out byte for byte the same, and the test tested nothing.)"""
    from ai_edge_litert.interpreter import OpResolverType

    import edge.tflite

    real = edge.tflite.runtime_module

    class Rounding:
        def __init__(self, interpreter):
            self._interpreter = interpreter

        def __getattr__(self, name):
            return getattr(self._interpreter, name)

        def get_tensor(self, index):
            out = np.array(self._interpreter.get_tensor(index))
            if out.dtype.kind == "f":
                signs = np.where(np.arange(out.size).reshape(out.shape) % 2 == 0, 1.0, -1.0)
                out = (out * (1.0 + ROUNDING_RELATIVE * signs)).astype(out.dtype)
            return out

    class WithoutXnnpack:
        def __init__(self, module):
            self.__name__ = module.__name__
            self._module = module

        def Interpreter(self, **kwargs):
            return Rounding(self._module.Interpreter(
                experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, **kwargs))

    import provisioning.eyes

    monkeypatch.setattr(edge.tflite, "runtime_module", lambda prefer=None: WithoutXnnpack(real(prefer)))
    provisioning.eyes._interpreter.cache_clear()  # the models load once a process: loaded before, they
    out = tmp_path / "default"                     # would not run through the patch at all
    try:
        build_pack(PackPlan(portrait=PORTRAIT, out_dir=out, name="Astronaut (eye-warp)", credits=CREDIT),
                   log=lambda _: None)
    finally:
        provisioning.eyes._interpreter.cache_clear()  # later tests get the real interpreters
    frames = [f"frames/{i:02d}.png" for i in range(33)]
    rounded_differently = [n for n in frames if (out / n).read_bytes() != (DEFAULT_PACK / n).read_bytes()]
    assert rounded_differently, "the simulated rounding should change some pixels, or this test tests nothing"
    assert pack_differences(out, DEFAULT_PACK) == []


def test_default_pack_comparison_catches_real_changes(default_rebuilt, tmp_path):
    """The tolerances pass rounding, not regressions: swapped frames, moved eyes, a damaged frame."""
    import shutil

    from PIL import Image

    def variant(name):
        copy = tmp_path / name
        shutil.copytree(default_rebuilt, copy)
        return copy

    swapped = variant("swapped")
    a, b = swapped / "frames/05.png", swapped / "frames/07.png"
    a.rename(swapped / "tmp.png"), b.rename(a), (swapped / "tmp.png").rename(b)
    assert [d.split(":")[0] for d in pack_differences(swapped, DEFAULT_PACK)] == ["frames/05.png", "frames/07.png"]

    moved = variant("moved")
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["eyes"]["left"][0] += 1.0
    manifest["gaze"]["measured"][3], manifest["gaze"]["measured"][4] = manifest["gaze"]["measured"][4:2:-1]
    (moved / "manifest.json").write_text(json.dumps(manifest))
    found = pack_differences(moved, DEFAULT_PACK)
    assert any("left eye moved 1.00 px" in d for d in found) and any("left to right" in d for d in found)

    damaged = variant("damaged")
    frame = np.asarray(Image.open(damaged / "frames/16.png").convert("RGB")).copy()
    frame[40:60, 250:290] = 255 - frame[40:60, 250:290]  # a 20x40 px blemish on the eyes
    Image.fromarray(frame).save(damaged / "frames/16.png")
    assert [d.split(":")[0] for d in pack_differences(damaged, DEFAULT_PACK)] == ["frames/16.png"]


def test_fomm_path_animates_and_blends_heads_into_the_painting(tmp_path):
    """build-pack's FOMM branch end to end with a checkpoint in the published layout (seeded random
    weights: no real checkpoint can be had here): a driving clip -> one blended full canvas per frame,
    untouched outside the blend ellipse's box."""
    import cv2
    import torch

    from edge.images import read_rgb
    from provisioning.blend import head_patch_rect
    from provisioning.fomm.checkpoint import build_networks
    from provisioning.packer import fit_canvas, fomm_heads

    torch.manual_seed(0)
    kp_detector, generator = build_networks()
    checkpoint = tmp_path / "vox-cpk.pth.tar"
    torch.save({"generator": generator.state_dict(), "kp_detector": kp_detector.state_dict()}, checkpoint)
    canvas = fit_canvas(read_rgb(PORTRAIT), (256, 256))
    driver = tmp_path / "driver.avi"
    writer = cv2.VideoWriter(str(driver), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for shift in (-6, 0, 6):  # the portrait itself sliding sideways: a real, if simple, driving video
        moved = np.roll(canvas, shift, axis=1)
        writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    writer.release()
    plan = PackPlan(portrait=PORTRAIT, out_dir=tmp_path / "p", method="fomm", driver=driver, checkpoint=checkpoint,
                    batch_size=3)
    heads, geometry, alpha = fomm_heads(canvas, plan)
    assert len(heads) == 3 and all(h.shape == canvas.shape and h.dtype == np.uint8 for h in heads)
    x0, y0, x1, y1 = head_patch_rect(canvas.shape, alpha.centre, alpha.radii)
    outside = np.ones(canvas.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    for head in heads:
        assert np.array_equal(head[outside], canvas[outside])
        assert np.abs(head.astype(int) - canvas.astype(int)).max() > 0  # the generator's head is in
