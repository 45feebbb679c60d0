"""Frame selection by measured gaze, on eye-warped heads of a real portrait."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from edge.errors import PackError  # noqa: E402
from provisioning.eyewarp import generate_heads, locate_eyes  # noqa: E402
from provisioning.select import _pick_evenly, measure_gaze, select_frames  # noqa: E402


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def geometry(astronaut):
    return locate_eyes(astronaut)


@pytest.fixture(scope="module")
def heads(astronaut, geometry):
    return generate_heads(astronaut, 49, geometry=geometry)


def test_pick_evenly_is_optimal_and_ordered():
    rng = np.random.default_rng(7)
    values = np.sort(rng.uniform(-1, 1, 12))
    targets = np.linspace(values[0], values[-1], 5)
    picks = _pick_evenly(values, 5)
    assert picks == sorted(set(picks))
    best = min(combinations(range(12), 5), key=lambda c: float(((values[list(c)] - targets) ** 2).sum()))
    assert np.isclose(((values[picks] - targets) ** 2).sum(), ((values[list(best)] - targets) ** 2).sum())
    assert _pick_evenly(np.linspace(0, 1, 33), 33) == list(range(33))


def test_measure_with_and_without_hint_agree(astronaut, geometry):
    full = measure_gaze(astronaut)
    hinted = measure_gaze(astronaut, geometry)
    assert abs(full - hinted) < 0.1
    assert abs(full - geometry.gaze()) < 1e-9  # the full chain is exactly locate_eyes


def test_selected_frames_sweep_left_to_right(heads, geometry):
    indices, gazes = select_frames(heads, 33, geometry_hint=geometry)
    assert len(indices) == len(gazes) == 33
    assert len(set(indices)) == 33
    # measured on the generated images, independently of the requested order ...
    assert np.all(np.diff(gazes) >= 0)
    assert gazes[0] < -0.2 and gazes[-1] > 0.15
    # ... and it agrees with it: frames come out in the order the heads were generated
    assert indices == sorted(indices)
    assert indices[0] == 0 and indices[-1] == len(heads) - 1
    # evenly spread: no gap much bigger than an even step
    step = (gazes[-1] - gazes[0]) / 32
    assert np.max(np.diff(gazes)) < 2.5 * step
    # the returned values are the measurement of exactly those frames
    for k in (0, 16, 32):
        assert np.isclose(gazes[k], measure_gaze(heads[indices[k]], geometry))


def test_select_without_hint(heads):
    indices, gazes = select_frames(heads[::4], 5)
    assert np.all(np.diff(gazes) > 0)
    assert indices == sorted(indices)


def test_clear_errors(heads, astronaut, geometry):
    with pytest.raises(PackError, match="n=60 frames asked from only 49"):
        select_frames(heads, 60, geometry_hint=geometry)
    with pytest.raises(ValueError, match="at least 2 frames"):
        select_frames(heads, 1, geometry_hint=geometry)
    with pytest.raises(PackError, match="spans only"):
        select_frames([astronaut] * 6, 4, geometry_hint=geometry)
