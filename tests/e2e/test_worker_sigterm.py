"""SIGTERM on a real worker process in the middle of a backlog, as EC2 sends it when the
scaler stops an instance: the worker finishes only the batch in inference, hands the
messages it prefetched straight back to the queue (not after their visibility timeout),
and exits 0 within the grace EC2 gives it; no image is left without its one result.

The first test runs ``python -m ec2_worker`` against an emulator process with a
visibility timeout of ten minutes, so "straight back" is a state of the queue, not a
race with the clock; the second does the same to every worker of the local stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from skyclass.operations.local.runner import STOP_GRACE
from skyclass.operations.provision.stage import provision
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.contracts import image_id_for, job_input_key, new_job_id
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes
from testbed.waiting import eventually
from tests.support.images import held_out_images, named
from tests.support.paths import REPO_ROOT
from tests.support.processes import emulator_process
from tests.support.stack import RESULT_TIMEOUT, finished_job, job_status, submit_job
from tests.support.worker import World

pytestmark = pytest.mark.e2e

IMAGES = 240
BATCH = 4
TEN_MINUTES = "600"


def test_sigterm_finishes_the_batch_in_hand_and_hands_the_prefetched_back_at_once(
        tiny_model, tmp_path, monkeypatch):
    with emulator_process() as emulator:
        # GIVEN a stage on the emulator with a backlog of held-out images
        monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
        aws = AwsClients("us-east-1")
        stage = provision(Settings.from_env({}, max_workers=1), aws)
        world = World(aws, stage, Settings.from_env({}), engine=None)
        job_id = new_job_id()
        labels = {}
        for index in range(IMAGES):
            label = CLASSES[index % len(CLASSES)]
            message = world.upload(job_input_key(job_id, image_id_for(job_id, index)),
                                   image_bytes(label, HELD_OUT_SEED + 20_000 + index))
            labels[message.result_key] = (message, label)
        queue = WorkQueue(aws.sqs, stage.resources.queue_url)
        queue.send([message for message, _ in labels.values()])
        # ... and a worker process on it, whose messages stay hidden ten minutes once taken
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "ec2_worker"], cwd=REPO_ROOT, stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **_user_data(stage.resources),
                     "SKYCLASS_MODEL": str(tiny_model.model_path),
                     "SKYCLASS_LABELS": str(tiny_model.labels_path),
                     "SKYCLASS_VISIBILITY_TIMEOUT": TEN_MINUTES,
                     "SKYCLASS_BATCH_SIZE": str(BATCH), "SKYCLASS_WORKER_ID": "i-sigterm",
                     "TF_CPP_MIN_LOG_LEVEL": "2"})
        results = JsonStore(aws.s3, stage.resources.output_bucket)
        try:
            # WHEN it is in the middle of the backlog (its first results are stored)
            eventually(lambda: results.keys(f"results/{job_id}/") or worker.poll() is not None,
                       180, "the worker's first results", period=0.05,
                       explain=lambda: log.read_text(errors="replace"))
            assert worker.poll() is None, log.read_text(errors="replace")
            worker.send_signal(signal.SIGTERM)
            # THEN it exits by itself, with exit code 0, within EC2's grace
            code = worker.wait(STOP_GRACE)
        finally:
            if worker.poll() is None:
                worker.kill()
        said = log.read_text(errors="replace")
        assert code == 0, said
        assert "worker i-sigterm stopped" in said
        # AND it stopped mid-backlog: images are left, and it had prefetched some of them
        answered = list(results.keys(f"results/{job_id}/"))
        assert 0 < len(answered) < IMAGES
        assert _released(said) > 0, said
        # AND every answered image has its label, and every other message is visible
        # again now, none hidden for the ten minutes: nothing is in flight
        for key in answered:
            message, label = labels[key]
            assert results.get(key)["label"] == label
        depths = queue.depths()
        assert (depths.in_flight, depths.visible) == (0, IMAGES - len(answered)), said


def _user_data(resources) -> dict[str, str]:
    """The stage's names, as a worker instance's user data (or the local runner) gives
    them: a worker never looks them up."""
    return {"SKYCLASS_INPUT_BUCKET": resources.input_bucket,
            "SKYCLASS_OUTPUT_BUCKET": resources.output_bucket,
            "SKYCLASS_QUEUE_URL": resources.queue_url, "SKYCLASS_DLQ_URL": resources.dlq_url}


def _released(log: str) -> int:
    """How many messages the worker released, by its settle lines ("… N released …")."""
    return sum(int(line.split(" released")[0].rsplit(" ", 1)[1])
               for line in log.splitlines() if " released," in line)


def test_sigterm_mid_backlog_stops_the_stacks_workers_cleanly_and_loses_no_image(local_stack):
    # GIVEN a backlog being worked off, with batches in inference and prefetched
    images = held_out_images(per_class=40, first=7000)
    files = named(images)
    job = submit_job(local_stack, files, parallel=8)

    def mid_backlog() -> bool:
        status = job_status(local_stack, job["job_id"])
        return (status["done"] >= 1 and status["pending"] >= 10
                and local_stack.queue_depths()["in_flight"] > 0)

    local_stack.eventually(mid_backlog, RESULT_TIMEOUT, "the workers mid-backlog", period=0.1)

    # WHEN every worker gets SIGTERM
    workers = local_stack.worker_processes()
    assert workers, "no worker to stop"
    instances = [local_stack.worker_instance(worker) for worker in workers]
    for worker in workers:
        worker.send_signal(signal.SIGTERM)

    # THEN each exits by itself within EC2's grace (it finishes only the batch in inference)
    _, alive = psutil.wait_procs(workers, timeout=STOP_GRACE)
    assert not alive, "a worker outlived SIGTERM"
    # ... with images still to do (the signal came mid-backlog)
    assert job_status(local_stack, job["job_id"])["pending"] > 0
    # ... and exit code 0, as the runner (systemd's stand-in) saw it
    for instance in instances:
        local_stack.eventually(
            lambda i=instance: f"worker {i} exited with code 0" in local_stack.console.read_text(),
            30, f"the runner seeing worker {instance} exit")
    # AND the restarted workers finish the job: one result per image, each with its label
    status = local_stack.eventually(lambda: finished_job(local_stack, job["job_id"]),
                                    RESULT_TIMEOUT, "the job finished")
    assert status["done"] == len(files)
    truth = {name: label for (name, _), (label, _) in zip(files, images, strict=True)}
    assert {r["name"]: r["label"] for r in status["results"]} == truth
