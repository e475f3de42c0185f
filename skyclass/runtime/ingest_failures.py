"""Failed ingestions: S3 events whose Lambda invocation failed every try.

S3 invokes the S3-event Lambda asynchronously. Lambda retries a failing invocation twice
and then, unless the function has an on-failure destination, drops the event, and its
image stays ``pending`` for ever. A deployed stage's S3-event function sends a record of
such an invocation to the stage's ingest-failures queue (``names.ingest_failures_queue_name``;
deploy configures it, and locally the bridge sends the same record). Each scaling tick
hands the records waiting there back to the ``Ingestor``; an event that still fails after
``MAX_TRIES`` receives has its images answered ``failed`` with the error, so every image
still ends with exactly one result.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from skyclass.runtime.contracts import WorkMessage, failed_result, parse_input_key
from skyclass.runtime.errors import InvalidMessageError
from skyclass.runtime.ingest import INGEST_WORKER, Ingestor
from skyclass.runtime.queue import Received, WorkQueue
from skyclass.runtime.store import JsonStore

log = logging.getLogger(__name__)

# Receives of one record before its images are failed: with RETRY_AFTER_S between them,
# an outage of a few minutes is ridden out, and nothing waits for long.
MAX_TRIES = 3
RETRY_AFTER_S = 120


@dataclass(frozen=True)
class RedriveReport:
    ingested: int = 0  # records whose event the Ingestor took this time
    failed: int = 0  # records whose images were answered failed
    waiting: int = 0  # records left for a later tick


class FailedIngestions:
    def __init__(self, queue: WorkQueue, ingestor: Ingestor, store: JsonStore,
                 input_bucket: str, *, max_tries: int = MAX_TRIES,
                 retry_after: int = RETRY_AFTER_S) -> None:
        self._queue = queue
        self._ingestor = ingestor
        self._store = store
        self._input_bucket = input_bucket
        self._max_tries = max_tries
        self._retry_after = retry_after

    def run_once(self) -> RedriveReport:
        """Retry up to ten waiting records; never raises for AWS trouble (the next tick
        tries again)."""
        try:
            received = self._queue.receive(max_messages=10, wait_seconds=0,
                                           visibility_timeout=self._retry_after)
        except (ClientError, BotoCoreError):
            log.warning("could not read the failed S3-event invocations", exc_info=True)
            return RedriveReport()
        ingested = failed = waiting = 0
        for item in received:
            outcome = self._retry(item)
            ingested += outcome == "ingested"
            failed += outcome == "failed"
            waiting += outcome == "waiting"
        return RedriveReport(ingested, failed, waiting)

    def _retry(self, item: Received) -> str:
        event, error = _event_and_error(item.body)
        records = event.get("Records") or []
        if not records:
            log.error("dropping a failed-invocation record without an S3 event: %.300s",
                      item.body)
            self._queue.delete([item])
            return "failed"
        images = ", ".join(_key(r) for r in records)
        try:
            self._ingestor.handle_event(event)
        except Exception as exc:  # the same failure as the Lambda's, most likely
            if item.receive_count < self._max_tries:
                log.warning("image(s) %s still cannot be queued (try %d of %d): %s",
                            images, item.receive_count, self._max_tries, exc)
                return "waiting"
            reason = f"could not be queued for classification: {error or exc}"
            for record in records:
                self._fail(record, reason)
            self._queue.delete([item])
            return "failed"
        log.info("image(s) %s queued after their S3 event had failed (%s)", images, error)
        self._queue.delete([item])
        return "ingested"

    def _fail(self, record: dict[str, Any], reason: str) -> None:
        bucket = record.get("s3", {}).get("bucket", {}).get("name")
        key = _key(record)
        if bucket != self._input_bucket:
            return
        try:
            job_id, image_id = parse_input_key(key)
        except InvalidMessageError:
            return
        obj = record["s3"]["object"]
        message = WorkMessage(bucket=bucket, key=key, job_id=job_id, image_id=image_id,
                              name=image_id, size=int(obj.get("size") or 0),
                              etag=str(obj.get("eTag") or ""))
        if self._store.get(message.result_key) is not None:
            return  # answered after all: exactly one result per image
        result = failed_result(message, reason, model=None, worker=INGEST_WORKER)
        self._store.put(message.result_key, result)
        self._ingestor.count_answer(message, result)
        log.info("image %s failed: %s", image_id, reason)


def _event_and_error(body: str) -> tuple[dict[str, Any], str | None]:
    """The original event and the function's error from a Lambda invocation record
    (``requestPayload``, ``responsePayload``)."""
    try:
        record = json.loads(body)
    except ValueError:
        return {}, None
    if not isinstance(record, dict):
        return {}, None
    event = record.get("requestPayload")
    response = record.get("responsePayload")
    error = response.get("errorMessage") if isinstance(response, dict) else None
    return (event if isinstance(event, dict) else {}), error


def _key(record: dict[str, Any]) -> str:
    # Keys in S3 events are URL-encoded, with '+' for a space.
    return unquote_plus(str(record.get("s3", {}).get("object", {}).get("key", "")))
