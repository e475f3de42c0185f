"""The real local stack, started once per session the way ``make run`` starts it.

``skyclass up`` runs as a subprocess on free ports with the session's tiny model; tests
talk to it only over HTTP and through boto3 at the emulator's endpoint. Teardown sends
SIGTERM, as Ctrl-C would, and checks that no process the stack started survives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests.support.stack_process import StackProcess, start_stack
from tests.support.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes

READY_TIMEOUT = 120.0
RESULT_TIMEOUT = 90.0
# Short, so the idle fleet goes back to zero within the test; long enough that the
# tests, run back to back, find a warm worker.
IDLE_GRACE = "12"
VISIBILITY_TIMEOUT = "15"
# Bulk jobs (tests/e2e/test_bulk.py): the one bucket the stage may read in place; pages
# of two keys, so a listing of a few dozen keys takes many steps (a kill lands
# mid-listing); tasks of three seconds, so a killed lister's task is back in 18 s.
SOURCE_BUCKET = "skyclass-e2e-archive"
LIST_PAGE_SIZE = "2"
TASK_TIMEOUT = "3"

T = TypeVar("T")


class RunningStack(StackProcess):
    def buckets(self) -> tuple[str, str]:
        names = [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]]
        return (
            next(n for n in names if n.startswith("skyclass-local-input-")),
            next(n for n in names if n.startswith("skyclass-local-output-")),
        )


def held_out_images(per_class: int, first: int = 0) -> list[tuple[str, bytes]]:
    return [
        (label, image_bytes(label, HELD_OUT_SEED + first + i))
        for label in CLASSES
        for i in range(per_class)
    ]


def submit_job(stack: RunningStack, files: list[tuple[str, bytes]]) -> dict:
    """POST /jobs, then upload each file through its presigned POST."""
    response = stack.post("/jobs", json={"images": [
        {"name": name, "content_type": "image/jpeg", "size": len(body)} for name, body in files
    ]})
    assert response.status_code == 201, response.text
    job = response.json()
    for upload, (name, body) in zip(job["uploads"], files, strict=True):
        sent = requests.post(upload["url"], data=upload["fields"],
                             files={"file": (name, body, "image/jpeg")}, timeout=30)
        assert sent.status_code in (200, 201, 204), sent.text
    return job


def finished_job(stack: RunningStack, job_id: str) -> dict | None:
    status = stack.get(f"/jobs/{job_id}").json()
    return status if status["pending"] == 0 else None


def eventually(check: Callable[[], T | None], timeout: float, what: str,
               stack: RunningStack | None = None, period: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail, with the stack's logs,
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = f"\n{stack.diagnostics()}" if stack else ""
            pytest.fail(f"{what}: not within {timeout:g}s{logs}")
        time.sleep(period)


@contextmanager
def running_stack(tiny_model: Any, state_dir: Path) -> Iterator[RunningStack]:
    """The stack behind the session's ``local_stack`` fixture (tests/conftest.py, so that
    the e2e and browser tiers share one)."""
    env = {
        "SKYCLASS_MODEL": str(tiny_model.model_path),
        "SKYCLASS_LABELS": str(tiny_model.labels_path),
        "SKYCLASS_IDLE_GRACE": IDLE_GRACE,
        # Short, so the fault tests see a killed worker's messages come back soon.
        "SKYCLASS_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT,
        "SKYCLASS_SOURCE_BUCKETS": SOURCE_BUCKET,
        "SKYCLASS_LIST_PAGE_SIZE": LIST_PAGE_SIZE,
        "SKYCLASS_TASK_TIMEOUT": TASK_TIMEOUT,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    started = start_stack(state_dir, env, max_workers=2, boot_delay=0.5)
    stack = RunningStack(**vars(started))
    try:
        eventually(lambda: _ready(stack), READY_TIMEOUT, "skyclass up answering /health", stack)
        yield stack
    finally:
        code, alive = stack.stop()
        assert not alive, f"processes outlived skyclass up: {[p.pid for p in alive]}"
        assert code == 0, f"skyclass up exited with {code}\n{stack.diagnostics()}"


def _ready(stack: RunningStack) -> bool:
    try:
        return stack.healthy()
    except RuntimeError as exc:
        pytest.fail(str(exc))
