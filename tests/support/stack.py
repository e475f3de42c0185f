"""The real local stack (``skyclass up`` as processes, testbed/stack_process.py) as the
end-to-end and browser tiers drive it: started with the session's tiny model, talked to
over HTTP and through boto3 at the emulator's endpoint, and the ``skyclass`` command run
against it as a person would. The fixtures that start stacks are in tests/conftest.py."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from testbed.stack_process import SKYCLASS, StackProcess, start_stack
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes

READY_TIMEOUT = 120.0
RESULT_TIMEOUT = 90.0
# Short, so the idle fleet goes back to zero within the test; long enough that the
# tests, run back to back, find a warm worker.
IDLE_GRACE = "12"
# Short, so the fault tests see a killed worker's messages come back soon.
VISIBILITY_TIMEOUT = "15"
# Bulk jobs (tests/e2e/test_bulk.py): the one bucket the stage may read in place; pages
# of two keys, so a listing of a few dozen keys takes many steps (a kill lands
# mid-listing); tasks of three seconds, so a killed lister's task is back in 18 s.
SOURCE_BUCKET = "skyclass-e2e-archive"
LIST_PAGE_SIZE = "2"
TASK_TIMEOUT = "3"
# The key of the session's keyed stack (``keyed_stack``; locally a stage's key is
# SKYCLASS_API_KEY).
STACK_API_KEY = "a-local-test-key-5f1c"


class RunningStack(StackProcess):
    def buckets(self) -> tuple[str, str]:
        names = [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]]
        return (
            next(n for n in names if n.startswith("skyclass-local-input-")),
            next(n for n in names if n.startswith("skyclass-local-output-")),
        )

    def result_keys(self, prefix: str) -> list[str]:
        _, output = self.buckets()
        pages = self.client("s3").get_paginator("list_objects_v2").paginate(
            Bucket=output, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def queue_depths(self) -> dict[str, int]:
        """The work queue as ``GET /fleet`` shows it (visible, in_flight, delayed,
        dead_letter)."""
        return self.get("/fleet").json()["queue"]

    def worker_instance(self, process: Any) -> str:
        """The instance id a worker process runs for (the runner hands it down)."""
        return process.environ()["SKYCLASS_WORKER_ID"]


def submit_job(stack: StackProcess, files: list[tuple[str, bytes]], *,
               headers: Mapping[str, str] | None = None, parallel: int = 1) -> dict:
    """POST /jobs, then upload each file through its presigned POST (``parallel`` at a
    time)."""
    response = stack.post("/jobs", headers=headers, json={"images": [
        {"name": name, "content_type": "image/jpeg", "size": len(body)} for name, body in files
    ]})
    assert response.status_code == 201, response.text
    job = response.json()

    def upload(pair: tuple[dict, tuple[str, bytes]]) -> None:
        upload, (name, body) = pair
        sent = requests.post(upload["url"], data=upload["fields"],
                             files={"file": (name, body, "image/jpeg")}, timeout=30)
        assert sent.status_code in (200, 201, 204), sent.text

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(upload, zip(job["uploads"], files, strict=True)))
    return job


def archive(stack: StackProcess, prefix: str, per_class: int, first: int) -> dict[str, str]:
    """Held-out images under ``prefix`` in the source bucket, among three objects that
    are not images; returns each image's key -> true label."""
    s3 = stack.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=SOURCE_BUCKET)
    truth = {}
    for label in CLASSES:
        for i in range(per_class):
            key = f"{prefix}{label}/{i:03d}.jpg"
            s3.put_object(Bucket=SOURCE_BUCKET, Key=key,
                          Body=image_bytes(label, HELD_OUT_SEED + first + i))
            truth[key] = label
    for key, body in ((f"{prefix}README.txt", b"notes"), (f"{prefix}empty.jpg", b""),
                      (f"{prefix}{CLASSES[0]}/", b"")):
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=body)
    s3.put_object(Bucket=SOURCE_BUCKET, Key="elsewhere/not-this.jpg",
                  Body=image_bytes(CLASSES[0], HELD_OUT_SEED))
    return truth


def job_status(stack: StackProcess, job_id: str) -> dict:
    return stack.get(f"/jobs/{job_id}").json()


def finished_job(stack: StackProcess, job_id: str) -> dict | None:
    status = job_status(stack, job_id)
    return status if status["pending"] == 0 else None


def run_cli(stack: StackProcess, *args: str, timeout: float = 180,
            **extra_env: str) -> subprocess.CompletedProcess:
    """``skyclass ARGS`` as a person runs it against the stack: its API and emulator in
    the environment, nothing else of this process's."""
    env = {"SKYCLASS_API_URL": stack.api, "AWS_ENDPOINT_URL": stack.endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin", **extra_env}
    return subprocess.run([str(SKYCLASS), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def tiny_model_env(tiny_model: Any) -> dict[str, str]:
    return {"SKYCLASS_MODEL": str(tiny_model.model_path),
            "SKYCLASS_LABELS": str(tiny_model.labels_path), "TF_CPP_MIN_LOG_LEVEL": "2"}


@contextmanager
def running_stack(state_dir: Path, env: Mapping[str, str], *, max_workers: int,
                  boot_delay: float = 0.0) -> Iterator[RunningStack]:
    """``skyclass up`` until the block ends; then it must stop on SIGTERM (as Ctrl-C),
    with exit code 0 and no process of it left behind."""
    started = start_stack(state_dir, env, max_workers=max_workers, boot_delay=boot_delay)
    stack = RunningStack(**vars(started))
    try:
        stack.wait_ready(READY_TIMEOUT)
        yield stack
    finally:
        code, alive = stack.stop()
        assert not alive, f"processes outlived skyclass up: {[p.pid for p in alive]}"
        assert code == 0, f"skyclass up exited with {code}\n{stack.diagnostics()}"

