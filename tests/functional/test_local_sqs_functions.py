"""The local stand-in for Lambda's SQS event sources: a task in the queue becomes one
invocation with Lambda's event shape, deleted when the handler returns and left to come
back when it raises (as when the function's process dies)."""

from __future__ import annotations

import json

from skyclass.operations.local.sqs_functions import SqsEventSource


class Handler:
    def __init__(self, fail: bool = False):
        self.events: list[dict] = []
        self.fail = fail

    def __call__(self, event: dict, context: object) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("the function failed")


def _waiting(aws, url) -> int:
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_a_task_reaches_the_handler_as_lambdas_sqs_event_and_is_deleted(aws, stage):
    url = stage.bulk.list_queue_url
    aws.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"task": "list"}))
    handler = Handler()
    source = SqsEventSource(aws.sqs, url, handler, context_factory=lambda: None,
                            wait_seconds=0)
    assert source.poll_once() == 1
    [record] = handler.events[0]["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":skyclass-local-list")
    assert json.loads(record["body"]) == {"task": "list"}
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert _waiting(aws, url) == 0


def test_a_task_whose_handler_raises_stays_to_come_back(aws, stage):
    url = stage.bulk.finish_queue_url
    aws.sqs.send_message(QueueUrl=url, MessageBody="{}")
    source = SqsEventSource(aws.sqs, url, Handler(fail=True), context_factory=lambda: None,
                            wait_seconds=0)
    assert source.poll_once() == 1
    assert _waiting(aws, url) == 1
