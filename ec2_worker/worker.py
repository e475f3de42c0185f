"""The worker: SQS work messages in, one result object per image out.

``process_batch`` is one turn of the data flow in ARCHITECTURE.md, one stage after the
other: receive up to a batch of messages (long poll, adaptive size: ``batch.py``), fetch
and decode their images concurrently, classify the decodable ones as one batch
(``steps.py``), then settle it: store each image's result at the key its input key
determines, and only then delete the messages whose results are stored (``settle.py``).
Every image ends with one explicit outcome (``outcome.py``): answered, retried,
released or unanswerable.

``run`` does the same as a pipeline (``pipeline.py``) until told to stop (SIGTERM): the
batch being classified is finished and its results stored; batches prefetched but not
yet classified are released to the queue at once (visibility 0) for another worker,
with any results they already have (e.g. ``failed`` for a non-image) stored first.

A heartbeat keeps every held message invisible to other workers for as long as this one
holds it (``heartbeat.py``). Every batch's figures go to the metrics publisher
(``batch_metrics.py``), which is flushed on the way out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ec2_worker.batch import Batch, for_each, receive_batch
from ec2_worker.batch_metrics import BatchMetrics
from ec2_worker.engine import InferenceEngine
from ec2_worker.heartbeat import Heartbeat
from ec2_worker.pipeline import Pipeline
from ec2_worker.settle import Settler
from ec2_worker.steps import ImageSteps
from ec2_worker.tracking import screen_batch
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.metrics import MetricsPublisher
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore

POLL_SECONDS = 5  # long-poll wait, and so how long SIGTERM may wait on an idle queue


class Worker:
    """One worker's parts, built from what ``__main__`` (or a test) hands in; its
    ``prepare``, ``classify``, ``finish`` and ``release`` are the pipeline's stages."""

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
        tracker: JobTracker | None = None,
    ) -> None:
        """``tracker``: bulk jobs' side of answering (ec2_worker/tracking.py); without
        it, no job is counted or screened."""
        self.worker_id = worker_id
        self._queue = queue
        self._settings = settings
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._prefetch = prefetch
        self._steps = ImageSteps(s3=s3, engine=engine, settings=settings,
                                 input_bucket=input_bucket, worker_id=worker_id, clock=clock)
        self._tracker = tracker
        self._settler = Settler(queue, results, tracker)
        self._metrics = BatchMetrics(metrics, clock)
        self._heartbeat = Heartbeat(queue, settings.visibility_timeout)

    def process_batch(self) -> int:
        """Receive, classify and settle one batch, one step after the other; returns how
        many messages it received."""
        batch = self.prepare()
        if batch is None:
            return 0
        self.classify(batch)
        self.finish(batch)
        return len(batch.items)

    def run(self, stop: threading.Event) -> None:
        """Process batches as a pipeline until ``stop`` is set (see the module docstring)."""
        self._heartbeat.start()
        try:
            Pipeline(self, self._prefetch).run(stop)
        finally:
            self._heartbeat.stop()
            self._metrics.flush()

    # ---- the stages of a batch (pipeline.Stages) -----------------------------------

    def prepare(self) -> Batch | None:
        """Receive a batch, parse it, and fetch and decode its images concurrently."""
        visibility = self._settings.visibility_timeout
        received = receive_batch(
            lambda count, wait: self._queue.receive(count, wait, visibility),
            self._settings.batch_size, self._poll_seconds,
        )
        if not received:
            return None
        self._heartbeat.hold(received)
        try:
            batch = Batch([self._steps.parse(r) for r in received], received_at=self._clock())
            screen_batch(self._tracker, batch.items)
            for_each(batch.pending(), self._steps.fetch_and_decode)
        except BaseException:
            # Held messages would stay hidden for as long as this worker lives: let go.
            self._heartbeat.let_go(received)
            raise
        return batch

    def classify(self, batch: Batch) -> None:
        self._steps.classify(batch.items)

    def finish(self, batch: Batch) -> None:
        """Settle the batch, let go of its messages, and report its figures."""
        try:
            tally = self._settler.settle(batch.items)
        finally:
            self._heartbeat.let_go(i.received for i in batch.items)
        self._metrics.record(batch.received_at, tally)

    def release(self, batch: Batch) -> None:
        """Give a batch that will not be classified here back to the queue at once, with
        the results it already has stored."""
        batch.release_pending()
        self.finish(batch)
