"""The scaler against the emulator: a backlog starts workers up to max_workers, sized by
the throughput the workers measured; a fleet idle past the grace period is stopped; EC2
trouble is recorded, not raised, and the next tick acts."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from chalice_app import wiring
from chalice_app.scaling import scale
from skyclass.operations.local.lambda_host import scheduled_event
from skyclass.runtime import constants as c
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.fleet.scaler import Scaler
from skyclass.runtime.metrics import (
    IMAGES,
    NAMESPACE,
    MetricsPublisher,
    publish_images_to_ingest,
)
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore
from tests.support.clocks import OffsetClock
from tests.support.fleet import states
from tests.support.messages import enqueue


@pytest.fixture
def clock() -> OffsetClock:
    """Wall time plus an offset the test moves forward (EC2 launch times are real)."""
    return OffsetClock()


@pytest.fixture
def parts(aws, stage, settings):
    r = stage.resources
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    return queue, InstancePool(aws.ec2, r.stage), JsonStore(aws.s3, r.output_bucket)


def test_a_backlog_starts_workers_up_to_max_workers(parts, settings, clock):
    queue, pool, store = parts
    settings = settings.replace(worker_throughput=0.01, target_latency=60.0)  # 0.6 img/worker
    enqueue(queue, 10)

    plan = Scaler(queue, pool, store, settings, clock).run_once()

    assert states(pool) == ["running"] * settings.max_workers
    assert plan.desired == settings.max_workers
    assert store.get(c.FLEET_DECISION_KEY)["started"] == plan.start


def test_a_small_backlog_starts_one_worker(parts, settings, clock):
    queue, pool, store = parts
    enqueue(queue, 3)

    Scaler(queue, pool, store, settings, clock).run_once()

    assert states(pool).count("running") == 1


def test_an_idle_fleet_is_kept_through_the_grace_and_stopped_after(parts, settings, clock):
    queue, pool, store = parts
    scaler = Scaler(queue, pool, store, settings, clock)
    enqueue(queue, 3)
    scaler.run_once()  # busy: one worker up
    _drain(queue)  # ... which does the work

    clock.offset = settings.idle_grace / 2
    scaler.run_once()
    assert states(pool).count("running") == 1

    clock.offset = settings.idle_grace + 1
    plan = scaler.run_once()

    assert states(pool).count("running") == 0
    assert "idle" in plan.reason


def test_ec2_trouble_is_recorded_and_the_next_tick_acts(parts, settings, clock, aws):
    queue, pool, store = parts
    ec2 = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(ec2)
    stubber.add_client_error("describe_instances", "UnauthorizedOperation", "not allowed")
    enqueue(queue, 1)
    # GIVEN EC2 refuses the first tick
    with stubber:
        plan = Scaler(queue, InstancePool(ec2, "local"), store, settings, clock).run_once()
    # THEN nothing changed, and the decision says why
    assert plan.start == [] and plan.stop == []
    assert "UnauthorizedOperation" in store.get(c.FLEET_DECISION_KEY)["reason"]
    # WHEN EC2 answers again, the next tick starts the worker the backlog needs
    clock.offset = settings.scale_period
    Scaler(queue, pool, store, settings, clock).run_once()
    assert states(pool).count("running") == 1


def test_the_workers_measured_warm_throughput_sizes_the_fleet(parts, settings, clock, aws):
    queue, pool, store = parts
    # GIVEN a default of 20 img/s per worker, but workers that measured 1 img/s once warm,
    # after first batches that were slower still (the worker's warm-up, left out)
    settings = settings.replace(worker_throughput=20.0, target_latency=60.0, max_workers=3)
    publisher = MetricsPublisher(aws.cloudwatch, settings.stage, flush_every=0)
    publisher.record_batch(images=1, errors=0, seconds=20.0)
    publisher.record_batch(images=1, errors=0, seconds=20.0)
    publisher.record_batch(images=30, errors=0, seconds=30.0)
    enqueue(queue, 90)  # one worker at 20 img/s; two at 1 img/s (60 per worker)

    Scaler(queue, pool, store, settings, clock, cloudwatch=aws.cloudwatch).run_once()

    # THEN two workers run, and the decision says the figure was measured
    assert states(pool).count("running") == 2
    used = store.get(c.FLEET_DECISION_KEY)["throughput"]
    assert (used["per_worker"], used["source"]) == (1.0, "measured")


def test_images_finished_between_ticks_keep_an_idle_looking_fleet(parts, settings, clock, aws):
    queue, pool, store = parts
    scaler = Scaler(queue, pool, store, settings, clock, cloudwatch=aws.cloudwatch)
    enqueue(queue, 1)
    scaler.run_once()  # one worker up
    _drain(queue)
    # GIVEN no tick has seen a backlog for longer than the grace, but the workers
    # reported images finished a moment ago (a trickle consumed between ticks)
    clock.offset = settings.idle_grace + 60
    aws.cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[{
        "MetricName": IMAGES, "Dimensions": [{"Name": "Stage", "Value": settings.stage}],
        "Value": 1, "Unit": "Count",
        "Timestamp": datetime.fromtimestamp(clock() - 5, UTC)}])

    plan = scaler.run_once()

    # THEN the worker stays
    assert states(pool).count("running") == 1
    assert "finished within" in plan.reason
    assert store.get(c.FLEET_DECISION_KEY)["throughput"]["finished_in_grace"] == 1


def test_images_still_to_be_ingested_start_a_worker(parts, settings, clock, aws):
    queue, pool, store = parts
    # GIVEN no work queued yet, but the S3-event bridge reporting 40 uploads to ingest
    publish_images_to_ingest(aws.cloudwatch, settings.stage, 40)

    plan = Scaler(queue, pool, store, settings, clock, cloudwatch=aws.cloudwatch).run_once()

    # THEN the scaler counts them and starts a worker, and the decision says so
    assert states(pool).count("running") == 1
    assert "40 to ingest" in plan.reason
    decision = store.get(c.FLEET_DECISION_KEY)
    assert (decision["backlog"], decision["ingesting"]) == (40, 40)


def test_without_metrics_the_configured_throughput_is_used(parts, settings, clock, aws):
    queue, pool, store = parts
    settings = settings.replace(worker_throughput=20.0, target_latency=60.0)
    enqueue(queue, 100)

    Scaler(queue, pool, store, settings, clock, cloudwatch=aws.cloudwatch).run_once()

    assert states(pool).count("running") == 1
    used = store.get(c.FLEET_DECISION_KEY)["throughput"]
    assert (used["per_worker"], used["source"]) == (20.0, "default")


def test_cloudwatch_trouble_falls_back_to_the_configured_throughput(parts, settings, clock):
    queue, pool, store = parts
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    stubber = Stubber(cloudwatch)
    stubber.add_client_error("get_metric_data", "Throttling", "slow down")
    enqueue(queue, 3)

    with stubber:
        Scaler(queue, pool, store, settings, clock, cloudwatch=cloudwatch).run_once()

    assert states(pool).count("running") == 1
    assert store.get(c.FLEET_DECISION_KEY)["throughput"]["source"] == "default"


def test_the_scheduled_lambda_runs_one_tick(stage, monkeypatch, aws):
    r = stage.resources
    for name, value in {
        c.INPUT_BUCKET: r.input_bucket, c.OUTPUT_BUCKET: r.output_bucket,
        c.QUEUE_URL: r.queue_url, c.DLQ_URL: r.dlq_url, c.MAX_WORKERS: "3",
    }.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    enqueue(WorkQueue(aws.sqs, r.queue_url), 2)

    try:
        plan = scale(scheduled_event("skyclass-scale", datetime.now(UTC)), None)
    finally:
        wiring.reset()

    assert len(plan["start"]) == 1
    assert states(InstancePool(aws.ec2, r.stage)).count("running") == 1


def _drain(queue: WorkQueue) -> None:
    while received := queue.receive(10, wait_seconds=0):
        queue.delete(received)
