"""The scaling policy: GIVEN a fleet and a backlog, THEN this plan."""

from __future__ import annotations

import pytest

from skyclass.fleet.policy import InstanceView, Plan, decide
from skyclass.settings import Settings

NOW = 10_000.0
THROUGHPUT = 2.0  # images/s per worker: with a 60 s target, 120 images per worker


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {}, min_workers=0, max_workers=4, idle_grace=300.0, target_latency=60.0
    )


def fleet(**states: str) -> list[InstanceView]:
    """fleet(i1="running", i2="stopped") -> instances started 600 s ago."""
    return [InstanceView(id, state, started_at=NOW - 600) for id, state in states.items()]


def plan_for(settings, backlog, instances, last_busy_at=None, now=NOW) -> Plan:
    return decide(backlog, instances, THROUGHPUT, now, last_busy_at, settings)


def test_a_backlog_on_a_cold_fleet_starts_one_worker(settings):
    plan = plan_for(settings, 5, fleet(i1="stopped", i2="stopped"))

    assert plan.start == ["i1"] and plan.stop == []
    assert plan.desired == 1


def test_a_large_backlog_starts_one_worker_per_target_latency_of_work(settings):
    plan = plan_for(settings, 300, fleet(i1="running", i2="stopped", i3="stopped", i4="stopped"))

    assert plan.desired == 3  # ceil(300 / 120)
    assert plan.start == ["i2", "i3"]


def test_the_fleet_never_grows_beyond_max_workers(settings):
    instances = fleet(**{f"i{n}": "stopped" for n in range(6)})

    plan = plan_for(settings, 100_000, instances)

    assert plan.desired == 4
    assert len(plan.start) == 4


def test_pending_instances_count_as_capacity(settings):
    plan = plan_for(settings, 100, fleet(i1="pending", i2="stopped"))

    assert plan.start == [] and plan.stop == []


def test_stopping_instances_are_not_capacity_and_are_not_started(settings):
    plan = plan_for(settings, 100, fleet(i1="stopping", i2="stopped"))

    assert plan.start == ["i2"]


def test_too_few_stopped_instances_are_reported_in_the_reason(settings):
    plan = plan_for(settings, 100_000, fleet(i1="stopped"))

    assert plan.start == ["i1"]
    assert "only 1 stopped" in plan.reason


def test_a_shrinking_backlog_does_not_stop_anyone(settings):
    plan = plan_for(settings, 1, fleet(i1="running", i2="running", i3="running"))

    assert plan.stop == []
    assert plan.desired == 3


def test_an_idle_fleet_within_the_grace_period_is_kept(settings):
    plan = plan_for(settings, 0, fleet(i1="running"), last_busy_at=NOW - 100)

    assert plan.stop == []
    assert "holding" in plan.reason


def test_an_idle_fleet_past_the_grace_period_is_stopped(settings):
    plan = plan_for(settings, 0, fleet(i1="running", i2="running"), last_busy_at=NOW - 301)

    assert sorted(plan.stop) == ["i1", "i2"]
    assert plan.desired == 0


def test_idle_scale_in_keeps_min_workers(settings):
    settings = settings.replace(min_workers=1)

    plan = plan_for(settings, 0, fleet(i1="running", i2="running"), last_busy_at=NOW - 1000)

    assert len(plan.stop) == 1
    assert plan.desired == 1


def test_min_workers_are_started_without_a_backlog(settings):
    settings = settings.replace(min_workers=1)

    plan = plan_for(settings, 0, fleet(i1="stopped"))

    assert plan.start == ["i1"]


def test_a_pending_instance_is_never_stopped(settings):
    plan = plan_for(settings, 0, fleet(i1="pending", i2="running"), last_busy_at=NOW - 1000)

    assert plan.stop == ["i2"]


def test_a_worker_started_for_a_burst_nobody_saw_still_gets_its_grace(settings):
    """A cold start by ingest, whose backlog cleared before any tick: the grace counts
    from the instance's start."""
    just_started = [InstanceView("i1", "running", started_at=NOW - 30)]

    plan = plan_for(settings, 0, just_started, last_busy_at=None)

    assert plan.stop == []


def test_a_backlog_marks_the_fleet_busy_now(settings):
    assert plan_for(settings, 3, fleet(i1="running"), last_busy_at=1.0).last_busy_at == NOW
    assert plan_for(settings, 0, fleet(i1="running"), last_busy_at=1.0).last_busy_at == 1.0


def test_a_fleet_above_max_workers_is_scaled_in_even_when_busy(settings):
    settings = settings.replace(max_workers=1)

    plan = plan_for(settings, 1000, fleet(i1="running", i2="running"))

    assert len(plan.stop) == 1
    assert plan.desired == 1
