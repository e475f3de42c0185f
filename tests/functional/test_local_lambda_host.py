"""The local Lambda service: S3 notifications in SQS become handler calls."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest

from skyclass.operations.local.lambda_host import S3EventBridge, Schedule


class RecordingHandler:
    """Stands in for the Chalice handler; can be told to fail a number of times."""

    def __init__(self, failures: int = 0):
        self.events: list[dict] = []
        self.failures = failures

    def __call__(self, event: dict, context: object) -> None:
        assert context.get_remaining_time_in_millis() > 0
        if self.failures:
            self.failures -= 1
            raise RuntimeError("handler failed")
        self.events.append(event)


@pytest.fixture
def bridge_for(aws, stage):
    def make(handler: RecordingHandler, **kwargs) -> S3EventBridge:
        return S3EventBridge(aws.sqs, stage.s3_events_queue_url, handler, wait_seconds=0,
                             **kwargs)
    return make


def _key(record: dict) -> str:
    return unquote_plus(record["s3"]["object"]["key"])


def _drain(bridge: S3EventBridge, polls: int = 5) -> None:
    for _ in range(polls):
        bridge.poll_once()


def _pending(aws, stage) -> int:
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=stage.s3_events_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def test_each_uploaded_object_reaches_the_handler_as_a_lambda_s3_event(aws, stage, bridge_for):
    # GIVEN a provisioned stage (whose notification setup left an s3:TestEvent queued)
    handler = RecordingHandler()
    bucket = stage.resources.input_bucket
    # WHEN two objects are uploaded and the bridge polls
    aws.s3.put_object(Bucket=bucket, Key="jobs/j1/img-1", Body=b"a")
    aws.s3.put_object(Bucket=bucket, Key="incoming/some dir/b.jpg", Body=b"b")
    _drain(bridge_for(handler))
    # THEN the handler saw one S3 record per object, in Lambda's event shape
    records = [r for e in handler.events for r in e["Records"]]
    assert {r["s3"]["bucket"]["name"] for r in records} == {bucket}
    assert sorted(_key(r) for r in records) == ["incoming/some dir/b.jpg", "jobs/j1/img-1"]
    assert all(r["eventName"].startswith("ObjectCreated") for r in records)
    # AND every notification, the test event included, is gone from the queue
    assert _pending(aws, stage) == 0


def test_a_failing_handler_is_retried_then_succeeds(aws, stage, bridge_for):
    # GIVEN a handler that fails once
    handler = RecordingHandler(failures=1)
    aws.s3.put_object(Bucket=stage.resources.input_bucket, Key="jobs/j1/img-1", Body=b"a")
    # WHEN the bridge polls (the failed message reappears at once: retry_after=0)
    _drain(bridge_for(handler, retry_after=0))
    # THEN the event was delivered on the retry and then removed
    assert len(handler.events) == 1
    assert _pending(aws, stage) == 0


def test_an_event_that_always_fails_goes_to_the_on_failure_destination(aws, stage, bridge_for):
    # GIVEN a handler that always fails, and an on-failure destination (as deployed)
    handler = RecordingHandler(failures=100)
    destination = aws.sqs.create_queue(QueueName="failures")["QueueUrl"]
    aws.s3.put_object(Bucket=stage.resources.input_bucket, Key="jobs/j1/img-1", Body=b"a")
    # WHEN the bridge polls more often than the retry bound
    _drain(bridge_for(handler, retry_after=0, max_attempts=3, failure_queue_url=destination),
           polls=6)
    # THEN it stopped after three attempts and does not poison the queue
    assert handler.failures == 100 - 3
    assert _pending(aws, stage) == 0
    # AND Lambda's record of the failed invocation, with the event, is at the destination
    [message] = aws.sqs.receive_message(QueueUrl=destination)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "jobs%2Fj1%2Fimg-1"
    assert record["responsePayload"]["errorMessage"] == "handler failed"


class FailsOn(RecordingHandler):
    """Fails every call that holds a record for ``key``."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key
        self.calls = 0

    def __call__(self, event: dict, context: object) -> None:
        self.calls += 1
        if any(_key(r) == self.key for r in event["Records"]):
            raise RuntimeError("handler failed")
        self.events.append(event)


def test_a_burst_reaches_the_handler_in_few_calls_each_record_once(aws, stage, bridge_for):
    # GIVEN 25 objects uploaded at once
    bucket = stage.resources.input_bucket
    for n in range(25):
        aws.s3.put_object(Bucket=bucket, Key=f"incoming/{n:02d}.jpg", Body=b"a")
    handler = RecordingHandler()
    # WHEN the bridge polls
    _drain(bridge_for(handler))
    # THEN every object reached the handler once, up to ten records a call
    keys = [_key(r) for e in handler.events for r in e["Records"]]
    assert sorted(keys) == [f"incoming/{n:02d}.jpg" for n in range(25)]
    assert len(handler.events) <= 5
    assert _pending(aws, stage) == 0


def test_a_record_that_fails_does_not_hold_back_those_it_came_with(aws, stage, bridge_for):
    # GIVEN ten objects, one of which the handler always fails on
    bucket = stage.resources.input_bucket
    for n in range(10):
        aws.s3.put_object(Bucket=bucket, Key=f"incoming/{n}.jpg", Body=b"a")
    handler = FailsOn("incoming/3.jpg")
    # WHEN the bridge polls until it gives up on that one
    _drain(bridge_for(handler, retry_after=0, max_attempts=2), polls=8)
    # THEN the nine others were delivered once each, and nothing is left queued
    keys = sorted(_key(r) for e in handler.events for r in e["Records"])
    assert keys == [f"incoming/{n}.jpg" for n in range(10) if n != 3]
    assert _pending(aws, stage) == 0


def test_the_bridge_reports_what_waits_while_anything_does_and_once_when_nothing(
        aws, stage, bridge_for):
    # GIVEN a bridge that reports how many notifications wait, and three uploads
    reported: list[int] = []
    bridge = bridge_for(RecordingHandler(), report_waiting=reported.append)
    _drain(bridge)  # the s3:TestEvent of the notification setup
    bridge.report_waiting()
    for n in range(3):
        aws.s3.put_object(Bucket=stage.resources.input_bucket, Key=f"incoming/{n}.jpg",
                          Body=b"a")
    # WHEN it reports before and after delivering them, and again
    bridge.report_waiting()
    _drain(bridge)
    bridge.report_waiting()
    bridge.report_waiting()
    # THEN it said nothing while none waited, how many waited, then zero once
    assert reported == [3, 0]


def test_schedule_calls_the_handler_with_a_scheduled_event():
    # GIVEN a schedule around a recording handler
    handler = RecordingHandler()
    # WHEN it fires
    Schedule(handler, period=60).fire()
    # THEN the handler got an EventBridge scheduled event
    assert handler.events[0]["detail-type"] == "Scheduled Event"
    assert handler.events[0]["source"] == "aws.events"
