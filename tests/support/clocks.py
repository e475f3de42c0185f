"""Clocks a test hands to the code under test, so that time passes when the test says.

``FakeClock``: time that passes only when someone sleeps on it (or the test moves it);
code that waits through it waits no real time. ``OffsetClock``: wall time plus an offset
the test moves forward, for code that compares its clock with times AWS stamps for real
(EC2's launch times).
"""

from __future__ import annotations

import time


class FakeClock:
    """Time that passes only when someone sleeps (or the test calls ``advance``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OffsetClock:
    """Wall time plus ``offset`` seconds, which the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def wall_clock_past(moment: float) -> None:
    """Wait until the wall clock reads ``moment`` or later (for what AWS stamps in whole
    seconds: a launch time, an image's name)."""
    from testbed.waiting import eventually

    eventually(lambda: time.time() >= moment, max(moment - time.time(), 0) + 10,
               f"the wall clock past {moment:.3f}", period=0.05)
