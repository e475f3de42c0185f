"""WorkQueue: the SQS work queue (and its dead-letter queue) behind one small interface.

Producers (the S3-event Lambda) send work messages; consumers (the workers) receive in
batches, delete in batches after their results are stored, and hand failures back with
a visibility back-off; the scaler and ``GET /fleet`` read the depths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.errors import AwsError

_SQS_BATCH = 10  # SQS's limit for send/delete/change-visibility batches


@dataclass(frozen=True)
class Received:
    """One received SQS message: its raw body (which may not be a valid work message),
    its receipt handle, and how often it has been received."""

    message_id: str
    body: str
    receipt_handle: str
    receive_count: int


@dataclass(frozen=True)
class QueueDepths:
    visible: int
    in_flight: int
    delayed: int
    dead_letter: int

    @property
    def backlog(self) -> int:
        return self.visible + self.in_flight + self.delayed


class WorkQueue:
    def __init__(self, sqs: Any, queue_url: str, dlq_url: str | None = None) -> None:
        self._sqs = sqs
        self.url = queue_url
        self.dlq_url = dlq_url

    def send(self, messages: Sequence[WorkMessage]) -> None:
        for start in range(0, len(messages), _SQS_BATCH):
            chunk = messages[start : start + _SQS_BATCH]
            entries = [{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(chunk)]
            response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            _raise_failed("send", response)

    def receive(self, max_messages: int = 10, wait_seconds: int = 20,
                visibility_timeout: int | None = None) -> list[Received]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max(1, min(max_messages, _SQS_BATCH)),
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = visibility_timeout
        response = self._sqs.receive_message(**kwargs)
        return [
            Received(
                message_id=m["MessageId"],
                body=m["Body"],
                receipt_handle=m["ReceiptHandle"],
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for m in response.get("Messages", [])
        ]

    def delete(self, received: Iterable[Received]) -> None:
        handles = [r.receipt_handle for r in received]
        for start in range(0, len(handles), _SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": h}
                for i, h in enumerate(handles[start : start + _SQS_BATCH])
            ]
            response = self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
            _raise_failed("delete", response)

    def change_visibility(self, received: Iterable[Received], timeout: int) -> None:
        handles = [r.receipt_handle for r in received]
        for start in range(0, len(handles), _SQS_BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": timeout}
                for i, h in enumerate(handles[start : start + _SQS_BATCH])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)

    def redrive(self, limit: int | None = None) -> int:
        """Move messages from the dead-letter queue back to the work queue (after a fix),
        up to ``limit``; returns how many moved. Each is sent before it is deleted from
        the DLQ, so a crash in between duplicates a message, never loses one (and a
        duplicate only rewrites the same result object)."""
        if not self.dlq_url:
            return 0
        moved = 0
        while limit is None or moved < limit:
            want = _SQS_BATCH if limit is None else min(_SQS_BATCH, limit - moved)
            messages = self._sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=want, WaitTimeSeconds=0,
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not messages:
                break
            response = self._sqs.send_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)
            ])
            _raise_failed("redrive", response)
            response = self._sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)
            ])
            _raise_failed("delete from the dead-letter queue", response)
            moved += len(messages)
        return moved

    def depths(self) -> QueueDepths:
        attrs = self._attributes(self.url)
        dead = int(self._attributes(self.dlq_url)["ApproximateNumberOfMessages"]) if (
            self.dlq_url
        ) else 0
        return QueueDepths(
            visible=int(attrs["ApproximateNumberOfMessages"]),
            in_flight=int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            dead_letter=dead,
        )

    def _attributes(self, url: str) -> dict[str, str]:
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]


def _raise_failed(action: str, response: dict[str, Any]) -> None:
    failed = response.get("Failed") or []
    if failed:
        first = failed[0]
        raise AwsError(
            f"SQS {action} failed for {len(failed)} message(s): "
            f"{first.get('Code')}: {first.get('Message')}"
        )
