"""SIGTERM on the real worker process in the local stack, in the middle of a backlog
(as EC2 sends it when the scaler stops an instance): the worker stops within the grace
EC2 gives it, and no image is left without its one result once another worker runs."""

from __future__ import annotations

import signal

import psutil
import pytest

from skyclass.operations.local.runner import STOP_GRACE
from tests.e2e.conftest import (
    RESULT_TIMEOUT,
    eventually,
    finished_job,
    held_out_images,
    submit_job,
)

pytestmark = pytest.mark.e2e


def test_sigterm_mid_backlog_stops_the_worker_in_time_and_loses_no_image(local_stack):
    # GIVEN a backlog being worked off, with batches in inference and prefetched
    images = held_out_images(per_class=30, first=7000)
    files = [(f"{label}-{i}.jpg", body) for i, (label, body) in enumerate(images)]
    job = submit_job(local_stack, files)
    eventually(lambda: local_stack.get(f"/jobs/{job['job_id']}").json()["done"],
               RESULT_TIMEOUT, "the first results", local_stack, period=0.1)

    # WHEN every worker gets SIGTERM
    workers = local_stack.worker_processes()
    assert workers, "no worker to stop"
    for worker in workers:
        worker.send_signal(signal.SIGTERM)

    # THEN each exits by itself within EC2's grace (it finishes only the batch in inference)
    _, alive = psutil.wait_procs(workers, timeout=STOP_GRACE)
    assert not alive, "a worker outlived SIGTERM"
    # AND the restarted workers finish the job: one result per image, each with its label
    status = eventually(lambda: finished_job(local_stack, job["job_id"]),
                        RESULT_TIMEOUT, "the job finished", local_stack)
    assert status["done"] == len(files)
    truth = {name: label for (name, _), (label, _) in zip(files, images, strict=True)}
    assert {r["name"]: r["label"] for r in status["results"]} == truth
