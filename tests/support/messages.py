"""Work messages for tests that fill the work queue without the S3-event function."""

from __future__ import annotations

from skyclass.runtime.contracts import WorkMessage, image_id_for, job_input_key, new_job_id
from skyclass.runtime.queue import WorkQueue


def job_message(bucket: str, name: str = "cat.jpg", size: int = 10) -> WorkMessage:
    """The message for the first image of a new job in ``bucket``."""
    job_id = new_job_id()
    image_id = image_id_for(job_id, 0)
    return WorkMessage(bucket=bucket, key=job_input_key(job_id, image_id), job_id=job_id,
                       image_id=image_id, name=name, size=size, etag="e")


def drop_messages(bucket: str, count: int) -> list[WorkMessage]:
    """Messages for ``count`` drop-folder images ``incoming/{i}.png`` in ``bucket``."""
    return [WorkMessage(bucket=bucket, key=f"incoming/{i}.png", job_id=None,
                        image_id=f"{i}.png", name=f"{i}.png", size=10, etag="x")
            for i in range(count)]


def enqueue(queue: WorkQueue, count: int, bucket: str = "in") -> None:
    """A backlog of ``count`` messages (for the scaler, which only counts them)."""
    queue.send(drop_messages(bucket, count))
