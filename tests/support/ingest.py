"""The S3-event side of a provisioned stage in the in-process emulator: the notifications
S3 sent (moto delivers them to the stage's S3-events queue), handing them to the
S3-event Lambda as the local bridge does, and what came of it."""

from __future__ import annotations

import json
from typing import Any

from chalice_app.events import on_s3_event
from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore


def s3_notifications(aws: Any, stage: Any) -> list[dict]:
    """Everything S3 has notified about the input bucket so far (drained)."""
    bodies = []
    while True:
        messages = aws.sqs.receive_message(
            QueueUrl=stage.s3_events_queue_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(json.loads(m["Body"]))
            aws.sqs.delete_message(
                QueueUrl=stage.s3_events_queue_url, ReceiptHandle=m["ReceiptHandle"]
            )


def deliver(aws: Any, stage: Any) -> list[dict]:
    """What the local bridge does: call the Lambda handler with each notification."""
    return [
        on_s3_event(body, None) for body in s3_notifications(aws, stage) if "Records" in body
    ]


def queued(aws: Any, stage: Any) -> list[WorkMessage]:
    """The work messages waiting in the stage's queue (received, so hidden afterwards)."""
    received = WorkQueue(aws.sqs, stage.resources.queue_url).receive(10, wait_seconds=0)
    return [WorkMessage.from_json(r.body) for r in received]


def running_instances(aws: Any) -> list[str]:
    return [
        i["InstanceId"]
        for r in aws.ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in ("pending", "running")
    ]


def stored_result(aws: Any, stage: Any, key: str) -> dict | None:
    return JsonStore(aws.s3, stage.resources.output_bucket).get(key)
