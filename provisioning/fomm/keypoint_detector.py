"""Unsupervised keypoints with local affine Jacobians (paper Sec. 3.1)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasDownsample, Hourglass, coordinate_grid
from .config import FommConfig


class Keypoints(NamedTuple):
    """Keypoints in the [-1, 1] (x, y) frame and their 2x2 local affine Jacobians."""

    value: torch.Tensor  # (B, K, 2)
    jacobian: torch.Tensor  # (B, K, 2, 2)

    def take(self, index: slice) -> Keypoints:
        """The frames ``index`` selects, both tensors sliced alike (batches are cut this way)."""
        return Keypoints(self.value[index], self.jacobian[index])


class KeypointDetector(nn.Module):
    """Hourglass -> per-keypoint heatmap (softmax) -> expected position; Jacobians pooled under the heatmap.

    The 7x7 ``kp`` and ``jacobian`` convolutions are unpadded, so a 64x64 hourglass output gives 58x58
    heatmaps; positions are expectations over that grid in its own [-1, 1] frame.
    """

    def __init__(self, config: FommConfig) -> None:
        super().__init__()
        c = config
        self.num_kp = c.num_kp
        self.temperature = c.kp_temperature
        self.predictor = Hourglass(c.kp_block_expansion, c.num_channels, c.kp_num_blocks, c.kp_max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, c.num_kp, kernel_size=7, padding=0)
        # Channel 4 k + j holds entry j (row-major) of keypoint k's Jacobian. Zero weights and an identity
        # bias start every keypoint as a pure translation, as in the paper's training.
        self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * c.num_kp, kernel_size=7, padding=0)
        with torch.no_grad():
            self.jacobian.weight.zero_()
            assert self.jacobian.bias is not None  # Conv2d(bias=True)
            self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(c.num_kp))
        self.down = AntiAliasDownsample(c.num_channels, c.kp_scale_factor)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Hourglass features of the band-limited, downsampled image."""
        return self.predictor(self.down(image))

    def heatmaps(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, K, h, w)`` spatial softmax of the keypoint logits at the detector's temperature."""
        logits = self.kp(features)
        b, k, h, w = logits.shape
        return F.softmax(logits.view(b, k, h * w) / self.temperature, dim=2).view(b, k, h, w)

    def forward(self, image: torch.Tensor) -> Keypoints:
        """``image`` is ``(B, C, H, W)`` RGB in [0, 1]."""
        feats = self.features(image)
        heat = self.heatmaps(feats)
        b, k, h, w = heat.shape
        grid = coordinate_grid(h, w, heat.device, heat.dtype)
        value = torch.einsum("bkhw,hwc->bkc", heat, grid)
        jac_map = self.jacobian(feats).view(b, k, 4, h, w)
        jacobian = torch.einsum("bkhw,bkjhw->bkj", heat, jac_map).view(b, k, 2, 2)
        return Keypoints(value, jacobian)
