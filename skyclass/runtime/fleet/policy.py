"""The scaling policy: a pure function from (backlog, fleet, throughput, clock, settings)
to a Plan of instances to start and stop, with the reason.

Target tracking on backlog per instance, as AWS recommends for queue workers: one worker
per ``throughput x target_latency`` messages waiting or in flight, so the backlog clears
within the target latency; plus enough workers to keep up with what arrives, at
``TARGET_UTILIZATION``, so a growing stream is met before a backlog builds (a new worker
takes a boot to help). The arrival rate is what the workers finished recently (their
metrics) plus how fast the backlog grew since the last tick; it counts only while
something waits or is in flight. The total is clamped to ``[min_workers, max_workers]``,
at least one while anything waits. The rules:

* Scale out at once, starting stopped pool members only.
* Pending and running instances are capacity, booting ones included: the backlog does
  not fall while they boot, and that alone never starts more. Stopping ones are not
  capacity (and cannot be started until they are stopped).
* Scale in only after the idle grace: the fleet never shrinks below the highest need
  seen within the last ``idle_grace`` seconds, nor stops an instance started within it.
  As that window slides the fleet steps down, so a pause between two batches does not
  pay for a cold start, and a noisy backlog does not flap.
* Never stop a pending instance (EC2 refuses; it is about to work). Above
  ``max_workers`` (the setting was lowered), the excess goes at once.

No boto3 and no clock reads here: the scaler (skyclass.runtime.fleet.scaler) gathers the inputs
and applies the plan, and the simulator (bench/simulate.py) and the unit tests call
``decide`` directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from skyclass.runtime.settings import Settings

# The share of the fleet's capacity that arrivals may fill: the rest absorbs a rising
# stream while new workers boot, and a Poisson stream's bursts.
TARGET_UTILIZATION = 0.8

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

    def is_booting(self, now: float, boot_time: float) -> bool:
        """Pending, or running for less than the expected boot time: not working yet."""
        if self.state == PENDING:
            return True
        return self.state == RUNNING and (
            self.started_at is None or now - self.started_at < boot_time
        )


@dataclass(frozen=True)
class Observation:
    """Everything the policy looks at in one tick.

    ``per_worker``: images per second of one busy worker (measured by the workers'
    metrics, or the configured default until there are any). ``finished_rate``: images
    per second the whole fleet finished lately (the same metrics; 0 when unknown).
    ``recent``: the ``(at, needed, backlog)`` of earlier ticks within the idle grace,
    and ``last_busy_at`` when the backlog was last seen non-zero; both come from the
    previous Plan. ``to_list``: images of bulk jobs still to be listed (an estimate,
    skyclass.runtime.bulk.backlog), work as real as what waits in the queue.
    """

    visible: int
    in_flight: int
    instances: Sequence[InstanceView]
    per_worker: float
    now: float
    finished_rate: float = 0.0
    recent: Sequence[tuple[float, int, int]] = ()
    last_busy_at: float | None = None
    to_list: int = 0

    @property
    def backlog(self) -> int:
        return self.visible + self.in_flight + self.to_list

    def arrival_rate(self) -> float:
        """Images arriving per second: what the fleet finished lately plus how fast the
        backlog grew since the last tick."""
        rate = self.finished_rate
        if self.recent:
            at, _, backlog = self.recent[-1]
            if self.now > at:
                rate += (self.backlog - backlog) / (self.now - at)
        return max(0.0, rate)


@dataclass(frozen=True)
class Plan:
    start: list[str] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    desired: int = 0
    reason: str = ""
    # State for the next tick (the scaler stores it with the decision).
    last_busy_at: float | None = None
    recent: list[tuple[float, int, int]] = field(default_factory=list)


def needed_workers(backlog: int, arrivals: float, per_worker: float,
                   settings: Settings) -> int:
    """Workers that keep up with ``arrivals`` (images/s) at the target utilization and
    clear ``backlog`` within the target latency, clamped to the limits; at least one
    (within max_workers) while the backlog is not empty. With nothing waiting or in
    flight, ``min_workers``: what finished lately is history then, and the grace window
    already keeps the fleet that served it."""
    if backlog <= 0:
        return settings.min_workers
    per_worker = max(per_worker, 1e-9)
    keep_up = arrivals / (per_worker * TARGET_UTILIZATION)
    drain = backlog / (per_worker * max(settings.target_latency, 1e-9))
    wanted = max(1, math.ceil(round(keep_up + drain, 6)))
    return max(settings.min_workers, min(settings.max_workers, wanted))


def decide(obs: Observation, settings: Settings) -> Plan:
    """The plan for this tick (see the module docstring for the rules)."""
    now, backlog = obs.now, obs.backlog
    last_busy_at = now if backlog > 0 else obs.last_busy_at
    arrivals = obs.arrival_rate()
    needed = needed_workers(backlog, arrivals, obs.per_worker, settings)
    recent = [(at, n, b) for at, n, b in obs.recent if now - at < settings.idle_grace]
    recent.append((now, needed, backlog))

    capacity = [i for i in obs.instances if i.state in (PENDING, RUNNING)]
    stopped = sorted(i.id for i in obs.instances if i.state == STOPPED)
    booting = sum(i.is_booting(now, settings.boot_time) for i in capacity)
    have = len(capacity)
    listing = f", {obs.to_list} to list" if obs.to_list else ""
    seen = (f"backlog {backlog} ({obs.visible} waiting, {obs.in_flight} in flight{listing}), "
            f"{arrivals:.3g} img/s arriving, {obs.per_worker:.3g} img/s per worker: "
            f"needs {needed}; {have} up"
            + (f" ({booting} booting)" if booting else ""))

    def plan(reason: str, start: Sequence[str] = (), stop: Sequence[str] = ()) -> Plan:
        return Plan(start=list(start), stop=list(stop), desired=have + len(start) - len(stop),
                    reason=f"{seen}: {reason}", last_busy_at=last_busy_at, recent=recent)

    if have < needed:
        start = stopped[: needed - have]
        short = (f" (only {len(stopped)} stopped in the pool)"
                 if len(start) < needed - have else "")
        return plan(f"starting {len(start)}{short}", start=start)

    # Scale in never goes below the highest need within the grace window, nor stops what
    # started within it; the limit applies regardless.
    young = sum(1 for i in capacity
                if i.started_at is not None and now - i.started_at < settings.idle_grace)
    keep = min(max(max(n for _, n, _ in recent), young), settings.max_workers)
    if have <= keep:
        return plan(_holding(have, needed, last_busy_at, now, settings))
    victims = sorted(
        (i for i in capacity if i.state == RUNNING),
        key=lambda i: (i.started_at or 0.0, i.id),  # longest-running first: predictable
    )[: have - keep]
    if have > settings.max_workers:
        why = f"above max_workers {settings.max_workers}"
    elif keep == needed == settings.min_workers:
        why = f"idle past the {settings.idle_grace:g} s grace"
    else:
        why = f"no need above {keep} within the {settings.idle_grace:g} s grace"
    if not victims:
        return plan(f"{why}, but every surplus instance is still pending: holding")
    return plan(f"{why}: stopping {len(victims)}", stop=[i.id for i in victims])


def cold_start(instances: Sequence[InstanceView], settings: Settings) -> list[str]:
    """What the S3-event handler starts for a new image at once, not waiting for the next
    scaling tick: one stopped instance, if none is pending or running (a cold start
    costs a boot; the tick sizes the fleet)."""
    if settings.max_workers < 1 or any(i.state in (PENDING, RUNNING) for i in instances):
        return []
    return sorted(i.id for i in instances if i.state == STOPPED)[:1]


def _holding(have: int, needed: int, last_busy_at: float | None, now: float,
             settings: Settings) -> str:
    if have == needed:
        return "steady"
    if needed == 0 and last_busy_at is not None:
        return (f"idle {now - last_busy_at:.0f} of {settings.idle_grace:g} s, holding "
                "before scaling in")
    return f"holding {have} within the {settings.idle_grace:g} s grace before scaling in"
