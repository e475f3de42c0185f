"""The worker loop: SQS work messages in, one result object per image out.

``process_batch`` is one turn of the data flow in ARCHITECTURE.md: receive up to a
batch of messages (long poll), fetch and decode their images concurrently, classify the
decodable ones as one batch, write each image's result to the output bucket at the key
its input key determines, and only then delete the messages whose results are stored.

``run`` does the same as a pipeline, so that the model never waits for the network: a
prefetch thread receives, downloads and decodes the next batch while the current one is
classified, and a finishing thread stores results and deletes messages while the next
batch is classified. The hand-off holds at most ``prefetch`` ready batches, so memory
stays bounded however deep the backlog. Batches adapt to the backlog: one receive's
worth when the queue is shallow (an image arriving alone is classified at once), topped
up to ``batch_size`` while more is waiting. A heartbeat keeps every held message
invisible to other workers for as long as this one holds it (``heartbeat.py``).

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

``run`` goes on until told to stop (SIGTERM): the batch being classified is finished
and its results stored; batches prefetched but not yet classified are released to the
queue at once (visibility 0) for another worker, with any results they already have
(e.g. ``failed`` for a non-image) stored first. Every batch's figures go to the metrics
publisher, which is flushed on the way out.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from ec2_worker.decode import decode_image
from ec2_worker.engine import InferenceEngine
from ec2_worker.heartbeat import Heartbeat
from skyclass.runtime.contracts import (
    DONE,
    FAILED,
    WorkMessage,
    done_result,
    failed_result,
    parse_input_key,
)
from skyclass.runtime.errors import InvalidImageError, InvalidMessageError
from skyclass.runtime.metrics import MetricsPublisher
from skyclass.runtime.queue import Received, WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore, is_not_found

log = logging.getLogger(__name__)

POLL_SECONDS = 5  # long-poll wait, and so how long SIGTERM may wait on an idle queue
ERROR_PAUSE_SECONDS = 5.0  # after a batch that failed as a whole (e.g. SQS unreachable)
HANDOFF_POLL_SECONDS = 0.2  # how often the pipeline's threads look at the stop flag
_SQS_MAX_RECEIVE = 10
_IO_THREADS = 8


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
    released: bool = False
    stored: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Batch:
    """The messages of one receive (topped up), and when they arrived."""

    items: list[_Item]
    received_at: float


def receive_batch(receive: Callable[[int, int], list[Received]], batch_size: int,
                  wait_seconds: int) -> list[Received]:
    """Up to ``batch_size`` messages: what one long poll brings, topped up without waiting
    only while more is immediately there. A shallow queue gives small batches, answered
    at once; a deep one gives full batches. ``receive(max_messages, wait_seconds)``."""
    received = receive(min(batch_size, _SQS_MAX_RECEIVE), wait_seconds)
    while received and len(received) < batch_size:
        more = receive(min(batch_size - len(received), _SQS_MAX_RECEIVE), 0)
        if not more:
            break
        received += more
    return received


class Worker:
    def __init__(
        self,
        *,
        queue: WorkQueue,
        results: JsonStore,
        s3: Any,
        engine: InferenceEngine,
        settings: Settings,
        input_bucket: str,
        worker_id: str,
        clock: Callable[[], float] = time.perf_counter,
        poll_seconds: int = POLL_SECONDS,
        metrics: MetricsPublisher | None = None,
        prefetch: int = 1,
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
        self._metrics = metrics
        self._prefetch = prefetch
        self._heartbeat = Heartbeat(queue, settings.visibility_timeout)
        self._last_settled = 0.0

    def process_batch(self) -> int:
        """Receive, classify and settle one batch, one step after the other; returns how
        many messages it received."""
        batch = self._prepare()
        if batch is None:
            return 0
        self._classify(batch)
        self._finish(batch)
        return len(batch.items)

    def run(self, stop: threading.Event) -> None:
        """Process batches as a pipeline until ``stop`` is set (see the module docstring)."""
        ready: queue.Queue[_Batch] = queue.Queue(maxsize=self._prefetch)
        prefetcher = threading.Thread(target=self._prefetch_until, args=(stop, ready),
                                      name="prefetch")
        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish")
        finishing: Future | None = None
        self._heartbeat.start()
        prefetcher.start()
        try:
            while not stop.is_set():
                try:
                    batch = ready.get(timeout=HANDOFF_POLL_SECONDS)
                except queue.Empty:
                    continue
                self._classify(batch)
                if finishing is not None:
                    finishing.result()  # one batch finishing at a time, in order
                finishing = finisher.submit(self._finish, batch)
        finally:
            stop.set()
            prefetcher.join()
            while not ready.empty():
                self._release(ready.get_nowait())
            if finishing is not None:
                finishing.result()
            finisher.shutdown()
            self._heartbeat.stop()
            if self._metrics is not None:
                try:
                    self._metrics.flush()
                except Exception:
                    log.exception("could not publish the worker's last metrics")

    def _prefetch_until(self, stop: threading.Event, ready: queue.Queue[_Batch]) -> None:
        """Prepare batches and hand them over until ``stop``; a batch prepared when the
        stop comes is released rather than handed over."""
        while not stop.is_set():
            try:
                batch = self._prepare()
            except Exception:  # e.g. SQS unreachable: the loop outlives any one batch
                log.exception("could not receive a batch; pausing %.0f s", ERROR_PAUSE_SECONDS)
                stop.wait(ERROR_PAUSE_SECONDS)
                continue
            while batch is not None:
                if stop.is_set():
                    self._release(batch)
                    return
                try:
                    ready.put(batch, timeout=HANDOFF_POLL_SECONDS)
                    batch = None
                except queue.Full:
                    continue

    # ---- steps -------------------------------------------------------------------

    def _prepare(self) -> _Batch | None:
        """Receive a batch, parse it, and fetch and decode its images concurrently."""
        visibility = self._settings.visibility_timeout
        received = receive_batch(
            lambda count, wait: self._queue.receive(count, wait, visibility),
            self._settings.batch_size, self._poll_seconds,
        )
        if not received:
            return None
        self._heartbeat.hold(received)
        batch = _Batch([self._parse(r) for r in received], received_at=self._clock())
        pending = [i for i in batch.items if _pending(i)]
        if pending:
            with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(pending))) as pool:
                list(pool.map(self._fetch_and_decode, pending))
        return batch

    def _finish(self, batch: _Batch) -> None:
        """Store the batch's results, settle its messages, and report its figures."""
        items = batch.items
        try:
            answered = [i for i in items if i.result is not None]
            if answered:
                with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(answered))) as pool:
                    list(pool.map(self._store, answered))
            self._settle(items)
        except Exception:  # SQS trouble: unsettled messages come back after the timeout
            log.exception("could not settle a batch of %d messages", len(items))
        finally:
            self._heartbeat.let_go(i.received for i in items)
        settled = self._clock()
        if self._metrics is not None:
            # Busy time counts each moment once, however many batches overlap in it.
            busy = settled - max(batch.received_at, self._last_settled)
            failed = sum(1 for i in items if i.stored and i.result["status"] == FAILED)
            retried = sum(1 for i in items if i.retry and not i.stored)
            try:
                self._metrics.record_batch(
                    images=sum(1 for i in items if i.stored), errors=failed + retried,
                    seconds=max(busy, 0.0),
                )
            except Exception:  # figures are worth less than the images: carry on
                log.exception("could not publish the worker's metrics")
        self._last_settled = settled

    def _release(self, batch: _Batch) -> None:
        """Give a batch that will not be classified here back to the queue at once, with
        the results it already has stored."""
        for item in batch.items:
            if _pending(item):
                item.released = True
        self._finish(batch)

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
            if is_not_found(exc):
                raise _ObjectGone from exc
            raise
        limit = self._settings.max_image_bytes
        if response["ContentLength"] > limit:
            response["Body"].close()
            raise InvalidImageError(
                f"image is {response['ContentLength']} bytes, above the limit of {limit} bytes"
            )
        return response["Body"].read()

    def _classify(self, batch: _Batch) -> None:
        items = [i for i in batch.items if i.pixels is not None and _pending(i)]
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
            item.pixels = None  # the batch may wait to be finished; its pixels are done
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
        """Delete exactly the messages whose results are stored; back off the retries;
        hand released ones straight back."""
        stored = [i.received for i in items if i.stored]
        retry = [i for i in items if i.retry and not i.stored]
        released = [i.received for i in items if i.released]
        left = len(items) - len(stored) - len(retry) - len(released)
        if stored:
            self._queue.delete(stored)
        if released:
            self._queue.change_visibility(released, 0)
        for delay in sorted({retry_delay(i.received.receive_count) for i in retry}):
            self._queue.change_visibility(
                [i.received for i in retry if retry_delay(i.received.receive_count) == delay],
                delay,
            )
        done = sum(1 for i in items if i.stored and i.result["status"] == DONE)
        log.info("batch of %d: %d done, %d failed, %d to retry, %d released, %d unanswerable",
                 len(items), done, len(stored) - done, len(retry), len(released), left)

    def _failed(self, item: _Item, reason: str) -> dict[str, Any]:
        return failed_result(
            item.message, reason, model=self._model_name, worker=self.worker_id,
            timings_ms=dict(item.timings),
        )


class _ObjectGone(Exception):
    """The message's object no longer exists (deleted, or never uploaded)."""


def _pending(item: _Item) -> bool:
    return (item.message is not None and item.result is None and not item.retry
            and not item.released)


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
