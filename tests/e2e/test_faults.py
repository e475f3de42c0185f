"""Faults on the real local stack: a worker killed outright in the middle of a backlog
loses nothing and doubles nothing."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import (
    RESULT_TIMEOUT,
    VISIBILITY_TIMEOUT,
    eventually,
    finished_job,
    held_out_images,
    submit_job,
)

pytestmark = pytest.mark.e2e


def _result_keys(stack, job_id: str) -> list[str]:
    _, output = stack.buckets()
    pages = stack.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=output, Prefix=f"results/{job_id}/")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_a_worker_killed_mid_backlog_leaves_exactly_one_result_per_image(local_stack):
    # GIVEN a backlog being worked off
    images = held_out_images(per_class=25, first=3000)
    files = [(f"{label}-{i}.jpg", body) for i, (label, body) in enumerate(images)]
    job = submit_job(local_stack, files)
    eventually(lambda: _result_keys(local_stack, job["job_id"]), RESULT_TIMEOUT,
               "the first results", local_stack, period=0.1)
    # WHEN every worker is killed with SIGKILL, batches in hand
    killed = local_stack.worker_processes()
    assert killed, "no worker to kill"
    for worker in killed:
        worker.send_signal(signal.SIGKILL)
    # THEN the restarted workers (systemd-like) finish the job once the killed batches'
    # messages become visible again...
    status = eventually(lambda: finished_job(local_stack, job["job_id"]),
                        RESULT_TIMEOUT + float(VISIBILITY_TIMEOUT), "the job finished",
                        local_stack)
    # ...with exactly one result object per uploaded image, each with the true label
    assert sorted(_result_keys(local_stack, job["job_id"])) == sorted(
        f"results/{job['job_id']}/{u['image_id']}.json" for u in job["uploads"])
    assert status["done"] == len(files)
    truth = {name: label for (name, _), (label, _) in zip(files, images, strict=True)}
    assert {r["name"]: r["label"] for r in status["results"]} == truth
