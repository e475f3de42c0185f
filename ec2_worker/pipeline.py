"""Running batches as a pipeline, so that the model never waits for the network.

Three threads, each on its own batch: a prefetch thread receives, fetches and decodes
the next batch while the current one is classified on the calling thread, and a
finishing thread settles the batch before while the current one is classified. Batches
are finished one at a time, in order. The hand-off holds at most ``prefetch`` ready
batches, so memory stays bounded however deep the backlog.

``run`` goes on until ``stop`` is set: the batch being classified is finished; batches
prepared but not yet classified are released, including one the prefetch thread
prepares as the stop comes.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from ec2_worker.batch import Batch

log = logging.getLogger(__name__)

ERROR_PAUSE_SECONDS = 5.0  # after a batch that failed as a whole (e.g. SQS unreachable)
HANDOFF_POLL_SECONDS = 0.2  # how often the pipeline's threads look at the stop flag


class Stages(Protocol):
    """The steps of one batch's turn, as the pipeline runs them."""

    def prepare(self) -> Batch | None:
        """Receive a batch and make it ready to classify; None when there is none."""

    def classify(self, batch: Batch) -> None: ...

    def finish(self, batch: Batch) -> None:
        """Settle a classified batch; never raises for trouble with AWS."""

    def release(self, batch: Batch) -> None:
        """Settle a batch that will not be classified here."""


class Pipeline:
    def __init__(self, stages: Stages, prefetch: int = 1) -> None:
        self._stages = stages
        self._prefetch = prefetch

    def run(self, stop: threading.Event) -> None:
        """Classify batches as they are prepared, finishing each in the background,
        until ``stop`` is set; then release what is left and finish the last batch."""
        ready: queue.Queue[Batch] = queue.Queue(maxsize=self._prefetch)
        prefetcher = threading.Thread(target=self._prefetch_until, args=(stop, ready),
                                      name="prefetch")
        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finish")
        finishing: Future | None = None
        prefetcher.start()
        try:
            while not stop.is_set():
                try:
                    batch = ready.get(timeout=HANDOFF_POLL_SECONDS)
                except queue.Empty:
                    continue
                self._stages.classify(batch)
                if finishing is not None:
                    finishing.result()  # one batch finishing at a time, in order
                finishing = finisher.submit(self._stages.finish, batch)
        finally:
            stop.set()
            prefetcher.join()
            while not ready.empty():
                self._stages.release(ready.get_nowait())
            if finishing is not None:
                finishing.result()
            finisher.shutdown()

    def _prefetch_until(self, stop: threading.Event, ready: queue.Queue[Batch]) -> None:
        """Prepare batches and hand them over until ``stop``; a batch prepared when the
        stop comes is released rather than handed over."""
        while not stop.is_set():
            try:
                batch = self._stages.prepare()
            except Exception:  # e.g. SQS unreachable: the loop outlives any one batch
                log.exception("could not receive a batch; pausing %.0f s", ERROR_PAUSE_SECONDS)
                stop.wait(ERROR_PAUSE_SECONDS)
                continue
            while batch is not None:
                if stop.is_set():
                    self._stages.release(batch)
                    return
                try:
                    ready.put(batch, timeout=HANDOFF_POLL_SECONDS)
                    batch = None
                except queue.Full:
                    continue
