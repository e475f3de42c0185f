"""Jobs of any size in the job store (DynamoDB, in-process emulator), through the API:
uploads handed out in pages, counts read from one item, results in pages, each answer
counted once however often it arrives, cancelling, and what a job's export link says
before the job ends."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from app import app
from skyclass.runtime.bulk.jobstore import JobStore
from skyclass.runtime.bulk.tasks import Task
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.contracts import (
    Prediction,
    WorkMessage,
    done_result,
    failed_result,
    job_input_key,
)
from tests.support.paths import REPO_ROOT

PREDICTION = Prediction("tabby", "n02123045", 0.875)


@pytest.fixture
def client(lambda_env):
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as test_client:
        yield test_client


def post(client, path, body=None):
    return client.http.post(path, headers={"Content-Type": "application/json"},
                            body=json.dumps(body if body is not None else {}).encode())


def images(count: int, start: int = 0) -> list[dict]:
    return [{"name": f"img-{i:05d}.png", "content_type": "image/png", "size": 100}
            for i in range(start, start + count)]


def answer(aws, stage, job_id: str, image_ids: list[str], failed: set[str] = frozenset()):
    """What a worker does for these images: store each result, count it in its job."""
    tracker = JobTracker.for_stage(aws, stage.resources)
    messages = [WorkMessage(bucket=stage.resources.input_bucket,
                            key=job_input_key(job_id, i), job_id=job_id, image_id=i,
                            name=i, size=100, etag="e") for i in image_ids]
    tracker.screen(messages)
    answers = [(m, failed_result(m, "broken", model="m", worker="w") if m.image_id in failed
                else done_result(m, [PREDICTION], model="m", worker="w", timings_ms={}))
               for m in messages]
    counted = tracker.record(answers)
    tracker.after_batch([m.job_id for m in messages], [])
    return counted


def finish_tasks(aws, stage) -> list[Task]:
    url = stage.bulk.finish_queue_url
    messages = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
    return [Task.from_json(m["Body"]) for m in messages]


def test_a_job_takes_uploads_in_pages_beyond_a_thousand_and_answers_counts_and_pages(
    client, aws, stage
):
    # GIVEN a job created with a first page of 1,000 images and more to come
    created = post(client, "/jobs", {"images": images(1000), "more": True})
    assert created.status_code == 201, created.json_body
    job_id = created.json_body["job_id"]
    # WHEN two more pages are added, the last one saying so
    second = post(client, f"/jobs/{job_id}/images", {"images": images(300, 1000), "more": True})
    last = post(client, f"/jobs/{job_id}/images", {"images": images(5, 1300)})
    assert second.status_code == last.status_code == 201
    uploads = created.json_body["uploads"] + second.json_body["uploads"] + last.json_body[
        "uploads"]
    # THEN every image has its own id and its own presigned upload, numbered in order
    ids = [u["image_id"] for u in uploads]
    assert len(set(ids)) == 1305 and ids[-1] == f"{job_id}-01304"
    assert uploads[1000]["fields"]["key"] == job_input_key(job_id, ids[1000])
    # AND the job counts them all, pending, in one answer
    job = client.http.get(f"/jobs/{job_id}?limit=2").json_body
    assert (job["total"], job["pending"], job["done"], job["accepting_uploads"]) == (
        1305, 1305, 0, False)
    # AND its results come in pages that together name every image once
    seen, cursor = [], None
    while True:
        page = client.http.get(f"/jobs/{job_id}?limit=400"
                               + (f"&cursor={cursor}" if cursor else "")).json_body
        seen += [r["image_id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    # AND a closed job takes no more
    refused = post(client, f"/jobs/{job_id}/images", {"images": images(1)})
    assert refused.status_code == 409 and refused.json_body["Code"] == "Conflict"


def test_each_answer_is_counted_once_however_often_it_arrives_and_the_last_completes_it(
    client, aws, stage
):
    # GIVEN a job of four uploads
    job = post(client, "/jobs", {"images": images(4)}).json_body
    ids = [u["image_id"] for u in job["uploads"]]
    # WHEN three are answered, then answered again (redelivered messages), one failing
    assert answer(aws, stage, job["job_id"], ids[:3], failed={ids[2]}) == 3
    assert answer(aws, stage, job["job_id"], ids[:3], failed={ids[2]}) == 0
    # THEN each counts once, and the job still waits for the fourth
    status = client.http.get(f"/jobs/{job['job_id']}").json_body
    assert (status["done"], status["failed"], status["pending"], status["state"]) == (
        2, 1, 1, "running")
    assert finish_tasks(aws, stage) == []
    # WHEN the fourth is answered
    answer(aws, stage, job["job_id"], ids[3:])
    # THEN the job is complete, its results are in its page, and its completion is queued
    status = client.http.get(f"/jobs/{job['job_id']}").json_body
    assert (status["done"], status["failed"], status["pending"], status["state"]) == (
        3, 1, 0, "complete")
    assert [r["status"] for r in status["results"]] == ["done", "done", "failed", "done"]
    assert [t.job_id for t in finish_tasks(aws, stage)] == [job["job_id"]]
    # AND a result is found by its image id, from S3 or the ledger
    assert client.http.get(f"/images/{ids[0]}").status_code in (200, 202)


def test_a_cancelled_job_ends_at_once_and_counts_what_is_left_as_cancelled(client, aws, stage):
    # GIVEN a job of five uploads, two answered
    job = post(client, "/jobs", {"images": images(5)}).json_body
    ids = [u["image_id"] for u in job["uploads"]]
    answer(aws, stage, job["job_id"], ids[:2])
    # WHEN it is cancelled
    cancelled = post(client, f"/jobs/{job['job_id']}/cancel")
    # THEN it says so at once: nothing pending, three cancelled, completion queued
    assert cancelled.status_code == 200
    body = cancelled.json_body
    assert (body["state"], body["done"], body["pending"], body["cancelled"]) == (
        "cancelled", 2, 0, 3)
    assert [t.job_id for t in finish_tasks(aws, stage)] == [job["job_id"]]
    # AND cancelling again changes nothing; its export is not written yet
    assert post(client, f"/jobs/{job['job_id']}/cancel").json_body["state"] == "cancelled"
    early = client.http.get(f"/jobs/{job['job_id']}/export?format=csv")
    assert early.status_code == 409 and "no export yet" in early.json_body["Message"]


def test_a_complete_job_cannot_be_cancelled(client, aws, stage):
    job = post(client, "/jobs", {"images": images(1)}).json_body
    answer(aws, stage, job["job_id"], [job["uploads"][0]["image_id"]])
    refused = post(client, f"/jobs/{job['job_id']}/cancel")
    assert refused.status_code == 409 and "complete" in refused.json_body["Message"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"source": "s3://someone-elses-bucket/photos/"}, 403, "SKYCLASS_SOURCE_BUCKETS"),
    ({"source": "https://example.com/photos/"}, 400, "s3://BUCKET/PREFIX/"),
    ({"source": "s3://Not_A_Bucket/x"}, 400, "is not s3://"),
    ({"source": "s3://b/x", "images": images(1)}, 400, "not both"),
    ({"images": images(1), "callback_url": "ftp://example.com/"}, 400, "callback_url"),
    ({"images": images(1), "more": "yes"}, 400, "'more'"),
])
def test_what_a_job_may_not_be_is_refused_with_a_reason(client, body, status, words):
    response = post(client, "/jobs", body)
    assert response.status_code == status
    assert words in response.json_body["Message"]


def test_a_page_asked_for_wrongly_is_a_bad_request(client):
    job = post(client, "/jobs", {"images": images(2)}).json_body
    for query in ("limit=0", "limit=1001", "limit=many", "cursor=abc"):
        response = client.http.get(f"/jobs/{job['job_id']}?{query}")
        assert response.status_code == 400, query


def test_the_job_store_counts_in_one_item_whatever_the_size(aws, stage):
    # GIVEN a job record (the counters a lister and the workers keep)
    store = JobStore(aws.client("dynamodb"), stage.bulk.jobs_table)
    job = store.create("0123456789abcdef0123", "upload", total=3, sealed=True)
    # THEN its view is the contract's counts, with nothing answered
    view = job.view()
    assert {k: view[k] for k in ("job_id", "total", "done", "failed", "pending")} == {
        "job_id": "0123456789abcdef0123", "total": 3, "done": 0, "failed": 0, "pending": 3}
