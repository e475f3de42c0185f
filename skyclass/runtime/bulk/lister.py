"""Lister: lists a source job's prefix into the work queue, in the background, a page at
a time (the ``on_list_task`` Lambda; one invocation per listing task).

The job's item is the listing's whole state: ``cursor`` (the last key dealt with),
``inflight`` (the step being sent) and ``lseq`` (bumped by every write, which is
conditional on it, so two invocations can never both move a job's listing). A page is
taken in steps of at most ten images, one ``SendMessageBatch`` each. Each step costs one
conditional write that commits the step before it (``queued``) and records this one as
``inflight`` (its keys and first image number), then the send. So a crash anywhere
loses no key: the next invocation finds the step that was in flight and sends it
again, then goes on after the cursor. The only keys that can be sent twice are those
of that one step, when the crash fell between its send and the next write; the
workers drop such a second copy without inference (tracker.py), and each image is
counted once (ledger.py). Images are numbered once, in listing order, when their step
is recorded, so a resent message names the same image and result key.

Objects that are not images by extension, empty or above the size limit, or archived,
are skipped and counted by reason (sources.py). An invocation lists until its time is
nearly up, then commits and hands the listing on with a new task (``tasks.py``); the
last page seals the job (no more images will come) and completes it if every image is
answered already. A job that is cancelled stops at its next write; a source that cannot be
listed (no such bucket, access denied) fails the job with the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from skyclass.runtime.bulk.jobstore import RUNNING, SOURCE, Job, JobStore
from skyclass.runtime.bulk.sources import Source, skip_reason
from skyclass.runtime.bulk.tasks import TaskQueues
from skyclass.runtime.bulk.tracker import finish_if_done
from skyclass.runtime.contracts import SOURCE as SOURCE_ORIGIN
from skyclass.runtime.contracts import WorkMessage, image_id_for
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

STEP_IMAGES = 10  # one SendMessageBatch
MARGIN_S = 5.0
# What S3 answers when a source cannot be listed at all: the job fails with it.
UNLISTABLE = frozenset({"AccessDenied", "NoSuchBucket", "AllAccessDisabled",
                        "InvalidBucketName", "PermanentRedirect", "AuthorizationHeaderMalformed"})


@dataclass(frozen=True)
class Step:
    """Listed keys up to ``last_key``: the images among them (at most STEP_IMAGES) and
    how many were skipped, by reason."""

    last_key: str
    images: list[tuple[str, int, str]]
    listed: int
    skipped: dict[str, int] = field(default_factory=dict)


def plan_steps(objects: list[dict[str, Any]], max_bytes: int) -> list[Step]:
    """A page of ``ListObjectsV2`` contents as steps, in key order."""
    steps: list[Step] = []
    images: list[tuple[str, int, str]] = []
    skipped: Counter[str] = Counter()
    listed = 0
    for obj in objects:
        listed += 1
        reason = skip_reason(obj["Key"], int(obj.get("Size", 0)), max_bytes,
                             obj.get("StorageClass"))
        if reason:
            skipped[reason] += 1
        else:
            images.append((obj["Key"], int(obj["Size"]), obj.get("ETag", "").strip('"')))
        if len(images) == STEP_IMAGES:
            steps.append(Step(obj["Key"], images, listed, dict(skipped)))
            images, skipped, listed = [], Counter(), 0
    if listed:
        steps.append(Step(objects[-1]["Key"], images, listed, dict(skipped)))
    return steps


@dataclass
class ListReport:
    listed: int = 0
    queued: int = 0
    resent: int = 0
    pages: int = 0
    outcome: str = "nothing to do"


class Lister:
    def __init__(self, s3: Any, jobs: JobStore, queue: WorkQueue, tasks: TaskQueues,
                 settings: Settings) -> None:
        self._s3 = s3
        self._jobs = jobs
        self._queue = queue
        self._tasks = tasks
        self._settings = settings

    def run(self, job_id: str, remaining: Callable[[], float]) -> ListReport:
        """List as much of the job's source as ``remaining()`` seconds allow, stopping
        (to commit and hand on) with a margin of 40 % of its time, at most MARGIN_S."""
        margin = min(MARGIN_S, 0.4 * remaining())
        report = ListReport()
        job = self._jobs.get(job_id, consistent=True)
        if job is None or job.kind != SOURCE or job.state != RUNNING or job.sealed:
            return report
        state = _Listing(job)
        if job.inflight and not self._resend(state, report):
            return report
        source = Source(job.source_bucket, job.source_prefix or "")
        while True:
            if remaining() < margin:
                if self._commit(state):
                    self._tasks.list(job_id)
                    report.outcome = "handed on"
                return report
            try:
                page = self._list(source, state.cursor)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in UNLISTABLE:
                    raise
                self._fail(state, f"cannot list {source.url}: {code}: "
                                  f"{exc.response.get('Error', {}).get('Message', '')}")
                report.outcome = "failed"
                return report
            report.pages += 1
            for step in plan_steps(page.get("Contents", []), self._settings.max_image_bytes):
                if not self._step(state, source, step, report):
                    report.outcome = "stopped (cancelled, or another lister moved on)"
                    return report
                if remaining() < margin:
                    break
            else:
                if not page.get("IsTruncated"):
                    if self._commit(state, seal=True):
                        report.outcome = "listed"
                        finish_if_done(self._jobs, self._tasks, job_id)
                    return report

    # ---- steps ---------------------------------------------------------------------

    def _step(self, state: _Listing, source: Source, step: Step, report: ListReport) -> bool:
        first = state.next_index + state.uncommitted
        inflight = ({"first": first, "keys": [list(image) for image in step.images]}
                    if step.images else None)
        changes: dict[str, Any] = {"cursor": step.last_key}
        if inflight:
            changes["inflight"] = inflight
        counts = {"listed": step.listed, **step.skipped,
                  "queued": state.uncommitted, "total": state.uncommitted}
        if not self._jobs.advance_listing(state.job_id, state.lseq, changes, counts,
                                          remove=() if inflight else ("inflight",)):
            return False
        state.moved(step.last_key, len(step.images))
        report.listed += step.listed
        if inflight:
            self._queue.send(self._messages(state.job_id, source, first, step.images))
            report.queued += len(step.images)
        return True

    def _resend(self, state: _Listing, report: ListReport) -> bool:
        """Send the step a crashed invocation left in flight (again, if it had sent it),
        and commit it."""
        inflight = state.job.inflight
        images = [tuple(image) for image in inflight["keys"]]
        source = Source(state.job.source_bucket, state.job.source_prefix or "")
        self._queue.send(self._messages(state.job_id, source, int(inflight["first"]), images))
        state.next_index = int(inflight["first"])
        state.uncommitted = len(images)
        report.resent = len(images)
        log.info("job %s: sent again the %d keys in flight when a listing stopped",
                 state.job_id, len(images))
        return self._commit(state, resent=len(images))

    def _commit(self, state: _Listing, seal: bool = False, resent: int = 0) -> bool:
        """Count the last step's images as queued (and, at the end, seal the job)."""
        if not state.uncommitted and not seal and not state.job.inflight:
            return True
        n = state.uncommitted
        changes = {"sealed": True} if seal else {}
        if not self._jobs.advance_listing(state.job_id, state.lseq, changes,
                                          {"queued": n, "total": n, "resent": resent},
                                          remove=("inflight",)):
            return False
        state.moved(state.cursor, 0)
        return True

    def _fail(self, state: _Listing, reason: str) -> None:
        log.warning("job %s failed: %s", state.job_id, reason)
        self._commit(state)
        if self._jobs.fail(state.job_id, reason):
            self._tasks.finish(state.job_id)

    def _list(self, source: Source, cursor: str | None) -> dict[str, Any]:
        kwargs = {"StartAfter": cursor} if cursor else {}
        return self._s3.list_objects_v2(Bucket=source.bucket, Prefix=source.prefix,
                                        MaxKeys=self._settings.list_page_size, **kwargs)

    def _messages(self, job_id: str, source: Source, first: int,
                  images: list[tuple[str, int, str]]) -> list[WorkMessage]:
        return [WorkMessage(bucket=source.bucket, key=key, job_id=job_id,
                            image_id=image_id_for(job_id, first + offset),
                            name=source.name_of(key), size=size, etag=etag,
                            origin=SOURCE_ORIGIN)
                for offset, (key, size, etag) in enumerate(images)]


class _Listing:
    """Where one invocation's listing of a job stands."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.job_id = job.job_id
        self.lseq = job.lseq
        self.cursor = job.cursor
        self.next_index = job.count("queued")  # images queued and committed before
        self.uncommitted = 0  # images of the last step, sent or about to be

    def moved(self, cursor: str | None, step_images: int) -> None:
        self.lseq += 1
        self.cursor = cursor
        self.next_index += self.uncommitted
        self.uncommitted = step_images
        self.job = replace(self.job, inflight=None)  # whatever was in flight is settled
