"""Ingest, through the Lambda handler: an object lands in the input bucket, and it is
either queued for a worker (starting one if the fleet is cold) or failed at once.

The events are the emulator's own S3 notifications (moto delivers them to the stage's
S3-events queue), handed to ``chalice_app.events.on_s3_event`` as Lambda would.
"""

from __future__ import annotations

from urllib.parse import quote

from chalice_app import wiring
from chalice_app.events import on_s3_event
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


def test_an_event_of_many_records_queues_each_image_once(aws, stage, lambda_env):
    # GIVEN twelve uploads, one of them not an image, delivered as one event
    for n in range(11):
        aws.s3.put_object(Bucket=lambda_env.input_bucket, Key=f"incoming/{n:02d}.png", Body=PNG)
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/notes.png", Body=b"hi")
    records = [r for body in s3_notifications(aws, stage) for r in body.get("Records", [])]

    report = on_s3_event({"Records": records}, None)

    # THEN the images are queued, the other one failed, and one worker started
    assert (report["queued"], report["rejected"]) == (11, 1)
    keys = [m.key for m in queued(aws, stage)] + [m.key for m in queued(aws, stage)]
    assert sorted(keys) == [f"incoming/{n:02d}.png" for n in range(11)]
    assert len(running_instances(aws)) == 1


def test_an_image_emptied_after_its_upload_fails_as_empty(aws, stage, lambda_env):
    # GIVEN an upload whose event says it has bytes, then an empty object at its key
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/gone.png", Body=PNG)
    (event,) = [b for b in s3_notifications(aws, stage) if "Records" in b]
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/gone.png", Body=b"")
    s3_notifications(aws, stage)

    on_s3_event(event, None)

    assert "empty" in stored_result(aws, stage, "results/incoming/gone.png.json")["error"]
    assert queued(aws, stage) == []


def test_an_event_without_a_size_is_read_all_the_same(aws, stage, lambda_env):
    aws.s3.put_object(Bucket=lambda_env.input_bucket, Key="incoming/a.png", Body=PNG,
                      Metadata={c.META_NAME: "cat.png"})
    (event,) = [b for b in s3_notifications(aws, stage) if "Records" in b]
    del event["Records"][0]["s3"]["object"]["size"]

    on_s3_event(event, None)

    (message,) = queued(aws, stage)
    assert (message.name, message.size) == ("cat.png", len(PNG))
