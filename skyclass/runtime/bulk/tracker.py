"""JobTracker: a job's side of answering its images, for the workers (and for ingest,
which answers bad uploads itself).

Before a batch is fetched, ``screen`` looks up its images' jobs and ledger entries in
one BatchGetItem and says which messages to drop without inference: those of a job
that was cancelled (or whose listing failed), those whose image is already answered
(a second delivery of a message, or a second copy the lister sent after a crash), and
a second copy of an image within the batch. After the batch's results are stored,
``record`` enters them in their jobs' ledgers and counters (ledger.py: exactly once
per image), before the messages are deleted. ``after_batch`` then completes the jobs
whose every image is answered and counts the dropped messages of ended jobs.

Messages without a job (the drop folder), and jobs that are not in the store
(``POST /classify``), go through untouched.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from skyclass.runtime.aws import AwsClients
from skyclass.runtime.bulk.jobstore import CANCELLED, FAILED, RUNNING, JobStore
from skyclass.runtime.bulk.ledger import Answer, Ledger
from skyclass.runtime.bulk.tasks import TaskQueues
from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.names import StageResources

log = logging.getLogger(__name__)

_REMEMBERED_JOBS = 10_000


class JobTracker:
    def __init__(self, jobs: JobStore, ledger: Ledger, tasks: TaskQueues) -> None:
        self._jobs = jobs
        self._ledger = ledger
        self._tasks = tasks
        # Jobs seen by screen: job id -> state, or None for one not in the store.
        self._known: OrderedDict[str, str | None] = OrderedDict()

    @classmethod
    def for_stage(cls, aws: AwsClients, resources: StageResources) -> JobTracker:
        dynamodb = aws.client("dynamodb")
        return cls(JobStore(dynamodb, resources.jobs_table),
                   Ledger(dynamodb, resources.jobs_table),
                   TaskQueues(aws.sqs, resources.stage, resources.queue_url))

    def screen(self, messages: Sequence[WorkMessage | None]) -> list[str | None]:
        """For each message, None to classify it, or why to drop it unanswered."""
        ids = [m.image_id for m in messages if m is not None and m.job_id]
        if not ids:
            return [None] * len(messages)
        found = self._ledger.screen(ids)
        for job_id in {m.job_id for m in messages if m is not None and m.job_id}:
            self._remember(job_id, found.jobs.get(job_id))
        verdicts: list[str | None] = []
        seen: set[str] = set()
        for message in messages:
            state = found.jobs.get(message.job_id) if message and message.job_id else None
            if state is None:
                verdicts.append(None)
            elif state in (CANCELLED, FAILED):
                verdicts.append(f"its job was {state}")
            elif message.image_id in found.answered:
                verdicts.append("its image is answered already (a second delivery)")
            elif message.image_id in seen:
                verdicts.append("a second copy of an image in this batch")
            else:
                verdicts.append(None)
            if message is not None:
                seen.add(message.image_id)
        return verdicts

    def record(self, answered: Iterable[tuple[WorkMessage, dict[str, Any]]]) -> int:
        """Enter the results of tracked jobs' images; returns how many were new. Raises
        on trouble with DynamoDB (the messages must then come back)."""
        answers = [Answer(m.job_id, m.image_id, result, m.key) for m, result in answered
                   if m.job_id and self.is_tracked(m.job_id)]
        return len(self._ledger.record(answers)) if answers else 0

    def is_tracked(self, job_id: str) -> bool:
        return self._known.get(job_id) is not None

    def after_batch(self, answered_jobs: Iterable[str], dropped: Sequence[WorkMessage]) -> None:
        """Complete the tracked jobs among ``answered_jobs`` whose every image is answered,
        and count ``dropped`` messages of ended jobs. Best effort: the scaler's tick
        completes any job left here."""
        try:
            drops = Counter((m.job_id, self._known.get(m.job_id) in (CANCELLED, FAILED))
                            for m in dropped if m.job_id and self.is_tracked(m.job_id))
            for (job_id, ended), n in drops.items():
                self._jobs.add_drops(job_id, dropped=n if ended else 0,
                                     duplicates=0 if ended else n)
            for job_id in sorted({j for j in answered_jobs if j and self.is_tracked(j)}
                                 | {m.job_id for m in dropped if m.job_id
                                    and self._known.get(m.job_id) == RUNNING}):
                finish_if_done(self._jobs, self._tasks, job_id)
        except Exception:  # the scaler's sweep completes what this misses
            log.exception("could not check whether jobs completed")

    def _remember(self, job_id: str, state: str | None) -> None:
        self._known[job_id] = state
        self._known.move_to_end(job_id)
        while len(self._known) > _REMEMBERED_JOBS:
            self._known.popitem(last=False)


def finish_if_done(jobs: JobStore, tasks: TaskQueues, job_id: str) -> bool:
    """Complete a running job whose every image is answered and queue its completion
    work; True if this call did (only one caller can)."""
    job = jobs.get(job_id, consistent=True)
    if job is None or job.state != RUNNING or not job.all_answered:
        return False
    if not jobs.complete(job_id):
        return False
    tasks.finish(job_id)
    log.info("job %s complete: %d done, %d failed", job_id, job.count("done"),
             job.count("failed"))
    return True
