"""edge.ratelimit: a message repeated every frame is one line, then one summary per interval."""

from __future__ import annotations

import logging
import time

import pytest

from edge.ratelimit import RepeatLimiter


class Clock:
    """Monotonic and wall time moved by hand: 20:31:05 local time to start with."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = time.mktime((2026, 3, 1, 20, 31, 5, 0, 0, -1))

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def limited(caplog):
    clock = Clock()
    logger = logging.getLogger("test.ratelimit")
    caplog.set_level(logging.INFO, logger="test.ratelimit")
    limiter = RepeatLimiter(logger, interval=60.0, clock=lambda: clock.mono, wall_clock=lambda: clock.wall)

    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "test.ratelimit"]

    return limiter, clock, lines


def test_a_message_every_frame_is_logged_once_then_summarised_once_per_interval(limited):
    limiter, clock, lines = limited
    message = "detector: face.tflite: inference failed: Input tensor 215 lacks data"
    written = []
    for _ in range(32 * 65):  # 65 s at 32 fps (1/32 s adds up exactly)
        written.append(limiter.warning(message))
        clock.advance(1 / 32)
    assert lines()[0] == message
    # 60 s after the first line, one summary of every repeat since: when they began and the latest.
    assert lines()[1] == f"{message} (repeated 1920 times since 20:31:05, last 20:32:05)"
    assert len(lines()) == 2 and sum(written) == 2
    # The fault ends: flush writes what was counted since, so the end of a burst is never lost.
    limiter.flush()
    assert lines()[2] == f"{message} (repeated 159 times since 20:32:05, last 20:32:09)"
    limiter.flush()  # nothing pending: nothing written
    assert len(lines()) == 3


def test_after_a_quiet_interval_a_message_is_logged_in_full_again(limited):
    limiter, clock, lines = limited
    limiter.warning("display: gone")
    clock.advance(61)
    limiter.warning("display: gone")
    assert lines() == ["display: gone", "display: gone"]
    clock.advance(1)
    limiter.warning("display: gone")
    clock.advance(60)
    limiter.warning("display: gone")
    assert lines()[2:] == ["display: gone (repeated 2 times since 20:32:07, last 20:33:07)"]


def test_different_messages_are_counted_apart_and_their_number_is_bounded(limited):
    limiter, clock, lines = limited
    for _ in range(100):
        limiter.warning("detector: A")
        limiter.warning("display: B")
    assert lines() == ["detector: A", "display: B"]
    # A message with a counter in it is new every time: at most 10 first lines per interval, the rest
    # counted together and summarised.
    for i in range(1000):
        limiter.warning(f"detector: frame {i} failed")
        clock.advance(0.05)  # 50 s in all
    assert lines()[2:] == [f"detector: frame {i} failed" for i in range(8)]  # 10 first lines: 2 taken
    limiter.flush()
    assert lines()[10:] == [
        "detector: A (repeated 99 times since 20:31:05, last 20:31:05)",
        "display: B (repeated 99 times since 20:31:05, last 20:31:05)",
        "992 other messages not logged (since 20:31:05, last 20:31:54; the latest: detector: frame 999 failed)"]


def test_a_thousand_failing_frames_write_a_bounded_log(limited):
    limiter, clock, lines = limited
    for i in range(1000):
        limiter.warning("detector: face.tflite: inference failed: Input tensor 215 lacks data")
        limiter.warning(f"display: {i % 3}")  # three alternating messages too
        clock.advance(1 / 15)
    limiter.flush()
    text = "\n".join(lines())
    assert len(lines()) <= 4 * 3  # per message: the first line, one summary (66 s), the flush
    assert len(text) < 1000


def test_the_oldest_message_is_summarised_before_it_is_forgotten(caplog):
    caplog.set_level(logging.INFO, logger="test.ratelimit.keys")
    limiter = RepeatLimiter(logging.getLogger("test.ratelimit.keys"), max_keys=2, max_new=100)
    limiter.warning("a")
    limiter.warning("a")
    limiter.warning("b")
    limiter.warning("c")  # "a" is the oldest of three: its pending repeat is written, then forgotten
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:3] == ["a", "b", "c"]
    assert messages[3].startswith("a (repeated once since ") and len(messages) == 4
