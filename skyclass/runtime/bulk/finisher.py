"""Finisher: what happens once a job has ended (the ``on_finish_task`` Lambda).

Three steps, each recorded in the job's item when done so that a task delivered again,
or a retry, does only what is left: write the export (export.py) and record its
location and the job's summary; put the ``skyclass Job Completed`` event on the
stage's bus; POST the signed summary to the job's ``callback_url``, if it has one
(notify.py). A callback that fails in a way worth retrying is tried again with a new
task, delayed 30 s, 1, 2, 4, 8, then 15 minutes, ``CALLBACK_ROUNDS`` rounds in all
(each round tries a few times at once); its status is in ``GET /jobs/{id}``. Then the
job's completion work is marked finished and a complete job leaves the ``active``
index. A cancelled job's export holds the images answered when it is written; the
event and the callback carry the same summary as the export.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skyclass.runtime.bulk.export import write_export
from skyclass.runtime.bulk.jobstore import COMPLETE, FINISH_DONE, RUNNING, SOURCE, Job, JobStore
from skyclass.runtime.bulk.ledger import Ledger
from skyclass.runtime.bulk.notify import CallOutcome, post_callback, publish_event
from skyclass.runtime.bulk.tasks import FINISH, Task, TaskQueues
from skyclass.runtime.contracts import utcnow_iso
from skyclass.runtime.names import callback_secret_parameter_name
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

CALLBACK_ROUNDS = 7
DELIVERED = "delivered"
RETRYING = "retrying"
GAVE_UP = "failed"


def callback_delay(round_: int) -> int:
    """Seconds before callback round ``round_`` + 1: 30, 60, 120... up to 15 minutes."""
    return min(30 * 2 ** round_, 900)


def summary_of(job: Job, export: dict[str, Any]) -> dict[str, Any]:
    """What the event and the callback say of an ended job."""
    view = job.view()
    counts = {name: view[name] for name in ("total", "done", "failed", "cancelled")}
    if job.kind == SOURCE:
        counts.update(listed=view["listed"], skipped=view["skipped"]["total"])
    summary = {"job_id": job.job_id, "state": job.state, "kind": job.kind, "counts": counts,
               "export": export, "created_at": job.created_at,
               "finished_at": job.finished_at}
    if job.source:
        summary["source"] = job.source
    if job.error:
        summary["error"] = job.error
    return summary


@dataclass
class FinishReport:
    exported: int | None = None
    event: bool = False
    callback: str | None = None
    finished: bool = False


class Finisher:
    def __init__(self, s3: Any, events: Any, ssm: Any, jobs: JobStore, ledger: Ledger,
                 tasks: TaskQueues, *, output_bucket: str, bus: str, settings: Settings,
                 post: Callable[..., CallOutcome] = post_callback,
                 clock: Callable[[], float] = time.time) -> None:
        self._s3 = s3
        self._events = events
        self._ssm = ssm
        self._jobs = jobs
        self._ledger = ledger
        self._tasks = tasks
        self._output_bucket = output_bucket
        self._bus = bus
        self._settings = settings
        self._post = post
        self._clock = clock

    def run(self, task: Task) -> FinishReport:
        report = FinishReport()
        job = self._jobs.get(task.job_id, consistent=True)
        if job is None or job.state == RUNNING or job.finish == FINISH_DONE:
            return report
        if job.summary is None:
            export = write_export(self._s3, self._output_bucket, job.job_id,
                                  self._ledger.answered(job.job_id), self._settings.top_k)
            location = export.location(self._output_bucket)
            summary = summary_of(job, location)
            self._jobs.set_fields(job.job_id, export=location, summary=summary)
            report.exported = export.rows
        else:
            summary = job.summary
        if not job.event_sent:
            publish_event(self._events, self._bus, summary)
            self._jobs.set_fields(job.job_id, event_sent=True)
            report.event = True
        if job.callback_url and (job.callback or {}).get("status") not in (DELIVERED, GAVE_UP):
            report.callback = self._call_back(job, summary, task.attempt)
            if report.callback == RETRYING:
                return report
        self._jobs.finished(job.job_id, retire=job.state == COMPLETE)
        report.finished = True
        return report

    def _call_back(self, job: Job, summary: dict[str, Any], round_: int) -> str:
        outcome = self._post(job.callback_url, summary, self._secret())
        status = DELIVERED if outcome.delivered else (
            RETRYING if outcome.retry and round_ + 1 < CALLBACK_ROUNDS else GAVE_UP)
        self._jobs.set_fields(job.job_id, callback={
            "status": status, "attempts": round_ + 1, "last_error": None if outcome.delivered
            else outcome.detail, "at": utcnow_iso()})
        if status == RETRYING:
            delay = callback_delay(round_)
            self._tasks.send(Task(FINISH, job.job_id, round_ + 1), delay=delay)
            log.warning("job %s: callback failed (%s); trying again in %d s", job.job_id,
                        outcome.detail, delay)
        elif status == GAVE_UP:
            log.error("job %s: callback failed for good: %s", job.job_id, outcome.detail)
        return status

    @functools.cache  # noqa: B019 - one finisher per process; the key is read once
    def _secret(self) -> str:
        name = callback_secret_parameter_name(self._settings.stage)
        return self._ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
