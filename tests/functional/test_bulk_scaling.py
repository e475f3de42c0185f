"""The scaler sees bulk jobs (in-process emulator): images still to be listed count as
backlog, a cancelled job's queued messages stop counting at the next tick, and a job
every image of which is answered is completed even if no worker completed it."""

from __future__ import annotations

import time

import pytest

from skyclass.runtime.bulk.backlog import JobsWatch
from skyclass.runtime.bulk.jobstore import JobStore
from skyclass.runtime.bulk.tasks import Task, TaskQueues
from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.fleet.policy import Observation, needed_workers
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.fleet.scaler import Scaler
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore

LISTING, CANCELLED, DONE = ("1" * 20, "2" * 20, "3" * 20)


@pytest.fixture
def world(aws, stage, settings):
    dynamodb = aws.client("dynamodb")
    store = JobStore(dynamodb, stage.bulk.jobs_table)
    tasks = TaskQueues(aws.sqs, stage.resources.stage, stage.resources.queue_url)
    queue = WorkQueue(aws.sqs, stage.resources.queue_url, stage.resources.dlq_url)
    return store, tasks, queue


def enqueue(queue: WorkQueue, n: int) -> None:
    queue.send([WorkMessage(bucket="b", key=f"k{i}.jpg", job_id=CANCELLED,
                            image_id=f"{CANCELLED}-{i:05d}", name="n", size=1, etag="e",
                            origin="source") for i in range(n)])


def test_the_policy_counts_images_still_to_list_as_backlog(settings):
    listing = Observation(visible=0, in_flight=0, instances=[], per_worker=1.0, now=0.0,
                          to_list=300)
    assert listing.backlog == 300
    assert needed_workers(listing.backlog, 0.0, 1.0, settings) == settings.max_workers


def test_the_scaler_adds_what_is_listed_and_leaves_out_what_was_cancelled(
    world, aws, stage, settings
):
    store, tasks, queue = world
    # GIVEN a source job still listing (40 queued so far), and a cancelled job that had
    # queued 100, of which 10 were answered and 20 already dropped by workers, leaving
    # 70 of the 75 messages waiting in the queue
    store.create(LISTING, "source", sealed=False, source_bucket="b", source_prefix="p/")
    store.advance_listing(LISTING, 0, {"cursor": "p/x"}, {"queued": 40, "total": 40})
    store.create(CANCELLED, "source", sealed=True, total=100)
    store.set_fields(CANCELLED, done=10, dropped=20)
    store.cancel(CANCELLED)
    enqueue(queue, 75)
    # WHEN the scaler ticks
    scaler = Scaler(queue, InstancePool(aws.ec2, stage.resources.stage),
                    JsonStore(aws.s3, stage.resources.output_bucket), settings,
                    clock=time.time, jobs=JobsWatch(store, tasks, settings).observe)
    plan = scaler.run_once()
    # THEN its backlog is the 5 live messages plus the listing job's estimate (as much
    # again as it queued, at least a page)
    decision = JsonStore(aws.s3, stage.resources.output_bucket).get("fleet/last-decision.json")
    assert decision["jobs"] == {"to_list": 1000, "cancelled_queued": 70, "listing": 1}
    assert "backlog 1005 (5 waiting, 0 in flight, 1000 to list)" in plan.reason


def test_a_job_answered_in_full_is_completed_by_the_sweep(world, settings):
    store, tasks, _ = world
    # GIVEN a job whose every image is counted, but that no worker completed
    store.create(DONE, "upload", total=2, sealed=True)
    store.set_fields(DONE, done=2)
    # WHEN the scaler's pass over the jobs runs
    JobsWatch(store, tasks, settings).observe()
    # THEN it is complete and its completion is queued
    assert store.get(DONE).state == "complete"
    messages = tasks._sqs.receive_message(QueueUrl=tasks.url("finish")).get("Messages", [])
    assert [Task.from_json(m["Body"]).job_id for m in messages] == [DONE]
