"""First Order Motion Model (Siarohin et al., NeurIPS 2019) inference, written from the paper, loading
the authors' published vox-256 face checkpoint.

Modules: ``config`` (architecture numbers), ``blocks`` (shared layers, grids, anti-aliasing),
``keypoint_detector``, ``dense_motion``, ``generator`` (the three networks), ``checkpoint`` (strict
loading), ``motion`` (relative transfer, movement scale, best frame), ``animate`` (frames in, frames out).
"""

from .animate import animate, read_driving_video
from .checkpoint import CheckpointError, FommModel, load_fomm
from .config import VOX_256, FommConfig

__all__ = ["animate", "read_driving_video", "load_fomm", "FommModel", "CheckpointError", "FommConfig", "VOX_256"]
