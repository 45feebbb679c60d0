"""Dense motion from sparse keypoint motions, plus the occlusion map (paper Sec. 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import GRID_SAMPLE_ARGS, AntiAliasDownsample, Hourglass, coordinate_grid, keypoint_gaussians
from .config import FommConfig
from .keypoint_detector import Keypoints


def sparse_motions(kp_driving: Keypoints, kp_source: Keypoints, height: int, width: int) -> torch.Tensor:
    """``(B, K + 1, h, w, 2)`` backward warps driving -> source, the identity first (background).

    Keypoint k's first-order (affine) approximation, paper Eq. 4:
    T_k(z) = kp_s,k + J_s,k J_d,k^-1 (z - kp_d,k).
    """
    grid = coordinate_grid(height, width, kp_source.value.device, kp_source.value.dtype)
    b, k = kp_source.value.shape[:2]
    affine = kp_source.jacobian @ torch.linalg.inv(kp_driving.jacobian)  # (B, K, 2, 2)
    offset = grid.view(1, 1, height, width, 2) - kp_driving.value.view(b, k, 1, 1, 2)
    warped = torch.einsum("bkij,bkhwj->bkhwi", affine, offset) + kp_source.value.view(b, k, 1, 1, 2)
    identity = grid.view(1, 1, height, width, 2).expand(b, 1, height, width, 2)
    return torch.cat((identity, warped), dim=1)


def deform_each(image: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """Warp ``image`` ``(B, C, h, w)`` by each of ``motions`` ``(B, M, h, w, 2)`` -> ``(B, M, C, h, w)``."""
    b, m, h, w, _ = motions.shape
    c = image.shape[1]
    repeated = image.unsqueeze(1).expand(b, m, c, h, w).reshape(b * m, c, h, w)
    out = F.grid_sample(repeated, motions.reshape(b * m, h, w, 2), **GRID_SAMPLE_ARGS)
    return out.view(b, m, c, h, w)


class DenseMotionNetwork(nn.Module):
    """Hourglass that blends the K + 1 sparse warps into one dense warp (softmax masks) and predicts
    where the source cannot explain the driving frame (sigmoid occlusion map)."""

    def __init__(self, config: FommConfig) -> None:
        super().__init__()
        c = config
        self.num_kp = c.num_kp
        self.kp_variance = c.kp_variance
        in_features = (c.num_kp + 1) * (c.num_channels + 1)
        self.hourglass = Hourglass(c.dm_block_expansion, in_features, c.dm_num_blocks, c.dm_max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, c.num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        self.down = AntiAliasDownsample(c.num_channels, c.dm_scale_factor)

    def forward(self, small_source: torch.Tensor, kp_driving: Keypoints,
                kp_source: Keypoints) -> dict[str, torch.Tensor]:
        """``small_source`` is the source already passed through ``self.down`` (done once per animation).

        Returns ``mask`` (B, K+1, h, w), ``deformation`` (B, h, w, 2), ``occlusion_map`` (B, 1, h, w) and
        ``sparse_deformed`` (B, K+1, C, h, w).
        """
        b = kp_driving.value.shape[0]
        if small_source.shape[0] != b:
            small_source = small_source.expand(b, *small_source.shape[1:])
        _, c, h, w = small_source.shape
        heat = (keypoint_gaussians(kp_driving.value, h, w, self.kp_variance)
                - keypoint_gaussians(kp_source.value, h, w, self.kp_variance))
        heat = torch.cat((heat.new_zeros(b, 1, h, w), heat), dim=1)
        motions = sparse_motions(kp_driving, kp_source, h, w)
        deformed = deform_each(small_source, motions)
        # Per keypoint (background first): [heatmap, R, G, B] - the channel order the weights expect.
        inputs = torch.cat((heat.unsqueeze(2), deformed), dim=2).view(b, -1, h, w)
        features = self.hourglass(inputs)
        mask = F.softmax(self.mask(features), dim=1)
        deformation = torch.einsum("bmhw,bmhwc->bhwc", mask, motions)
        occlusion = torch.sigmoid(self.occlusion(features))
        return {"mask": mask, "deformation": deformation, "occlusion_map": occlusion, "sparse_deformed": deformed}
