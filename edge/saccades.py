"""Eyes that move like eyes: saccades to new targets, fixation with a dead band, smooth pursuit, idle glances.

Why: the old stepper glided the index at a fixed speed (a 10 degree shift took about half a second), which
reads as a machine turning its head; and it followed every wobble of the detector. Human gaze does three
different things, and this controller does them, on the portrait's eye angle (degrees, as
:mod:`edge.gaze`), before the angle is turned into a pack frame:

* **Saccade** to a new target (a new viewer, or a viewer far from where the eyes point): a fast jump whose
  duration grows with amplitude along the *main sequence* (Bahill, Clark and Stark, "The main sequence, a
  tool for studying human eye movements", Mathematical Biosciences 24, 1975). Duration
  ``saccade_base_ms + saccade_ms_deg * amplitude`` (``[gaze]`` keys); the defaults, 21 ms + 2.2 ms/deg, are the fit
  quoted by Carpenter ("Movements of the Eyes", 2nd ed., 1988): 43 ms for 10 degrees, 65 ms for 20. The
  position follows a minimum-jerk profile (bell-shaped velocity, peak 1.875x the mean: about 440 deg/s
  for 10 degrees, in line with the main sequence's 400-500 deg/s). A camera frame is 33-67 ms, so a
  saccade lands within one or two frames.
* **Fixation**: after a saccade the eyes hold for at least ``fixation_s`` (fixations in scene
  viewing last about 330 ms on average, rarely under 150-200 ms: Rayner, "Eye movements in reading and
  information processing: 20 years of research", Psychological Bulletin 124(3), 1998), and while the
  target stays within ``dead_band_deg`` they do not move at all: detector jitter never moves the eyes.
* **Smooth pursuit** of a target that drifts beyond the dead band but not by a saccade's worth: the eyes
  close the gap with time constant ``PURSUIT_TAU_S`` at no more than ``max_speed_fps`` frames a second (human pursuit
  keeps a gain near 1 up to about 30 deg/s and saturates not far above: Meyer, Lasker and Robinson, "The
  upper limit of human smooth pursuit velocity", Vision Research 25(4), 1985).

With nobody there the eyes return to the centre by a saccade and then *idle*: now and then (intervals
drawn around ``glance_every_s``) a glance of up to ``glance_deg`` to either side, held about
``glance_hold_s`` (a look aside of a second or so, like the averted glances of a person at rest;
the interval between looks in conversation is a few seconds: Argyle and Cook, "Gaze and Mutual Gaze",
1976), then back. The draws come from a seeded generator: the same inputs give the same eyes.
"""

from __future__ import annotations

import math
import random

#: Pursuit closes the remaining gap with this time constant (s): about the latency-and-gain behaviour of
#: pursuit at 15-30 Hz updates, without overshoot.
PURSUIT_TAU_S = 0.12
#: Pursuit, once started (the target left the dead band), goes on until the eyes are within this fraction
#: of the dead band: the dead band decides when the eyes move, not how far off target they may rest.
PURSUIT_STOP = 0.2
#: A new-target saccade is launched at once; a correction saccade only once the error exceeds this many
#: dead bands (smaller errors are pursued).
SACCADE_FACTOR = 2.0


def min_jerk(u: float) -> float:
    """Minimum-jerk position profile, 0 at u=0 to 1 at u=1 (Flash and Hogan, J Neuroscience 5(7), 1985)."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


class EyeController:
    """The portrait's eye angle over time, from a target angle (or None: nobody) per camera frame.

    ``angle`` is where the eyes point now; ``mode`` is "fixate", "saccade", "pursuit" or "idle" (idle
    includes the glances); ``saccades`` counts saccades started, for tests and the status socket.
    """

    def __init__(self, *, dead_band_deg: float, saccade_base_ms: float, saccade_ms_per_deg: float,
                 min_fixation_s: float, pursuit_deg_s: float, idle_glance_interval_s: float,
                 idle_glance_deg: float, idle_glance_hold_s: float, limits: tuple[float, float],
                 seed: int = 0) -> None:
        self.dead_band = float(dead_band_deg)
        self.base_s = float(saccade_base_ms) / 1000.0
        self.per_deg_s = float(saccade_ms_per_deg) / 1000.0
        self.min_fixation = float(min_fixation_s)
        self.pursuit = float(pursuit_deg_s)
        self.glance_interval = float(idle_glance_interval_s)
        self.glance_deg = float(idle_glance_deg)
        self.glance_hold = float(idle_glance_hold_s)
        self.lo, self.hi = float(limits[0]), float(limits[1])
        self._seed = seed
        self.reset()

    def reset(self, t: float | None = None) -> None:
        """Eyes straight ahead, fixating; the idle schedule starts again."""
        self._rng = random.Random(self._seed)
        self.angle = 0.0
        self.mode = "fixate"
        self.saccades = 0
        self._from = self._to = 0.0
        self._start = self._end = -math.inf
        self._last_t: float | None = t
        self._next_glance: float | None = None
        self._glancing = False

    def duration(self, amplitude_deg: float) -> float:
        """Main-sequence duration (s) of a saccade of ``amplitude_deg``."""
        return self.base_s + self.per_deg_s * abs(amplitude_deg)

    def _clamp(self, a: float) -> float:
        return self.lo if a < self.lo else (self.hi if a > self.hi else a)

    def _saccade(self, target: float, t: float) -> None:
        target = self._clamp(target)
        self._from, self._to = self.angle, target
        self._start, self._end = t, t + self.duration(target - self.angle)
        self.mode = "saccade"
        self.saccades += 1

    def _in_flight(self, t: float) -> bool:
        if self.mode != "saccade":
            return False
        if t >= self._end:
            self.angle = self._to
            self.mode = "fixate"
            return False
        u = (t - self._start) / (self._end - self._start)
        self.angle = self._from + (self._to - self._from) * min_jerk(u)
        return True

    def update(self, target: float | None, t: float, *, new_target: bool = False) -> float:
        """The eye angle at ``t`` for ``target`` (None: nobody; the caller decides when that means idle).

        ``new_target``: the target is a different person (a new viewer): jump to them by a saccade even
        mid-fixation.
        """
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        if target is None:
            return self._idle(t)
        self._next_glance = None
        self._glancing = False
        target = self._clamp(target)
        if new_target and abs(target - self.angle) > self.dead_band:
            self._saccade(target, t)
            self._in_flight(t)
            return self.angle
        if self._in_flight(t):
            if abs(target - self._to) > SACCADE_FACTOR * self.dead_band and t - self._start > self.min_fixation:
                self._saccade(target, t)  # the target jumped away during a long saccade: re-aim
            return self.angle
        error = target - self.angle
        fixating_since = t - self._end
        if abs(error) > SACCADE_FACTOR * self.dead_band and fixating_since >= self.min_fixation:
            self._saccade(target, t)
            self._in_flight(t)
        elif abs(error) > self.dead_band or (self.mode == "pursuit" and abs(error) > PURSUIT_STOP * self.dead_band):
            step = error * min(1.0, dt / PURSUIT_TAU_S)
            limit = self.pursuit * dt
            self.angle += step if abs(step) <= limit else math.copysign(limit, step)
            self.mode = "pursuit"
        else:
            self.mode = "fixate"
        return self.angle

    def _idle(self, t: float) -> float:
        """Nobody: back to centre by a saccade, then glances aside now and then."""
        if self._in_flight(t):
            return self.angle
        if self._next_glance is None:  # just became idle
            if abs(self.angle) > self.dead_band * 0.5:
                self._saccade(0.0, t)
                self._in_flight(t)
            self._next_glance = t + self._interval()
            self._glancing = False
            self.mode = "idle" if self.mode != "saccade" else self.mode
            return self.angle
        if t >= self._next_glance:
            if self._glancing:  # back to the centre
                self._saccade(0.0, t)
                self._glancing = False
                self._next_glance = t + self._interval()
            else:  # a glance to one side
                side = -1.0 if self._rng.random() < 0.5 else 1.0
                self._saccade(side * self.glance_deg * self._rng.uniform(0.5, 1.0), t)
                self._glancing = True
                self._next_glance = t + self.glance_hold * self._rng.uniform(0.6, 1.4)
            self._in_flight(t)
            return self.angle
        self.mode = "idle"
        return self.angle

    def _interval(self) -> float:
        """Seconds to the next glance: a gamma draw (shape 4) around the mean, never under a second."""
        if self.glance_interval <= 0.0:
            return math.inf
        return max(1.0, self._rng.gammavariate(4.0, self.glance_interval / 4.0))

    @property
    def idle(self) -> bool:
        """Whether the eyes are idling (nobody there): at the centre or on a glance."""
        return self._next_glance is not None


__all__ = ["EyeController", "min_jerk"]
