"""The worker against a provisioned stage in the in-process emulator: ``World`` uploads,
enqueues, runs a ``Worker`` and reads results; ``GatedEngine`` holds each batch at the
start of inference until the test lets it go; ``Running`` runs a worker's pipeline in a
thread until told to stop, as SIGTERM does."""

from __future__ import annotations

import threading
from typing import Any

from skyclass.runtime.contracts import (
    WorkMessage,
    image_id_for,
    job_input_key,
    new_job_id,
    parse_input_key,
)
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes

WORKER_ID = "i-0123456789abcdef0"


class World:
    """The provisioned stage, seen from a worker: upload, enqueue, run, read results."""

    def __init__(self, aws: Any, stage: Any, settings: Any, engine: Any) -> None:
        self.aws = aws
        self.resources = stage.resources
        self.settings = settings
        self.engine = engine
        self.queue = WorkQueue(aws.sqs, self.resources.queue_url, self.resources.dlq_url)
        self.results = JsonStore(aws.s3, self.resources.output_bucket)

    def upload(self, key: str, data: bytes) -> WorkMessage:
        """Put ``data`` at ``key`` in the input bucket; the work message the S3 event
        handler would send for it."""
        self.aws.s3.put_object(Bucket=self.resources.input_bucket, Key=key, Body=data)
        return self.message(key, size=len(data))

    def message(self, key: str, size: int = 1) -> WorkMessage:
        job_id, image_id = parse_input_key(key)
        return WorkMessage(
            bucket=self.resources.input_bucket, key=key, job_id=job_id, image_id=image_id,
            name=key.rsplit("/", 1)[-1], size=size, etag="etag",
        )

    def worker(self, metrics: Any = None, **settings: Any) -> Any:
        from ec2_worker.worker import Worker

        return Worker(
            queue=self.queue,
            results=self.results,
            s3=self.aws.s3,
            engine=self.engine,
            settings=self.settings.replace(**settings),
            input_bucket=self.resources.input_bucket,
            worker_id=WORKER_ID,
            poll_seconds=0,
            metrics=metrics,
        )

    def drain(self, **settings: Any) -> int:
        """Run one worker until the queue has nothing visible; batches run."""
        worker, batches = self.worker(**settings), 0
        while worker.process_batch():
            batches += 1
        return batches

    def result(self, message: WorkMessage) -> dict | None:
        return self.results.get(message.result_key)


def a_job(world: World, count: int, fmt: str = "JPEG") -> list[tuple[WorkMessage, str]]:
    """``count`` held-out images, cycling through the classes, uploaded as one job: each
    one's work message and true label."""
    job_id = new_job_id()
    uploads = []
    for index in range(count):
        label = CLASSES[index % len(CLASSES)]
        data = image_bytes(label, HELD_OUT_SEED + index, fmt=fmt)
        uploads.append((world.upload(job_input_key(job_id, image_id_for(job_id, index)), data),
                        label))
    return uploads


class GatedEngine:
    """The real engine; each batch waits at the gate until ``go`` is set."""

    def __init__(self, real: Any) -> None:
        self.classifier = real.classifier
        self._engine = real
        self.started = threading.Event()
        self.go = threading.Event()

    def predict(self, pixels: Any) -> Any:
        self.started.set()
        self.go.wait(60)
        return self._engine.predict(pixels)


class Running:
    """A worker running its pipeline in a thread until ``stop()`` (as SIGTERM does)."""

    def __init__(self, worker: Any) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop_event,))
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the worker did not stop"
