"""Weightless gaze frames: move the painted irises inside their eye openings.

Without a motion model the only thing that has to change for a portrait to "look" somewhere else is
where the irises sit between the lids. Per eye:

1. the opening is the iris model's 16-point lid contour, filled anti-aliased and feathered *inward*
   (0 on the lid line, 1 a pixel or so inside), so lids, lashes and everything outside stay exactly as
   painted;
2. a clean eyeball is made by filling the iris (and its dark limbal rim) with sclera, a normalised
   convolution of the visible white that is wide horizontally and narrow vertically, so the lid's shadow
   across the top of the eyeball survives;
3. the iris layer (the painted iris disc; where the lids hid part of it, completed from its own visible
   colours, so lid pixels never travel with it and a moved iris is not cut flat) is pulled to its new
   place by a backward ``cv2.remap`` whose displacement field is the shift inside the iris and fades
   smoothly to zero about a radius further out; the iris is foreshortened a little as it turns towards
   a corner, as a disc on a sphere does;
4. the iris layer over the clean eyeball, inside the feathered opening, over the painting.

Both eyes move by the same number of pixels (eyes turn together), along each eye's corner-to-corner line.
``g = 0`` returns the painting untouched; ``g = -1`` / ``+1`` take the irises ``max_shift`` of the way from
where they are to touching the left / right corner (viewer's left / right). An optional ``head_turn``
adds a small smooth horizontal warp of the face that follows the gaze.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import PackError
from provisioning.eyes import Eye, EyeGeometry, locate_eyes

__all__ = ["EyeGeometry", "Eye", "locate_eyes", "warp_gaze", "generate_heads", "gaze_shift_px",
           "eye_window", "head_ellipse", "eyes_ellipse"]

#: Default fraction of the way from the rest position to "iris edge touches the corner".
DEFAULT_MAX_SHIFT = 0.85
#: The iris layer takes the disc out to this many radii (the model's radius stops short of the dark rim).
IRIS_LAYER_RADII = 1.08
#: The sclera fill replaces the disc out to this many radii (rim and its anti-aliasing included).
HOLE_RADII = 1.25
#: Inward feather of the opening, in eye widths (at least :data:`MIN_FEATHER_PX`).
FEATHER_EYE_WIDTHS = 0.06
MIN_FEATHER_PX = 0.8
#: Eyeball radius in eye widths: sets how much the iris foreshortens as it moves.
EYEBALL_EYE_WIDTHS = 0.6


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def eye_window(eye: Eye, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel rectangle (x0, y0, x1, y1), end-exclusive, that the warp of ``eye`` may touch."""
    w, h = image_size
    lo = np.floor(eye.lid.min(axis=0)) - 2
    hi = np.ceil(eye.lid.max(axis=0)) + 3
    x0, y0 = int(max(0, lo[0])), int(max(0, lo[1]))
    x1, y1 = int(min(w, hi[0])), int(min(h, hi[1]))
    return x0, y0, x1, y1


def _axis(eye: Eye) -> np.ndarray:
    left, right = eye.corners_left_to_right
    d = right - left
    return d / max(float(np.hypot(*d)), 1e-9)


def gaze_shift_px(geometry: EyeGeometry, g: float, max_shift: float = DEFAULT_MAX_SHIFT) -> float:
    """Signed iris shift in pixels along the corner line for gaze ``g`` (same for both eyes).

    The room on each side is the distance the iris centre can travel before its edge reaches that side's
    corner, taken as the smaller of the two eyes so neither iris slides under a corner.
    """
    if not -1.0 <= g <= 1.0:
        raise ValueError(f"gaze g={g}: expected a value in [-1, 1]")
    if not 0.0 <= max_shift <= 1.5:
        raise ValueError(f"max_shift={max_shift}: expected a fraction in [0, 1.5]")
    rooms = []
    for eye in geometry.eyes:
        left = eye.corners_left_to_right[0]
        t = float(np.dot(eye.iris_centre - left, _axis(eye)))
        rooms.append((t - eye.iris_radius, eye.width - t - eye.iris_radius))
    room_left = max(0.0, min(r[0] for r in rooms))
    room_right = max(0.0, min(r[1] for r in rooms))
    return float(g * max_shift * (room_right if g > 0 else room_left))


def _normalised_blur(image: np.ndarray, weights: np.ndarray, sigma_x: float, sigma_y: float,
                     need: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted Gaussian average of ``image``, the kernel widened until every ``need`` pixel has support."""
    for _ in range(6):
        den = cv2.GaussianBlur(weights, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y, borderType=cv2.BORDER_CONSTANT)
        if float(den[need].min(initial=1.0)) > 1e-3:
            break
        sigma_x, sigma_y = sigma_x * 1.6, sigma_y * 1.6
    num = cv2.GaussianBlur(image * weights[..., None], (0, 0), sigmaX=sigma_x, sigmaY=sigma_y,
                           borderType=cv2.BORDER_CONSTANT)
    return num / np.maximum(den, 1e-6)[..., None], den


def _sclera_fill(crop: np.ndarray, known: np.ndarray, hole: np.ndarray, radius: float) -> np.ndarray:
    """Colour for the hole the iris leaves, from the visible white of the eye.

    The candidates (opening pixels away from the iris and the lid line) still include lid shadow and skin
    on small or narrow eyes, so each is weighted by how light it is among them: the white wins where
    there is any. The average is wide horizontally and narrow vertically, which keeps the upper lid's
    shadow across the eyeball. With no candidates at all (an eye that is all iris) OpenCV inpaints.
    """
    if int(known.sum()) < 2:
        mask = (hole > 0.05).astype(np.uint8) * 255
        return cv2.inpaint(np.clip(crop, 0, 255).astype(np.uint8), mask, max(2.0, radius),
                           cv2.INPAINT_TELEA).astype(np.float32)
    light = crop.mean(axis=2)
    lo, hi = np.percentile(light[known], [30.0, 95.0])
    weights = known * _smoothstep((light - lo) / max(float(hi - lo), 1.0) + 0.15)
    weights = weights.astype(np.float32)
    fill, den = _normalised_blur(crop, weights, max(1.0, 1.2 * radius), max(0.6, 0.3 * radius), hole > 0.02)
    mean = (crop * weights[..., None]).sum(axis=(0, 1)) / max(float(weights.sum()), 1e-6)
    weak = np.clip(den / 1e-3, 0.0, 1.0)[..., None]  # support still tiny: the mean white
    return fill * weak + mean * (1.0 - weak)


def _iris_layer(crop: np.ndarray, visible: np.ndarray, disc: np.ndarray, radius: float) -> np.ndarray:
    """The whole iris disc as RGBA, premultiplied: painted where visible, completed under the lids.

    A moved iris enters parts of the opening the lids covered at its old place; a disc cut flat there
    would look pasted on, so the hidden part is filled with the visible iris's own colours.
    """
    seen = (visible > 0.99) & (disc > 0.99)
    if int(seen.sum()) < 2:
        seen = disc > 0.5
    s = max(0.7, 0.45 * radius)
    fill, _ = _normalised_blur(crop, seen.astype(np.float32), s, s, disc > 0.02)
    w = np.clip(visible, 0.0, 1.0)[..., None]
    colour = crop * w + fill * (1.0 - w)
    return np.concatenate([colour * disc[..., None], disc[..., None]], axis=2).astype(np.float32)


def _warp_eye(src: np.ndarray, out: np.ndarray, eye: Eye, shift: float, image_size: tuple[int, int]) -> None:
    """Move one iris by ``shift`` px along its corner line, writing only inside the eye's window."""
    x0, y0, x1, y1 = eye_window(eye, image_size)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    origin = np.array([x0, y0], np.float64)
    crop = src[y0:y1, x0:x1].astype(np.float32)
    h, w = crop.shape[:2]
    shifted = Eye(outer_corner=eye.outer_corner - origin, inner_corner=eye.inner_corner - origin,
                  lid=eye.lid - origin, iris_centre=eye.iris_centre - origin, iris_radius=eye.iris_radius)
    hard = shifted.opening_mask((h, w))
    feather = max(MIN_FEATHER_PX, FEATHER_EYE_WIDTHS * eye.width)
    inside = (hard > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    opening = np.clip(dist / (feather + 0.5), 0.0, 1.0).astype(np.float32) * hard

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c = shifted.iris_centre.astype(np.float32)
    r = float(eye.iris_radius)
    d_rest = np.hypot(xx - c[0], yy - c[1])
    hole = np.clip(HOLE_RADII * r + 0.5 - d_rest, 0.0, 1.0)
    known = (hard > 0.99) & (hole <= 0.0) & (dist > feather)
    clean = crop * (1.0 - hole[..., None]) + _sclera_fill(crop, known, hole, r) * hole[..., None]

    # iris layer: lid pixels never travel with the iris, the part the lids hid is completed
    disc = np.clip(IRIS_LAYER_RADII * r + 0.5 - d_rest, 0.0, 1.0).astype(np.float32)
    layer = _iris_layer(crop, opening, disc, r)

    u = _axis(eye).astype(np.float32)
    new_c = c + u * np.float32(shift)
    # foreshortening along the corner line: a disc on a sphere of radius R seen at angle asin(s / R)
    sphere = EYEBALL_EYE_WIDTHS * eye.width
    squeeze = float(np.sqrt(max(0.2, 1.0 - (shift / sphere) ** 2)))
    px, py = xx - new_c[0], yy - new_c[1]
    along = px * u[0] + py * u[1]
    across_x, across_y = px - along * u[0], py - along * u[1]
    src_x = c[0] + across_x + along * u[0] / squeeze
    src_y = c[1] + across_y + along * u[1] / squeeze
    # displacement confined around the moved iris and feathered to zero two radii out
    reach = _smoothstep((2.2 * r - np.hypot(px, py)) / max(0.8 * r, 1.0))
    map_x = (xx + (src_x - xx) * reach).astype(np.float32)
    map_y = (yy + (src_y - yy) * reach).astype(np.float32)
    moved: np.ndarray = cv2.remap(layer, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0)).astype(np.float32, copy=False)
    moved[..., 3] *= reach  # outside the reach the layer is empty, never a copy of the painting
    moved[..., :3] *= reach[..., None]
    eyeball = moved[..., :3] + clean * (1.0 - moved[..., 3:4])
    result = crop + (eyeball - crop) * opening[..., None]
    region = out[y0:y1, x0:x1]
    changed = opening > 0
    region[changed] = np.clip(np.rint(result[changed]), 0, 255).astype(np.uint8)


def head_ellipse(geometry: EyeGeometry, scale: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """(centre, radii) of an ellipse around the face: the region a head turn warps and a blend covers."""
    x0, y0, x1, y1 = (float(v) for v in geometry.face_box)
    centre = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    radii = (0.75 * (x1 - x0) * scale, 0.85 * (y1 - y0) * scale)
    return centre, radii


def eyes_ellipse(geometry: EyeGeometry, inner: float = 0.35) -> tuple[tuple[float, float], tuple[float, float]]:
    """(centre, radii) of the smallest blend ellipse for eye-warp heads without a head turn.

    Such heads differ from the painting only inside the eye openings, so the pack's patch need only
    cover those: every corner of both eye windows sits at normalised radius ``inner``, where a sigmoid
    alpha (slope 10, midpoint 0.7) is still above 0.95, and the rest of the ellipse is the seam.
    """
    if not 0.0 < inner < 1.0:
        raise ValueError(f"inner={inner}: expected a normalised radius in (0, 1)")
    windows = np.array([eye_window(eye, geometry.image_size) for eye in geometry.eyes], np.float64)
    x0, y0 = windows[:, 0].min(), windows[:, 1].min()
    x1, y1 = windows[:, 2].max(), windows[:, 3].max()
    centre = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    # an ellipse through the window's corner at radius `inner`, with the box's aspect ratio
    half_w, half_h = (x1 - x0) / 2.0, (y1 - y0) / 2.0
    radii = (half_w * np.sqrt(2.0) / inner, half_h * np.sqrt(2.0) / inner)
    return centre, (float(radii[0]), float(radii[1]))


def _turn_head(image: np.ndarray, geometry: EyeGeometry, shift_px: float) -> np.ndarray:
    """Shift the middle of the face sideways by ``shift_px``, fading to nothing at the face's edge.

    dx(p) = shift * (1 - r^2)^2 for r < 1 on the head ellipse, a bump whose slope is zero at the rim, so
    the outline and everything outside it stay put while the features slide: a cheap turn of the head.
    """
    (cx, cy), (rx, ry) = head_ellipse(geometry)
    h, w = image.shape[:2]
    bx0, bx1 = int(max(0, np.floor(cx - rx))), int(min(w, np.ceil(cx + rx) + 1))
    by0, by1 = int(max(0, np.floor(cy - ry))), int(min(h, np.ceil(cy + ry) + 1))
    yy, xx = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    r2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    bump = np.where(r2 < 1.0, (1.0 - r2) ** 2, 0.0).astype(np.float32)
    map_x = xx - np.float32(shift_px) * bump
    out = image.copy()
    warped = cv2.remap(image, map_x, yy, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    inside = bump > 0
    out[by0:by1, bx0:bx1][inside] = warped[inside]
    return out


def warp_gaze(rgb: np.ndarray, geometry: EyeGeometry, g: float, *, max_shift: float = DEFAULT_MAX_SHIFT,
              head_turn: float = 0.0) -> np.ndarray:
    """The portrait looking towards ``g`` (-1 viewer's far left .. +1 far right); a new array.

    ``head_turn`` is the sideways shift of the face's middle at ``|g| = 1``, as a fraction of the face
    width (0.02 is subtle; 0 keeps every pixel outside the eye openings exactly as painted).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"portrait: expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    size = (rgb.shape[1], rgb.shape[0])
    if tuple(geometry.image_size) != size:
        raise ValueError(f"geometry: found in a {geometry.image_size[0]}x{geometry.image_size[1]} image, "
                         f"portrait is {size[0]}x{size[1]}")
    if not -0.2 <= head_turn <= 0.2:
        raise PackError(f"head_turn={head_turn}: expected a fraction of the face width in [-0.2, 0.2]")  # --head-turn
    shift = gaze_shift_px(geometry, float(g), max_shift)
    out = rgb.copy()
    if shift != 0.0:
        for eye in geometry.eyes:
            _warp_eye(rgb, out, eye, shift, size)
    if head_turn != 0.0 and g != 0.0:
        face_w = float(geometry.face_box[2] - geometry.face_box[0])
        out = _turn_head(out, geometry, float(g) * head_turn * face_w)
    return out


def generate_heads(rgb: np.ndarray, n_candidates: int, *, geometry: EyeGeometry | None = None,
                   max_shift: float = DEFAULT_MAX_SHIFT, head_turn: float = 0.0) -> list[np.ndarray]:
    """``n_candidates`` full-size frames for gazes evenly spaced from -1 to +1, in that order.

    Candidates are generated densely and the pack's frames picked from them by *measured* gaze
    (``provisioning.select``), so the requested ``g`` never has to be trusted.
    """
    if int(n_candidates) != n_candidates or n_candidates < 2:
        raise ValueError(f"n_candidates={n_candidates}: expected an integer >= 2")
    geometry = geometry or locate_eyes(rgb)
    return [warp_gaze(rgb, geometry, float(g), max_shift=max_shift, head_turn=head_turn)
            for g in np.linspace(-1.0, 1.0, int(n_candidates))]
