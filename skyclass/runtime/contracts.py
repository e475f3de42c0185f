"""The contracts of ARCHITECTURE.md in code: S3 keys, the work message, the result.

Result keys are derived from input keys, so a redelivered message overwrites the same
result object: at-least-once delivery, exactly one result per image.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from skyclass.runtime import constants as c
from skyclass.runtime.errors import InvalidMessageError

_JOB_ID = re.compile(r"^[0-9a-f]{20}$")
_IMAGE_ID = re.compile(r"^([0-9a-f]{20})-(\d{5,})$")


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- identifiers -----------------------------------------------------------------

def new_job_id() -> str:
    """80 random bits, hex: unguessable, and safe in keys and URLs."""
    return secrets.token_hex(10)


def image_id_for(job_id: str, index: int) -> str:
    """Image ids embed their job id, so ``GET /images/{id}`` finds the result in one step."""
    return f"{job_id}-{index:05d}"


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID.match(value))


def job_id_of_image(image_id: str) -> str | None:
    match = _IMAGE_ID.match(image_id)
    return match.group(1) if match else None


# ---- keys ------------------------------------------------------------------------

def job_input_key(job_id: str, image_id: str) -> str:
    return f"{c.JOBS_PREFIX}{job_id}/{image_id}"


def manifest_key(job_id: str) -> str:
    return f"{c.JOBS_PREFIX}{job_id}/{c.MANIFEST_NAME}"


def worker_status_key(worker_id: str) -> str:
    """Where a worker says which engine it runs (written once when ready, read by
    ``GET /fleet``)."""
    return f"{c.WORKER_STATUS_PREFIX}{worker_id}.json"


def job_results_prefix(job_id: str) -> str:
    return f"{c.RESULTS_PREFIX}{job_id}/"


def result_key(input_key: str) -> str:
    """``jobs/{job}/{image}`` -> ``results/{job}/{image}.json``;
    ``incoming/{path}`` -> ``results/incoming/{path}.json``."""
    if input_key.startswith(c.JOBS_PREFIX):
        return f"{c.RESULTS_PREFIX}{input_key[len(c.JOBS_PREFIX):]}.json"
    if input_key.startswith(c.INCOMING_PREFIX):
        return f"{c.RESULTS_PREFIX}{input_key}.json"
    raise InvalidMessageError(f"key {input_key!r} is neither under jobs/ nor incoming/")


def parse_input_key(key: str) -> tuple[str | None, str]:
    """(job_id, image_id) for a job upload; (None, image_id) for the drop folder, where
    the image id is the path under ``incoming/``."""
    if key.startswith(c.JOBS_PREFIX):
        parts = key[len(c.JOBS_PREFIX):].split("/")
        if len(parts) == 2 and is_job_id(parts[0]) and job_id_of_image(parts[1]) == parts[0]:
            return parts[0], parts[1]
        raise InvalidMessageError(f"{key!r} is not a job upload key (jobs/JOB/IMAGE)")
    if key.startswith(c.INCOMING_PREFIX) and len(key) > len(c.INCOMING_PREFIX):
        return None, key[len(c.INCOMING_PREFIX):]
    raise InvalidMessageError(f"key {key!r} is neither under jobs/ nor incoming/")


def source_image_key(job_id: str, image_id: str) -> str:
    """The result key of an object a bulk job classifies in place: the one its image id
    would have as an upload, ``results/{job}/{image}.json``. The lister numbers a job's
    images once, in listing order, so a redelivered message rewrites the same result."""
    return result_key(job_input_key(job_id, image_id))


# ---- work message ----------------------------------------------------------------

# WorkMessage.origin of an object a bulk job classifies where it is (in a source bucket).
SOURCE = "source"


@dataclass(frozen=True)
class WorkMessage:
    bucket: str
    key: str
    job_id: str | None
    image_id: str
    name: str
    size: int
    etag: str
    enqueued_at: str = field(default_factory=utcnow_iso)
    v: int = c.MESSAGE_VERSION
    # Optional, absent from uploads' messages: SOURCE for an object read in place, whose
    # key may be anything and whose result key follows from job and image ids.
    origin: str | None = None

    def to_json(self) -> str:
        data = asdict(self)
        if self.origin is None:
            del data["origin"]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> WorkMessage:
        try:
            data = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise InvalidMessageError(f"message body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidMessageError("message body is not a JSON object")
        if data.get("v") != c.MESSAGE_VERSION:
            raise InvalidMessageError(f"unsupported message version {data.get('v')!r}")
        try:
            message = cls(
                bucket=_str(data, "bucket"),
                key=_str(data, "key"),
                job_id=data.get("job_id"),
                image_id=_str(data, "image_id"),
                name=_str(data, "name"),
                size=int(data["size"]),
                etag=str(data.get("etag", "")),
                enqueued_at=str(data.get("enqueued_at", "")),
                origin=data.get("origin"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMessageError(f"message field missing or wrong: {exc}") from exc
        message.result_key  # noqa: B018 - rejects keys that name no result
        return message

    @classmethod
    def salvage(cls, body: str) -> WorkMessage | None:
        """A stand-in for a body that is not a valid work message but still names an
        input key, so the image gets a ``failed`` result instead of vanishing into the
        dead-letter queue; None when the body names no input key."""
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        bucket, key = data.get("bucket"), data.get("key")
        if not (isinstance(bucket, str) and bucket and isinstance(key, str)):
            return None
        origin = data.get("origin")
        if origin == SOURCE:
            job_id, image_id = data.get("job_id"), data.get("image_id")
            if not (isinstance(job_id, str) and isinstance(image_id, str)
                    and job_id_of_image(image_id) == job_id):
                return None
        else:
            origin = None
            try:
                job_id, image_id = parse_input_key(key)
            except InvalidMessageError:
                return None
        name = data.get("name")
        return cls(
            bucket=bucket,
            key=key,
            job_id=job_id,
            image_id=image_id,
            name=name if isinstance(name, str) and name else key.rsplit("/", 1)[-1],
            size=0,
            etag="",
            origin=origin,
        )

    @property
    def result_key(self) -> str:
        if self.origin is None:
            return result_key(self.key)
        if self.origin != SOURCE:
            raise InvalidMessageError(f"unknown message origin {self.origin!r}")
        if not (self.job_id and job_id_of_image(self.image_id) == self.job_id):
            raise InvalidMessageError(
                f"a source object's message needs its job's image id, not {self.image_id!r}")
        return source_image_key(self.job_id, self.image_id)

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


# ---- result ----------------------------------------------------------------------

@dataclass(frozen=True)
class Prediction:
    label: str
    wnid: str | None
    score: float


# A result's status (ARCHITECTURE.md, "Result"), and what a job's view says of an image
# that has no result yet.
DONE = "done"
FAILED = "failed"
PENDING = "pending"
RESULT_STATUSES = (DONE, FAILED)


def done_result(
    message: WorkMessage,
    top: list[Prediction],
    *,
    model: str,
    worker: str,
    timings_ms: dict[str, float],
) -> dict[str, Any]:
    best = top[0]
    return _result(
        message,
        status=DONE,
        label=best.label,
        score=round(float(best.score), 6),
        top=[
            {"label": p.label, "wnid": p.wnid, "score": round(float(p.score), 6)} for p in top
        ],
        error=None,
        model=model,
        worker=worker,
        timings_ms=timings_ms,
    )


def failed_result(
    message: WorkMessage,
    reason: str,
    *,
    model: str | None,
    worker: str,
    timings_ms: dict[str, float] | None = None,
) -> dict[str, Any]:
    return _result(
        message,
        status=FAILED,
        label=None,
        score=None,
        top=[],
        error=reason,
        model=model,
        worker=worker,
        timings_ms=timings_ms or {},
    )


def _result(message: WorkMessage, **fields: Any) -> dict[str, Any]:
    return {
        "v": c.RESULT_VERSION,
        "image_id": message.image_id,
        "job_id": message.job_id,
        "name": message.name,
        "source": message.source,
        **fields,
        "finished_at": utcnow_iso(),
    }
