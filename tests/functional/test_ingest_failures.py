"""S3 events whose invocation fails every try are not lost: the S3-event function's
on-failure destination (locally, the bridge) keeps a record in the stage's
ingest-failures queue, and the scaling tick retries it, or answers its image `failed`
once it keeps failing. Through the real handlers on the in-process emulator, with the
work queue made unreachable to fail ingest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from chalice_app import wiring
from chalice_app.events import on_s3_event
from chalice_app.scaling import scale
from skyclass.operations.local.lambda_host import S3EventBridge, lambda_context, scheduled_event
from skyclass.runtime.ingest_failures import FailedIngestions
from skyclass.runtime.names import ingest_failures_queue_name
from skyclass.runtime.queue import WorkQueue
from tests.support.images import PNG
from tests.support.ingest import queued, stored_result

OUTAGE = "SQS is unreachable (simulated outage)"


@pytest.fixture
def outage(monkeypatch):
    """While on, every send to the work queue fails as an SQS outage would."""
    state = {"on": True}
    send = WorkQueue.send

    def failing_send(queue, messages):
        if state["on"]:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": OUTAGE}},
                              "SendMessageBatch")
        return send(queue, messages)

    monkeypatch.setattr(WorkQueue, "send", failing_send)
    return state


def _failures_url(aws, stage):
    return aws.sqs.get_queue_url(QueueName=ingest_failures_queue_name(stage.resources.stage))[
        "QueueUrl"]


def _waiting(aws, stage) -> int:
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=_failures_url(aws, stage),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def _upload_through_a_failing_function(aws, stage):
    """An image lands in the drop folder; its S3 event fails all three tries."""
    aws.s3.put_object(Bucket=stage.resources.input_bucket, Key="incoming/cat.png", Body=PNG)
    bridge = S3EventBridge(aws.sqs, stage.s3_events_queue_url, on_s3_event, wait_seconds=0,
                           retry_after=0, failure_queue_url=_failures_url(aws, stage))
    for _ in range(6):
        bridge.poll_once()


def test_an_image_whose_s3_event_keeps_failing_ends_failed_not_pending(aws, stage, lambda_env,
                                                                       outage):
    # GIVEN an image whose S3 event failed every try during an outage
    _upload_through_a_failing_function(aws, stage)
    # THEN the event was not dropped: its record waits in the ingest-failures queue
    assert _waiting(aws, stage) == 1
    assert stored_result(aws, stage, "results/incoming/cat.png.json") is None
    # WHEN scaling ticks retry it while the outage lasts
    s = wiring.services()
    retry = FailedIngestions(WorkQueue(aws.sqs, _failures_url(aws, stage)), s.ingestor, s.store,
                             s.resources.input_bucket, retry_after=0)
    reports = [retry.run_once() for _ in range(3)]
    # THEN it waited two ticks, then answered the image failed with the reason
    assert [(r.waiting, r.failed) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    answer = stored_result(aws, stage, "results/incoming/cat.png.json")
    assert answer["status"] == "failed" and answer["image_id"] == "cat.png"
    assert "could not be queued for classification" in answer["error"]
    assert OUTAGE in answer["error"]
    assert _waiting(aws, stage) == 0


def test_an_image_whose_s3_event_failed_is_queued_by_the_next_tick_after_the_outage(
        aws, stage, lambda_env, outage):
    # GIVEN an image whose S3 event failed every try during an outage that is now over
    _upload_through_a_failing_function(aws, stage)
    outage["on"] = False
    # WHEN the scaling Lambda ticks
    scale(scheduled_event("skyclass-scale", datetime.now(UTC)), lambda_context("scale"))
    # THEN the image is queued for a worker, and no record is left
    assert [m.key for m in queued(aws, stage)] == ["incoming/cat.png"]
    assert _waiting(aws, stage) == 0
