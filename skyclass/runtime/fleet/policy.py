"""The scaling policy: a pure function from (backlog, fleet, throughput, clock, settings)
to a Plan of instances to start and stop, with the reason.

Target tracking on backlog per instance, as AWS recommends for queue workers: one worker
per ``throughput x target_latency`` messages waiting or in flight, so the backlog clears
within the target latency; plus enough workers to keep up with what arrives, at
``TARGET_UTILIZATION``, so a growing stream is met before a backlog builds (a new worker
takes a boot to help). The arrival rate is what the workers finished recently (their
metrics) plus how fast the backlog grew since the last tick; it counts only while
something waits or is in flight. The total is clamped to ``[min_workers, max_workers]``,
at least one while anything waits. The backlog counts images uploaded but not yet
ingested, where the stage can see them (``Observation.ingesting``).

Scaling out:

* Scale out at once, starting stopped pool members only.
* Pending and running instances are capacity, booting ones included: the backlog does
  not fall while they boot, and that alone never starts more. Stopping ones are not
  capacity (and cannot be started until they are stopped).

Scaling in never stops a worker the backlog still needs, and never flaps:

* Idle: once no image has waited, been in flight or been finished for the whole
  ``idle_grace`` (the grace counts from the last image seen, by a tick or by the
  workers' metrics, so a trickle consumed between two ticks still counts), the fleet
  steps down towards ``min_workers``, half the surplus per tick.
* Surplus: while images keep coming but fewer workers than are up would do (the need
  stayed below the fleet, with nothing waiting, for the whole grace), one worker goes
  per tick, at a tick when no image is in flight either; never the last while images
  are seen.
* Never while images wait (an instance stopped then gives its prefetched batch back),
  and not within a cool-down of ``idle_grace`` after the fleet last grew (the latest
  start, by the tick or by the S3 event's cold start).
* The one to go is the one that costs least to lose: a worker still booting (it holds
  nothing yet) before a warm one, the newest first. Never a pending instance (EC2
  refuses; it is about to work). Above ``max_workers`` (the setting was lowered), the
  excess goes at once.

No boto3 and no clock reads here: the scaler (skyclass.runtime.fleet.scaler) gathers
the inputs and applies the plan, and the simulator (bench/simulate.py) and the unit
tests call ``decide`` directly. What the next tick needs to know goes in the Plan.
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

    ``per_worker``: images per second of one busy, warm worker (measured by the workers'
    metrics, or the configured default until there are any). ``finished_rate``: images
    per second the whole fleet finished lately (the same metrics; 0 when unknown).
    ``finished_in_grace``: images the workers finished within the last ``idle_grace``
    (0 when unknown): images seen although no tick saw them wait. ``ingesting``: images
    uploaded but not yet turned into work messages, where the stage can see them (the
    local stack's S3-event queue; 0 on AWS, docs/scaling.md says why).
    ``recent``: the ``(at, needed, backlog)`` of earlier ticks within the idle grace;
    ``last_busy_at``: when a tick last saw a backlog; ``surplus_since``: since when the
    fleet has been larger than needed with nothing waiting. All three come from the
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
    ingesting: int = 0
    finished_in_grace: int = 0
    surplus_since: float | None = None
    to_list: int = 0

    @property
    def backlog(self) -> int:
        return self.visible + self.in_flight + self.ingesting + self.to_list

    @property
    def waiting(self) -> int:
        """Images no worker holds yet: queued, or still to be queued or listed."""
        return self.visible + self.ingesting + self.to_list

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
    surplus_since: float | None = None


def needed_workers(backlog: int, arrivals: float, per_worker: float,
                   settings: Settings) -> int:
    """Workers that keep up with ``arrivals`` (images/s) at the target utilization and
    clear ``backlog`` within the target latency, clamped to the limits; at least one
    (within max_workers) while the backlog is not empty. With nothing waiting or in
    flight, ``min_workers``: what finished lately is history then, and scaling in
    keeps the fleet that served it for the idle grace."""
    if backlog <= 0:
        return settings.min_workers
    per_worker = max(per_worker, 1e-9)
    keep_up = arrivals / (per_worker * TARGET_UTILIZATION)
    drain = backlog / (per_worker * max(settings.target_latency, 1e-9))
    wanted = max(1, math.ceil(round(keep_up + drain, 6)))
    return max(settings.min_workers, min(settings.max_workers, wanted))


def decide(obs: Observation, settings: Settings) -> Plan:
    """The plan for this tick (see the module docstring for the rules)."""
    now, backlog, grace = obs.now, obs.backlog, settings.idle_grace
    last_busy_at = now if backlog > 0 else obs.last_busy_at
    arrivals = obs.arrival_rate()
    needed = needed_workers(backlog, arrivals, obs.per_worker, settings)
    recent = [(at, n, b) for at, n, b in obs.recent if now - at < grace]
    recent.append((now, needed, backlog))

    capacity = [i for i in obs.instances if i.state in (PENDING, RUNNING)]
    stopped = sorted(i.id for i in obs.instances if i.state == STOPPED)
    booting = sum(i.is_booting(now, settings.boot_time) for i in capacity)
    have = len(capacity)
    seen = (f"backlog {backlog} ({obs.visible} waiting, {obs.in_flight} in flight"
            + (f", {obs.ingesting} to ingest" if obs.ingesting else "")
            + (f", {obs.to_list} to list" if obs.to_list else "")
            + f"), {arrivals:.3g} img/s arriving, {obs.per_worker:.3g} img/s per worker: "
            f"needs {needed}; {have} up"
            + (f" ({booting} booting)" if booting else ""))
    # Since when the fleet has been larger than needed with nothing waiting.
    surplus_since = None
    if needed < have and obs.waiting == 0:
        surplus_since = now if obs.surplus_since is None else obs.surplus_since

    def plan(reason: str, start: Sequence[str] = (), stop: Sequence[str] = ()) -> Plan:
        return Plan(start=list(start), stop=list(stop), desired=have + len(start) - len(stop),
                    reason=f"{seen}: {reason}", last_busy_at=last_busy_at, recent=recent,
                    surplus_since=surplus_since)

    if have < needed:
        start = stopped[: needed - have]
        short = (f" (only {len(stopped)} stopped in the pool)"
                 if len(start) < needed - have else "")
        return plan(f"starting {len(start)}{short}", start=start)

    if have > settings.max_workers:
        victims = _least_costly(capacity, have - settings.max_workers, now, settings)
        why = f"above max_workers {settings.max_workers}"
        if not victims:
            return plan(f"{why}, but every surplus instance is still pending: holding")
        return plan(f"{why}: stopping {len(victims)}", stop=victims)
    if have <= needed:
        return plan("steady")
    if have <= settings.min_workers:
        return plan(f"holding {have}: min_workers is {settings.min_workers}")

    # Scale in: only an idle fleet, or a surplus that lasted the whole grace, never
    # while images wait, never within the cool-down after the fleet last grew.
    idle_for = math.inf if last_busy_at is None else now - last_busy_at
    idle = idle_for >= grace and obs.finished_in_grace == 0
    surplus_for = now - surplus_since if surplus_since is not None else 0.0
    if not idle and (surplus_for < grace or backlog):
        return plan(_holding(obs, idle_for, surplus_for, grace))
    last_start = max((i.started_at for i in capacity if i.started_at is not None),
                     default=None)
    if last_start is not None and now - last_start < grace:
        return plan(f"cool-down: the fleet grew {now - last_start:.0f} s ago, holding "
                    f"{have} for the {grace:g} s grace")
    if idle:
        # Step down: half the surplus per tick, so a burst right after still finds some.
        floor = settings.min_workers
        count = math.ceil((have - floor) / 2)
        why = (f"idle past the {grace:g} s grace" if floor == 0 and count == have - floor
               else f"idle past the {grace:g} s grace, stepping down to {floor}")
    else:
        # Images keep coming: keep what they need, and one at least.
        floor = max(needed, 1, settings.min_workers)
        count = min(1, have - floor)
        why = f"fewer than {have} needed for {surplus_for:.0f} s with nothing waiting"
    if count <= 0:
        return plan(f"holding {have}: images seen within the {grace:g} s grace")
    victims = _least_costly(capacity, count, now, settings)
    if not victims:
        return plan(f"{why}, but every surplus instance is still pending: holding")
    return plan(f"{why}: stopping {len(victims)}", stop=victims)


def cold_start(instances: Sequence[InstanceView], settings: Settings) -> list[str]:
    """What the S3-event handler starts for a new image at once, not waiting for the next
    scaling tick: one stopped instance, if none is pending or running (a cold start
    costs a boot; the tick sizes the fleet)."""
    if settings.max_workers < 1 or any(i.state in (PENDING, RUNNING) for i in instances):
        return []
    return sorted(i.id for i in instances if i.state == STOPPED)[:1]


def _least_costly(capacity: Sequence[InstanceView], count: int, now: float,
                  settings: Settings) -> list[str]:
    """The ``count`` running instances that cost least to lose: those still booting
    (they hold no messages yet, and a warm worker is never stopped while they boot),
    then the warm ones; the newest first in each. Pending ones are never stopped."""
    running = [i for i in capacity if i.state == RUNNING]
    ranked = sorted(running, key=lambda i: (not i.is_booting(now, settings.boot_time),
                                            -(i.started_at or 0.0), i.id))
    return [i.id for i in ranked[:max(count, 0)]]


def _holding(obs: Observation, idle_for: float, surplus_for: float, grace: float) -> str:
    if obs.waiting:
        return f"{obs.waiting} waiting: never scaling in while images wait"
    if obs.backlog:
        return f"{obs.in_flight} in flight: holding"
    if obs.finished_in_grace and idle_for >= grace:
        return (f"{obs.finished_in_grace} images finished within the {grace:g} s grace: "
                "holding")
    if surplus_for:
        return f"fewer needed for {surplus_for:.0f} of {grace:g} s: holding"
    if idle_for < math.inf:
        return f"idle {idle_for:.0f} of {grace:g} s, holding before scaling in"
    return f"holding within the {grace:g} s grace before scaling in"
