"""What the scaler learns from the jobs each tick (skyclass.runtime.fleet.scaler).

From the ``active`` index (one Query), two corrections to the work queue's depth:

* ``to_list``: images of source jobs still being listed, which the queue cannot show
  yet. Their number is unknown until the listing ends, so each such job counts as much
  again as it has queued so far, and at least one listing page: the estimate grows with
  the evidence, so the fleet grows while a big prefix is listed instead of trailing the
  lister by a tick per page, and a small one costs little.
* ``ended_queued``: messages of cancelled or failed jobs still in the queue (queued,
  minus answered, minus what workers dropped). Workers drop them without inference, so
  they are not work; the scaler leaves them out of the backlog from the next tick on.

The same pass completes any job whose every image is answered but which no worker
completed (one died between counting and completing), and takes ended jobs whose
queued messages are all dropped, or older than the queue keeps messages, out of the
index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from skyclass.runtime.bulk.jobstore import FINISH_DONE, RUNNING, SOURCE, JobStore
from skyclass.runtime.bulk.tasks import TaskQueues
from skyclass.runtime.bulk.tracker import finish_if_done
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

# The work queue keeps a message this long (provision/stage.py): an ended job's
# messages are gone by then, counted as dropped or not.
QUEUE_RETENTION_S = 4 * 24 * 3600


@dataclass(frozen=True)
class JobsBacklog:
    to_list: int = 0
    ended_queued: int = 0
    listing_jobs: int = 0


class JobsWatch:
    def __init__(self, jobs: JobStore, tasks: TaskQueues, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self._jobs = jobs
        self._tasks = tasks
        self._settings = settings
        self._clock = clock

    def observe(self) -> JobsBacklog:
        to_list = ended_queued = listing = 0
        for job in self._jobs.active():
            if job.state == RUNNING:
                if job.kind == SOURCE and not job.sealed:
                    listing += 1
                    to_list += max(self._settings.list_page_size, job.count("queued"))
                elif job.all_answered:
                    finish_if_done(self._jobs, self._tasks, job.job_id)
                continue
            left = job.count("total") - job.answered - job.count("dropped")
            if left > 0 and self._age(job.finished_at) < QUEUE_RETENTION_S:
                ended_queued += left
            elif job.finish == FINISH_DONE or left <= 0:
                self._jobs.retire(job.job_id)
        return JobsBacklog(to_list, ended_queued, listing)

    def _age(self, iso: str | None) -> float:
        if not iso:
            return 0.0
        at = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
        return self._clock() - at.timestamp()
