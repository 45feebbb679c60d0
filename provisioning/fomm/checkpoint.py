"""Load the authors' published checkpoint (``vox-cpk.pth.tar``) into our networks, refusing anything
whose layout differs.

Loading is strict: every parameter and buffer must be present with the exact shape, and nothing extra may
be there, so a checkpoint for another config (or a damaged file) fails here with the first offending key
named, instead of producing plausible-looking garbage later. The one allowance is BatchNorm's
``num_batches_tracked`` counter, which checkpoints written before torch 0.4.1 lack and which inference
never reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edge.errors import ModelError

from .config import VOX_256, FommConfig
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KeypointDetector

#: The checkpoint's top-level entries we use; the file also holds the discriminator, optimisers and epoch.
NETWORKS = ("kp_detector", "generator")


class CheckpointError(ModelError):
    """The user's ``--checkpoint`` is missing or not a FOMM checkpoint of the expected layout."""


@dataclass
class FommModel:
    """Both inference networks, in eval mode on ``device``, and the config they were built from."""

    kp_detector: KeypointDetector
    generator: OcclusionAwareGenerator
    device: torch.device
    config: FommConfig


def build_networks(config: FommConfig = VOX_256) -> tuple[KeypointDetector, OcclusionAwareGenerator]:
    """Freshly initialised ``(kp_detector, generator)`` in the checkpoint's layout."""
    return KeypointDetector(config), OcclusionAwareGenerator(config)


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refusing CUDA on a machine without it (torch's own error is late
    and long)."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"device {device!r}: not a torch device (use 'cpu' or 'cuda[:N]')") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: CUDA is not available on this machine; use 'cpu'")
    if resolved.type not in ("cpu", "cuda"):
        raise ModelError(f"device {device!r}: only 'cpu' and 'cuda' are supported")
    return resolved


def _is_optional(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def check_state_dict(path: Path, name: str, module: nn.Module, state: object) -> dict:
    """``state`` checked against ``module``'s own keys and shapes; returns it ready for a strict load."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: '{name}' is a {type(state).__name__}, expected a state dict")
    expected = module.state_dict()
    for key, reference in expected.items():
        if key not in state:
            if _is_optional(key):
                continue
            raise CheckpointError(f"{path}: missing key '{name}.{key}' (expected shape {tuple(reference.shape)})")
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: key '{name}.{key}' is a {type(value).__name__}, expected a tensor")
        if tuple(value.shape) != tuple(reference.shape):
            raise CheckpointError(f"{path}: key '{name}.{key}' has shape {tuple(value.shape)}, "
                                  f"expected {tuple(reference.shape)}")
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{path}: unexpected key '{name}.{key}' (not in the vox-256 layout)")
    complete = dict(state)
    for key, reference in expected.items():
        complete.setdefault(key, torch.zeros_like(reference))
    return complete


def read_checkpoint(path: Path) -> Mapping:
    """The checkpoint's top-level dict, unpickled without running code (``weights_only``)."""
    if not path.is_file():
        raise CheckpointError(f"FOMM checkpoint {path}: no such file (pass the vox-cpk.pth.tar you downloaded)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({reason[:200]})") from exc
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, expected a dict with "
                              f"'kp_detector' and 'generator'")
    missing = [n for n in NETWORKS if n not in data]
    if missing:
        found = ", ".join(repr(k) for k in list(data)[:8]) or "nothing"
        raise CheckpointError(f"{path}: no '{missing[0]}' entry (found {found}); expected a FOMM checkpoint "
                              f"with 'kp_detector' and 'generator'")
    return data


def load_fomm(checkpoint_path: str | Path, device: str | torch.device = "cpu",
              config: FommConfig = VOX_256) -> FommModel:
    """The published FOMM networks from ``checkpoint_path``, strictly checked, in eval mode on ``device``."""
    path = Path(checkpoint_path)
    resolved = resolve_device(device)
    data = read_checkpoint(path)
    kp_detector, generator = build_networks(config)
    for name, module in zip(NETWORKS, (kp_detector, generator)):
        module.load_state_dict(check_state_dict(path, name, module, data[name]), strict=True)
        module.eval().requires_grad_(False).to(resolved)
    return FommModel(kp_detector=kp_detector, generator=generator, device=resolved, config=config)
