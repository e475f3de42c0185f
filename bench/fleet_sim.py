"""A simulated worker fleet: an SQS queue, a pool of EC2 instances that boot, work and
stop, and a scaling policy acting on them, on a simulated clock in one-second steps.

The policy under test is the real one: ``OurPolicy`` calls skyclass.runtime.fleet.policy's
``decide`` on the scheduled tick and its ``cold_start`` on each arrival, exactly as the
scaling Lambda and the S3-event Lambda do. The student system's policy and a fixed
fleet are the baselines. Everything is deterministic: the same trace gives the same
figures.

What is simulated, and how (docs/scaling.md repeats it next to the figures):

* An instance starts ``pending`` for ``pending_time`` s, then ``running``; its worker
  takes messages ``boot_time`` s after the start. Only stopped instances start; a
  pending one cannot be stopped (EC2 refuses). A stopped worker finishes the batch it
  holds (as the real one does on SIGTERM), then the instance is stopped.
* A ready worker receives up to ``batch_size`` messages and works them at
  ``per_worker`` images/s; a message is in flight while a worker holds it.
* Billing: per second from the start to the stop, with EC2's 60 s minimum per start.
* The policy sees what the scaler sees: visible and in-flight messages, the instances,
  the per-worker throughput (exact here) and the images finished over the scaler's
  metrics windows (without the workers' flush delay). The tick comes at the start of
  its second, before that second's uploads.
* Every instance start is counted: each one is a cold start that pays a boot.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from skyclass.runtime.fleet.policy import (
    PENDING,
    RUNNING,
    STOPPED,
    STOPPING,
    InstanceView,
    Observation,
    Plan,
    cold_start,
    decide,
)
from skyclass.runtime.metrics import FINISHED_WINDOW
from skyclass.runtime.settings import Settings


@dataclass(frozen=True)
class Cloud:
    """The simulated AWS: how instances boot and how fast a worker works."""

    boot_time: float = 70.0  # StartInstances to a worker taking messages (student: 71.5 s)
    pending_time: float = 10.0
    per_worker: float = 20.0  # images/s of one busy worker
    batch_size: int = 10  # messages per receive (SQS's maximum)
    period: float = 60.0  # the scheduled scaling rule (EventBridge's shortest)
    pool_size: int = 17
    min_billed: float = 60.0  # EC2 bills at least a minute per start


@dataclass(frozen=True)
class FleetView:
    """What a policy may look at on a tick or an arrival. ``finished``: results per
    second of the run so far, oldest first (what the workers' metrics tell)."""

    now: float
    visible: int
    in_flight: int
    instances: Sequence[InstanceView]
    finished_rate: float = 0.0
    finished: Sequence[int] = ()

    def finished_within(self, seconds: float) -> int:
        """Results within the last ``seconds``."""
        count = int(seconds)
        return sum(self.finished[-count:]) if count > 0 else 0


class FleetPolicy(Protocol):
    name: str

    def initial(self) -> int:
        """Instances already up, booted, when the trace starts."""

    def on_tick(self, view: FleetView) -> tuple[list[str], list[str]]:
        """(start, stop) on the scheduled tick."""

    def on_arrival(self, view: FleetView) -> list[str]:
        """Instances to start when new images arrive (an S3 event)."""


class OurPolicy:
    """skyclass's policy: the same ``decide`` and ``cold_start`` as the Lambdas."""

    name = "skyclass"

    def __init__(self, settings: Settings, per_worker: float) -> None:
        self.settings = settings
        self._per_worker = per_worker  # what the workers' metrics would measure
        self._previous = Plan()

    def initial(self) -> int:
        return 0

    def on_tick(self, view: FleetView) -> tuple[list[str], list[str]]:
        p = self._previous
        plan = decide(Observation(
            view.visible, view.in_flight, view.instances, self._per_worker, view.now,
            view.finished_rate, p.recent, p.last_busy_at,
            finished_in_grace=view.finished_within(self.settings.idle_grace),
            surplus_since=p.surplus_since), self.settings)
        self._previous = plan
        return plan.start, plan.stop

    def on_arrival(self, view: FleetView) -> list[str]:
        return cold_start(view.instances, self.settings)


class StudentPolicy:
    """The student system: on each cron minute, one instance per visible message,
    capped at 15, and 17 above 15 messages; everything stopped once no message is
    visible. No reaction between ticks."""

    name = "student"

    def initial(self) -> int:
        return 0

    def on_tick(self, view: FleetView) -> tuple[list[str], list[str]]:
        up = [i for i in view.instances if i.state in (PENDING, RUNNING)]
        running = sorted((i for i in up if i.state == RUNNING), key=lambda i: i.started_at or 0)
        wanted = view.visible if view.visible <= 15 else 17
        if len(up) < wanted:
            stopped = sorted(i.id for i in view.instances if i.state == STOPPED)
            return stopped[: wanted - len(up)], []
        return [], [i.id for i in running[: len(up) - wanted]]

    def on_arrival(self, view: FleetView) -> list[str]:
        return []


class FixedFleet:
    """A fleet of ``size`` instances that is always up."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.name = f"fixed {size}"

    def initial(self) -> int:
        return self.size

    def on_tick(self, view: FleetView) -> tuple[list[str], list[str]]:
        return [], []

    def on_arrival(self, view: FleetView) -> list[str]:
        return []


@dataclass
class _Instance:
    id: str
    state: str = STOPPED
    started_at: float | None = None
    held: deque[float] = field(default_factory=deque)  # arrival times of held messages
    budget: float = 0.0

    def view(self) -> InstanceView:
        return InstanceView(self.id, self.state, self.started_at)


@dataclass
class Outcome:
    """One run: each image's time from upload to result, the cost, and the timeline."""

    policy: str
    latencies: list[float]
    instance_seconds: float
    peak: int
    times: list[float]
    backlog: list[int]
    up: list[int]
    starts: int = 0  # instance starts: each a cold start, paying a boot
    # (at, "start" | "stop", instance, images waiting or in flight then)
    events: list[tuple[float, str, str, int]] = field(default_factory=list)

    @property
    def instance_minutes(self) -> float:
        return self.instance_seconds / 60.0


def simulate(arrivals: Sequence[float], policy: FleetPolicy, cloud: Cloud,
             phase: float = 0.0, tail: float = 3600.0) -> Outcome:
    """Replay ``arrivals`` (upload times in seconds, sorted) against ``policy``; the
    scheduled tick fires at ``phase`` + k x ``cloud.period``, at the start of its second,
    before that second's arrivals (it sees what the workers left). The run ends once
    every image has its result and the fleet has scaled in as far as it will, or
    ``tail`` seconds after the last arrival."""
    pool = [_Instance(f"i-{n:02d}") for n in range(cloud.pool_size)]
    for instance in pool[: policy.initial()]:
        instance.state, instance.started_at = RUNNING, -cloud.boot_time
    queue: deque[float] = deque()
    latencies: list[float] = []
    billed = 0.0
    events: list[tuple[float, str, str, int]] = []
    times: list[float] = []
    backlog: list[int] = []
    up: list[int] = []
    arrivals = sorted(arrivals)
    next_arrival = 0
    last = arrivals[-1] if arrivals else 0.0
    idle_ticks = 0
    window = int(FINISHED_WINDOW.total_seconds())
    finished: list[int] = []  # results per second

    def view(now: float) -> FleetView:
        return FleetView(now, len(queue), sum(len(i.held) for i in pool),
                         [i.view() for i in pool], sum(finished[-window:]) / window, finished)

    def apply(now: float, start: Sequence[str], stop: Sequence[str]) -> None:
        by_id = {i.id: i for i in pool}
        held = len(queue) + sum(len(i.held) for i in pool)
        for instance_id in start:
            instance = by_id[instance_id]
            assert instance.state == STOPPED, f"{policy.name} started a {instance.state} one"
            instance.state, instance.started_at, instance.budget = PENDING, now, 0.0
            events.append((now, "start", instance_id, held))
        for instance_id in stop:
            instance = by_id[instance_id]
            assert instance.state == RUNNING, f"{policy.name} stopped a {instance.state} one"
            instance.state = STOPPING
            events.append((now, "stop", instance_id, held))

    t = 0
    while True:
        now = float(t)
        if (now - phase) % cloud.period == 0:
            start, stop = policy.on_tick(view(now))
            apply(now, start, stop)
            fleet_changed = bool(start or stop)
            idle_ticks = idle_ticks + 1 if not fleet_changed and not queue else 0
        first = next_arrival
        while next_arrival < len(arrivals) and arrivals[next_arrival] < now + 1:
            queue.append(arrivals[next_arrival])
            next_arrival += 1
        if next_arrival > first:
            apply(now, policy.on_arrival(view(now)), [])
        results = len(latencies)
        for instance in pool:
            billed += _step(instance, now, queue, latencies, cloud)
        finished.append(len(latencies) - results)
        times.append(now)
        backlog.append(len(queue) + sum(len(i.held) for i in pool))
        up.append(sum(i.state in (PENDING, RUNNING) for i in pool))
        done = next_arrival == len(arrivals) and backlog[-1] == 0
        settled = up[-1] == policy.initial() and idle_ticks >= 1
        if done and (settled or now >= last + tail):
            break
        t += 1
    # Instances still up at the end are billed until then.
    billed += sum(_bill(now + 1 - i.started_at, cloud) for i in pool
                  if i.state != STOPPED and i.started_at is not None)
    starts = sum(1 for _, kind, _, _ in events if kind == "start")
    return Outcome(policy.name, latencies, billed, max(up, default=0), times, backlog, up,
                   starts, events)


def _step(instance: _Instance, now: float, queue: deque[float], latencies: list[float],
          cloud: Cloud) -> float:
    """One second of one instance; returns the seconds billed if it stopped."""
    if instance.state in (STOPPED, PENDING):
        if instance.state == PENDING and now >= instance.started_at + cloud.pending_time:
            instance.state = RUNNING
        if instance.state == STOPPED:
            return 0.0
    if now < instance.started_at + cloud.boot_time:  # still booting
        if instance.state == STOPPING:
            instance.state = STOPPED
            return _bill(now + 1 - instance.started_at, cloud)
        return 0.0
    instance.budget += cloud.per_worker
    while instance.budget >= 1.0:
        if not instance.held:
            if instance.state != RUNNING or not queue:
                break
            for _ in range(min(cloud.batch_size, len(queue))):
                instance.held.append(queue.popleft())
        arrived = instance.held.popleft()
        instance.budget -= 1.0
        latencies.append(now + 1.0 - arrived)
    if not instance.held:
        instance.budget = min(instance.budget, 1.0)  # an idle worker banks no time
        if instance.state == STOPPING:
            instance.state = STOPPED
            return _bill(now + 1 - instance.started_at, cloud)
    return 0.0


def _bill(seconds: float, cloud: Cloud) -> float:
    return max(cloud.min_billed, seconds)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
