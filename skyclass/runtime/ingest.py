"""Ingest: an image landed in the input bucket; queue it for a worker, or fail it now.

Called by the S3-event Lambda (chalice_app/events.py) and, locally, by the bridge that
replays the emulator's S3 notifications through the same handler. For each record it
finds the image (job upload or drop folder), applies the input policy to what is
actually in S3 (size and format from one small ranged GET, which also brings the
metadata) and either sends one WorkMessage or writes a ``failed`` result at once, so
every image ends with exactly one result and a bad one never reaches the queue. An
event of several records is read concurrently and queued in batches. If no worker is
up, it starts one straight away instead of waiting for the next scaling tick (a cold
start costs a boot).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from skyclass.runtime import constants as c
from skyclass.runtime import input_policy
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.contracts import WorkMessage, failed_result, parse_input_key
from skyclass.runtime.errors import InvalidMessageError, SkyclassError
from skyclass.runtime.fleet.policy import cold_start
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.names import StageResources
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore, is_not_found

log = logging.getLogger(__name__)

INGEST_WORKER = "ingest"
FLEET_CHECK_MEMO_S = 10.0
_RECORD_THREADS = 8
_REJECTED = "rejected"
_IGNORED = "ignored"


@dataclass(frozen=True)
class IngestReport:
    queued: int = 0
    rejected: int = 0
    ignored: int = 0
    started: tuple[str, ...] = ()


class Ingestor:
    def __init__(
        self,
        s3: Any,
        queue: WorkQueue,
        pool: InstancePool,
        store: JsonStore,
        resources: StageResources,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        tracker: JobTracker | None = None,
    ) -> None:
        self._s3 = s3
        self._tracker = tracker
        self._queue = queue
        self._pool = pool
        self._store = store
        self._resources = resources
        self._settings = settings
        self._clock = clock
        self._fleet_checked_until = float("-inf")

    def handle_event(self, event: dict[str, Any]) -> IngestReport:
        """Handle one S3 notification (``{"Records": [...]}``). Messages without
        records, such as the ``s3:TestEvent`` S3 sends when notifications are set up,
        are ignored. S3 sends one record per invocation; an event of several (the
        local bridge's, standing in for invocations that run side by side) has its
        records read concurrently and its messages sent in batches."""
        records = event.get("Records") or []
        if len(records) > 1:
            with ThreadPoolExecutor(max_workers=min(_RECORD_THREADS, len(records))) as pool:
                outcomes = list(pool.map(self._handle_record, records))
        else:
            outcomes = [self._handle_record(record) for record in records]
        messages = [o for o in outcomes if isinstance(o, WorkMessage)]
        rejected = sum(1 for o in outcomes if o == _REJECTED)
        ignored = len(outcomes) - len(messages) - rejected
        started: list[str] = []
        if messages:
            self._queue.send(messages)
            for message in messages:
                log.info("image %s queued (%s, %d bytes)", message.image_id, message.source,
                         message.size)
            started = self._cold_start()
        return IngestReport(len(messages), rejected, ignored, tuple(started))

    def _handle_record(self, record: dict[str, Any]) -> WorkMessage | str:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            return _IGNORED
        bucket = record["s3"]["bucket"]["name"]
        # Keys in S3 events are URL-encoded, with '+' for a space.
        key = unquote_plus(record["s3"]["object"]["key"])
        if bucket != self._resources.input_bucket or key.rsplit("/", 1)[-1] in (
            "", c.MANIFEST_NAME
        ):
            return _IGNORED
        try:
            job_id, image_id = parse_input_key(key)
        except InvalidMessageError:
            log.info("ignoring s3://%s/%s: not an input key", bucket, key)
            return _IGNORED
        try:
            found = self._read_head(bucket, key, record["s3"]["object"].get("size"))
        except ClientError as exc:
            if is_not_found(exc):
                return _IGNORED  # deleted since; nothing left to classify
            raise
        message = WorkMessage(
            bucket=bucket,
            key=key,
            job_id=job_id,
            image_id=image_id,
            name=_name(found.metadata, image_id),
            size=found.size,
            etag=found.etag,
        )
        try:
            input_policy.check_size(message.size, self._settings.max_image_bytes)
            input_policy.check_bytes(found.head, message.size, self._settings.max_image_bytes)
        except SkyclassError as exc:
            result = failed_result(message, exc.message, model=None, worker=INGEST_WORKER)
            self._store.put(message.result_key, result)
            self.count_answer(message, result)
            log.info("image %s rejected (%s): %s", message.image_id, message.source, exc.message)
            return _REJECTED
        return message

    def count_answer(self, message: WorkMessage, result: dict[str, Any]) -> None:
        """A tracked job counts an upload answered here (rejected) as a worker's answer
        (skyclass.runtime.bulk.tracker); trouble raises, so the event is retried."""
        if self._tracker is not None and message.job_id:
            self._tracker.screen([message])
            self._tracker.record([(message, result)])
            self._tracker.after_batch([message.job_id], [])

    def _read_head(self, bucket: str, key: str, size: int | None) -> _Head:
        """The object's first bytes, size, ETag and metadata: one ranged GET when the
        event says the object is not empty (S3 answers the whole size in Content-Range);
        a HEAD first when the event does not say; a HEAD alone for an empty object, or
        one emptied since (an empty object has no byte range to read)."""
        if size is None:
            size = int(self._s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        if size:
            try:
                response = self._s3.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes=0-{input_policy.SNIFF_BYTES - 1}")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
            else:
                head = response["Body"].read()
                total = str(response.get("ContentRange", "")).rpartition("/")[2]
                return _Head(head, int(total) if total.isdigit() else len(head),
                             response.get("ETag", "").strip('"'),
                             response.get("Metadata") or {})
        response = self._s3.head_object(Bucket=bucket, Key=key)
        return _Head(b"", int(response["ContentLength"]), response.get("ETag", "").strip('"'),
                     response.get("Metadata") or {})

    def _cold_start(self) -> list[str]:
        """Start one stopped worker if none is pending or running. Best effort: if EC2
        fails, the scaling tick within a minute starts one anyway.

        A burst of uploads is one invocation per image; once this container has seen a
        worker up (or started one), it does not ask EC2 again for FLEET_CHECK_MEMO_S, so
        10,000 images cost a few DescribeInstances calls, not 10,000 (EC2 throttles).
        A fleet that goes cold inside that window is the scaler's to restart."""
        if self._clock() < self._fleet_checked_until:
            return []
        try:
            start = cold_start(self._pool.instances(), self._settings)
            self._pool.start(start)
            if start:
                log.info("cold start: started worker %s", start[0])
            self._fleet_checked_until = self._clock() + FLEET_CHECK_MEMO_S
            return start
        except (ClientError, BotoCoreError):
            log.exception("cold start failed; the scaler will start a worker")
            return []


@dataclass(frozen=True)
class _Head:
    """What ingest reads of a new object: its first bytes (empty if it is empty), its
    size, ETag and user metadata."""

    head: bytes
    size: int
    etag: str
    metadata: dict[str, str]


def _name(metadata: dict[str, str], image_id: str) -> str:
    """The original file name from the upload's metadata (URL-encoded there, as S3
    metadata is ASCII); for a drop-folder object, its path under ``incoming/``."""
    return unquote(metadata.get(c.META_NAME, "")) or image_id
