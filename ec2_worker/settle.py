"""Settling a batch: its results into the output bucket, then its messages out of the way.

First every answer is stored at its result key (concurrently); an answer that cannot be
stored becomes a retry. Then each message is settled by its outcome (``outcome.py``):
answered ones are deleted (they have their result), retries are hidden for their
back-off, released ones are made visible at once, unanswerable ones are left for the
dead-letter queue, and dropped ones are deleted. Between the two, the answers of a
bulk job's images are counted in its job (``tracking.py``), so a message is deleted
only once its job has counted it too. A message is deleted only once its result is
stored, so a worker that dies mid-way loses nothing: the message comes back and the
result is written again, at the same key.
"""

from __future__ import annotations

import logging

from ec2_worker.batch import Item, for_each
from ec2_worker.outcome import Answered, Dropped, Released, Retry, Tally, retry_delay
from ec2_worker.tracking import count_answers
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore

log = logging.getLogger(__name__)


class Settler:
    def __init__(self, queue: WorkQueue, results: JsonStore,
                 tracker: JobTracker | None = None) -> None:
        self._queue = queue
        self._results = results
        self._tracker = tracker

    def settle(self, items: list[Item]) -> Tally:
        """Store the items' results and settle their messages; how they ended. Trouble
        with SQS is logged: unsettled messages come back after the visibility timeout."""
        try:
            for_each([i for i in items if isinstance(i.outcome, Answered)], self._store)
            count_answers(self._tracker, items)
            self._settle_messages(items)
        except Exception:
            log.exception("could not settle a batch of %d messages", len(items))
        return Tally.of(i.outcome for i in items)

    def _store(self, item: Item) -> None:
        try:
            self._results.put(item.message.result_key, item.outcome.result)
            # One line per image, for its trail (`skyclass logs --image ID`).
            log.info("image %s %s: %s", item.message.image_id, item.outcome.result["status"],
                     item.outcome.result.get("label") or item.outcome.result.get("error"))
        except Exception:  # S3 trouble: the message comes back, we write again
            log.exception("could not store the result of %s; will retry", item.message.source)
            item.outcome = Retry("could not store the result",
                                 retry_delay(item.received.receive_count))

    def _settle_messages(self, items: list[Item]) -> None:
        answered = [i.received for i in items if isinstance(i.outcome, (Answered, Dropped))]
        released = [i.received for i in items if isinstance(i.outcome, Released)]
        retries = [i for i in items if isinstance(i.outcome, Retry)]
        if answered:
            self._queue.delete(answered)
        if released:
            self._queue.change_visibility(released, 0)
        for delay in sorted({i.outcome.delay for i in retries}):
            self._queue.change_visibility(
                [i.received for i in retries if i.outcome.delay == delay], delay)
        tally = Tally.of(i.outcome for i in items)
        log.info("batch of %d: %d done, %d failed, %d to retry, %d released, %d unanswerable"
                 "%s", len(items), tally.done, tally.failed, tally.retried, tally.released,
                 tally.unanswerable, f", {tally.dropped} dropped" if tally.dropped else "")
