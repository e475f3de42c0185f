"""AWS's eventual consistency in the in-process emulator, on a fake clock.

``lagging_emulator`` installs the emulator's eventual-consistency mode
(skyclass.operations.local.emulator.EventualConsistency) for the length of a test, on a
``FakeClock`` that the code under test also waits on (through a ``Waiter``), so minutes
of AWS's lateness pass in no time and the test asserts what a person would see.
"""

from __future__ import annotations

from skyclass.operations.local.emulator import EventualConsistency, tag_image_snapshots
from skyclass.operations.waiting import Waiter, Waits
from tests.support.clocks import FakeClock


def lagging_emulator(monkeypatch, lag: float, clock: FakeClock) -> EventualConsistency:
    """The in-process emulator, late by ``lag`` seconds of ``clock`` (undone after the
    test), with the snapshot tags of ``CreateImage`` that ``skyclass emulator`` has."""
    tag_image_snapshots(monkeypatch.setattr)
    consistency = EventualConsistency(lag, clock=clock)
    consistency.install(monkeypatch.setattr)
    return consistency


def fake_waiter(clock: FakeClock, said: list[str], waits: Waits | None = None) -> Waiter:
    """A Waiter on ``clock`` that keeps what it reports in ``said``."""
    return Waiter(said.append, waits, clock=clock, sleep=clock.sleep)
