"""FOMM: the networks' shapes and ranges, the motion maths, the checkpoint layout and strict loading,
animation and video reading. All on CPU with random weights; the only 256x256 work is one keypoint pass."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO

from edge.errors import ExitStatus, ModelError, PackError
from provisioning.fomm import VOX_256, CheckpointError, FommConfig, FommModel, animate, load_fomm, read_driving_video
from provisioning.fomm.animate import detect_keypoints, driving_motion
from provisioning.fomm.blocks import AntiAliasDownsample, ResBlock, coordinate_grid, gaussian_kernel
from provisioning.fomm.checkpoint import build_networks, check_state_dict, resolve_device
from provisioning.fomm.dense_motion import DenseMotionNetwork, sparse_motions
from provisioning.fomm.generator import warp
from provisioning.fomm.keypoint_detector import KeypointDetector, Keypoints
from provisioning.fomm.motion import best_aligned_frame, hull_side, movement_scale, normalised_shape, relative_keypoints

SMALL = FommConfig(image_size=64, kp_block_expansion=8, kp_max_features=32, kp_num_blocks=3,
                   dm_block_expansion=8, dm_max_features=32, dm_num_blocks=3,
                   gen_block_expansion=8, gen_max_features=32, gen_num_down_blocks=2, gen_num_bottleneck_blocks=2)

#: Keys and shapes of the published vox-256 checkpoint, worked out by hand from the authors' module
#: definitions (modules/util.py, keypoint_detector.py, dense_motion.py, generator.py) and config/vox-256.yaml.
PUBLISHED = {
    "kp_detector.predictor.encoder.down_blocks.0.conv.weight": (64, 3, 3, 3),
    "kp_detector.predictor.encoder.down_blocks.4.conv.weight": (1024, 512, 3, 3),
    "kp_detector.predictor.encoder.down_blocks.4.norm.running_var": (1024,),
    "kp_detector.predictor.decoder.up_blocks.0.conv.weight": (512, 1024, 3, 3),
    "kp_detector.predictor.decoder.up_blocks.1.conv.weight": (256, 1024, 3, 3),
    "kp_detector.predictor.decoder.up_blocks.4.conv.weight": (32, 128, 3, 3),
    "kp_detector.kp.weight": (10, 35, 7, 7),
    "kp_detector.kp.bias": (10,),
    "kp_detector.jacobian.weight": (40, 35, 7, 7),
    "kp_detector.jacobian.bias": (40,),
    "kp_detector.down.weight": (3, 1, 13, 13),
    "generator.dense_motion_network.hourglass.encoder.down_blocks.0.conv.weight": (128, 44, 3, 3),
    "generator.dense_motion_network.hourglass.encoder.down_blocks.4.conv.weight": (1024, 1024, 3, 3),
    "generator.dense_motion_network.hourglass.decoder.up_blocks.0.conv.weight": (1024, 1024, 3, 3),
    "generator.dense_motion_network.hourglass.decoder.up_blocks.1.conv.weight": (512, 2048, 3, 3),
    "generator.dense_motion_network.hourglass.decoder.up_blocks.4.norm.weight": (64,),
    "generator.dense_motion_network.mask.weight": (11, 108, 7, 7),
    "generator.dense_motion_network.occlusion.weight": (1, 108, 7, 7),
    "generator.dense_motion_network.down.weight": (3, 1, 13, 13),
    "generator.first.conv.weight": (64, 3, 7, 7),
    "generator.first.norm.running_mean": (64,),
    "generator.down_blocks.0.conv.weight": (128, 64, 3, 3),
    "generator.down_blocks.1.conv.weight": (256, 128, 3, 3),
    "generator.up_blocks.0.conv.weight": (128, 256, 3, 3),
    "generator.up_blocks.1.conv.weight": (64, 128, 3, 3),
    "generator.bottleneck.r0.norm1.weight": (256,),
    "generator.bottleneck.r5.conv2.weight": (256, 256, 3, 3),
    "generator.final.weight": (3, 64, 7, 7),
    "generator.final.bias": (3,),
}
#: Entries per state dict without BatchNorm's num_batches_tracked (10 BN in the detector, 27 in the generator).
PUBLISHED_COUNTS = {"kp_detector": 65, "generator": 169}


def _randomise_batchnorm(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine terms, so eval-mode BN really does something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.fixture(scope="module")
def small_model() -> FommModel:
    torch.manual_seed(0)
    kp_detector, generator = build_networks(SMALL)
    # Random Jacobian weights too, so the Jacobians are not all the initial identity; sharper keypoint
    # logits, so keypoints move across the image as trained ones do rather than huddling at the centre.
    with torch.no_grad():
        kp_detector.jacobian.weight.normal_(0, 0.01)
        kp_detector.kp.weight.mul_(5.0)
        generator.final.weight.mul_(20.0)  # outputs spanning [0, 1], so motion shows in the pixels
    for i, net in enumerate((kp_detector, generator)):
        _randomise_batchnorm(net, i)
        net.eval().requires_grad_(False)
    return FommModel(kp_detector, generator, torch.device("cpu"), SMALL)


@pytest.fixture(scope="module")
def full_size_networks():
    torch.manual_seed(1)
    return build_networks(VOX_256)


def _random_keypoints(batch: int, k: int, seed: int) -> Keypoints:
    gen = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, k, 2, generator=gen) * 1.4 - 0.7
    jacobian = torch.eye(2).expand(batch, k, 2, 2) + 0.3 * torch.randn(batch, k, 2, 2, generator=gen)
    return Keypoints(value, jacobian)


def _smooth_image(size: int, batch: int = 1) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    rgb = torch.stack((0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * torch.sin(3 * x + 2 * y)))
    return rgb.unsqueeze(0).repeat(batch, 1, 1, 1)


# --- grids and anti-aliasing ---------------------------------------------------------------------------

def test_coordinate_grid_is_x_first_from_minus_one_to_one():
    grid = coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0]
    assert grid[0, 4].tolist() == [1.0, -1.0]  # x varies along width
    assert grid[2, 0].tolist() == [-1.0, 1.0]
    assert torch.allclose(grid[1, :, 0], torch.tensor([2 * i / 4 - 1 for i in range(5)]))


def test_gaussian_kernel_for_quarter_scale_is_13x13_sigma_1_5_normalised_and_separable():
    kernel, sigma = gaussian_kernel(0.25)
    assert sigma == 1.5 and kernel.shape == (13, 13)
    assert math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-6)
    assert torch.equal(kernel, kernel.T) and torch.equal(kernel, kernel.flip(0))
    assert kernel.argmax().item() == 6 * 13 + 6
    assert math.isclose(float(kernel[6, 7] / kernel[6, 6]), math.exp(-1 / (2 * 1.5 ** 2)), rel_tol=1e-5)
    assert torch.allclose(kernel, torch.outer(kernel.sum(1), kernel.sum(0)), atol=1e-8)  # separable


def test_antialias_downsample_zero_pads_then_keeps_every_fourth_pixel_from_zero():
    down = AntiAliasDownsample(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13)
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    out = down(image)
    assert out.shape == (1, 3, 64, 64)
    kernel = gaussian_kernel(0.25)[0]
    padded = F.pad(image, (6, 6, 6, 6))
    for y, x in [(0, 0), (1, 2), (30, 63), (63, 63)]:
        expected = (padded[0, :, 4 * y:4 * y + 13, 4 * x:4 * x + 13] * kernel).sum(dim=(1, 2))
        assert torch.allclose(out[0, :, y, x], expected, atol=1e-5)
    ones = down(torch.ones(1, 3, 256, 256))
    assert torch.allclose(ones[0, :, 32, 32], torch.ones(3))
    assert math.isclose(float(ones[0, 0, 0, 0]), float(kernel[6:, 6:].sum()), rel_tol=1e-5)  # zero padding
    assert AntiAliasDownsample(3, 1.0)(image) is image


# --- networks at reduced size --------------------------------------------------------------------------

def test_keypoint_detector_outputs_in_range_and_heatmaps_normalised(small_model):
    image = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    kp = small_model.kp_detector(image)
    assert kp.value.shape == (3, 10, 2) and kp.jacobian.shape == (3, 10, 2, 2)
    assert kp.value.abs().max() <= 1.0
    heat = small_model.kp_detector.heatmaps(small_model.kp_detector.features(image))
    assert heat.shape == (3, 10, 10, 10)  # 16x16 hourglass output, 7x7 unpadded conv
    assert torch.allclose(heat.sum(dim=(2, 3)), torch.ones(3, 10), atol=1e-5)
    expected = torch.einsum("bkhw,hwc->bkc", heat, coordinate_grid(10, 10))
    assert torch.allclose(kp.value, expected, atol=1e-6)


def test_jacobian_channel_4k_plus_j_is_row_major_2x2():
    torch.manual_seed(5)
    detector = KeypointDetector(SMALL).eval()
    with torch.no_grad():
        detector.jacobian.weight.zero_()
        detector.jacobian.bias.copy_(torch.arange(40, dtype=torch.float32))
        kp = detector(torch.rand(1, 3, 64, 64))
    # The heatmap sums to one, so each Jacobian is exactly its constant channel values.
    expected = torch.arange(40, dtype=torch.float32).view(10, 2, 2)
    assert torch.allclose(kp.jacobian[0], expected, atol=1e-4)
    assert torch.allclose(kp.jacobian[0, 3], torch.tensor([[12.0, 13.0], [14.0, 15.0]]), atol=1e-4)


def test_fresh_detector_starts_with_identity_jacobians():
    detector = KeypointDetector(SMALL).eval()
    with torch.no_grad():
        kp = detector(torch.rand(2, 3, 64, 64))
    assert torch.allclose(kp.jacobian, torch.eye(2).expand(2, 10, 2, 2), atol=1e-6)


def test_full_size_detector_uses_a_58x58_heatmap(full_size_networks):
    detector = full_size_networks[0].eval()
    with torch.no_grad():
        image = _smooth_image(256)
        heat = detector.heatmaps(detector.features(image))
        kp = detector(image)
    assert heat.shape == (1, 10, 58, 58)
    assert torch.allclose(kp.value, torch.einsum("bkhw,hwc->bkc", heat, coordinate_grid(58, 58)), atol=1e-6)
    assert detector.temperature == 0.1


def test_batchnorm_is_eps_1e5_and_residual_blocks_are_pre_activation():
    torch.manual_seed(6)
    block = ResBlock(4)
    _randomise_batchnorm(block, 7)
    block.eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        manual = x + block.conv2(F.relu(block.norm2(block.conv1(F.relu(block.norm1(x))))))
        assert torch.allclose(block(x), manual)
    kp_detector, generator = build_networks(SMALL)
    norms = [m for net in (kp_detector, generator) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-5 and m.affine for m in norms)


def test_sparse_motion_for_identical_keypoints_is_the_identity_grid():
    kp = _random_keypoints(2, 10, seed=8)
    motions = sparse_motions(kp, kp, 16, 16)
    assert motions.shape == (2, 11, 16, 16, 2)
    assert torch.allclose(motions, coordinate_grid(16, 16).expand(2, 11, 16, 16, 2), atol=1e-5)


def test_sparse_motion_is_the_first_order_affine_map():
    kp_d, kp_s = _random_keypoints(1, 3, seed=9), _random_keypoints(1, 3, seed=10)
    motions = sparse_motions(kp_d, kp_s, 5, 7)
    z = coordinate_grid(5, 7)[2, 4]
    for k in range(3):
        expected = kp_s.value[0, k] + kp_s.jacobian[0, k] @ torch.linalg.inv(kp_d.jacobian[0, k]) @ (z - kp_d.value[0, k])
        assert torch.allclose(motions[0, k + 1, 2, 4], expected, atol=1e-5)
    assert torch.allclose(motions[0, 0], coordinate_grid(5, 7))  # background stays put


def test_dense_motion_identity_drive_and_input_channel_order(small_model):
    dense = small_model.generator.dense_motion_network
    kp = _random_keypoints(2, 10, seed=11)
    source = _smooth_image(64, batch=2)
    captured = {}
    hook = dense.hourglass.register_forward_pre_hook(lambda _m, args: captured.setdefault("input", args[0]))
    try:
        with torch.no_grad():
            small = dense.down(source)
            out = dense(small, kp, kp)
    finally:
        hook.remove()
    grid = coordinate_grid(16, 16)
    assert torch.allclose(out["deformation"], grid.expand(2, 16, 16, 2), atol=1e-5)
    assert out["mask"].min() >= 0 and torch.allclose(out["mask"].sum(1), torch.ones(2, 16, 16), atol=1e-5)
    assert 0 <= out["occlusion_map"].min() and out["occlusion_map"].max() <= 1
    assert out["occlusion_map"].shape == (2, 1, 16, 16)
    # Input: per keypoint (background first) [heatmap, R, G, B]; identical keypoints -> zero heatmaps.
    inputs = captured["input"].view(2, 11, 4, 16, 16)
    assert inputs.shape[1] * inputs.shape[2] == (SMALL.num_kp + 1) * (SMALL.num_channels + 1)
    identity_warp = F.grid_sample(small, grid.expand(2, 16, 16, 2), align_corners=False)
    assert torch.equal(inputs[:, :, 0], torch.zeros(2, 11, 16, 16))
    assert torch.allclose(inputs[:, 5, 1:], identity_warp, atol=1e-5)


def test_dense_motion_heatmap_channel_is_driving_minus_source_gaussian():
    dense = DenseMotionNetwork(SMALL).eval()
    kp_s = Keypoints(torch.zeros(1, 10, 2), torch.eye(2).expand(1, 10, 2, 2))
    kp_d = Keypoints(torch.full((1, 10, 2), 0.5), torch.eye(2).expand(1, 10, 2, 2))
    captured = {}
    hook = dense.hourglass.register_forward_pre_hook(lambda _m, args: captured.setdefault("input", args[0]))
    with torch.no_grad():
        dense(torch.rand(1, 3, 16, 16), kp_d, kp_s)
    hook.remove()
    heat = captured["input"].view(1, 11, 4, 16, 16)[0, 1, 0]
    grid = coordinate_grid(16, 16)
    expected = (torch.exp(-0.5 * ((grid - 0.5) ** 2).sum(-1) / 0.01) - torch.exp(-0.5 * (grid ** 2).sum(-1) / 0.01))
    assert torch.allclose(heat, expected, atol=1e-6)


def test_generator_identity_drive_warps_source_to_itself(small_model):
    source = _smooth_image(64, batch=1)
    generator = small_model.generator
    with torch.no_grad():
        kp = small_model.kp_detector(source)
        encoded = generator.encode(source)
        out = generator.render(encoded, kp, kp, visuals=True)
    grid = coordinate_grid(16, 16).unsqueeze(0)
    assert torch.allclose(out["deformation"], grid, atol=1e-5)
    # The features (16x16 here, 64x64 at vox-256, the warp's own size) are sampled on the identity grid.
    assert encoded.features.shape[-2:] == (16, 16)
    assert torch.allclose(warp(encoded.features, out["deformation"]),
                          F.grid_sample(encoded.features, grid, align_corners=False), atol=1e-5)
    # With align_corners=False the [-1, 1] grid lands up to half a pixel off at the borders; inside, on a
    # smooth image, the identity warp gives the image back to within that shift
    # (offset i/(n-1) - 1/2 px: 0.37 px two pixels in, times this image's slope of up to ~0.06 per px).
    assert (warp(encoded.small, out["deformation"]) - encoded.small)[..., 2:-2, 2:-2].abs().max() < 0.03
    assert (warp(encoded.small, out["deformation"]) - encoded.small)[..., 6:-6, 6:-6].abs().max() < 0.01
    assert out["deformed"].shape == source.shape
    prediction = out["prediction"]
    assert prediction.shape == (1, 3, 64, 64)
    assert 0 <= prediction.min() and prediction.max() <= 1
    assert torch.allclose(out["mask"].sum(1), torch.ones(1, 16, 16), atol=1e-5)
    assert 0 <= out["occlusion_map"].min() and out["occlusion_map"].max() <= 1


def test_generator_batch_broadcast_matches_per_frame(small_model):
    source = _smooth_image(64)
    kp_d = _random_keypoints(3, 10, seed=12)
    with torch.no_grad():
        kp_s = small_model.kp_detector(source)
        encoded = small_model.generator.encode(source)
        batched = small_model.generator.render(encoded, kp_d, kp_s)["prediction"]
        single = torch.cat([small_model.generator(source, kp_d.take(slice(i, i + 1)), kp_s)["prediction"]
                            for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


# --- relative motion ---------------------------------------------------------------------------------

def test_relative_motion_at_the_initial_frame_gives_back_the_source_keypoints():
    kp_s, kp_i = _random_keypoints(1, 10, seed=13), _random_keypoints(1, 10, seed=14)
    out = relative_keypoints(kp_s, kp_i, kp_i, scale=1.7)
    assert torch.equal(out.value, kp_s.value)
    assert torch.allclose(out.jacobian, kp_s.jacobian, atol=1e-5)


def test_relative_motion_scales_displacement_and_composes_jacobians_in_order():
    kp_s, kp_i, kp_d = (_random_keypoints(1, 4, seed=s) for s in (15, 16, 17))
    out = relative_keypoints(kp_s, kp_d, kp_i, scale=0.5)
    assert torch.allclose(out.value, kp_s.value + 0.5 * (kp_d.value - kp_i.value))
    for k in range(4):
        expected = (kp_d.jacobian[0, k] @ torch.linalg.inv(kp_i.jacobian[0, k])) @ kp_s.jacobian[0, k]
        assert torch.allclose(out.jacobian[0, k], expected, atol=1e-5)
    wrong_order = kp_s.jacobian[0, 0] @ kp_d.jacobian[0, 0] @ torch.linalg.inv(kp_i.jacobian[0, 0])
    assert not torch.allclose(out.jacobian[0, 0], wrong_order, atol=1e-3)


def test_movement_scale_is_ratio_of_sqrt_hull_areas():
    square = np.array([[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5], [0.2, 0.3], [0.1, 0.1]])
    assert hull_side(square) == pytest.approx(0.5)
    assert movement_scale(square * 2 + 0.3, square) == pytest.approx(2.0)
    assert movement_scale(square, square * 4) == pytest.approx(0.25)
    collinear = np.array([[0, 0], [0.1, 0.1], [0.2, 0.2]])
    assert hull_side(collinear) == 0.0 and movement_scale(square, collinear) == 1.0


def test_best_aligned_frame_ignores_position_and_size():
    rng = np.random.default_rng(18)
    source = rng.uniform(-0.5, 0.5, (10, 2))
    others = [rng.uniform(-0.5, 0.5, (10, 2)) for _ in range(4)]
    same_pose = source * 0.6 + np.array([0.2, -0.1])
    driving = np.stack(others[:2] + [same_pose] + others[2:])
    assert best_aligned_frame(source, driving) == 2
    assert np.allclose(normalised_shape(same_pose), normalised_shape(source))
    with pytest.raises(ValueError, match="driving keypoints"):
        best_aligned_frame(source, np.zeros((0, 10, 2)))


# --- checkpoint layout and loading ---------------------------------------------------------------------

def _flat(kp_detector, generator) -> dict:
    return {f"{name}.{key}": value for name, net in (("kp_detector", kp_detector), ("generator", generator))
            for key, value in net.state_dict().items()}


def test_layout_matches_the_published_checkpoint(full_size_networks):
    flat = _flat(*full_size_networks)
    for key, shape in PUBLISHED.items():
        assert key in flat, key
        assert tuple(flat[key].shape) == shape, key
    for name, count in PUBLISHED_COUNTS.items():
        assert sum(1 for k in flat if k.startswith(name + ".") and "num_batches_tracked" not in k) == count


def test_full_size_checkpoint_loads_strictly(tmp_path, full_size_networks):
    kp_detector, generator = full_size_networks
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save({"generator": generator.state_dict(), "kp_detector": kp_detector.state_dict(),
                "discriminator": {"x": torch.zeros(1)}, "epoch": 99}, path)
    model = load_fomm(path)
    assert model.device == torch.device("cpu") and model.config == VOX_256
    for ours, theirs in ((model.kp_detector, kp_detector), (model.generator, generator)):
        assert not ours.training and not any(p.requires_grad for p in ours.parameters())
        loaded, saved = ours.state_dict(), theirs.state_dict()
        assert loaded.keys() == saved.keys()
        for key in ("first.conv.weight", "bottleneck.r3.norm2.running_var", "kp.weight", "down.weight"):
            if key in saved:
                assert torch.equal(loaded[key], saved[key]), key


def test_full_size_mis_shaped_key_is_named(full_size_networks):
    kp_detector = full_size_networks[0]
    state = dict(kp_detector.state_dict())
    state["kp.weight"] = torch.zeros(10, 35, 3, 3)  # e.g. a padded/resized keypoint head
    with pytest.raises(CheckpointError, match=r"'kp_detector\.kp\.weight' has shape \(10, 35, 3, 3\), "
                                              r"expected \(10, 35, 7, 7\)"):
        check_state_dict(Path("vox.pth.tar"), "kp_detector", kp_detector, state)


def _save_small(path: Path, small_model: FommModel, edit=None, legacy: bool = False) -> None:
    data = {"kp_detector": dict(small_model.kp_detector.state_dict()),
            "generator": dict(small_model.generator.state_dict()), "epoch": 1}
    if edit:
        edit(data)
    torch.save(data, path, _use_new_zipfile_serialization=not legacy)


def test_legacy_format_without_batch_counters_loads(tmp_path, small_model):
    path = tmp_path / "old.pth.tar"

    def drop_counters(data):
        for name in ("kp_detector", "generator"):
            data[name] = {k: v for k, v in data[name].items() if not k.endswith("num_batches_tracked")}

    _save_small(path, small_model, drop_counters, legacy=True)
    model = load_fomm(path, config=SMALL)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(19))
    with torch.no_grad():
        assert torch.allclose(model.kp_detector(image).value, small_model.kp_detector(image).value)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["generator"].pop("final.bias"), r"missing key 'generator\.final\.bias' \(expected shape \(3,\)\)"),
    (lambda d: d["kp_detector"].update({"jacobian.bias": torch.zeros(4)}),
     r"'kp_detector\.jacobian\.bias' has shape \(4,\), expected \(40,\)"),
    (lambda d: d["generator"].update({"extra.weight": torch.zeros(1)}), r"unexpected key 'generator\.extra\.weight'"),
    (lambda d: d.pop("kp_detector"), r"no 'kp_detector' entry"),
    (lambda d: d.update({"generator": [1, 2]}), r"'generator' is a list, expected a state dict"),
])
def test_bad_checkpoints_are_refused_naming_the_key(tmp_path, small_model, edit, message):
    path = tmp_path / "bad.pth.tar"
    _save_small(path, small_model, edit)
    with pytest.raises(CheckpointError, match=message):
        load_fomm(path, config=SMALL)


def test_missing_and_non_checkpoint_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such file") as caught:
        load_fomm(tmp_path / "nope.pth.tar")
    assert isinstance(caught.value, ModelError) and caught.value.exit_status == ExitStatus.MODEL
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"this is not a pickle\n" * 10)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_fomm(junk)
    listed = tmp_path / "list.pth.tar"
    torch.save([1, 2, 3], listed)
    with pytest.raises(CheckpointError, match="holds a list"):
        load_fomm(listed)


def test_devices_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelError, match="device 'potato'"):
        resolve_device("potato")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")


def test_config_rejects_sizes_the_hourglass_cannot_halve():
    with pytest.raises(ValueError, match="dm_scale_factor 0.3"):
        FommConfig(dm_scale_factor=0.3)
    with pytest.raises(ValueError, match="image_size 96"):
        FommConfig(image_size=96)


# --- animation and video -------------------------------------------------------------------------------

def _uint8(seed: int, shape=(64, 64, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_animate_returns_source_sized_frames_and_batch_size_does_not_matter(small_model):
    source = cv2.resize(_uint8(20, (8, 8, 3)), (90, 90), interpolation=cv2.INTER_CUBIC)
    driving = [_uint8(21 + i, (40, 50, 3)) for i in range(5)]
    one = animate(small_model, source, driving, batch_size=1, progress=False)
    three = animate(small_model, source, driving, batch_size=3, progress=False)
    assert len(one) == 5 and all(f.shape == (90, 90, 3) and f.dtype == np.uint8 for f in one)
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(one, three))


def test_animate_identity_drive_renders_the_source_pose_every_frame(small_model):
    source = _uint8(30)
    frames = animate(small_model, source, [source.copy() for _ in range(4)], batch_size=3, progress=False)
    with torch.no_grad():
        image = torch.from_numpy(source).permute(2, 0, 1).unsqueeze(0).float() / 255
        kp = small_model.kp_detector(image)
        expected = small_model.generator(image, kp, kp)["prediction"][0]
    expected = (expected * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    for frame in frames:
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 1


def test_animate_starts_from_the_best_aligned_driving_frame(small_model):
    source = _uint8(40)
    driving = [_uint8(41), _uint8(42), source.copy(), _uint8(43)]
    with torch.no_grad():
        kp_source = small_model.kp_detector(torch.from_numpy(source).permute(2, 0, 1)[None].float() / 255)
        kp_driving = detect_keypoints(small_model, driving, batch_size=3)
    motion = driving_motion(kp_source, kp_driving)
    # Frame 2 is the source itself, so it is the best aligned one: there the source keypoints come back
    # exactly, and the other frames move them by their displacement from frame 2.
    assert motion.best_frame == 2
    assert motion.scale == pytest.approx(1.0)
    assert torch.equal(motion.keypoints.value[2], kp_source.value[0])
    assert torch.allclose(motion.keypoints.value[0], kp_source.value[0] + kp_driving.value[0] - kp_driving.value[2],
                          atol=1e-6)
    assert (motion.keypoints.value[[0, 1, 3]] - kp_source.value).abs().amax() > 0.05
    frames = animate(small_model, source, driving, batch_size=2, progress=False)
    reference = animate(small_model, source, [source], progress=False)[0]
    assert np.abs(frames[2].astype(int) - reference.astype(int)).max() <= 1
    assert all(np.abs(frames[i].astype(int) - reference.astype(int)).max() > 1 for i in (0, 1, 3))


def test_animate_rejects_bad_inputs(small_model):
    source = _uint8(50)
    with pytest.raises(ValueError, match="source image: got float64"):
        animate(small_model, source / 255.0, [source], progress=False)
    with pytest.raises(ValueError, match="driving frames: none given"):
        animate(small_model, source, [], progress=False)
    with pytest.raises(ValueError, match="driving frame 1: got uint8 of shape \\(64, 64\\)"):
        animate(small_model, source, [source, source[..., 0]], progress=False)
    with pytest.raises(PackError, match="batch_size 0"):  # the user's --batch-size
        animate(small_model, source, [source], batch_size=0, progress=False)


def test_read_driving_video_returns_rgb_frames(tmp_path):
    path = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    assert writer.isOpened()
    for i in range(6):
        bgr = np.zeros((24, 32, 3), np.uint8)
        bgr[..., 2] = 200  # red in BGR
        bgr[..., 0] = 20 * i
        writer.write(bgr)
    writer.release()
    frames = read_driving_video(path)
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3) and frames[0].dtype == np.uint8
    assert frames[0][..., 0].mean() > 150 and frames[0][..., 2].mean() < 30  # RGB order
    assert frames[5][..., 2].mean() > frames[0][..., 2].mean() + 60


def test_read_driving_video_refuses_missing_and_unreadable_files(tmp_path):
    with pytest.raises(PackError, match="driving video .*no such file"):
        read_driving_video(tmp_path / "none.mp4")
    bogus = tmp_path / "bogus.mp4"
    bogus.write_text("not a video")
    with pytest.raises(PackError, match="driving video .*bogus.mp4"):
        read_driving_video(bogus)


def test_fomm_without_pytorch_is_one_error_line_naming_the_extra(tmp_path):
    """A workstation with the `workstation` extra but not `fomm`: build-pack --method fomm says what to
    install (exit status 4, a pack error), before any other work, instead of an internal-error traceback.
    torch is hidden from the child Python (sys.modules['torch'] = None: import and find_spec both fail)."""
    hide_torch = ("import sys\n"
                  "sys.modules['torch'] = None  # Python's own way to make a module unimportable\n"
                  "from edge.cli import main\n"
                  "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", hide_torch, "build-pack", "--portrait", str(REPO / "assets/portraits/astronaut.png"),
                           "--out", str(tmp_path / "pack"), "--method", "fomm", "--driver", str(tmp_path / "d.mp4"),
                           "--checkpoint", str(tmp_path / "vox.pth.tar")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 4, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["mona-edge build-pack: error: --method fomm needs PyTorch, which is not installed: pip install 'mona-edge[fomm]' "
                     "(or --method eyewarp, which needs no weights)"], done.stderr
    assert not (tmp_path / "pack").exists()
