"""Put a generated head back into the painting without a visible seam.

A generator works on its own crop and scale (FOMM: 256x256) and drifts in colour; the painting around
the head must stay exactly as painted, because the Pi shows the base painting and swaps only a small
patch per frame. So: scale the head to its box, match its colour to the painting where the two meet,
and composite with an alpha that is exactly 1 at the head's centre and exactly 0 from the head ellipse
outwards (the pack stores only the rectangle round that ellipse).

The alpha is a 2D sigmoid of the normalised elliptical distance

    r(x, y)  = sqrt(((x - cx) / rx)^2 + ((y - cy) / ry)^2)
    s(r)     = 1 / (1 + exp(slope * (r - midpoint)))
    alpha(r) = clip((s(r) - s(1)) / (s(0) - s(1)), 0, 1)

``slope`` sets how sharp the transition is, ``midpoint`` (in units of the radius) where it is half-way.
Rescaling by s(0) and s(1) makes alpha(0) = 1 and alpha(r >= 1) = 0 exactly while keeping the sigmoid's
shape: continuous, non-increasing along every ray from the centre, with a bounded gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class AlphaParams:
    """The blend ellipse in painting pixels and the sigmoid's shape (see the module docstring)."""

    centre: tuple[float, float]
    radii: tuple[float, float]
    slope: float = 10.0
    midpoint: float = 0.7


def _check_alpha(radii, slope: float, midpoint: float) -> None:
    if not (radii[0] > 0 and radii[1] > 0):
        raise ValueError(f"alpha radii {tuple(radii)}: both must be > 0 px")
    if not slope > 0:
        raise ValueError(f"alpha slope {slope}: must be > 0")
    if not 0.0 < midpoint < 1.0:
        raise ValueError(f"alpha midpoint {midpoint}: must be in (0, 1), a fraction of the radius")


def _sigmoid(r: np.ndarray | np.float64, slope: float, midpoint: float) -> np.ndarray:
    return 0.5 * (1.0 - np.tanh(0.5 * slope * (r - midpoint)))  # 1/(1+exp(.)) without overflow


def sigmoid_alpha(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float],
                  slope: float, midpoint: float) -> np.ndarray:
    """The blend alpha for an image of ``shape`` (h, w): float32, 1 at ``centre``, 0 for r >= 1."""
    _check_alpha(radii, slope, midpoint)
    h, w = int(shape[0]), int(shape[1])
    ys = ((np.arange(h, dtype=np.float64) - centre[1]) / radii[1]) ** 2
    xs = ((np.arange(w, dtype=np.float64) - centre[0]) / radii[0]) ** 2
    r = np.sqrt(ys[:, None] + xs[None, :])
    s0, s1 = _sigmoid(np.float64(0.0), slope, midpoint), _sigmoid(np.float64(1.0), slope, midpoint)
    alpha = (_sigmoid(r, slope, midpoint) - s1) / (s0 - s1)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def head_patch_rect(canvas_shape: tuple[int, ...], centre: tuple[float, float],
                    radii: tuple[float, float]) -> Box:
    """(x0, y0, x1, y1), end-exclusive: the tight rectangle of the canvas outside which alpha is 0.

    Pixel (x, y) can have alpha > 0 only if |x - cx| < rx and |y - cy| < ry.
    """
    if not (radii[0] > 0 and radii[1] > 0):
        raise ValueError(f"alpha radii {tuple(radii)}: both must be > 0 px")
    h, w = int(canvas_shape[0]), int(canvas_shape[1])
    x0 = max(0, int(np.floor(centre[0] - radii[0])) + 1)
    y0 = max(0, int(np.floor(centre[1] - radii[1])) + 1)
    x1 = min(w, int(np.ceil(centre[0] + radii[0])))
    y1 = min(h, int(np.ceil(centre[1] + radii[1])))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"alpha ellipse centre {tuple(centre)} radii {tuple(radii)} misses the "
                         f"{w}x{h} canvas")
    return x0, y0, x1, y1


def seam_weights(alpha: np.ndarray) -> np.ndarray:
    """4 alpha (1 - alpha): 1 where alpha is 0.5, 0 where the head or the painting alone shows."""
    return (4.0 * alpha * (1.0 - alpha)).astype(np.float32)


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2Lab)


def match_colour(head: np.ndarray, painting: np.ndarray, mask: np.ndarray,
                 max_gain: float = 2.0) -> np.ndarray:
    """``head`` with each CIE Lab channel's weighted mean and std moved to the painting's.

    ``head`` and ``painting`` are the same (H, W, 3) uint8 region; ``mask`` (H, W) weights the pixels
    that decide (the seam ring, :func:`seam_weights`), where the two must agree for the seam to vanish.
    Lab so that a lightness drift is fixed without shifting hue; the std ratio is held within
    [1/max_gain, max_gain] so a flat ring cannot blow the head's contrast up.
    """
    if head.shape != painting.shape or head.ndim != 3 or head.shape[2] != 3:
        raise ValueError(f"match_colour: head {head.shape} and painting {painting.shape} must be the same "
                         "(H, W, 3) region")
    if mask.shape != head.shape[:2]:
        raise ValueError(f"match_colour: mask {mask.shape} does not match the region {head.shape[:2]}")
    weights = np.clip(mask.astype(np.float64), 0.0, None)
    total = float(weights.sum())
    if total <= 0:
        raise ValueError("match_colour: the mask has no weight; the seam ring is empty")
    head_lab, paint_lab = _to_lab(head), _to_lab(painting)
    out = np.empty_like(head_lab)
    for ch in range(3):
        hm = float((head_lab[..., ch] * weights).sum() / total)
        pm = float((paint_lab[..., ch] * weights).sum() / total)
        hs = float(np.sqrt(((head_lab[..., ch] - hm) ** 2 * weights).sum() / total))
        ps = float(np.sqrt(((paint_lab[..., ch] - pm) ** 2 * weights).sum() / total))
        gain = float(np.clip(ps / hs, 1.0 / max_gain, max_gain)) if hs > 1e-6 else 1.0
        out[..., ch] = (head_lab[..., ch] - hm) * gain + pm
    rgb = cv2.cvtColor(out, cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def place_head(head: np.ndarray, box: Box) -> np.ndarray:
    """The head resized to fill ``box`` (x0, y0, x1, y1) of the painting."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    if (head.shape[1], head.shape[0]) == (bw, bh):
        return head
    shrinking = head.shape[1] > bw or head.shape[0] > bh
    return cv2.resize(head, (bw, bh), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def blend_head(painting: np.ndarray, head: np.ndarray, box: Box, alpha_params: AlphaParams,
               colour_match: bool = True) -> np.ndarray:
    """The painting with ``head`` (any size, covering ``box``) blended in; a new array.

    Only pixels inside :func:`head_patch_rect` of ``alpha_params`` can differ from ``painting``, and
    only where alpha > 0. The whole ellipse must lie inside ``box``: the head is all there is there.
    """
    if painting.dtype != np.uint8 or painting.ndim != 3 or painting.shape[2] != 3:
        raise ValueError(f"painting: expected an (H, W, 3) uint8 RGB array, got {painting.dtype} {painting.shape}")
    if head.dtype != np.uint8 or head.ndim != 3 or head.shape[2] != 3:
        raise ValueError(f"head: expected an (H, W, 3) uint8 RGB array, got {head.dtype} {head.shape}")
    h, w = painting.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"head box {tuple(box)}: must lie inside the {w}x{h} painting with x0 < x1, y0 < y1")
    p = alpha_params
    _check_alpha(p.radii, p.slope, p.midpoint)
    px0, py0, px1, py1 = head_patch_rect(painting.shape, p.centre, p.radii)
    if px0 < x0 or py0 < y0 or px1 > x1 or py1 > y1:
        raise ValueError(f"alpha ellipse (patch {px0, py0, px1, py1}) reaches outside the head box "
                         f"{(x0, y0, x1, y1)}; shrink the radii or enlarge the box")
    placed = place_head(head, (x0, y0, x1, y1))
    region = placed[py0 - y0:py1 - y0, px0 - x0:px1 - x0]
    under = painting[py0:py1, px0:px1]
    alpha = sigmoid_alpha((py1 - py0, px1 - px0), (p.centre[0] - px0, p.centre[1] - py0), p.radii,
                          p.slope, p.midpoint)
    if colour_match:
        region = match_colour(region, under, seam_weights(alpha))
    a = alpha[..., None]
    mixed = under.astype(np.float32) * (1.0 - a) + region.astype(np.float32) * a
    out = painting.copy()
    out[py0:py1, px0:px1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out
