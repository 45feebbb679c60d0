"""Who is the viewer: the nearest moving, frontal person, kept while present, replaced at once when gone.

Why these rules (room scenarios, ``tests/bench/rooms.py``): the old selector kept a viewer until another
face was ``sticky_margin`` wider for ``sticky_seconds``, and waited the same before a newcomer took over
from someone who had already left; a new walker needed 1-1.5 s to get the eyes. Now:

* Candidates are people (:mod:`edge.pictures`: faces that moved), never pictures or screens, seen on at
  least ``MIN_HITS`` frames; a viewer found to be on a screen is let go at once.
* Rank: a person who has *travelled* (walked here) before one who has not (a TV face, someone who only
  shifted in a chair); within that, the wider face (nearer), weighted by how frontal it is (a face
  turned away is looking elsewhere).
* The viewer is kept while seen. When they have not been seen for ``grace_s``, or have walked out of
  the frame (``gone``: their velocity has taken them past its edge), or never went anywhere and are
  missed while someone who walks in ranks higher, and someone else is there, the best other takes over
  at once; with nobody else they stay the viewer (the detector misses
  a still face now and then) for ``hold_s(track)`` seconds (the tracker's: ``idle_seconds``, longer
  for someone standing still away from the frame's edges, who has not walked out).
* Someone better takes over from a present viewer only when their rank is ``sticky_margin`` higher for
  ``sticky_seconds``: two people of similar size never make the eyes jump back and forth.

``switched`` is True after a :meth:`select` that changed the viewer (the filter then starts afresh).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge.pictures import PERSON, Track

#: How much a face turned fully away counts against its width (0: not at all, 1: not a candidate).
FRONTAL_WEIGHT = 0.5
#: A travelled person outranks one who has not by this factor of rank (a TV face would need to be this
#: much nearer than someone who walked in to win).
TRAVELLED_BONUS = 3.0
#: Someone moving across at this many of their face widths a second or more is walking (an unhurried walk
#: is about 5-8; a TV face's pan in the room scenes peaks under 1, a standing person's sway far under).
WALKING_WIDTHS_S = 1.5


def walking(tr: Track) -> bool:
    """Whether ``tr`` has walked here or is walking across now (:data:`WALKING_WIDTHS_S`)."""
    return tr.travelled or abs(tr.vx) >= WALKING_WIDTHS_S * tr.width


def rank(tr: Track) -> float:
    return tr.width * (1.0 - FRONTAL_WEIGHT + FRONTAL_WEIGHT * tr.frontal) * (TRAVELLED_BONUS if tr.travelled else 1.0)


class ViewerSelector:
    """The viewer among the candidate tracks, one frame at a time (module docstring)."""

    def __init__(self, sticky_margin: float, sticky_seconds: float, grace_s: float,
                 hold_s: Callable[[Track], float],
                 gone: Callable[[Track, float], bool] | None = None) -> None:
        self.sticky_margin = float(sticky_margin)
        self.sticky_seconds = float(sticky_seconds)
        self.grace_s = float(grace_s)
        self.hold_s = hold_s
        self.gone = gone
        self.reset()

    def reset(self) -> None:
        self.current: Track | None = None
        self.challenger_id: int | None = None
        self.challenger_since = 0.0
        self.switched = False

    @property
    def current_id(self) -> int | None:
        return None if self.current is None else self.current.id

    def _adopt(self, tr: Track) -> Track:
        self.current = tr
        self.challenger_id = None
        self.switched = True
        return tr

    def select(self, candidates: Sequence[Track], t: float) -> Track | None:
        """The viewer for this frame: a track seen now, or the current viewer while unseen for less than
        ``grace_s`` (its last face stands for it), or None."""
        self.switched = False
        current = self.current
        if current is not None and current.kind != PERSON:
            current = self.current = None  # no longer taken for a person (a face on a screen): let go
        best = None
        for tr in candidates:
            if current is not None and tr is current:
                continue
            if best is None or rank(tr) > rank(best):
                best = tr
        if current is not None and current.last_t < t:  # the viewer is not seen in this frame
            unseen = t - current.last_t
            left = self.gone is not None and self.gone(current, t)
            # a viewer who never went anywhere (a TV face, someone in a chair), missed for a moment while
            # someone walks in who ranks higher, is not waited for: the walker is who the room is about
            passed = (best is not None and not current.travelled and walking(best)
                      and rank(best) > rank(current))
            if (unseen < self.grace_s and not left and not passed) or (best is None and unseen < self.hold_s(current)):
                return current  # a dropout: hold; with nobody else there, until the eyes would idle
            self.current = None
            return None if best is None else self._adopt(best)
        if current is None:
            return None if best is None else self._adopt(best)
        if best is not None and rank(best) > rank(current) * (1.0 + self.sticky_margin):
            if self.challenger_id != best.id:
                self.challenger_id, self.challenger_since = best.id, t
            elif t - self.challenger_since >= self.sticky_seconds:
                return self._adopt(best)
        else:
            self.challenger_id = None
        return current


__all__ = ["ViewerSelector", "rank", "walking"]
