"""Ingest, through the Lambda handler: an object lands in the input bucket, and it is
either queued for a worker (starting one if the fleet is cold) or failed at once.

The events are the emulator's own S3 notifications (moto delivers them to the stage's
S3-events queue), handed to ``chalice_app.events.on_s3_event`` as Lambda would.
"""

from __future__ import annotations

from urllib.parse import quote

from chalice_app import wiring
from skyclass.runtime import constants as c
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.ingest import Ingestor
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore
from tests.support.clocks import FakeClock
from tests.support.images import PNG
from tests.support.ingest import (
    deliver,
    queued,
    running_instances,
    s3_notifications,
    stored_result,
)


def test_a_job_upload_is_queued_and_a_cold_fleet_gets_one_worker(aws, stage, lambda_env):
    key = "jobs/0123456789abcdef0123/0123456789abcdef0123-00000"
    aws.s3.put_object(
        Bucket=lambda_env.input_bucket, Key=key, Body=PNG,
        Metadata={c.META_NAME: quote("my cat.png", safe="")},
    )

    reports = deliver(aws, stage)

    (message,) = queued(aws, stage)
    assert message.key == key
    assert message.job_id == "0123456789abcdef0123"
    assert message.name == "my cat.png"
    assert message.size == len(PNG)
    assert len(running_instances(aws)) == 1
    assert reports[0]["queued"] == 1


def test_a_warm_fleet_is_left_alone(aws, stage, lambda_env):
    aws.ec2.start_instances(InstanceIds=stage.worker_instance_ids[:1])

    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/a.png", Body=PNG)
    deliver(aws, stage)

    assert running_instances(aws) == stage.worker_instance_ids[:1]


def test_a_drop_folder_name_with_spaces_and_unicode_survives(aws, stage, lambda_env):
    key = "incoming/my photos/chät +1.png"
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key=key, Body=PNG)

    deliver(aws, stage)

    (message,) = queued(aws, stage)
    assert message.key == key
    assert message.job_id is None
    assert message.image_id == "my photos/chät +1.png"
    assert message.result_key == "results/incoming/my photos/chät +1.png.json"


def test_a_file_that_is_not_an_image_fails_at_once_and_is_not_queued(aws, stage, lambda_env):
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/notes.png", Body=b"hi\n")

    deliver(aws, stage)

    failed = stored_result(aws, stage, "results/incoming/notes.png.json")
    assert failed["status"] == "failed"
    assert "not an image" in failed["error"]
    assert queued(aws, stage) == []
    assert running_instances(aws) == []


def test_a_file_over_the_size_limit_fails_with_the_limit_in_the_reason(aws, stage, lambda_env):
    aws.s3.put_object(
        Bucket=lambda_env.input_bucket, Key="incoming/big.png", Body=PNG + b"\x00" * 2000
    )

    deliver(aws, stage)

    failed = stored_result(aws, stage, "results/incoming/big.png.json")
    assert failed["status"] == "failed"
    assert "limit is 1000 bytes" in failed["error"]
    assert queued(aws, stage) == []


def test_an_empty_object_fails_as_empty(aws, stage, lambda_env):
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/zero.png", Body=b"")

    deliver(aws, stage)

    assert "empty" in stored_result(aws, stage, "results/incoming/zero.png.json")["error"]


def test_s3_test_events_and_keys_outside_the_layout_are_ignored(aws, stage, lambda_env):
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="elsewhere/a.png", Body=PNG)
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="jobs/not-a-job/x", Body=PNG)
    bodies = s3_notifications(aws, stage)
    ingestor = wiring.services().ingestor
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent"}

    reports = [ingestor.handle_event(body) for body in [test_event, *bodies]]

    assert sum(r.queued + r.rejected for r in reports) == 0
    assert queued(aws, stage) == []
    assert running_instances(aws) == []


def test_ingest_works_from_its_own_parts(aws, stage, settings):
    """The core needs no Chalice: handed clients, it queues a record's image."""
    r = stage.resources
    aws.s3.put_object(Bucket=r.input_bucket, Key="incoming/b.png", Body=PNG)
    ingestor = Ingestor(
        aws.s3, WorkQueue(aws.sqs, r.queue_url), InstancePool(aws.ec2, r.stage),
        JsonStore(aws.s3, r.output_bucket), r, settings,
    )

    report = ingestor.handle_event(s3_notifications(aws, stage)[-1])

    assert report.queued == 1 and len(report.started) == 1


def test_a_burst_asks_ec2_once_then_trusts_the_answer_for_a_while(aws, stage, settings):
    r = stage.resources
    clock = FakeClock()
    ingestor = Ingestor(
        aws.s3, WorkQueue(aws.sqs, r.queue_url), InstancePool(aws.ec2, r.stage),
        JsonStore(aws.s3, r.output_bucket), r, settings, clock=clock,
    )
    for i in range(3):
        aws.s3.put_object(Bucket=r.input_bucket, Key=f"incoming/{i}.png", Body=PNG)
    events = s3_notifications(aws, stage)[-3:]
    # GIVEN the first upload of a burst cold-started a worker
    assert len(ingestor.handle_event(events[0]).started) == 1
    # WHEN that worker is stopped at once and the next upload arrives within the memo
    aws.ec2.stop_instances(InstanceIds=running_instances(aws))
    # THEN the container trusts its recent answer and starts nothing...
    assert ingestor.handle_event(events[1]).started == ()
    # ...until the memo runs out, when it looks again and starts one
    clock.advance(11)
    assert len(ingestor.handle_event(events[2]).started) == 1
