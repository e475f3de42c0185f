"""Scaling ticks as AWS runs them: without a reserved concurrency of one (which new
accounts cannot grant), two ticks can overlap; and the first tick of a stage finds no
decision to read."""

from __future__ import annotations

import json
import threading

import pytest

from skyclass.runtime import constants as c
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.fleet.scaler import ANOTHER_TICK, Scaler
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore
from tests.support.fleet import states
from tests.support.messages import enqueue
from tests.support.paths import REPO_ROOT


@pytest.fixture
def parts(aws, stage):
    r = stage.resources
    return (WorkQueue(aws.sqs, r.queue_url, r.dlq_url), InstancePool(aws.ec2, r.stage),
            JsonStore(aws.s3, r.output_bucket))


class SimultaneousReads(JsonStore):
    """The output bucket as two overlapping ticks see it: both read the last decision
    before either writes (each waits at the barrier for the other's read)."""

    def __init__(self, s3, bucket: str, barrier: threading.Barrier) -> None:
        super().__init__(s3, bucket)
        self._barrier = barrier

    def get_versioned(self, key):
        found = super().get_versioned(key)
        self._barrier.wait(timeout=30)
        return found


def test_of_two_overlapping_ticks_exactly_one_acts(parts, settings, aws, stage):
    queue, pool, store = parts
    clock = lambda: 1_000.0  # noqa: E731 - both ticks at the same moment
    store.put(c.FLEET_DECISION_KEY, {"reason": "an earlier tick"})
    enqueue(queue, 3)
    barrier = threading.Barrier(2)
    plans = []

    def tick() -> None:
        tick_store = SimultaneousReads(aws.s3, stage.resources.output_bucket, barrier)
        plans.append(Scaler(queue, pool, tick_store, settings, clock).run_once())

    # GIVEN two ticks that read the same last decision
    threads = [threading.Thread(target=tick) for _ in range(2)]
    # WHEN both run to the end
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN one started the worker the backlog needs and recorded it; the other did nothing
    reasons = sorted(plan.reason for plan in plans)
    assert len(plans) == 2 and reasons.count(ANOTHER_TICK) == 1
    [acted] = [plan for plan in plans if plan.reason != ANOTHER_TICK]
    assert len(acted.start) == 1 and states(pool).count("running") == 1
    assert store.get(c.FLEET_DECISION_KEY)["started"] == acted.start


def test_the_first_tick_of_a_stage_decides_and_records(parts, settings):
    queue, pool, store = parts
    # GIVEN a stage whose scaler has never decided (no decision object yet)
    assert store.get(c.FLEET_DECISION_KEY) is None
    enqueue(queue, 2)
    # WHEN the first tick runs
    plan = Scaler(queue, pool, store, settings, lambda: 1_000.0).run_once()
    # THEN it started a worker and recorded why
    assert plan.start and states(pool).count("running") == 1
    assert store.get(c.FLEET_DECISION_KEY)["reason"] == plan.reason


def test_no_stage_reserves_lambda_concurrency():
    # AWS refuses a reservation that leaves the account less unreserved concurrency than
    # its minimum; a new account's whole limit can be that minimum (docs/deploy.md), so
    # any reservation fails its first deploy. The scaler copes with overlap instead.
    config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    reserved = [
        (stage, function)
        for stage, stage_config in config["stages"].items()
        for function, function_config in stage_config.get("lambda_functions", {}).items()
        if "reserved_concurrency" in function_config
    ]
    assert "reserved_concurrency" not in config and reserved == []
