"""The worker loop: SQS work messages in, one result object per image out.

``process_batch`` is one turn of the data flow in ARCHITECTURE.md: receive up to a
batch of messages (long poll), fetch and decode their images concurrently, classify the
decodable ones as one batch, write each image's result to the output bucket at the key
its input key determines, and only then delete the messages whose results are stored.

Every message ends in exactly one of three ways:

- answered: a ``done`` result, or a ``failed`` one with a reason a person understands
  (not an image, truncated, too large, the object is gone); the result is stored, then
  the message deleted. Bad input never poisons the queue.
- retried: a transient failure (S3 or SQS trouble, an inference error) leaves the
  message for redelivery after a short back-off. On its last delivery before the
  dead-letter queue (``max_receives``) the image is answered as failed instead, with the
  reason, so a long outage does not lose it silently.
- unanswerable: a body that is not a work message and names no input key. There is no
  result key to write to, so it is logged and left to reach the dead-letter queue.

``run`` repeats ``process_batch`` until told to stop; a batch in hand is finished first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from ec2_worker.decode import decode_image
from ec2_worker.engine import InferenceEngine
from skyclass.contracts import WorkMessage, done_result, failed_result, parse_input_key
from skyclass.errors import InvalidImageError, InvalidMessageError
from skyclass.queue import Received, WorkQueue
from skyclass.results import ResultStore
from skyclass.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 5  # long-poll wait, and so how long SIGTERM may wait on an idle queue
ERROR_PAUSE_SECONDS = 5.0  # after a batch that failed as a whole (e.g. SQS unreachable)
_SQS_MAX_RECEIVE = 10
_IO_THREADS = 8
_GONE = ("NoSuchKey", "404", "NotFound")


def retry_delay(receive_count: int) -> int:
    """Seconds before a message that failed transiently is seen again: 5, 10, 20, ...
    up to 5 minutes, so a short S3 hiccup costs seconds and a long one costs few tries."""
    return min(5 * 2 ** max(receive_count - 1, 0), 300)


@dataclass
class _Item:
    """One received message on its way through the batch."""

    received: Received
    message: WorkMessage | None = None
    pixels: np.ndarray | None = None
    result: dict[str, Any] | None = None
    retry: bool = False
    stored: bool = False
    timings: dict[str, float] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        *,
        queue: WorkQueue,
        results: ResultStore,
        s3: Any,
        engine: InferenceEngine,
        settings: Settings,
        input_bucket: str,
        worker_id: str,
        clock: Callable[[], float] = time.perf_counter,
        poll_seconds: int = POLL_SECONDS,
    ) -> None:
        self._queue = queue
        self._results = results
        self._s3 = s3
        self._engine = engine
        self._settings = settings
        self._input_bucket = input_bucket
        self._model_name = engine.classifier.name
        self.worker_id = worker_id
        self._clock = clock
        self._poll_seconds = poll_seconds

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set; the batch in hand is finished first."""
        while not stop.is_set():
            try:
                self.process_batch()
            except Exception:  # the loop outlives any one batch
                log.exception("batch failed; pausing %.0f s", ERROR_PAUSE_SECONDS)
                stop.wait(ERROR_PAUSE_SECONDS)

    def process_batch(self) -> int:
        """Receive and settle one batch; returns how many messages it received."""
        items = [self._parse(r) for r in self._receive()]
        if not items:
            return 0
        with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(items))) as pool:
            list(pool.map(self._fetch_and_decode, [i for i in items if _pending(i)]))
            self._classify([i for i in items if i.pixels is not None and _pending(i)])
            list(pool.map(self._store, [i for i in items if i.result is not None]))
        self._settle(items)
        return len(items)

    # ---- steps -------------------------------------------------------------------

    def _receive(self) -> list[Received]:
        """Up to ``batch_size`` messages: one long poll, then topped up without waiting."""
        wanted = self._settings.batch_size
        visibility = self._settings.visibility_timeout
        received = self._queue.receive(
            min(wanted, _SQS_MAX_RECEIVE), self._poll_seconds, visibility
        )
        while received and len(received) < wanted:
            more = self._queue.receive(min(wanted - len(received), _SQS_MAX_RECEIVE), 0, visibility)
            if not more:
                break
            received += more
        return received

    def _parse(self, received: Received) -> _Item:
        item = _Item(received)
        try:
            item.message = WorkMessage.from_json(received.body)
        except InvalidMessageError as exc:
            item.message = _recover(received.body)
            if item.message is None:
                log.error("unanswerable message %s left for the dead-letter queue: %s",
                          received.message_id, exc.message)
            else:
                item.result = self._failed(item, f"invalid work message: {exc.message}")
        return item

    def _fetch_and_decode(self, item: _Item) -> None:
        message = item.message
        if message.bucket != self._input_bucket:
            item.result = self._failed(
                item, f"the image is in bucket {message.bucket}, not the input bucket"
            )
            return
        start = self._clock()
        try:
            data = self._download(message)
        except _ObjectGone:
            item.result = self._failed(item, "the uploaded object is gone")
            return
        except InvalidImageError as exc:
            item.result = self._failed(item, exc.message)
            return
        except Exception as exc:  # S3 trouble of any kind: try again later
            log.exception("could not fetch %s", message.source)
            self._retry_or_give_up(item, f"could not read the uploaded image ({exc})")
            return
        item.timings["download"] = _ms(self._clock() - start)

        start = self._clock()
        try:
            item.pixels = decode_image(
                data, self._engine.classifier.input_size, self._settings.max_image_pixels
            )
        except InvalidImageError as exc:
            item.timings["decode"] = _ms(self._clock() - start)
            item.result = self._failed(item, exc.message)
            return
        item.timings["decode"] = _ms(self._clock() - start)

    def _download(self, message: WorkMessage) -> bytes:
        try:
            response = self._s3.get_object(Bucket=message.bucket, Key=message.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _GONE:
                raise _ObjectGone from exc
            raise
        limit = self._settings.max_image_bytes
        if response["ContentLength"] > limit:
            response["Body"].close()
            raise InvalidImageError(
                f"image is {response['ContentLength']} bytes, above the limit of {limit} bytes"
            )
        return response["Body"].read()

    def _classify(self, items: list[_Item]) -> None:
        if not items:
            return
        start = self._clock()
        try:
            predictions = self._engine.predict(np.stack([i.pixels for i in items]))
            if len(predictions) != len(items):
                raise RuntimeError(f"{len(predictions)} outputs for {len(items)} images")
        except Exception as exc:  # the images are fine; try them again later
            log.exception("inference failed for %d images", len(items))
            for item in items:
                self._retry_or_give_up(item, f"the model failed on this batch ({exc})")
            return
        batch_ms = _ms(self._clock() - start)
        for item, top in zip(items, predictions, strict=True):
            item.timings.update(infer=round(batch_ms / len(items), 3), infer_batch=batch_ms)
            item.result = done_result(
                item.message,
                top,
                model=self._model_name,
                worker=self.worker_id,
                timings_ms=dict(item.timings),
            )

    def _store(self, item: _Item) -> None:
        try:
            self._results.put(item.message.result_key, item.result)
            item.stored = True
        except Exception:  # S3 trouble: the message comes back, we write again
            log.exception("could not store the result of %s; will retry", item.message.source)
            item.retry = True

    def _retry_or_give_up(self, item: _Item, reason: str) -> None:
        """Leave the message for another try, unless this is its last delivery before
        the dead-letter queue: then answer it as failed, so the image is not lost."""
        tries = item.received.receive_count
        if tries >= self._settings.max_receives:
            attempts = "1 try" if tries == 1 else f"{tries} tries"
            item.result = self._failed(item, f"{reason}; gave up after {attempts}")
        else:
            item.retry = True

    def _settle(self, items: list[_Item]) -> None:
        """Delete exactly the messages whose results are stored; back off the retries."""
        stored = [i.received for i in items if i.stored]
        retry = [i for i in items if i.retry and not i.stored]
        left = len(items) - len(stored) - len(retry)
        if stored:
            self._queue.delete(stored)
        for delay in sorted({retry_delay(i.received.receive_count) for i in retry}):
            self._queue.change_visibility(
                [i.received for i in retry if retry_delay(i.received.receive_count) == delay],
                delay,
            )
        done = sum(1 for i in items if i.stored and i.result["status"] == "done")
        log.info("batch of %d: %d done, %d failed, %d to retry, %d unanswerable",
                 len(items), done, len(stored) - done, len(retry), left)

    def _failed(self, item: _Item, reason: str) -> dict[str, Any]:
        return failed_result(
            item.message, reason, model=self._model_name, worker=self.worker_id,
            timings_ms=dict(item.timings),
        )


class _ObjectGone(Exception):
    """The message's object no longer exists (deleted, or never uploaded)."""


def _pending(item: _Item) -> bool:
    return item.message is not None and item.result is None and not item.retry


def _recover(body: str) -> WorkMessage | None:
    """A stand-in message for a body that is not a valid work message but still names an
    input key, so the image gets a ``failed`` result instead of vanishing into the DLQ."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    bucket, key = data.get("bucket"), data.get("key")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str)):
        return None
    try:
        job_id, image_id = parse_input_key(key)
    except InvalidMessageError:
        return None
    name = data.get("name")
    return WorkMessage(
        bucket=bucket,
        key=key,
        job_id=job_id,
        image_id=image_id,
        name=name if isinstance(name, str) and name else key.rsplit("/", 1)[-1],
        size=0,
        etag="",
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
