"""Hyper-parameters that fix the FOMM network shapes, kept in one place.

The published face checkpoint (``vox-cpk.pth.tar``) only loads into networks built from exactly the
vox-256 numbers below; tests build the same architecture at reduced sizes, so the numbers are data,
not constants scattered through the modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FommConfig:
    """Architecture of the keypoint detector, dense motion network and generator.

    Field names follow the paper's three networks: ``kp_*`` for the keypoint detector, ``dm_*`` for the
    dense motion network, ``gen_*`` for the occlusion-aware generator.
    """

    image_size: int = 256
    num_kp: int = 10
    num_channels: int = 3
    # Keypoint detector (hourglass on a 4x band-limited downsample; softmax heatmaps at temperature 0.1).
    kp_block_expansion: int = 32
    kp_max_features: int = 1024
    kp_num_blocks: int = 5
    kp_temperature: float = 0.1
    kp_scale_factor: float = 0.25
    # Dense motion network (its own hourglass, also on a 4x downsample).
    dm_block_expansion: int = 64
    dm_max_features: int = 1024
    dm_num_blocks: int = 5
    dm_scale_factor: float = 0.25
    #: Variance of the Gaussian keypoint heatmaps, in the [-1, 1] coordinate frame.
    kp_variance: float = 0.01
    # Generator (Johnson-style encoder / residual bottleneck / decoder).
    gen_block_expansion: int = 64
    gen_max_features: int = 512
    gen_num_down_blocks: int = 2
    gen_num_bottleneck_blocks: int = 6

    def __post_init__(self) -> None:
        for name, scale, blocks in (("kp", self.kp_scale_factor, self.kp_num_blocks),
                                    ("dm", self.dm_scale_factor, self.dm_num_blocks)):
            step = 1.0 / scale
            if scale <= 0 or scale > 1 or abs(step - round(step)) > 1e-9:
                raise ValueError(f"{name}_scale_factor {scale}: must be 1/n for a whole n >= 1")
            side = self.image_size // round(step)
            if side % (2 ** blocks) or self.image_size % round(step):
                raise ValueError(f"image_size {self.image_size} with {name}_scale_factor {scale}: the downsampled "
                                 f"side must divide by 2**{name}_num_blocks = {2 ** blocks}")
        if (self.image_size * self.kp_scale_factor) <= 6:
            raise ValueError(f"image_size {self.image_size}: the keypoint heatmap (7x7 unpadded conv) would be empty")
        if self.image_size % (2 ** self.gen_num_down_blocks):
            raise ValueError(f"image_size {self.image_size}: must divide by 2**gen_num_down_blocks")


#: The authors' ``config/vox-256.yaml`` (VoxCeleb faces, 256x256), the layout of ``vox-cpk.pth.tar``.
VOX_256 = FommConfig()
