"""A batch's side of bulk jobs (skyclass.runtime.bulk.tracker), in the worker's terms.

``screen_batch`` runs before a batch is fetched: messages their job no longer wants
answered (the job was cancelled, or the image is answered already) become ``Dropped``
and cost no download and no inference. ``count_answers`` runs while the batch is
settled, after its results are stored and before its messages are deleted: the answers
of tracked jobs' images are counted in their jobs, once each; if that fails, they
become retries (the result is written again, and counted, when the message returns).
Then jobs whose every image is answered are completed.
"""

from __future__ import annotations

import logging

from ec2_worker.batch import Item
from ec2_worker.outcome import Answered, Dropped, Retry, retry_delay
from skyclass.runtime.bulk.tracker import JobTracker

log = logging.getLogger(__name__)


def screen_batch(tracker: JobTracker | None, items: list[Item]) -> None:
    if tracker is None:
        return
    candidates = [i for i in items if i.pending and i.message is not None]
    for item, reason in zip(candidates, tracker.screen([i.message for i in candidates]),
                            strict=True):
        if reason is not None:
            item.outcome = Dropped(reason)


def count_answers(tracker: JobTracker | None, items: list[Item]) -> None:
    if tracker is None:
        return
    answered = [i for i in items if isinstance(i.outcome, Answered)
                and i.message.job_id and tracker.is_tracked(i.message.job_id)]
    try:
        tracker.record((i.message, i.outcome.result) for i in answered)
    except Exception:  # DynamoDB trouble: the messages come back, and count then
        log.exception("could not count %d answers in their jobs; will retry", len(answered))
        for item in answered:
            item.outcome = Retry("could not count the result in its job",
                                 retry_delay(item.received.receive_count))
        answered = []
    dropped = [i.message for i in items if isinstance(i.outcome, Dropped)]
    tracker.after_batch([i.message.job_id for i in answered], dropped)
