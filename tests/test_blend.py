"""The 2D-sigmoid blend: alpha shape, colour match and an invisible seam on a real portrait."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from provisioning.blend import AlphaParams, blend_head, head_patch_rect, match_colour, seam_weights, sigmoid_alpha  # noqa: E402

CENTRE, RADII = (100.0, 90.0), (60.0, 75.0)


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def _radius(shape, centre, radii):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.sqrt(((xx - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2)


@pytest.mark.parametrize("slope,midpoint", [(10.0, 0.7), (4.0, 0.5), (30.0, 0.8)])
def test_alpha_shape(slope, midpoint):
    shape = (200, 220)
    alpha = sigmoid_alpha(shape, CENTRE, RADII, slope, midpoint)
    assert alpha.dtype == np.float32 and alpha.shape == shape
    assert alpha[90, 100] == pytest.approx(1.0, abs=1e-6)
    r = _radius(shape, CENTRE, RADII)
    assert np.all(alpha[r >= 1.0] < 1e-3)
    assert np.all(alpha[r >= 1.0] == 0.0)
    assert np.all((alpha >= 0) & (alpha <= 1))
    # non-increasing along every ray: alpha is a non-increasing function of r
    order = np.argsort(r, axis=None, kind="stable")
    assert np.all(np.diff(alpha.ravel()[order].astype(np.float64)) <= 1e-6)
    # along the axes explicitly
    assert np.all(np.diff(alpha[90, 100:]) <= 1e-7) and np.all(np.diff(alpha[90, :101]) >= -1e-7)
    # continuous: neighbour differences bounded by the sigmoid's steepest slope over the smaller radius
    s0 = 1 / (1 + np.exp(-slope * midpoint))
    s1 = 1 / (1 + np.exp(slope * (1 - midpoint)))
    bound = slope / 4 / (s0 - s1) / min(RADII) * 1.1 + 1e-4
    assert np.abs(np.diff(alpha, axis=0)).max() <= bound
    assert np.abs(np.diff(alpha, axis=1)).max() <= bound


def test_patch_rect_is_tight():
    shape = (200, 220)
    alpha = sigmoid_alpha(shape, CENTRE, RADII, 10.0, 0.7)
    x0, y0, x1, y1 = head_patch_rect(shape, CENTRE, RADII)
    inside = np.zeros(shape, bool)
    inside[y0:y1, x0:x1] = True
    assert np.all(alpha[~inside] == 0)
    patch = alpha[y0:y1, x0:x1] > 0
    assert patch[0].any() or patch[1].any()
    assert patch[:, 0].any() or patch[:, 1].any()
    assert patch[-1].any() or patch[-2].any()
    assert patch[:, -1].any() or patch[:, -2].any()
    # clipped to the canvas
    assert head_patch_rect((100, 100), (10.0, 10.0), (30.0, 30.0))[:2] == (0, 0)


def _shifted(rgb, offset=(30, 12, -20)):
    return np.clip(rgb.astype(np.int16) + np.array(offset), 0, 255).astype(np.uint8)


def test_match_colour_undoes_a_colour_drift(astronaut):
    region = astronaut[60:220, 140:320]
    drifted = np.clip(region.astype(np.float32) * [0.85, 0.95, 1.0] + [40, 15, -25], 0, 255).astype(np.uint8)
    weights = np.ones(region.shape[:2], np.float32)
    fixed = match_colour(drifted, region, weights)
    before = np.abs(drifted.astype(float) - region).mean()
    after = np.abs(fixed.astype(float) - region).mean()
    assert before > 12 and after < before / 3


def _gradient_energy(rgb, weights):
    """Weighted mean squared Sobel gradient (per pixel, all channels) after a light blur."""
    g = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), 1.5)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8
    energy = (gx ** 2 + gy ** 2).sum(axis=2)
    return float((energy * weights).sum() / weights.sum())


def test_seam_is_invisible(astronaut):
    """A colour-shifted copy of the head, blended with a steep alpha: after the colour match the blend
    ring carries no more gradient energy than the painting itself does there; without it, it does."""
    params = AlphaParams(centre=(225.0, 125.0), radii=(75.0, 90.0), slope=60.0, midpoint=0.7)
    alpha = sigmoid_alpha(astronaut.shape[:2], params.centre, params.radii, params.slope, params.midpoint)
    ring = seam_weights(alpha)
    head = _shifted(astronaut)
    own = _gradient_energy(astronaut, ring)
    matched = blend_head(astronaut, head, (0, 0, 512, 512), params)
    unmatched = blend_head(astronaut, head, (0, 0, 512, 512), params, colour_match=False)
    assert _gradient_energy(matched, ring) <= own * 1.01
    assert _gradient_energy(unmatched, ring) > own * 1.05
    on_ring = ring > 0.5
    assert np.abs(matched[on_ring].astype(float) - astronaut[on_ring]).mean() < 2.0


def test_small_head_scaled_into_its_box_changes_only_the_patch(astronaut):
    """A FOMM-style 256x256 head of a 180x180 box: only the patch changes, and inside it only where
    alpha > 0."""
    box = (135, 40, 315, 220)
    crop = _shifted(astronaut[40:220, 135:315], (10, -5, 5))
    head = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
    params = AlphaParams(centre=(225.0, 130.0), radii=(80.0, 85.0))
    out = blend_head(astronaut, head, box, params)
    x0, y0, x1, y1 = head_patch_rect(astronaut.shape, params.centre, params.radii)
    outside = np.ones(astronaut.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], astronaut[outside])
    alpha = sigmoid_alpha(astronaut.shape[:2], params.centre, params.radii, params.slope, params.midpoint)
    assert np.array_equal(out[alpha == 0], astronaut[alpha == 0])
    # the head really is in: near the centre the result is the (colour-matched, rescaled) head
    centre_diff = np.abs(out[125:135, 220:230].astype(float) - astronaut[125:135, 220:230]).mean()
    assert centre_diff < 8


def test_blend_errors(astronaut):
    head = astronaut[:100, :100]
    with pytest.raises(ValueError, match="reaches outside the head box"):
        blend_head(astronaut, head, (100, 100, 200, 200), AlphaParams((150.0, 150.0), (80.0, 40.0)))
    with pytest.raises(ValueError, match="must lie inside"):
        blend_head(astronaut, head, (400, 400, 600, 600), AlphaParams((500.0, 500.0), (10.0, 10.0)))
    with pytest.raises(ValueError, match="midpoint"):
        sigmoid_alpha((10, 10), (5.0, 5.0), (4.0, 4.0), 10.0, 1.5)
    with pytest.raises(ValueError, match="slope"):
        sigmoid_alpha((10, 10), (5.0, 5.0), (4.0, 4.0), 0.0, 0.5)
