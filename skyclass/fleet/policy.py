"""The scaling policy: a pure function from (backlog, fleet, clock, settings) to a Plan.

Target tracking on backlog per instance: enough workers that the backlog clears within
``target_latency`` seconds at ``throughput`` images per second each, clamped to
``[min_workers, max_workers]`` and at least one while anything waits. Scaling out is
immediate; scaling in waits until the fleet has been idle for ``idle_grace`` seconds,
so a pause between two batches does not pay for a cold start. No boto3 and no clock
reads here: the scaler (skyclass.fleet.scaler) gathers the inputs and applies the plan,
and a simulator or a unit test can call ``decide`` directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from skyclass.settings import Settings

PENDING = "pending"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"


@dataclass(frozen=True)
class InstanceView:
    """What the policy needs to know of one worker instance. ``started_at`` is when it
    last started (EC2's LaunchTime), in epoch seconds."""

    id: str
    state: str
    started_at: float | None = None


@dataclass(frozen=True)
class Plan:
    start: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    desired: int = 0
    reason: str = ""
    # When the backlog was last seen non-zero; the scaler keeps it for the next call.
    last_busy_at: float | None = None


def needed_workers(backlog: int, throughput: float, settings: Settings) -> int:
    """Workers that clear ``backlog`` within the target latency, clamped to the limits;
    at least one (within max_workers) while the backlog is not empty."""
    if backlog <= 0:
        return settings.min_workers
    per_worker = max(throughput, 1e-9) * max(settings.target_latency, 1e-9)
    wanted = max(1, math.ceil(backlog / per_worker))
    return max(settings.min_workers, min(settings.max_workers, wanted))


def decide(
    backlog: int,
    instances: Sequence[InstanceView],
    throughput: float,
    now: float,
    last_busy_at: float | None,
    settings: Settings,
) -> Plan:
    """The plan for this tick.

    Pending and running instances are capacity; stopping ones are not (and cannot be
    started until they are stopped). Only stopped instances are started; only running
    ones are stopped, never a pending one (it is still booting towards work).
    """
    if backlog > 0:
        last_busy_at = now
    capacity = [i for i in instances if i.state in (PENDING, RUNNING)]
    stopped = sorted(i.id for i in instances if i.state == STOPPED)
    running = [i for i in instances if i.state == RUNNING]
    needed = needed_workers(backlog, throughput, settings)
    have = len(capacity)

    if have < needed:
        start = stopped[: needed - have]
        reason = f"backlog {backlog} needs {needed} worker(s), {have} up: starting {len(start)}"
        if len(start) < needed - have:
            reason += f" (only {len(stopped)} stopped in the pool)"
        return Plan(start=start, desired=needed, reason=reason, last_busy_at=last_busy_at)

    if have == needed:
        return Plan(desired=have, reason=_steady(backlog, have), last_busy_at=last_busy_at)

    idle_since = _idle_since(last_busy_at, capacity)
    idle_for = None if idle_since is None else now - idle_since
    if backlog == 0 and (idle_for is None or idle_for >= settings.idle_grace):
        target = needed
        reason = f"idle past the {settings.idle_grace:g} s grace: scaling in to {target}"
    elif have > settings.max_workers:
        target = settings.max_workers
        reason = f"{have} up is above max_workers {target}: scaling in"
    else:
        waited = 0.0 if idle_for is None or backlog > 0 else idle_for
        return Plan(
            desired=have,
            reason=f"backlog {backlog}, {have} up: holding "
            f"(idle {waited:.0f} of {settings.idle_grace:g} s before scaling in)",
            last_busy_at=last_busy_at,
        )
    # Longest-running first, so repeated ticks make the same, predictable choice.
    victims = sorted(running, key=lambda i: (i.started_at or 0.0, i.id))
    stop = [i.id for i in victims[: have - target]]
    return Plan(stop=stop, desired=have - len(stop), reason=reason, last_busy_at=last_busy_at)


def _idle_since(last_busy_at: float | None, capacity: Sequence[InstanceView]) -> float | None:
    """The fleet counts as idle since the later of the last backlog and the last start:
    a worker started for a burst that cleared before any tick saw it still gets its grace."""
    times = [t for t in [last_busy_at, *(i.started_at for i in capacity)] if t is not None]
    return max(times) if times else None


def _steady(backlog: int, have: int) -> str:
    return f"backlog {backlog}, {have} up: steady"
