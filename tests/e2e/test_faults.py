"""Faults on the real local stack: a worker killed outright in the middle of a backlog
loses nothing and doubles nothing."""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.support.images import held_out_images, named
from tests.support.stack import (
    RESULT_TIMEOUT,
    VISIBILITY_TIMEOUT,
    RunningStack,
    finished_job,
    job_status,
    submit_job,
)

pytestmark = pytest.mark.e2e


def mid_backlog(stack: RunningStack, job_id: str) -> bool:
    """Whether the workers are in the middle of the job: some images answered, messages
    in their hands, and more than a batch's worth left to do."""
    status = job_status(stack, job_id)
    return (status["done"] >= 1 and status["pending"] >= 10
            and stack.queue_depths()["in_flight"] > 0)


def test_a_worker_killed_mid_backlog_leaves_exactly_one_result_per_image(local_stack):
    # GIVEN a backlog being worked off
    images = held_out_images(per_class=40, first=3000)
    files = named(images)
    job = submit_job(local_stack, files, parallel=8)
    local_stack.eventually(lambda: mid_backlog(local_stack, job["job_id"]), RESULT_TIMEOUT,
                           "the workers in the middle of the backlog", period=0.1)
    # WHEN every worker is killed with SIGKILL, batches in hand
    killed = local_stack.worker_processes()
    assert killed, "no worker to kill"
    for worker in killed:
        worker.send_signal(signal.SIGKILL)
    psutil.wait_procs(killed, timeout=30)
    # THEN (it was mid-backlog: images left, messages hidden with the dead workers)
    assert job_status(local_stack, job["job_id"])["pending"] > 0
    assert local_stack.queue_depths()["in_flight"] > 0
    # ... the restarted workers (systemd-like) finish the job once the killed batches'
    # messages become visible again...
    status = local_stack.eventually(lambda: finished_job(local_stack, job["job_id"]),
                                    RESULT_TIMEOUT + float(VISIBILITY_TIMEOUT),
                                    "the job finished")
    # ...with exactly one result object per uploaded image, each with the true label
    assert sorted(local_stack.result_keys(f"results/{job['job_id']}/")) == sorted(
        f"results/{job['job_id']}/{u['image_id']}.json" for u in job["uploads"])
    assert status["done"] == len(files)
    truth = {name: label for (name, _), (label, _) in zip(files, images, strict=True)}
    assert {r["name"]: r["label"] for r in status["results"]} == truth
