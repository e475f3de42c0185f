"""The scaling policy: GIVEN a fleet and a backlog, THEN this plan. One test per rule."""

from __future__ import annotations

import pytest

from skyclass.runtime.fleet.policy import InstanceView, Observation, Plan, cold_start, decide
from skyclass.runtime.settings import Settings

NOW = 10_000.0
THROUGHPUT = 2.0  # images/s per worker: with a 60 s target, 120 images per worker
LONG_AGO = NOW - 3600


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {}, min_workers=0, max_workers=4, idle_grace=300.0, target_latency=60.0, boot_time=70.0
    )


def fleet(started_at: float = LONG_AGO, **states: str) -> list[InstanceView]:
    """fleet(i1="running", i2="stopped") -> instances last started an hour ago."""
    return [InstanceView(id, state, started_at=started_at) for id, state in states.items()]


def plan_for(settings, backlog, instances, *, in_flight=0, last_busy_at=None, recent=(),
             now=NOW, throughput=THROUGHPUT, finished_rate=0.0, ingesting=0,
             finished_in_grace=0, surplus_since=None) -> Plan:
    return decide(Observation(visible=backlog, in_flight=in_flight, instances=instances,
                              per_worker=throughput, now=now, finished_rate=finished_rate,
                              recent=recent, last_busy_at=last_busy_at, ingesting=ingesting,
                              finished_in_grace=finished_in_grace,
                              surplus_since=surplus_since), settings)


class Fleet:
    """A fleet that applies plans tick by tick, as the scaler and EC2 would, and
    remembers every start and stop."""

    def __init__(self, settings, states: dict[str, str], started_at: float = LONG_AGO):
        self.settings = settings
        self.states = dict(states)
        self.started_at = {i: started_at for i, s in states.items() if s == "running"}
        self.starts: list[tuple[float, str]] = []
        self.stops: list[tuple[float, str, int]] = []  # (at, id, backlog then)
        self.previous = Plan()

    def views(self) -> list[InstanceView]:
        return [InstanceView(i, s, self.started_at.get(i)) for i, s in self.states.items()]

    def tick(self, now, visible=0, in_flight=0, throughput=THROUGHPUT, **seen) -> Plan:
        p = self.previous
        plan = decide(Observation(visible=visible, in_flight=in_flight,
                                  instances=self.views(), per_worker=throughput, now=now,
                                  recent=p.recent, last_busy_at=p.last_busy_at,
                                  surplus_since=p.surplus_since, **seen), self.settings)
        for i in plan.start:
            self.states[i], self.started_at[i] = "running", now
            self.starts.append((now, i))
        for i in plan.stop:
            self.states[i] = "stopped"
            self.stops.append((now, i, visible + in_flight))
        self.previous = plan
        return plan

    def up(self) -> int:
        return sum(s == "running" for s in self.states.values())


# ---- scaling out ------------------------------------------------------------------

def test_a_backlog_on_a_cold_fleet_starts_one_worker(settings):
    plan = plan_for(settings, 5, fleet(i1="stopped", i2="stopped"))

    assert plan.start == ["i1"] and plan.stop == []
    assert plan.desired == 1


def test_a_large_backlog_starts_one_worker_per_target_latency_of_work(settings):
    plan = plan_for(settings, 300, fleet(i1="running", i2="stopped", i3="stopped", i4="stopped"))

    assert plan.desired == 3  # ceil(300 / 120)
    assert plan.start == ["i2", "i3"]


def test_messages_in_flight_count_as_backlog(settings):
    plan = plan_for(settings, 0, fleet(i1="running", i2="stopped"), in_flight=200)

    assert plan.start == ["i2"] and plan.desired == 2


def test_measured_throughput_changes_how_many_workers_a_backlog_needs(settings):
    instances = fleet(i1="stopped", i2="stopped", i3="stopped", i4="stopped")

    slow = plan_for(settings, 300, instances, throughput=1.0)  # 60 images per worker
    fast = plan_for(settings, 300, instances, throughput=10.0)  # 600 images per worker

    assert (slow.desired, fast.desired) == (4, 1)
    assert "10 img/s" in fast.reason


def test_a_stream_keeps_enough_workers_to_keep_up_however_small_its_backlog(settings):
    # GIVEN workers that finished 2.4 img/s lately and have one image in flight
    plan = plan_for(settings, 0, fleet(i1="running", i2="stopped"), in_flight=1,
                    finished_rate=2.4)

    # THEN two run: one worker (2 img/s) at 80 % utilization keeps up with 1.6 img/s
    assert plan.start == ["i2"] and plan.desired == 2


def test_a_backlog_that_grew_since_the_last_tick_counts_as_arrivals(settings):
    # GIVEN an empty queue a minute ago and 96 images now: 1.6 img/s arriving
    instances = fleet(i1="running", i2="stopped", i3="stopped")

    plan = plan_for(settings, 96, instances, recent=[(NOW - 60, 1, 0)])

    # THEN one worker to keep up plus one to clear the 96 within the target (ceil 1.8)
    assert plan.desired == 2
    assert "1.6 img/s arriving" in plan.reason


def test_the_fleet_never_grows_beyond_max_workers(settings):
    instances = fleet(**{f"i{n}": "stopped" for n in range(6)})

    plan = plan_for(settings, 100_000, instances)

    assert plan.desired == 4
    assert len(plan.start) == 4


def test_too_few_stopped_instances_are_reported_in_the_reason(settings):
    plan = plan_for(settings, 100_000, fleet(i1="stopped"))

    assert plan.start == ["i1"]
    assert "only 1 stopped" in plan.reason


def test_min_workers_are_started_without_a_backlog(settings):
    settings = settings.replace(min_workers=1)

    plan = plan_for(settings, 0, fleet(i1="stopped"))

    assert plan.start == ["i1"]


# ---- what counts as capacity ------------------------------------------------------------

def test_pending_instances_count_as_capacity(settings):
    plan = plan_for(settings, 100, fleet(i1="pending", i2="stopped"))

    assert plan.start == [] and plan.stop == []


def test_booting_workers_that_do_not_drain_yet_start_no_more(settings):
    # GIVEN two workers started 20 s ago for 240 images, still booting (70 s), and the
    # backlog not smaller than when they were started
    booting = fleet(started_at=NOW - 20, i1="running", i2="running", i3="stopped")

    plan = plan_for(settings, 240, booting, recent=[(NOW - 20, 2, 240)], last_busy_at=NOW - 20)

    # THEN nobody else is started: they count, booting or not
    assert plan.start == [] and plan.desired == 2
    assert "2 booting" in plan.reason


def test_stopping_instances_are_not_capacity_and_are_not_started(settings):
    plan = plan_for(settings, 100, fleet(i1="stopping", i2="stopped"))

    assert plan.start == ["i2"]


# ---- scaling in -------------------------------------------------------------------

def test_a_shrinking_backlog_does_not_stop_anyone_within_the_grace(settings):
    plan = plan_for(settings, 1, fleet(i1="running", i2="running", i3="running"),
                    recent=[(NOW - 120, 3, 2)], last_busy_at=NOW - 60)

    assert plan.stop == []
    assert plan.desired == 3


def test_what_finished_lately_starts_nobody_once_nothing_waits(settings):
    plan = plan_for(settings, 0, fleet(i1="stopped"), finished_rate=5.0)

    assert plan.start == [] and plan.desired == 0


def test_an_idle_fleet_within_the_grace_period_is_kept(settings):
    plan = plan_for(settings, 0, fleet(i1="running"), recent=[(NOW - 100, 1, 0)],
                    last_busy_at=NOW - 100)

    assert plan.stop == []
    assert "idle 100 of 300 s" in plan.reason


def test_an_idle_fleet_past_the_grace_period_steps_down_to_zero(settings):
    # GIVEN four workers idle for longer than the grace
    four = fleet(i1="running", i2="running", i3="running", i4="running")
    plan = plan_for(settings, 0, four, last_busy_at=NOW - 301)
    # THEN half of them stop this tick, and the rest on the next ticks: 4, 2, 1, 0
    assert len(plan.stop) == 2 and plan.desired == 2
    assert "idle past the 300 s grace" in plan.reason
    left = [i for i in four if i.id not in plan.stop]
    later = plan_for(settings, 0, left, last_busy_at=plan.last_busy_at, now=NOW + 60)
    assert len(later.stop) == 1
    last = [i for i in left if i.id not in later.stop]
    assert len(plan_for(settings, 0, last, last_busy_at=NOW - 301, now=NOW + 120).stop) == 1


def test_a_backlog_that_comes_and_goes_does_not_flap(settings):
    # GIVEN a backlog that comes and goes every other minute for half an hour
    instances = {f"i{n}": "stopped" for n in range(4)}
    started_at: dict[str, float] = {}
    recent: list = []
    last_busy_at = None
    starts, stops = [], 0
    for tick in range(30):
        now = NOW + 60 * tick
        views = [InstanceView(i, s, started_at.get(i)) for i, s in instances.items()]
        plan = plan_for(settings, 300 if tick % 2 == 0 else 0, views, recent=recent,
                        last_busy_at=last_busy_at, now=now)
        recent, last_busy_at = plan.recent, plan.last_busy_at
        for i in plan.start:
            instances[i], started_at[i] = "running", now
        for i in plan.stop:
            instances[i] = "stopped"
        starts.append(len(plan.start))
        stops += len(plan.stop)
    # THEN the fleet was sized on the first two busy ticks and never shrank
    assert stops == 0
    assert starts[0] > 0 and sum(starts[3:]) == 0


def test_idle_scale_in_keeps_min_workers(settings):
    settings = settings.replace(min_workers=1)

    plan = plan_for(settings, 0, fleet(i1="running", i2="running"), last_busy_at=NOW - 1000)

    assert len(plan.stop) == 1
    assert plan.desired == 1


def test_scale_in_stops_the_newest_warm_worker_first(settings):
    instances = [InstanceView("i1", "running", LONG_AGO + 10),
                 InstanceView("i2", "running", LONG_AGO)]

    plan = plan_for(settings.replace(min_workers=1), 0, instances)

    assert plan.stop == ["i1"]


def test_a_pending_instance_is_never_stopped(settings):
    plan = plan_for(settings, 0, fleet(i1="pending", i2="running"), last_busy_at=NOW - 1000)

    assert plan.stop == ["i2"]


def test_a_worker_started_for_a_burst_nobody_saw_still_gets_its_grace(settings):
    """A cold start by ingest, whose backlog cleared before any tick: the grace counts
    from the instance's start."""
    just_started = fleet(started_at=NOW - 90, i1="running")

    plan = plan_for(settings, 0, just_started)

    assert plan.stop == []


def test_a_backlog_marks_the_fleet_busy_now(settings):
    assert plan_for(settings, 3, fleet(i1="running"), last_busy_at=1.0).last_busy_at == NOW
    assert plan_for(settings, 0, fleet(i1="running"), last_busy_at=1.0).last_busy_at == 1.0


def test_the_grace_window_forgets_needs_older_than_the_grace(settings):
    plan = plan_for(settings, 0, fleet(i1="stopped"), recent=[(NOW - 400, 4, 9), (NOW - 10, 1, 0)])

    assert plan.recent == [(NOW - 10, 1, 0), (NOW, 0, 0)]


def test_a_fleet_above_max_workers_is_scaled_in_even_when_busy(settings):
    settings = settings.replace(max_workers=1)

    plan = plan_for(settings, 1000, fleet(i1="running", i2="running"))

    assert len(plan.stop) == 1
    assert plan.desired == 1


def test_a_pending_instance_is_not_stopped_even_above_max_workers(settings):
    settings = settings.replace(max_workers=1)

    plan = plan_for(settings, 1000, fleet(i1="pending", i2="pending"))

    assert plan.stop == []
    assert "still pending" in plan.reason


# ---- never stopping a worker the backlog needs, never flapping ---------------------

@pytest.fixture
def local(settings) -> Settings:
    """The local stack's timing: a tick every 2 s, a 20 s grace, 10 s boots."""
    return settings.replace(idle_grace=20.0, boot_time=10.0, scale_period=2.0)


def test_no_worker_is_stopped_while_images_wait_whatever_the_need(local):
    # GIVEN four workers, three still booting, 67 images waiting and 49 in flight, and a
    # measured throughput by which fewer would do within the target latency
    instances = [InstanceView("i1", "running", NOW - 60)] + [
        InstanceView(f"i{n}", "running", NOW - 8) for n in (2, 3, 4)]

    plan = plan_for(local, 67, instances, in_flight=49, throughput=1.81,
                    recent=[(NOW - 20, 4, 116)], last_busy_at=NOW - 2,
                    surplus_since=NOW - 60)

    # THEN nobody is stopped
    assert plan.stop == [] and plan.desired == 4
    assert "never scaling in while images wait" in plan.reason


def test_a_draining_burst_keeps_its_fleet_and_never_restarts_an_instance(local):
    # GIVEN a burst of 116 images met by four workers that boot while it waits, the
    # measured throughput falling while they boot, and a 2 s tick
    fleet_ = Fleet(local, {"i1": "running", "i2": "stopped", "i3": "stopped",
                           "i4": "stopped"}, started_at=NOW - 60)
    backlog, now = 116, NOW
    while backlog:
        up = fleet_.up()
        held = min(backlog, 17 * up)
        fleet_.tick(now, visible=backlog - held, in_flight=held, throughput=1.81,
                    finished_rate=2.0)
        backlog = max(0, backlog - 6)  # 3 img/s finished
        now += 2
    # WHEN the fleet then idles well past the grace
    for _ in range(30):
        fleet_.tick(now)
        now += 2
    # THEN no instance stopped while an image waited or was in flight, each started once
    assert all(backlog_then == 0 for _, _, backlog_then in fleet_.stops)
    started = [i for _, i in fleet_.starts]
    assert len(started) == len(set(started))
    # AND the idle fleet is back at zero
    assert fleet_.up() == 0


def test_a_trickle_consumed_between_ticks_keeps_its_one_worker(local):
    # GIVEN one worker, and an image every 10 s that it finishes before any tick sees it
    fleet_ = Fleet(local, {"i1": "running", "i2": "stopped"}, started_at=NOW - 600)
    images = [NOW - 95 + 10 * k for k in range(40)]
    for tick in range(150):  # five minutes of ticks
        now = NOW + 2 * tick
        finished = sum(1 for t in images if now - local.idle_grace < t <= now)
        fleet_.tick(now, finished_in_grace=finished, finished_rate=0.1)
    # THEN it is never stopped, and nothing else starts
    assert fleet_.stops == [] and fleet_.starts == []
    # WHEN the trickle stops: THEN the worker goes one grace after the last image
    now = images[-1]
    while not fleet_.stops:
        now += 2
        fleet_.tick(now, finished_in_grace=sum(
            1 for t in images if now - local.idle_grace < t <= now))
    assert fleet_.stops[0][0] - images[-1] >= local.idle_grace


def test_the_grace_counts_from_the_last_image_the_workers_finished(settings):
    # GIVEN no tick saw a backlog for long, but the workers finished an image lately
    plan = plan_for(settings, 0, fleet(i1="running"), last_busy_at=NOW - 1000,
                    finished_in_grace=1)

    # THEN the worker stays
    assert plan.stop == []
    assert "1 images finished within the 300 s grace" in plan.reason


def test_the_only_warm_worker_is_not_the_one_to_go_while_others_boot(settings):
    # GIVEN one warm worker and three booting, above a max_workers lowered to 3
    instances = [InstanceView("i-warm", "running", NOW - 600)] + [
        InstanceView(f"i-boot{n}", "running", NOW - 20 + n) for n in range(3)]

    plan = plan_for(settings.replace(max_workers=3), 100, instances)

    # THEN a booting one goes (it holds nothing yet), the newest first
    assert plan.stop == ["i-boot2"]


def test_no_scale_in_within_the_cool_down_after_the_fleet_grew(settings):
    # GIVEN a surplus that lasted longer than the grace, but an instance started 100 s ago
    instances = [InstanceView("i1", "running", LONG_AGO),
                 InstanceView("i2", "running", NOW - 100)]

    plan = plan_for(settings, 0, instances, finished_in_grace=3, surplus_since=NOW - 400,
                    last_busy_at=NOW - 10)

    # THEN nobody goes until the cool-down is over
    assert plan.stop == []
    assert "cool-down" in plan.reason
    assert len(plan_for(settings, 0, instances, finished_in_grace=3,
                        surplus_since=NOW - 400, now=NOW + 200).stop) == 1


def test_a_stream_that_needs_fewer_workers_loses_one_per_tick_down_to_one(settings):
    # GIVEN three warm workers for a light stream: one image in flight at each tick,
    # nothing waiting, one worker enough
    fleet_ = Fleet(settings, {"i1": "running", "i2": "running", "i3": "running"})
    ups = []
    for tick in range(12):
        fleet_.tick(NOW + 60 * tick, in_flight=1, finished_rate=0.5)
        ups.append(fleet_.up())
    # THEN all three stay while one is in flight at each tick
    assert ups == [3] * 12
    # WHEN the ticks then find nothing in flight, images still finishing between them
    for tick in range(12, 16):
        fleet_.tick(NOW + 60 * tick, finished_rate=0.5, finished_in_grace=100)
        ups.append(fleet_.up())
    # THEN one goes per tick, and the last one stays
    assert ups[12:] == [2, 1, 1, 1]


def test_images_still_to_be_ingested_count_as_backlog(settings):
    plan = plan_for(settings, 0, fleet(i1="stopped"), ingesting=50)

    assert plan.start == ["i1"]
    assert "50 to ingest" in plan.reason


def test_images_still_to_be_ingested_keep_the_fleet(settings):
    plan = plan_for(settings, 0, fleet(i1="running"), ingesting=5, last_busy_at=NOW - 1000)

    assert plan.stop == []


# ---- the S3 event's cold start ----------------------------------------------------------

def test_a_cold_start_starts_one_worker_for_an_idle_fleet(settings):
    assert cold_start(fleet(i2="stopped", i1="stopped", i3="stopping"), settings) == ["i1"]


@pytest.mark.parametrize("state", ["pending", "running"])
def test_a_cold_start_leaves_a_warm_fleet_to_the_tick(settings, state):
    assert cold_start(fleet(i1=state, i2="stopped"), settings) == []


def test_a_cold_start_respects_a_fleet_capped_at_zero(settings):
    assert cold_start(fleet(i1="stopped"), settings.replace(max_workers=0)) == []
