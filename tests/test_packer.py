"""build-pack end to end: a real eye-warp pack from the astronaut, loaded back by the Pi's reader."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

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
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        build_pack(PackPlan(portrait=tmp_path / "nowhere.png", out_dir=tmp_path / "x"), log=lambda _: None)
    with pytest.raises(ValueError, match="--frames"):
        build_pack(PackPlan(portrait=PORTRAIT, out_dir=tmp_path / "x", frames=1), log=lambda _: None)
    with pytest.raises(ValueError, match="--driver"):
        build_pack(PackPlan(portrait=PORTRAIT, out_dir=tmp_path / "x", method="fomm"), log=lambda _: None)


def test_default_pack_is_exactly_what_the_readme_command_makes(tmp_path):
    out = tmp_path / "default"
    build_pack(PackPlan(portrait=PORTRAIT, out_dir=out, name="Astronaut (eye-warp)", credits=CREDIT),
               log=lambda _: None)
    for name in ["manifest.json", "base.png"] + [f"frames/{i:02d}.png" for i in range(33)]:
        ours = hashlib.sha256((out / name).read_bytes()).hexdigest()
        committed = hashlib.sha256((DEFAULT_PACK / name).read_bytes()).hexdigest()
        assert ours == committed, name
    pack = load_pack(DEFAULT_PACK, screen_size=(1080, 1920))
    assert pack.frame_count == 33 and pack.base.shape == (1920, 1080, 3)


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
