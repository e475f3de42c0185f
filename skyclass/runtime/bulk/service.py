"""BulkJobs: the API's side of jobs of any size (docs/bulk.md).

``POST /jobs`` takes either ``images`` (client uploads, at most 1,000 a request, more
in pages with ``POST /jobs/{id}/images`` while ``more`` is true) or ``source``
(``s3://BUCKET/PREFIX/``, read in place, listed in the background by the lister).
Either way the job is an item in the job store (jobstore.py), so ``GET /jobs/{id}``
reads its counts from one item and its results a page at a time from its ledger
(ledger.py), whatever its size. ``POST /jobs/{id}/cancel`` stops a job;
``GET /jobs/{id}/export`` hands out a presigned link to its export once it is written.

Jobs that are not in the store — ``POST /classify``'s one-image jobs — are answered by
skyclass.runtime.jobs.JobService as before.
"""

from __future__ import annotations

from typing import Any

from skyclass.runtime import contracts
from skyclass.runtime.bulk.export import export_key
from skyclass.runtime.bulk.jobstore import (
    CANCELLED,
    RUNNING,
    SOURCE,
    UPLOAD,
    Job,
    JobConflictError,
    JobStore,
)
from skyclass.runtime.bulk.ledger import MAX_PAGE, Ledger, index_of
from skyclass.runtime.bulk.notify import check_callback_url
from skyclass.runtime.bulk.sources import parse_source
from skyclass.runtime.bulk.tasks import TaskQueues
from skyclass.runtime.bulk.tracker import finish_if_done
from skyclass.runtime.errors import (
    BadRequestError,
    ConflictError,
    ImageNotFoundError,
    JobNotFoundError,
)
from skyclass.runtime.jobs import JobService
from skyclass.runtime.settings import Settings

EXPORT_FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
EXPORT_LINK_EXPIRES = 3600
DEFAULT_PAGE = MAX_PAGE  # the whole of any job the 1,000-image cap allowed, as before


class BulkJobs:
    def __init__(self, s3: Any, jobs: JobStore, ledger: Ledger, tasks: TaskQueues,
                 uploads: JobService, output_bucket: str, settings: Settings) -> None:
        self._s3 = s3
        self._jobs = jobs
        self._ledger = ledger
        self._tasks = tasks
        self._uploads = uploads
        self._output_bucket = output_bucket
        self._settings = settings

    # ---- POST /jobs, POST /jobs/{id}/images ------------------------------------------

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        callback_url = check_callback_url(body.get("callback_url"))
        if "source" in body:
            if "images" in body:
                raise BadRequestError("send either 'images' (uploads) or 'source' (an S3 "
                                      "prefix), not both")
            return self._create_source_job(body["source"], callback_url)
        more = _flag(body, "more")
        entries = self._uploads.check_images(body.get("images"))
        job_id = contracts.new_job_id()
        images = self._uploads.describe_images(job_id, entries)
        # The ledger first, the job last: a job exists only once all it counts on does.
        self._ledger.declare(job_id, images)
        self._uploads.write_manifest(job_id, images)
        self._jobs.create(job_id, UPLOAD, total=len(images), sealed=not more,
                          callback_url=callback_url)
        return {"job_id": job_id, "uploads": self._uploads.presign(images), "more": more}

    def add_images(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Another page of uploads for a job created with ``more``; ``more: false`` (the
        default) says it is the last, and an empty last page just closes the job."""
        more = _flag(body, "more")
        images = body.get("images")
        entries = [] if images == [] and not more else self._uploads.check_images(images)
        job = self._job(job_id)
        if job.kind != UPLOAD or job.state != RUNNING or job.sealed:
            raise ConflictError(f"job {job_id} takes no more images (it is {job.state}"
                                + (", and closed" if job.sealed else "") + ")")
        # Ids are reserved first, so concurrent pages never share one; the job counts
        # them only once they are in its ledger.
        reserved = self._jobs.reserve(job_id, len(entries))
        described = self._uploads.describe_images(job_id, entries, first_index=reserved)
        self._ledger.declare(job_id, described)
        try:
            self._jobs.add_images(job_id, len(described), seal=not more)
        except JobConflictError as exc:
            raise ConflictError(f"job {job_id} was closed or ended meanwhile") from exc
        if not more:
            finish_if_done(self._jobs, self._tasks, job_id)
        return {"job_id": job_id, "uploads": self._uploads.presign(described), "more": more}

    def _create_source_job(self, source: object, callback_url: str | None) -> dict[str, Any]:
        where = parse_source(source, self._settings.source_bucket_names)
        job_id = contracts.new_job_id()
        job = self._jobs.create(job_id, SOURCE, sealed=False, source_bucket=where.bucket,
                                source_prefix=where.prefix, callback_url=callback_url)
        self._tasks.list(job_id)
        return {**job.view(), "status_url": f"jobs/{job_id}"}

    # ---- GET /jobs/{id}, GET /images/{id} --------------------------------------------

    def get_job(self, job_id: str, cursor: str | None = None,
                limit: str | int | None = None) -> dict[str, Any]:
        job = self._jobs.get(job_id) if contracts.is_job_id(job_id) else None
        if job is None:
            return self._uploads.get_job(job_id)
        results, next_cursor = self._ledger.page(job_id, cursor, _limit(limit))
        return {**job.view(), "results": results, "next_cursor": next_cursor}

    def get_image(self, image_id: str) -> dict[str, Any] | None:
        try:
            return self._uploads.get_image(image_id)
        except ImageNotFoundError:
            entry = self._ledger.entry(image_id)
            if entry is not None:
                return entry if entry["status"] != contracts.PENDING else None
            job_id = contracts.job_id_of_image(image_id)
            job = self._jobs.get(job_id) if job_id else None
            index = index_of(image_id)
            if job is None or job.state != RUNNING or index is None or (
                    job.sealed and index >= job.count("total")):
                raise
            return None  # queued by the lister, not answered yet

    # ---- POST /jobs/{id}/cancel, GET /jobs/{id}/export ------------------------------

    def cancel(self, job_id: str) -> dict[str, Any]:
        try:
            job = self._jobs.cancel(job_id)
        except JobConflictError:
            job = self._job(job_id)
            if job.state != CANCELLED:
                raise ConflictError(f"job {job_id} has ended already ({job.state})") from None
            return job.view()
        self._tasks.finish(job_id)
        return job.view()

    def export_link(self, job_id: str, fmt: str | None) -> dict[str, Any]:
        fmt = (fmt or "jsonl").lower()
        if fmt not in EXPORT_FORMATS:
            raise BadRequestError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
        job = self._job(job_id)
        if not job.export:
            raise ConflictError(f"job {job_id} has no export yet: it is written when the "
                                f"job ends (it is {job.state})")
        key = export_key(job_id, fmt)
        url = self._s3.generate_presigned_url("get_object", Params={
            "Bucket": self._output_bucket, "Key": key,
            "ResponseContentType": EXPORT_FORMATS[fmt],
            "ResponseContentDisposition": f'attachment; filename="{job_id}.{fmt}"',
        }, ExpiresIn=EXPORT_LINK_EXPIRES)
        return {"job_id": job_id, "format": fmt, "url": url,
                "location": f"s3://{self._output_bucket}/{key}",
                "expires_in": EXPORT_LINK_EXPIRES}

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id) if contracts.is_job_id(job_id) else None
        if job is None:
            raise JobNotFoundError(f"no job {job_id!r}")
        return job


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequestError(f"'{name}' must be true or false")
    return value


def _limit(value: str | int | None) -> int:
    if value in (None, ""):
        return DEFAULT_PAGE
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequestError(f"limit must be a number from 1 to {MAX_PAGE}") from None
