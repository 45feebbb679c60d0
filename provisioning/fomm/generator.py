"""Occlusion-aware generator: warp the source's features by the dense motion, mask occlusions, decode
(paper Sec. 3.2)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import GRID_SAMPLE_ARGS, DownBlock, ResBlock, SameBlock, UpBlock
from .config import FommConfig
from .dense_motion import DenseMotionNetwork
from .keypoint_detector import Keypoints


class EncodedSource(NamedTuple):
    """What the generator needs from the source image; computed once per animation, reused per frame."""

    image: torch.Tensor  # (1, C, H, W) in [0, 1]
    small: torch.Tensor  # the dense motion network's band-limited downsample
    features: torch.Tensor  # encoder output, (1, F, H / 2**n, W / 2**n)


def warp(tensor: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` ``tensor`` by ``deformation`` ``(B, h, w, 2)``, resizing the warp when sizes differ."""
    size = tensor.shape[-2:]
    if deformation.shape[1:3] != size:
        deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=size, mode="bilinear",
                                    align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(tensor, deformation, **GRID_SAMPLE_ARGS)


class OcclusionAwareGenerator(nn.Module):
    """Encoder (7x7 stem + down blocks) -> warp + occlusion -> pre-activation residual bottleneck ->
    decoder -> sigmoid RGB."""

    def __init__(self, config: FommConfig) -> None:
        super().__init__()
        c = config
        self.dense_motion_network = DenseMotionNetwork(c)
        self.first = SameBlock(c.num_channels, c.gen_block_expansion, kernel_size=7)

        def width(level: int) -> int:
            return min(c.gen_max_features, c.gen_block_expansion * (2 ** level))

        n = c.gen_num_down_blocks
        self.down_blocks = nn.ModuleList(DownBlock(width(i), width(i + 1)) for i in range(n))
        self.up_blocks = nn.ModuleList(UpBlock(width(n - i), width(n - i - 1)) for i in range(n))
        self.bottleneck = nn.Sequential()
        for i in range(c.gen_num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock(width(n)))
        self.final = nn.Conv2d(c.gen_block_expansion, c.num_channels, kernel_size=7, padding=3)

    def encode(self, source: torch.Tensor) -> EncodedSource:
        """Everything that depends on the source alone."""
        features = self.first(source)
        for block in self.down_blocks:
            features = block(features)
        return EncodedSource(source, self.dense_motion_network.down(source), features)

    def render(self, encoded: EncodedSource, kp_driving: Keypoints, kp_source: Keypoints,
               visuals: bool = False) -> dict[str, torch.Tensor]:
        """Frames for a batch of driving keypoints (the source may have batch 1: it is broadcast).

        Returns ``prediction`` (B, C, H, W) in [0, 1] and the motion outputs; with ``visuals`` also
        ``deformed``, the full-resolution source warped by the dense motion.
        """
        b = kp_driving.value.shape[0]
        if kp_source.value.shape[0] != b:
            kp_source = Keypoints(kp_source.value.expand(b, -1, -1), kp_source.jacobian.expand(b, -1, -1, -1))
        motion = self.dense_motion_network(encoded.small, kp_driving, kp_source)
        features = encoded.features
        if features.shape[0] != b:
            features = features.expand(b, *features.shape[1:])
        out = warp(features, motion["deformation"])
        occlusion = motion["occlusion_map"]
        if occlusion.shape[-2:] != out.shape[-2:]:
            occlusion = F.interpolate(occlusion, size=out.shape[-2:], mode="bilinear", align_corners=False)
        out = self.bottleneck(out * occlusion)
        for block in self.up_blocks:
            out = block(out)
        result = dict(motion)
        result["prediction"] = torch.sigmoid(self.final(out))
        if visuals:
            image = encoded.image
            result["deformed"] = warp(image.expand(b, *image.shape[1:]), motion["deformation"])
        return result

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints,
                visuals: bool = False) -> dict[str, torch.Tensor]:
        return self.render(self.encode(source), kp_driving, kp_source, visuals=visuals)
