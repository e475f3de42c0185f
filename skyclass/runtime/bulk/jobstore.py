"""JobStore: the jobs of ``POST /jobs`` in DynamoDB, one item per job.

A job's item holds what ``GET /jobs/{id}`` answers — its state and its counters
(``total``, ``done``, ``failed``; for a source job also ``listed``, ``queued`` and the
keys skipped) — so the answer costs one read however big the job. Counters only ever
grow by atomic ``ADD``s: the workers' in the same transaction that writes an image's
ledger entry (``ledger.py``), the lister's in the same conditional write that moves its
cursor (``lister.py``). Its images live beside it in the same partition (``ledger.py``).

States: ``running`` until it ends as ``complete`` (every image answered, ``sealed``:
no more to come), ``cancelled`` (by its owner) or ``failed`` (its source could not be
listed). The step that ends a job also marks its completion work ``queued``; the
finisher marks it ``finished``. A job stays in the sparse ``active`` index, which the
scaler reads each tick, while it runs or its completion work is unfinished and, once
cancelled or failed, until the workers have dropped what it had queued.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from skyclass.runtime.bulk.dynamo import from_item, key, to_item, to_values
from skyclass.runtime.contracts import utcnow_iso

JOB_SK = "job"
ACTIVE_INDEX = "active"
ACTIVE = "1"

# Job states.
RUNNING = "running"
COMPLETE = "complete"
CANCELLED = "cancelled"
FAILED = "failed"
ENDED = (COMPLETE, CANCELLED, FAILED)

# Job kinds.
UPLOAD = "upload"
SOURCE = "source"

# Completion work (the finisher's).
FINISH_QUEUED = "queued"
FINISH_DONE = "finished"

COUNTERS = ("total", "done", "failed", "listed", "queued", "skip_type", "skip_size",
            "skip_archived", "dropped", "resent", "duplicates")


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    state: str
    sealed: bool
    created_at: str
    counts: dict[str, int] = field(default_factory=dict)
    source_bucket: str | None = None
    source_prefix: str | None = None
    callback_url: str | None = None
    finished_at: str | None = None
    finish: str | None = None
    export: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    event_sent: bool = False
    callback: dict[str, Any] | None = None
    error: str | None = None
    cursor: str | None = None
    inflight: dict[str, Any] | None = None
    lseq: int = 0
    next_index: int = 0
    active: bool = False

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        values = from_item(item)
        return cls(
            job_id=values["pk"],
            kind=values["kind"],
            state=values["state"],
            sealed=bool(values.get("sealed")),
            created_at=values.get("created_at", ""),
            counts={name: int(values.get(name, 0)) for name in COUNTERS},
            source_bucket=values.get("source_bucket"),
            source_prefix=values.get("source_prefix"),
            callback_url=values.get("callback_url"),
            finished_at=values.get("finished_at"),
            finish=values.get("finish"),
            export=values.get("export"),
            summary=values.get("summary"),
            event_sent=bool(values.get("event_sent")),
            callback=values.get("callback"),
            error=values.get("error"),
            cursor=values.get("cursor"),
            inflight=values.get("inflight"),
            lseq=int(values.get("lseq", 0)),
            next_index=int(values.get("next_index", 0)),
            active=values.get("act") == ACTIVE,
        )

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)

    @property
    def answered(self) -> int:
        return self.count("done") + self.count("failed")

    @property
    def unanswered(self) -> int:
        return max(0, self.count("total") - self.answered)

    @property
    def all_answered(self) -> bool:
        """Every image the job will have is answered (so it can complete)."""
        return self.sealed and self.answered >= self.count("total")

    @property
    def source(self) -> str | None:
        if self.source_bucket is None:
            return None
        return f"s3://{self.source_bucket}/{self.source_prefix or ''}"

    def view(self) -> dict[str, Any]:
        """What ``GET /jobs/{id}`` says of the job, besides its first page of results.
        A cancelled or failed job's unanswered images count as ``cancelled``, not
        ``pending``: nothing will answer them."""
        running = self.state == RUNNING
        view: dict[str, Any] = {
            "job_id": self.job_id,
            "kind": self.kind,
            "state": self.state,
            "total": self.count("total"),
            "done": self.count("done"),
            "failed": self.count("failed"),
            "pending": self.unanswered if running else 0,
            "cancelled": 0 if running or self.state == COMPLETE else self.unanswered,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "export": self.export,
            "error": self.error,
        }
        if self.kind == SOURCE:
            view.update(
                source=self.source,
                listing=running and not self.sealed,
                listed=self.count("listed"),
                queued=self.count("queued"),
                skipped={"total": sum(self.count(n) for n in
                                      ("skip_type", "skip_size", "skip_archived")),
                         "not_an_image": self.count("skip_type"),
                         "size": self.count("skip_size"),
                         "archived": self.count("skip_archived")},
                # Keys a lister sent again after a crash, and second copies the
                # workers dropped without inference (docs/bulk.md, "Crashes").
                resent=self.count("resent"),
            )
        else:
            view["accepting_uploads"] = running and not self.sealed
        view["duplicates_dropped"] = self.count("duplicates")
        if self.callback_url:
            view["callback"] = {k: v for k, v in (self.callback or {"status": "waiting"}).items()
                                if k in ("status", "attempts", "last_error")}
        return view


class JobConflictError(Exception):
    """A conditional write found the job in another state than it required."""


class JobStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table

    # ---- creating and reading --------------------------------------------------------

    def create(self, job_id: str, kind: str, *, total: int = 0, sealed: bool,
               source_bucket: str | None = None, source_prefix: str | None = None,
               callback_url: str | None = None) -> Job:
        values = {
            "pk": job_id, "sk": JOB_SK, "kind": kind, "state": RUNNING, "sealed": sealed,
            "created_at": utcnow_iso(), "total": total, "done": 0, "failed": 0, "lseq": 0,
            "next_index": total,
            "source_bucket": source_bucket, "source_prefix": source_prefix,
            "callback_url": callback_url, "act": ACTIVE,
        }
        item = to_item(values)
        self._db.put_item(TableName=self.table, Item=item,
                          ConditionExpression="attribute_not_exists(pk)")
        return Job.from_item(item)

    def get(self, job_id: str, consistent: bool = False) -> Job | None:
        item = self._db.get_item(TableName=self.table, Key=key(job_id, JOB_SK),
                                 ConsistentRead=consistent).get("Item")
        return Job.from_item(item) if item else None

    def active(self) -> Iterator[Job]:
        """The jobs in the ``active`` index: running, or ended with work still queued."""
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, IndexName=ACTIVE_INDEX,
                                       KeyConditionExpression="act = :a",
                                       ExpressionAttributeValues=to_values({":a": ACTIVE})):
            for item in page.get("Items", []):
                yield Job.from_item(item)

    # ---- changes ---------------------------------------------------------------------

    def reserve(self, job_id: str, count: int) -> int:
        """Reserve ``count`` image indices of a job that still accepts uploads; returns
        the first."""
        job = self._update(job_id, "ADD #next_index :n",
                           "#state = :running AND #sealed = :false",
                           {":n": count, ":running": RUNNING, ":false": False})
        return job.next_index - count

    def add_images(self, job_id: str, count: int, seal: bool) -> Job:
        """Announce ``count`` more uploads to a job that still accepts them."""
        return self._update(
            job_id, "ADD #total :n SET #sealed = :seal",
            "#state = :running AND #sealed = :false",
            {":n": count, ":seal": seal, ":running": RUNNING, ":false": False})

    def cancel(self, job_id: str) -> Job:
        return self._update(
            job_id, "SET #state = :cancelled, #finish = :queued, #finished_at = :now",
            "#state = :running",
            {":cancelled": CANCELLED, ":queued": FINISH_QUEUED, ":now": utcnow_iso(),
             ":running": RUNNING})

    def fail(self, job_id: str, error: str) -> bool:
        return self._try_update(
            job_id, "SET #state = :failed, #error = :error, #finish = :queued, "
            "#finished_at = :now", "#state = :running",
            {":failed": FAILED, ":error": error[:1000], ":queued": FINISH_QUEUED,
             ":now": utcnow_iso(), ":running": RUNNING})

    def complete(self, job_id: str) -> bool:
        """Mark a job whose every image is answered complete; False when it already is,
        or another caller did it first (only one may queue its completion)."""
        return self._try_update(
            job_id, "SET #state = :complete, #finish = :queued, #finished_at = :now",
            "#state = :running AND #sealed = :true",
            {":complete": COMPLETE, ":queued": FINISH_QUEUED, ":now": utcnow_iso(),
             ":running": RUNNING, ":true": True})

    def retire(self, job_id: str) -> None:
        """Take an ended job out of the ``active`` index."""
        self._try_update(job_id, "REMOVE #act", "#state <> :running", {":running": RUNNING})

    def finished(self, job_id: str, retire: bool) -> None:
        """The finisher's last step: its work is done (``retire``: and the job leaves
        the ``active`` index)."""
        self._update(job_id, "SET #finish = :done" + (" REMOVE #act" if retire else ""),
                     "attribute_exists(pk)", {":done": FINISH_DONE})

    def add_drops(self, job_id: str, dropped: int = 0, duplicates: int = 0) -> None:
        """Count messages workers dropped unanswered: ``dropped``, those of an ended job
        (the scaler's estimate of what it still has queued); ``duplicates``, second
        copies of answered images. Statistics, not the job's counts: no transaction."""
        adds = {name: n for name, n in (("dropped", dropped), ("duplicates", duplicates)) if n}
        if adds:
            self._try_update(job_id, "ADD " + ", ".join(f"#{n} :{n}" for n in adds),
                             "attribute_exists(pk)", {f":{n}": v for n, v in adds.items()})

    def advance_listing(self, job_id: str, lseq: int, changes: dict[str, Any],
                        counts: dict[str, int], remove: tuple[str, ...] = ()) -> bool:
        """The lister's one write per step: move its cursor (and whatever else
        ``changes`` sets), add ``counts``, drop ``remove``, if the job still runs and no
        other lister moved it since this one read sequence ``lseq``."""
        sets = {"lseq": lseq + 1, **changes}
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in sets)
        adds = {name: n for name, n in counts.items() if n}
        if adds:
            expression += " ADD " + ", ".join(f"#{name} :{name}" for name in adds)
        if remove:
            expression += " REMOVE " + ", ".join(f"#{name}" for name in remove)
        return self._try_update(
            job_id, expression, "#state = :running AND #lseq = :expected",
            {**{f":{n}": v for n, v in sets.items()}, **{f":{n}": v for n, v in adds.items()},
             ":running": RUNNING, ":expected": lseq})

    def set_fields(self, job_id: str, **fields: Any) -> None:
        """The finisher's bookkeeping: export, event sent, callback, finished."""
        self._update(job_id, "SET " + ", ".join(f"#{n} = :{n}" for n in fields),
                     "attribute_exists(pk)", {f":{n}": v for n, v in fields.items()})

    # ---- helpers ---------------------------------------------------------------------

    def _update(self, job_id: str, expression: str, condition: str,
                values: dict[str, Any]) -> Job:
        try:
            response = self._db.update_item(
                TableName=self.table, Key=key(job_id, JOB_SK), UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=attribute_names(expression, condition),
                ExpressionAttributeValues=to_values(values), ReturnValues="ALL_NEW")
        except ClientError as exc:
            if code_of(exc) == "ConditionalCheckFailedException":
                raise JobConflictError(job_id) from exc
            raise
        return Job.from_item(response["Attributes"])

    def _try_update(self, job_id: str, expression: str, condition: str,
                    values: dict[str, Any]) -> bool:
        try:
            self._update(job_id, expression, condition, values)
        except JobConflictError:
            return False
        return True


def attribute_names(*expressions: str) -> dict[str, str]:
    """``#name`` placeholders for every attribute the expressions name (so no attribute
    can collide with DynamoDB's reserved words)."""
    found = set()
    for expression in expressions:
        found.update(re.findall(r"#(\w+)", expression))
    return {f"#{name}": name for name in sorted(found)}


def code_of(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
