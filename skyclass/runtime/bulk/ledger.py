"""Ledger: one DynamoDB item per image of a job, beside the job's item, in index order
(sort key ``i#{index:010d}``; image ids are ``{job}-{index}``, contracts.image_id_for).

An upload's entry is written when it is announced (``pending``, with its name); every
entry gets the image's result once it is answered. That entry is what makes counting
exact under at-least-once delivery: ``record`` writes an image's entry only if it is
not answered yet, in the same transaction that adds to its job's counters, so a
redelivered message finds its image answered and adds nothing. The same entries give
``GET /jobs/{id}`` its pages of results (one Query each) and the finisher its export
(a Query per megabyte, never a GET per image), and let a worker drop a message whose
image is already answered before it spends inference on it (``screen``).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from skyclass.runtime.bulk.dynamo import (
    BATCH_GET_KEYS,
    BATCH_WRITE_ITEMS,
    TRANSACT_ITEMS,
    from_item,
    key,
    to_item,
    to_values,
)
from skyclass.runtime.bulk.jobstore import JOB_SK, code_of
from skyclass.runtime.contracts import DONE, FAILED, PENDING, job_id_of_image
from skyclass.runtime.errors import BadRequestError

IMAGE_PREFIX = "i#"
MAX_PAGE = 1000
# Transactions that meet another on the same job item are cancelled; they are retried
# after a short, growing pause.
CONFLICT_RETRIES = 8


def image_sk(index: int) -> str:
    return f"{IMAGE_PREFIX}{index:010d}"


def index_of(image_id: str) -> int | None:
    """The index in its job of an image id ``{job}-{index}``; None for other ids."""
    if job_id_of_image(image_id) is None:
        return None
    return int(image_id.rsplit("-", 1)[1])


@dataclass(frozen=True)
class Answer:
    """An image's result, to be entered in its job's ledger."""

    job_id: str
    image_id: str
    result: dict[str, Any]
    key: str  # the object it was read from (input or source key)

    @property
    def status(self) -> str:
        return self.result["status"]


@dataclass(frozen=True)
class Screening:
    """What ``screen`` found: the state of each job that is in the store (a job absent
    here is not tracked, e.g. ``POST /classify``'s), and the images already answered."""

    jobs: dict[str, str]
    answered: frozenset[str]


class Ledger:
    def __init__(self, dynamodb: Any, table: str, sleep=time.sleep) -> None:
        self._db = dynamodb
        self.table = table
        self._sleep = sleep

    # ---- uploads announced -----------------------------------------------------------

    def declare(self, job_id: str, images: Sequence[dict[str, Any]]) -> None:
        """Enter announced uploads as ``pending`` (``image_id``, ``name``, ``key``)."""
        requests = [{"PutRequest": {"Item": to_item({
            "pk": job_id, "sk": image_sk(index_of(image["image_id"])), "st": PENDING,
            "image_id": image["image_id"], "name": image["name"], "key": image["key"],
        })}} for image in images]
        for start in range(0, len(requests), BATCH_WRITE_ITEMS):
            pending = {self.table: requests[start:start + BATCH_WRITE_ITEMS]}
            for attempt in range(CONFLICT_RETRIES):
                unprocessed = self._db.batch_write_item(RequestItems=pending).get(
                    "UnprocessedItems") or {}
                if not unprocessed:
                    break
                pending = unprocessed
                self._sleep(0.05 * 2 ** attempt)
            else:
                raise RuntimeError(f"DynamoDB left {len(pending[self.table])} writes "
                                   f"unprocessed for job {job_id}")

    # ---- reading ---------------------------------------------------------------------

    def page(self, job_id: str, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
        """Up to ``limit`` results (pending uploads as ``{"image_id", "name", "status":
        "pending"}``) after ``cursor``, in index order, and the cursor of the next page
        (None at the end). A page may hold fewer than ``limit`` when DynamoDB's 1 MB
        read ends it first; only a None cursor means the end."""
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequestError(f"limit must be 1 to {MAX_PAGE}, not {limit}")
        kwargs: dict[str, Any] = {}
        if cursor:
            if not cursor.isdigit():
                raise BadRequestError(f"cursor {cursor[:40]!r} is not one this API gave")
            kwargs["ExclusiveStartKey"] = key(job_id, image_sk(int(cursor)))
        response = self._db.query(
            TableName=self.table, Limit=limit,
            KeyConditionExpression="pk = :job AND begins_with(sk, :images)",
            ExpressionAttributeValues=to_values({":job": job_id, ":images": IMAGE_PREFIX}),
            **kwargs)
        results = [_result_of(from_item(item)) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return results, (str(int(last["sk"]["S"][len(IMAGE_PREFIX):])) if last else None)

    def answered(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every answered image's result, in index order (a Query per megabyte)."""
        paginator = self._db.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :job AND begins_with(sk, :images)",
            FilterExpression="st IN (:done, :failed)",
            ProjectionExpression="r",
            ExpressionAttributeValues=to_values({":job": job_id, ":images": IMAGE_PREFIX,
                                                 ":done": DONE, ":failed": FAILED}),
        ):
            for item in page.get("Items", []):
                yield json.loads(item["r"]["S"])

    def entry(self, image_id: str) -> dict[str, Any] | None:
        """An image's ledger entry as a result (``pending`` if not answered yet), or
        None when its job's ledger has no such image."""
        index = index_of(image_id)
        if index is None:
            return None
        item = self._db.get_item(TableName=self.table,
                                 Key=key(job_id_of_image(image_id), image_sk(index))).get("Item")
        return _result_of(from_item(item)) if item else None

    def screen(self, image_ids: Iterable[str]) -> Screening:
        """The states of these images' jobs and which images are answered already: one
        BatchGetItem per 100 keys."""
        wanted = {i for i in image_ids if index_of(i) is not None}
        jobs = {job_id_of_image(i) for i in wanted}
        keys = [key(job, JOB_SK) for job in sorted(jobs)]
        keys += [key(job_id_of_image(i), image_sk(index_of(i))) for i in sorted(wanted)]
        states: dict[str, str] = {}
        answered: set[str] = set()
        for start in range(0, len(keys), BATCH_GET_KEYS):
            for item in self._batch_get(keys[start:start + BATCH_GET_KEYS]):
                values = from_item(item)
                if values["sk"] == JOB_SK:
                    states[values["pk"]] = values["state"]
                elif values.get("st") in (DONE, FAILED):
                    answered.add(values["image_id"])
        return Screening(states, frozenset(answered))

    # ---- answers ---------------------------------------------------------------------

    def record(self, answers: Sequence[Answer]) -> set[str]:
        """Enter each answer whose image is not answered yet, and add those to their
        jobs' ``done``/``failed`` counters in the same transaction; returns the image ids
        newly entered (a redelivered image's is not). Raises on trouble with DynamoDB:
        the caller has the message delivered again, and the retry counts it then."""
        entered: set[str] = set()
        for chunk in _transactions(answers):
            entered |= self._record_chunk(chunk)
        return entered

    def _record_chunk(self, chunk: list[Answer]) -> set[str]:
        attempt = 0
        while chunk:
            items = _transaction_items(self.table, chunk)
            try:
                self._db.transact_write_items(TransactItems=items)
                return {a.image_id for a in chunk}
            except ClientError as exc:
                if code_of(exc) != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                taken = {chunk[i].image_id for i, r in enumerate(reasons[:len(chunk)])
                         if r == "ConditionalCheckFailed"}
                if taken:
                    chunk = [a for a in chunk if a.image_id not in taken]
                    continue
                attempt += 1
                if attempt >= CONFLICT_RETRIES:
                    raise
                self._sleep(0.02 * 2 ** attempt)
        return set()

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        request = {self.table: {"Keys": keys, "ConsistentRead": True,
                                "ProjectionExpression": "pk, sk, st, #state, image_id",
                                "ExpressionAttributeNames": {"#state": "state"}}}
        for attempt in range(CONFLICT_RETRIES):
            response = self._db.batch_get_item(RequestItems=request)
            found += response.get("Responses", {}).get(self.table, [])
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed:
                return found
            request = unprocessed
            self._sleep(0.05 * 2 ** attempt)
        raise RuntimeError("DynamoDB left keys unread after retries")


def _result_of(values: dict[str, Any]) -> dict[str, Any]:
    if "r" in values:
        return json.loads(values["r"])
    return {"image_id": values["image_id"], "name": values.get("name"), "status": PENDING}


def _transactions(answers: Sequence[Answer]) -> Iterator[list[Answer]]:
    """Answers in transactions of at most TRANSACT_ITEMS items: each image's entry,
    plus one counter update per job in the transaction."""
    by_job: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_job[answer.job_id].append(answer)
    chunk: list[Answer] = []
    for job_answers in by_job.values():
        for answer in job_answers:
            jobs_in_chunk = len({a.job_id for a in chunk} | {answer.job_id})
            if len(chunk) + 1 + jobs_in_chunk > TRANSACT_ITEMS:
                yield chunk
                chunk = []
            chunk.append(answer)
    if chunk:
        yield chunk


def _transaction_items(table: str, chunk: list[Answer]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"Put": {
        "TableName": table,
        "Item": to_item({
            "pk": a.job_id, "sk": image_sk(index_of(a.image_id)), "st": a.status,
            "image_id": a.image_id, "name": a.result.get("name"), "key": a.key,
            "r": json.dumps(a.result, ensure_ascii=False, separators=(",", ":")),
        }),
        "ConditionExpression": "attribute_not_exists(pk) OR st = :pending",
        "ExpressionAttributeValues": to_values({":pending": PENDING}),
    }} for a in chunk]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {DONE: 0, FAILED: 0})
    for a in chunk:
        counts[a.job_id][DONE if a.status == DONE else FAILED] += 1
    for job_id, n in counts.items():
        items.append({"Update": {
            "TableName": table,
            "Key": key(job_id, JOB_SK),
            "UpdateExpression": "ADD #done :done, #failed :failed",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": {"#done": "done", "#failed": "failed"},
            "ExpressionAttributeValues": to_values({":done": n[DONE], ":failed": n[FAILED]}),
        }})
    return items
