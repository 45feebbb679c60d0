"""Motion gating: whether the detector needs to see this frame at all.

Why: a picture frame spends most of its life looking at an empty room, and running the face detector on
every frame of an empty room cost 87-95 % of a busy one (issue 14). The detector is a function of the
image: on a frame that does not differ from the one it last saw, it would find the same faces. So each
frame is reduced to a small luma thumbnail (:func:`luma_thumbnail`: 8x8 cells averaged, which also
shrinks camera noise eightfold) and compared with the thumbnail of the *last frame the detector ran on*
(not the previous frame: a slow change adds up, and a person who walked in and stopped still differs
from the room the detector last saw until it has looked again).

:class:`MotionGate` decides, per frame, one of :data:`DECISIONS`:

* ``"tracked"``: a viewer is followed. Nothing is gated while someone is being looked at.
* ``"changed"``: enough cells changed (``threshold`` grey levels on at least ``min_changed`` of them).
* ``"scan"``: nothing changed, but a whole-frame search is due anyway: every ``scan_s`` for ``settle_s``
  after the last change (a person who walked in and stopped where one detection missed them), then every
  ``idle_scan_s`` (whatever a change below the threshold brought in).
* ``"gated"``: none of these: the detector is skipped and the last detection's faces stand (the scene has
  not changed, so neither has what is in it).

Areas it is told to :meth:`MotionGate.ignore` (the screens the tracker has learnt: a TV changes all
evening) do not count as change, nor as a moving region.

It also says when the camera may slow down (:meth:`MotionGate.slow`: nothing changed and nobody
followed for ``idle_after_s``; a periodic scan that finds the room as it was does not end that); the
first changed frame ends it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: Camera pixels per thumbnail cell, each way: 640x480 -> 80x60.
CELL = 8
#: What :meth:`MotionGate.decide` answers; every one but "gated" runs the detector.
DECISIONS = ("tracked", "changed", "scan", "gated")


def luma_thumbnail(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The mean luma of each :data:`CELL` x :data:`CELL` cell of ``image`` (a grey/Y plane (H, W) or an
    RGB (H, W, 3) frame) as uint8 (H/8, W/8). A grey plane (the Pi's Y plane) is averaged as it is, all
    64 pixels of a cell (0.12 ms for 640x480 here). Of an RGB frame only the green channel of every
    other pixel each way is averaged (16 samples a cell, 0.11 ms, against 0.21 ms for a grey conversion
    first): green carries most of the luma, and 16 samples still cut camera noise fourfold, so the
    change test's threshold stays far above a dark room's noise."""
    h, w = image.shape[:2]
    size = (max(1, w // CELL), max(1, h // CELL))
    if image.ndim == 2:
        return cv2.resize(image, size, dst=out, interpolation=cv2.INTER_AREA)
    green = image[::2, ::2, 1] if h >= 2 * CELL and w >= 2 * CELL else image[:, :, 1]
    return cv2.resize(green, size, dst=out, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True, slots=True)
class GateSettings:
    """:class:`edge.config.MotionConfig`'s values, as the gate uses them (see that section's docs)."""

    threshold: float = 10.0
    min_changed: float = 0.002
    scan_s: float = 0.4
    settle_s: float = 10.0
    idle_scan_s: float = 30.0
    idle_after_s: float = 1.0


class MotionGate:
    """Per frame: run the detector or not (see the module docstring). Times are the frames' timestamps.

    Call :meth:`decide` with the frame's thumbnail and whether a viewer is followed, then, if the
    detector ran, :meth:`detected` with the same thumbnail: it becomes the reference for the next frames.
    """

    def __init__(self, settings: GateSettings) -> None:
        self.settings = settings
        self._reference: np.ndarray | None = None  # thumbnail of the last frame the detector saw
        self._diff: np.ndarray | None = None
        self._last_detect: float | None = None
        self._last_change: float | None = None
        self._active_at: float | None = None  # the last frame that changed or had a viewer
        self._quiet = False  # whether the last frame decided was "gated" or "scan"
        self.changed_share = 0.0  # share of cells changed on the last frame decided
        self.counts = dict.fromkeys(DECISIONS, 0)
        self._ignored: tuple[tuple[int, int, int, int], ...] = ()  # camera-pixel rectangles
        self._mask: np.ndarray | None = None  # their thumbnail cells (True: not counted)

    def ignore(self, areas: Sequence[tuple[int, int, int, int]]) -> None:
        """Do not count change inside these camera-pixel rectangles (x0, y0, x1, y1) from now on; an empty
        sequence counts everything again."""
        rects = tuple((int(x0), int(y0), int(x1), int(y1)) for x0, y0, x1, y1 in areas)
        if rects != self._ignored:
            self._ignored = rects
            self._mask = None

    def _ignored_cells(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self._ignored:
            return None
        if self._mask is None or self._mask.shape != shape:
            mask = np.zeros(shape[:2], bool)
            rows, cols = shape[:2]
            for x0, y0, x1, y1 in self._ignored:
                c0, r0 = max(0, x0 // CELL), max(0, y0 // CELL)
                c1, r1 = min(cols, -(-x1 // CELL)), min(rows, -(-y1 // CELL))
                if c1 > c0 and r1 > r0:
                    mask[r0:r1, c0:c1] = True
            self._mask = mask
        return self._mask

    def reset(self) -> None:
        """Forget the reference (a new camera stream, a reload): the next frame is detected."""
        self._reference = None
        self._last_detect = self._last_change = self._active_at = None
        self._quiet = False

    @property
    def quiet_since(self) -> float | None:
        """The last frame that changed or had a viewer followed (None: none yet)."""
        return self._active_at

    def slow(self, t: float) -> bool:
        """Whether the camera may slow down now: nothing changed and nobody followed for ``idle_after_s``."""
        return (self._quiet and self._active_at is not None
                and t - self._active_at >= self.settings.idle_after_s)

    def decide(self, thumb: np.ndarray, t: float, tracked: bool) -> str:
        """One of :data:`DECISIONS` for the frame whose thumbnail is ``thumb`` at time ``t``."""
        decision = self._decide(thumb, t, tracked)
        self.counts[decision] += 1
        self._quiet = decision in ("gated", "scan")
        if not self._quiet:
            self._active_at = t
        return decision

    def _decide(self, thumb: np.ndarray, t: float, tracked: bool) -> str:
        s = self.settings
        ref = self._reference
        if ref is None or ref.shape != thumb.shape or self._last_detect is None or t < self._last_detect:
            self.changed_share = 1.0
            self._last_change = t
            return "changed"  # nothing to compare with (first frame, new size, a new clock)
        if self._diff is None or self._diff.shape != thumb.shape:
            self._diff = np.empty_like(thumb)
        cv2.absdiff(thumb, ref, dst=self._diff)
        ignored = self._ignored_cells(thumb.shape)
        if ignored is not None:
            self._diff[ignored] = 0
        self.changed_share = float(np.count_nonzero(self._diff > s.threshold)) / self._diff.size
        changed = self.changed_share > 0.0 and self.changed_share >= s.min_changed
        if changed:
            self._last_change = t
        if tracked:
            return "tracked"
        if changed:
            return "changed"
        since_change = t - self._last_change if self._last_change is not None else float("inf")
        interval = s.scan_s if since_change < s.settle_s else s.idle_scan_s
        if t - self._last_detect >= interval - 1e-6:  # (a 15 fps camera's 6th frame is 0.4 s later)
            return "scan"
        return "gated"

    def moving_regions(self, most: int = 2, min_cells: int = 3) -> list[tuple[int, int, int, int]]:
        """The bounding boxes (x0, y0, x1, y1, thumbnail cells) of the ``most`` largest groups of cells
        that changed on the last frame decided (8-connected, after a one-cell dilation; at least
        ``min_cells``), largest first. What :class:`edge.search.FaceSearch` looks into for a face too
        small for the whole-frame model (a walker at 4-5 m moves as one blob from head to feet)."""
        if self._diff is None:
            return []
        changed = (self._diff > self.settings.threshold).astype(np.uint8)
        if not changed.any():
            return []
        mask = cv2.dilate(changed, np.ones((3, 3), np.uint8))
        count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blobs = [stats[i] for i in range(1, count) if stats[i][cv2.CC_STAT_AREA] >= min_cells]
        blobs.sort(key=lambda b: int(b[cv2.CC_STAT_AREA]), reverse=True)
        return [(int(b[0]), int(b[1]), int(b[0] + b[2]), int(b[1] + b[3])) for b in blobs[:most]]

    def detected(self, thumb: np.ndarray, t: float) -> None:
        """The detector ran on the frame of ``thumb``: compare later frames with this one."""
        if self._reference is None or self._reference.shape != thumb.shape:
            self._reference = thumb.copy()
        else:
            self._reference[...] = thumb
        self._last_detect = t


#: How far back (s) :class:`RegionChange` compares a face's region: long enough for a standing person's
#: sway (about 6 mm lateral at 0.2-0.6 Hz, a weight shift: tests/rooms.py) to move their face by a pixel
#: or more at 1-2 m, short enough that someone passing in front of a photo changes it only briefly.
REGION_LAG_S = 0.5
#: Thumbnails kept for that (at 30 fps, 0.5 s is 15 frames back; one 80x60 thumbnail is 4.8 KB).
REGION_HISTORY = 20
#: Until a frame :data:`REGION_LAG_S` old exists (the camera has just started), the oldest one is used
#: once it is this old: someone walking or standing there from the first frame is told from a photo
#: a third of a second sooner (the room scenarios `lighting` and `leave_enter`).
REGION_MIN_LAG_S = 0.2


class RegionChange:
    """How much the picture *inside one face's box* changed over the last :data:`REGION_LAG_S`, beyond
    what the whole frame changed (grey levels, mean over the box's cells).

    Why: a printed face changes only by sensor noise (on the thumbnail, an 8x8 average, a fraction of a
    grey level), while a person standing "still" sways, breathes and blinks; their face's pixels change
    while the detector's keypoints, which jitter by a pixel or more on a photo, cannot tell the two apart
    (edge.pictures). The frame's median change is subtracted so that a light switched on or dimming,
    which changes a photo as much as the wall, is not motion.
    """

    def __init__(self, lag_s: float = REGION_LAG_S, history: int = REGION_HISTORY) -> None:
        self.lag_s = float(lag_s)
        self._ring: list[tuple[float, np.ndarray]] = []
        self._history = max(2, int(history))
        self._diff: np.ndarray | None = None  # this frame against the lagged one, computed when first asked
        self._median = 0.0

    def reset(self) -> None:
        self._ring.clear()
        self._diff = None

    def add(self, thumb: np.ndarray, t: float) -> None:
        """This frame's thumbnail (copied into a reused buffer)."""
        if self._ring and (t < self._ring[-1][0] or self._ring[-1][1].shape != thumb.shape):
            self._ring.clear()  # a new clock or frame size: the past is not comparable
        if len(self._ring) >= self._history:
            _, buf = self._ring.pop(0)
            buf[...] = thumb
        else:
            buf = thumb.copy()
        self._ring.append((t, buf))
        self._diff = None

    def _lagged(self) -> np.ndarray | None:
        t = self._ring[-1][0]
        for when, thumb in reversed(self._ring[:-1]):
            if t - when >= self.lag_s - 1e-6:
                return thumb
        if len(self._ring) > 1 and t - self._ring[0][0] >= min(self.lag_s, REGION_MIN_LAG_S) - 1e-6:
            return self._ring[0][1]  # the stream has just started: the oldest frame there is
        return None

    def change(self, box: Sequence[float] | np.ndarray) -> float | None:
        """The mean change (grey levels) of the cells under ``box`` (x0, y0, x1, y1 frame pixels) over
        :data:`REGION_LAG_S` (:data:`REGION_MIN_LAG_S` while the stream is younger than that), less the
        frame's median change; None until there is a frame that old."""
        if not self._ring:
            return None
        if self._diff is None:
            old = self._lagged()
            if old is None:
                return None
            diff: np.ndarray = cv2.absdiff(self._ring[-1][1], old)
            self._diff, self._median = diff, float(np.median(diff))
        h, w = self._diff.shape
        x0, y0 = max(0, int(box[0]) // CELL), max(0, int(box[1]) // CELL)
        x1, y1 = min(w, -(-int(box[2]) // CELL)), min(h, -(-int(box[3]) // CELL))
        if x1 <= x0 or y1 <= y0:
            return None
        return float(self._diff[y0:y1, x0:x1].mean()) - self._median


__all__ = ["CELL", "DECISIONS", "GateSettings", "MotionGate", "REGION_LAG_S", "REGION_MIN_LAG_S", "RegionChange",
           "luma_thumbnail"]
