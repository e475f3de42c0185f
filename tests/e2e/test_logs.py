"""`skyclass logs` against the real local stack: one image's trail from upload to result,
across the API, ingest and the worker that classified it, as a person would ask for it.
The stack ships its processes' logs into the emulator's CloudWatch Logs, under the
groups a deployed stage has, and the command reads them as it reads AWS's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testbed.tiny_model import HELD_OUT_SEED, image_bytes
from tests.support.stack import RESULT_TIMEOUT, RunningStack, finished_job, submit_job

pytestmark = pytest.mark.e2e

SKYCLASS = str(Path(sys.executable).with_name("skyclass"))


def _logs(stack: RunningStack, *args: str) -> subprocess.CompletedProcess:
    env = {"AWS_ENDPOINT_URL": stack.endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([SKYCLASS, "logs", "--stage", "local", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_logs_follow_one_image_from_upload_to_result(local_stack):
    # GIVEN an image uploaded through the API and classified by a worker
    job = submit_job(local_stack, [("trail.jpg", image_bytes("red_disc", HELD_OUT_SEED + 900))])
    image_id = job["uploads"][0]["image_id"]
    local_stack.eventually(lambda: finished_job(local_stack, job["job_id"]), RESULT_TIMEOUT,
                           "the image's result")

    # WHEN a person asks for its trail
    def trail():
        done = _logs(local_stack, "--image", image_id)
        components = [line.split()[1] for line in done.stdout.splitlines()]
        return done if {"api", "ingest"} <= set(components) and any(
            c.startswith("worker/i-") for c in components) else None

    # THEN it shows, in order, the API announcing it, ingest queueing it, and the worker
    # that classified it, each line naming it (the stack ships its logs each second)
    done = local_stack.eventually(trail, 30, "the image's trail in `skyclass logs`")
    lines = done.stdout.splitlines()
    assert all(image_id in line for line in lines), done.stdout
    components = [line.split()[1] for line in lines]
    assert components.index("api") < components.index("ingest") < next(
        i for i, c in enumerate(components) if c.startswith("worker/")), done.stdout
    assert any("done: red_disc" in line for line in lines), done.stdout
