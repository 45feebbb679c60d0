"""Building blocks shared by the three FOMM networks.

Module and attribute names (``conv``, ``norm``, ``encoder.down_blocks``, ``decoder.up_blocks``, ``down``)
are part of the checkpoint format: the published state dicts name parameters by them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Every warp samples with bilinear interpolation, zero outside the image and ``align_corners=False``:
#: the checkpoint was trained with torch's default (``align_corners=False`` since torch 1.3).
GRID_SAMPLE_ARGS: dict[str, Any] = dict(mode="bilinear", padding_mode="zeros", align_corners=False)


def coordinate_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(height, width, 2)`` grid of (x, y) in [-1, 1], pixel i at ``2 i / (n - 1) - 1``.

    Keypoints, Jacobians and warps all live in this frame; x comes first because ``grid_sample`` reads
    its grid as (x, y).
    """
    x = torch.arange(width, device=device, dtype=dtype) * (2.0 / (width - 1)) - 1.0
    y = torch.arange(height, device=device, dtype=dtype) * (2.0 / (height - 1)) - 1.0
    return torch.stack((x.view(1, width).expand(height, width), y.view(height, 1).expand(height, width)), dim=-1)


def keypoint_gaussians(keypoints: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Unnormalised isotropic Gaussians ``(B, K, height, width)`` centred on ``keypoints`` ``(B, K, 2)``.

    These are the paper's heatmaps H_k that tell the dense motion network where each keypoint's local
    motion applies.
    """
    grid = coordinate_grid(height, width, keypoints.device, keypoints.dtype)
    diff = grid.view(1, 1, height, width, 2) - keypoints.view(*keypoints.shape[:2], 1, 1, 2)
    return torch.exp(diff.pow(2).sum(-1) * (-0.5 / variance))


def gaussian_kernel(scale: float) -> tuple[torch.Tensor, float]:
    """Normalised 2-D Gaussian for anti-aliasing a ``1/scale`` downsample, and its sigma.

    sigma = (1/scale - 1) / 2 and side 2 * round(4 sigma) + 1: for scale 0.25 that is sigma 1.5, 13x13.
    """
    sigma = (1.0 / scale - 1.0) / 2.0
    size = 2 * round(sigma * 4) + 1
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    line = torch.exp(-offsets.pow(2) / (2.0 * sigma ** 2))
    kernel = line.view(-1, 1) * line.view(1, -1)
    return kernel / kernel.sum(), sigma


class AntiAliasDownsample(nn.Module):
    """Band-limit with a Gaussian, then keep every ``1/scale``-th pixel starting at index 0.

    The kernel is a buffer named ``weight`` because the checkpoint stores it (``down.weight``).
    """

    weight: torch.Tensor  # registered as a buffer in __init__

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        step = round(1.0 / scale)
        if scale <= 0 or abs(1.0 / scale - step) > 1e-9:
            raise ValueError(f"anti-alias scale {scale}: must be 1/n for a whole n")
        kernel, _ = gaussian_kernel(scale)
        self.register_buffer("weight", kernel.view(1, 1, *kernel.shape).repeat(channels, 1, 1, 1))
        self.step = step
        self.pad = kernel.shape[-1] // 2
        self.channels = channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.step == 1:
            return image
        h, w = image.shape[-2:]
        blurred = F.conv2d(F.pad(image, (self.pad,) * 4), self.weight, groups=self.channels)
        return blurred[..., ::self.step, ::self.step][..., :h // self.step, :w // self.step]


class DownBlock(nn.Module):
    """conv 3x3 -> BN -> ReLU -> 2x2 average pool."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock(nn.Module):
    """2x nearest upsample -> conv 3x3 -> BN -> ReLU."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))))


class SameBlock(nn.Module):
    """conv -> BN -> ReLU at constant resolution (the generator's 7x7 stem)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv2(relu(bn2(conv1(relu(bn1(x))))))."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(out)))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    """Channels at hourglass depth ``level``: doubling from ``block_expansion``, capped."""
    return min(max_features, block_expansion * (2 ** level))


class Encoder(nn.Module):
    """Hourglass contracting path; keeps every level's output for the skip connections."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock(in_features if i == 0 else _width(block_expansion, max_features, i),
                      _width(block_expansion, max_features, i + 1))
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [x]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class Decoder(nn.Module):
    """Hourglass expanding path: each level upsamples and concatenates the encoder's skip."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip = 1 if i == num_blocks - 1 else 2
            blocks.append(UpBlock(skip * _width(block_expansion, max_features, i + 1),
                                  _width(block_expansion, max_features, i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        out = levels[-1]
        for block, skip in zip(self.up_blocks, reversed(levels[:-1])):
            out = torch.cat((block(out), skip), dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style hourglass; output has ``block_expansion + in_features`` channels at input size."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
