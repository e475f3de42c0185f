"""The whole pipeline on the real local stack, as a user sees it: HTTP to the API,
boto3 to the emulator, real workers running the session's tiny model."""

from __future__ import annotations

import json
import uuid

import pytest

from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes
from tests.support.images import held_out_images
from tests.support.stack import IDLE_GRACE, RESULT_TIMEOUT, RunningStack, finished_job, submit_job

pytestmark = pytest.mark.e2e

def test_job_upload_classifies_every_image(local_stack):
    # GIVEN held-out images of every class
    images = held_out_images(per_class=2)
    files = [(f"{label}-{i}.jpg", body) for i, (label, body) in enumerate(images)]
    # WHEN they are submitted as a job through presigned uploads
    job = submit_job(local_stack, files)
    # THEN the job eventually shows every image done with its true label
    status = local_stack.eventually(lambda: finished_job(local_stack, job["job_id"]),
                                    RESULT_TIMEOUT, "every image of the job classified")
    assert status["total"] == status["done"] == len(files)
    labels = {r["name"]: r["label"] for r in status["results"]}
    assert labels == {name: label for (name, _), (label, _) in zip(files, images, strict=True)}


def test_classify_answers_with_the_label(local_stack):
    # GIVEN one held-out image per class
    for label, body in held_out_images(per_class=1, first=50):
        # WHEN it is posted raw and as a multipart form
        raw = local_stack.post("/classify", data=body, headers={"Content-Type": "image/jpeg"})
        form = local_stack.post(
            "/classify", files={"myfile": (f"{label}.jpg", body, "image/jpeg")}
        )
        # THEN both answer at once with the right label
        for response in (raw, form):
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "done"
            assert response.json()["label"] == label


def test_drop_folder_images_get_results_next_to_their_path(local_stack):
    # GIVEN images dropped into the input bucket under incoming/, with spaces in the path
    s3 = local_stack.client("s3")
    input_bucket, output_bucket = local_stack.buckets()
    folder = f"incoming/drop {uuid.uuid4().hex[:8]}/some dir"
    dropped = {f"{folder}/{label}.jpg": label for label in CLASSES}
    # WHEN they are uploaded with plain S3 puts
    for key, label in dropped.items():
        s3.put_object(Bucket=input_bucket, Key=key, Body=image_bytes(label, HELD_OUT_SEED + 70))

    # THEN each gets a result at results/<its key>.json with the right label
    def results() -> dict[str, str] | None:
        keys = {f"results/{key}.json" for key in dropped}
        listed = s3.list_objects_v2(Bucket=output_bucket, Prefix=f"results/{folder}/")
        if keys - {o["Key"] for o in listed.get("Contents", [])}:
            return None
        return {
            key: json.loads(s3.get_object(Bucket=output_bucket, Key=f"results/{key}.json")
                            ["Body"].read())["label"]
            for key in dropped
        }

    found = local_stack.eventually(results, RESULT_TIMEOUT, "a result for every dropped image")
    assert found == dropped


def test_a_file_that_is_not_an_image_fails_with_a_reason(local_stack):
    # GIVEN text bytes named like a JPEG, next to a real image
    files = [("notes.jpg", b"these are my notes, not a picture\n" * 4),
             ("real.jpg", image_bytes("green_square", HELD_OUT_SEED + 90))]
    # WHEN they are submitted as a job
    job = submit_job(local_stack, files)
    # THEN the text ends failed with a reason a person understands; the image is done
    status = local_stack.eventually(lambda: finished_job(local_stack, job["job_id"]),
                                    RESULT_TIMEOUT, "both results")
    by_name = {r["name"]: r for r in status["results"]}
    assert by_name["notes.jpg"]["status"] == "failed"
    assert by_name["notes.jpg"]["error"]
    assert by_name["real.jpg"]["label"] == "green_square"
    assert (status["done"], status["failed"]) == (1, 1)


def _running_instances(stack: RunningStack) -> list[str]:
    fleet = stack.get("/fleet").json()
    return [i["id"] for i in fleet["instances"] if i["state"] == "running"]


def _idle(stack: RunningStack) -> bool:
    return not _running_instances(stack) and not stack.worker_processes()


def test_fleet_grows_from_zero_for_a_backlog_and_returns_to_zero_when_idle(local_stack):
    # GIVEN an idle fleet: no instance running, no worker process
    idle_timeout = float(IDLE_GRACE) + 60
    local_stack.eventually(lambda: _idle(local_stack), idle_timeout, "an idle fleet")
    # WHEN a backlog arrives
    files = [(f"{label}-{i}.jpg", body) for i, (label, body) in enumerate(held_out_images(3, 100))]
    job = submit_job(local_stack, files)
    # THEN an instance starts and runs a worker process, which works the backlog off
    local_stack.eventually(
        lambda: _running_instances(local_stack) and local_stack.worker_processes(),
        RESULT_TIMEOUT, "a worker running for the backlog")
    status = local_stack.eventually(lambda: finished_job(local_stack, job["job_id"]),
                                    RESULT_TIMEOUT, "the backlog processed")
    assert status["done"] == len(files)
    # AND once idle past the grace period the fleet is back to zero, processes included
    local_stack.eventually(lambda: _idle(local_stack), idle_timeout,
                           "no worker after the idle grace")
