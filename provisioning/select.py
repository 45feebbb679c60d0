"""Pick a pack's frames from candidate heads by the gaze each one actually shows.

A generator's requested gaze is a wish: FOMM follows its driver loosely and the eye warp's irises are
partly hidden by lids. So every candidate is *measured* (the iris model re-run on it, iris position
between the eye corners, -1 at the left corner .. +1 at the right, the two eyes averaged) and the N frames
are the candidates closest to N evenly spaced gazes from the leftmost measured to the rightmost. Those
measured values, not the requested ones, go into the pack's manifest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import PackError
from provisioning.eyes import EyeGeometry, locate_eyes, relocate_eyes

#: Default number of frames in a pack.
DEFAULT_FRAMES = 33
#: Smallest measured left-to-right spread (in gaze units, full scale 2) worth making a pack of.
DEFAULT_MIN_SPAN = 0.15


def measure_gaze(rgb: np.ndarray, geometry_hint: EyeGeometry | None = None) -> float:
    """Horizontal gaze shown in ``rgb``: mean over both eyes of the iris centre's position between the
    corners, -1 (viewer's left corner) .. +1 (right corner); 0 is the iris midway between the corners.

    With ``geometry_hint`` (the eyes of the same portrait) only the iris model runs, in the crops the
    hint's corners define, so all candidates of one portrait are measured through the same window;
    without it the full face -> mesh -> iris chain runs.
    """
    return relocate_eyes(rgb, geometry_hint).gaze()


def _pick_evenly(values: np.ndarray, n: int) -> list[int]:
    """Indices (into ``values``, sorted ascending) of ``n`` increasing picks closest to an even spread.

    Dynamic programming over (target, candidate): the picks keep their order, each candidate is used at
    most once, and the summed squared distance to ``linspace(min, max, n)`` is the least possible.
    """
    m = values.size
    targets = np.linspace(values[0], values[-1], n)
    cost = (values[None, :] - targets[:, None]) ** 2  # (n, m)
    best = np.full((n, m), np.inf)
    choice = np.zeros((n, m), dtype=np.int64)
    best[0] = cost[0]
    positions = np.arange(m)
    for i in range(1, n):
        # cheapest way to have placed target i-1 on some candidate at or before each j
        prev = np.minimum.accumulate(best[i - 1])
        arg = np.maximum.accumulate(np.where(best[i - 1] == prev, positions, 0))
        best[i, 1:] = prev[:-1] + cost[i, 1:]
        best[i, 0] = np.inf
        choice[i, 1:] = arg[:-1]
    picks = [int(np.argmin(best[n - 1]))]
    for i in range(n - 1, 0, -1):
        picks.append(int(choice[i, picks[-1]]))
    return picks[::-1]


def select_frames(heads: Sequence[np.ndarray], n: int = DEFAULT_FRAMES, *,
                  geometry_hint: EyeGeometry | None = None,
                  min_span: float = DEFAULT_MIN_SPAN) -> tuple[list[int], list[float]]:
    """Choose ``n`` of ``heads`` spanning far left to far right; returns (indices, measured gazes).

    Both lists are in frame order: frame 0 looks furthest left, frame n-1 furthest right, measured gazes
    non-decreasing and as evenly spaced as the candidates allow. Without a hint the eyes are located
    once, on the middle candidate, and every candidate is measured through that same window.
    """
    count = len(heads)
    if int(n) != n or n < 2:
        raise ValueError(f"select_frames: n={n}; a pack needs at least 2 frames")
    n = int(n)
    if n > count:  # FOMM: one candidate per driving frame, so a short driver video lands here
        raise PackError(f"select_frames: n={n} frames asked from only {count} candidate heads; "
                        f"generate at least {n} candidates")
    if geometry_hint is None:
        geometry_hint = locate_eyes(np.asarray(heads[count // 2]))
    measured = np.array([measure_gaze(np.asarray(h), geometry_hint) for h in heads], dtype=np.float64)
    span = float(measured.max() - measured.min())
    if span < min_span:
        raise PackError(f"select_frames: the {count} candidates' measured gaze spans only {span:.3f} "
                        f"({measured.min():+.3f} .. {measured.max():+.3f}), less than min_span={min_span}; "
                        "the heads barely move their eyes (raise max_shift, or check the driver video)")
    order = np.lexsort((np.arange(count), measured))  # by gaze, ties by candidate order
    picks = _pick_evenly(measured[order], n)
    indices = [int(order[p]) for p in picks]
    return indices, [float(measured[i]) for i in indices]
