"""The eye warp on real portraits: eyes found where they are, irises moved, nothing else touched."""

from __future__ import annotations

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from edge.errors import PackError  # noqa: E402
from provisioning.eyes import LID_INNER, LID_OUTER, relocate_eyes  # noqa: E402
from provisioning.eyewarp import eye_window, gaze_shift_px, generate_heads, head_ellipse, locate_eyes, warp_gaze  # noqa: E402

#: Iris centres of skimage's astronaut (Eileen Collins), read by hand off a 24x pixel grid: the middle of
#: the dark columns between the visible white on either side, and of the visible dark rows.
ASTRONAUT_IRIS_BY_HAND = ((203.0, 101.0), (246.5, 102.5))


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def grace():
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def geometry(astronaut):
    return locate_eyes(astronaut)


def _openings(geometry, shape) -> np.ndarray:
    """Union of the two eyes' lid polygons (any coverage at all)."""
    mask = np.zeros(shape[:2], bool)
    for eye in geometry.eyes:
        mask |= eye.opening_mask(shape[:2]) > 0
    return mask


def test_eyes_found_where_measured_by_hand(geometry):
    for eye, (hx, hy) in zip(geometry.eyes, ASTRONAUT_IRIS_BY_HAND):
        assert np.hypot(eye.iris_centre[0] - hx, eye.iris_centre[1] - hy) < 1.5
        assert 3.0 < eye.iris_radius < 5.5  # the visible iris is 7-8 px across
        assert 15.0 < eye.width < 22.0
        # corners either side of the iris, lid loop closed round it
        left, right = eye.corners_left_to_right
        assert left[0] < eye.iris_centre[0] < right[0]
        assert np.allclose(eye.lid[LID_OUTER], eye.outer_corner)
        assert np.allclose(eye.lid[LID_INNER], eye.inner_corner)
    # the subject's right eye is the image's left one: its outer corner is on the far left
    assert geometry.left.outer_corner[0] < geometry.left.inner_corner[0]
    assert geometry.right.outer_corner[0] > geometry.right.inner_corner[0]
    x0, y0, x1, y1 = geometry.face_box
    for eye in geometry.eyes:
        assert x0 < eye.iris_centre[0] < x1 and y0 < eye.iris_centre[1] < y1


def test_rest_gaze_returns_the_painting_untouched(astronaut, geometry):
    assert np.array_equal(warp_gaze(astronaut, geometry, 0.0), astronaut)


@pytest.mark.parametrize("g", [-1.0, -0.4, 0.7, 1.0])
def test_only_the_eye_openings_change(astronaut, geometry, g):
    out = warp_gaze(astronaut, geometry, g)
    outside = ~_openings(geometry, astronaut.shape)
    assert np.array_equal(out[outside], astronaut[outside])
    changed = np.any(out != astronaut, axis=2)
    assert changed.sum() > 30  # the irises did move
    for eye in geometry.eyes:
        x0, y0, x1, y1 = eye_window(eye, (astronaut.shape[1], astronaut.shape[0]))
        assert changed[y0:y1, x0:x1].any()


def test_iris_moves_and_white_fills_where_it_was(astronaut, geometry):
    right = warp_gaze(astronaut, geometry, 1.0)
    shift = gaze_shift_px(geometry, 1.0)
    assert shift > 2.0
    for eye in geometry.eyes:
        cx, cy = np.rint(eye.iris_centre).astype(int)
        # the iris left: its old place is now much lighter (sclera), its new place dark (iris)
        before = astronaut[cy - 1:cy + 2, cx - 1:cx + 2].astype(float).mean()
        after = right[cy - 1:cy + 2, cx - 1:cx + 2].astype(float).mean()
        assert after > before + 40
        left_corner, right_corner = eye.corners_left_to_right
        axis = (right_corner - left_corner) / eye.width
        nx, ny = np.rint(eye.iris_centre + shift * axis).astype(int)
        assert right[ny - 2:ny + 3, nx - 2:nx + 3].astype(float).mean() < 100  # catchlight included


def test_remeasured_gaze_follows_the_request(astronaut, geometry):
    heads = generate_heads(astronaut, 9, geometry=geometry)
    measured = [relocate_eyes(h, geometry).gaze() for h in heads]
    assert np.all(np.diff(measured) > 0)
    assert measured[0] < -0.15 and measured[-1] > 0.15


def test_head_turn_stays_inside_the_head(astronaut, geometry):
    out = warp_gaze(astronaut, geometry, 1.0, head_turn=0.03)
    (cx, cy), (rx, ry) = head_ellipse(geometry)
    yy, xx = np.mgrid[0:astronaut.shape[0], 0:astronaut.shape[1]]
    outside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 >= 1.0
    assert np.array_equal(out[outside], astronaut[outside])
    eyes_only = warp_gaze(astronaut, geometry, 1.0)
    assert np.any(out != eyes_only)


def test_second_portrait(grace):
    geometry = locate_eyes(grace)
    left, right = warp_gaze(grace, geometry, -1.0), warp_gaze(grace, geometry, 1.0)
    assert relocate_eyes(left, geometry).gaze() < geometry.gaze() - 0.1
    assert relocate_eyes(right, geometry).gaze() > geometry.gaze() + 0.1
    outside = ~_openings(geometry, grace.shape)
    assert np.array_equal(left[outside], grace[outside])


def test_bad_arguments(astronaut, geometry):
    with pytest.raises(ValueError, match="g=1.5"):
        warp_gaze(astronaut, geometry, 1.5)
    with pytest.raises(PackError, match="head_turn"):  # the user's --head-turn
        warp_gaze(astronaut, geometry, 0.5, head_turn=0.5)
    with pytest.raises(ValueError, match="found in a 512x512"):
        warp_gaze(astronaut[:300], geometry, 0.5)
    with pytest.raises(ValueError, match="n_candidates"):
        generate_heads(astronaut, 1, geometry=geometry)
    with pytest.raises(PackError, match="no face"):  # the user's portrait
        locate_eyes(np.full((256, 256, 3), 128, np.uint8))


def test_eyes_ellipse_patch_carries_the_whole_warp(astronaut, geometry):
    from provisioning.blend import AlphaParams, blend_head, head_patch_rect
    from provisioning.eyewarp import eyes_ellipse

    centre, radii = eyes_ellipse(geometry)
    head = warp_gaze(astronaut, geometry, -1.0)
    out = blend_head(astronaut, head, (0, 0, 512, 512), AlphaParams(centre, radii))
    moved = np.any(head != astronaut, axis=2)
    assert np.abs(out[moved].astype(int) - head[moved]).max() <= 2
    x0, y0, x1, y1 = head_patch_rect(astronaut.shape, centre, radii)
    ys, xs = np.nonzero(moved)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    assert (x1 - x0) * (y1 - y0) < 0.1 * 512 * 512  # a small patch per frame
