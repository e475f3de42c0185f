"""The HTTP API, through Chalice's test client, against the in-process emulator.

Uploads go through the presigned POSTs the API hands out (moto accepts them in-process);
the emulator's S3 notifications are handed to the S3-event Lambda as the local bridge
does; a stand-in worker writes results so the API has something to relay.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import urljoin

import pytest
import requests

from chalice_app import wiring
from chalice_app.events import on_s3_event
from skyclass.runtime import constants as c
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.contracts import Prediction, WorkMessage, done_result
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore
from tests.support.api import MAX_IMAGE_BYTES, assert_error, post_json
from tests.support.images import JPEG, PNG


class StandInWorker:
    """Does what the bridge and a worker would: feeds S3 notifications to the Lambda
    handler, then answers every queued image with a fixed prediction, storing it and
    counting it in its job as a worker does."""

    PREDICTION = Prediction("tabby", "n02123045", 0.875)

    def __init__(self, aws, stage):
        self._aws = aws
        self._stage = stage
        self._queue = WorkQueue(aws.sqs, stage.resources.queue_url)
        self._store = JsonStore(aws.s3, stage.resources.output_bucket)
        self._tracker = JobTracker.for_stage(aws, stage.resources)

    def step(self) -> None:
        sqs, url = self._aws.sqs, self._stage.s3_events_queue_url
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(m["Body"])
            if "Records" in body:
                on_s3_event(body, None)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        received = self._queue.receive(10, wait_seconds=0)
        messages = [WorkMessage.from_json(r.body) for r in received]
        self._tracker.screen(messages)
        answers = [(m, done_result(m, [self.PREDICTION], model="stand-in", worker="test",
                                   timings_ms={})) for m in messages]
        for message, result in answers:
            self._store.put(message.result_key, result)
        self._tracker.record(answers)
        self._tracker.after_batch([m.job_id for m in messages], [])
        self._queue.delete(received)


def test_health(client):
    response = client.http.get("/health")

    assert response.status_code == 200
    assert response.json_body == {"status": "ok"}


def test_a_job_uploaded_through_its_presigned_posts_ends_with_a_result_per_image(
    client, aws, stage
):
    images = [
        {"name": "my cat.png", "content_type": "image/png", "size": len(PNG)},
        {"name": "Straße/ünïcode.jpg", "content_type": "image/jpeg", "size": len(JPEG)},
    ]

    created = post_json(client, "/jobs", {"images": images})

    assert created.status_code == 201
    job = created.json_body
    assert [u["name"] for u in job["uploads"]] == ["my cat.png", "Straße/ünïcode.jpg"]
    for upload, body in zip(job["uploads"], [PNG, JPEG], strict=True):
        assert upload["method"] == "POST"
        sent = requests.post(upload["url"], data=upload["fields"], files={"file": body})
        assert sent.status_code in (200, 204)

    pending = client.http.get(f"/jobs/{job['job_id']}").json_body
    assert (pending["total"], pending["pending"]) == (2, 2)

    StandInWorker(aws, stage).step()
    finished = client.http.get(f"/jobs/{job['job_id']}").json_body

    assert (finished["done"], finished["failed"], finished["pending"]) == (2, 0, 0)
    assert [r["name"] for r in finished["results"]] == ["my cat.png", "Straße/ünïcode.jpg"]
    assert {r["label"] for r in finished["results"]} == {"tabby"}


def test_a_job_keeps_names_out_of_keys(client):
    job = post_json(client, "/jobs", {"images": [
        {"name": "../../etc/passwd.png", "content_type": "image/png", "size": 10}
    ]}).json_body

    (upload,) = job["uploads"]
    assert upload["fields"]["key"] == f"jobs/{job['job_id']}/{upload['image_id']}"


def test_names_are_echoed_back_as_data_whatever_they_hold(client, aws, stage):
    # GIVEN names that would be trouble as paths or as headers
    names = ["../../etc/passwd.png", "evil\r\nX-Injected: yes.png", "名前 ünï ☃.png",
             "x" * 255]
    job = post_json(client, "/jobs", {"images": [
        {"name": n, "content_type": "image/png", "size": len(PNG)} for n in names]}).json_body
    # WHEN they are uploaded and classified
    for upload in job["uploads"]:
        assert upload["fields"]["key"] == f"jobs/{job['job_id']}/{upload['image_id']}"
        sent = requests.post(upload["url"], data=upload["fields"], files={"file": PNG})
        assert sent.status_code in (200, 204)
    StandInWorker(aws, stage).step()
    # THEN each result carries its name exactly, and no header grew from one
    finished = client.http.get(f"/jobs/{job['job_id']}").json_body
    assert [r["name"] for r in finished["results"]] == names
    head = aws.s3.head_object(Bucket=stage.resources.input_bucket,
                              Key=f"jobs/{job['job_id']}/{job['uploads'][1]['image_id']}")
    assert "x-injected" not in {k.lower() for k in head["ResponseMetadata"]["HTTPHeaders"]}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"images": [{"name": "n" * 256, "content_type": "image/png", "size": 10}]},
         400, "BadRequest"),
        ({"images": [{"name": "a.svg", "content_type": "image/svg+xml", "size": 10}]},
         415, "UnsupportedMediaType"),
        ({"images": [{"name": "a.png", "content_type": "image/png", "size": MAX_IMAGE_BYTES + 1}]},
         413, "PayloadTooLarge"),
        ({"images": []}, 400, "BadRequest"),
        (["not", "an", "object"], 400, "BadRequest"),
    ],
)
def test_a_bad_job_is_refused_with_a_json_error(client, body, status, code):
    assert_error(post_json(client, "/jobs", body), status, code)


def test_a_body_that_is_not_json_is_a_bad_request(client):
    response = client.http.post(
        "/jobs", headers={"Content-Type": "application/json"}, body=b"{nope"
    )

    assert_error(response, 400, "BadRequest")


def test_a_bad_setting_is_the_operators_error_not_the_clients(client, monkeypatch, caplog):
    # GIVEN a Lambda whose stage sets an unusable value
    monkeypatch.setenv(c.TOP_K, "zero")
    wiring.reset()
    # WHEN a client asks for anything that needs the settings
    response = client.http.get("/jobs/0123456789abcdef0123")
    # THEN it is told 500, not 4xx, with the variable named, and the operator's log says so
    assert_error(response, 500, "ConfigurationError")
    assert c.TOP_K in response.json_body["Message"]
    assert any(c.TOP_K in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


@pytest.mark.parametrize("path", ["/jobs/0123456789abcdef0123", "/jobs/..%2Fetc"])
def test_an_unknown_job_is_404(client, path):
    assert_error(client.http.get(path), 404, "JobNotFound")


@pytest.mark.parametrize("path", ["/images/0123456789abcdef0123-00000", "/images/whatever"])
def test_an_unknown_image_is_404(client, path):
    assert_error(client.http.get(path), 404, "ImageNotFound")


def test_classify_answers_202_with_a_status_url_until_the_result_is_there(client, aws, stage):
    response = client.http.post(
        "/classify?name=cat.png", headers={"Content-Type": "image/png"}, body=PNG
    )

    assert response.status_code == 202
    image_id = response.json_body["image_id"]
    status_url = urljoin("/classify", response.json_body["status_url"])
    assert status_url == f"/images/{image_id}"
    assert client.http.get(status_url).status_code == 202

    StandInWorker(aws, stage).step()
    done = client.http.get(status_url)

    assert done.status_code == 200
    assert (done.json_body["name"], done.json_body["label"]) == ("cat.png", "tabby")


def test_classify_waits_for_a_worker_that_answers_in_time(client, aws, stage, monkeypatch):
    monkeypatch.setenv(c.CLASSIFY_TIMEOUT, "10")
    wiring.reset()
    worker = StandInWorker(aws, stage)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            worker.step()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        response = client.http.post("/classify", headers={"Content-Type": "image/jpeg"},
                                    body=JPEG)
    finally:
        stop.set()
        thread.join()

    assert response.status_code == 200
    assert response.json_body["label"] == "tabby"


def test_classify_waits_as_long_as_the_client_asks_within_the_gateways_limit(
        client, aws, stage):
    # GIVEN a stage that waits 0.2 s by default, and a worker that answers after a poll
    worker = StandInWorker(aws, stage)
    stop = threading.Event()

    def run() -> None:
        stop.wait(1.0)  # later than the stage's default wait
        while not stop.wait(0.05):
            worker.step()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        # WHEN a client asks to wait up to 10 s
        response = client.http.post("/classify?wait=10",
                                    headers={"Content-Type": "image/png"}, body=PNG)
    finally:
        stop.set()
        thread.join()
    # THEN it gets the result, not a 202
    assert response.status_code == 200
    assert response.json_body["label"] == "tabby"


def test_classify_with_no_wait_answers_202_at_once(client):
    response = client.http.post("/classify?wait=0", headers={"Content-Type": "image/png"},
                                body=PNG)

    assert response.status_code == 202
    assert response.json_body["status_url"].startswith("images/")
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("wait", ["29", "-1", "soon", "nan"])
def test_classify_refuses_a_wait_outside_what_the_gateway_allows(client, wait):
    response = client.http.post(f"/classify?wait={wait}",
                                headers={"Content-Type": "image/png"}, body=PNG)

    assert_error(response, 400, "BadRequest")
    assert "wait" in response.json_body["Message"]


@pytest.mark.parametrize("field", ["file", "myfile"])
def test_classify_takes_a_multipart_file_field_of_any_name(client, aws, field):
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
        f"filename=\"snap shot.png\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode() + PNG + f"\r\n--{boundary}--\r\n".encode()

    response = client.http.post(
        "/classify",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        body=body,
    )

    assert response.status_code == 202
    image_id = response.json_body["image_id"]
    job_id = image_id.rsplit("-", 1)[0]
    stored = aws.s3.get_object(
        Bucket=wiring.services().resources.input_bucket, Key=f"jobs/{job_id}/{image_id}"
    )
    assert stored["Body"].read() == PNG
    assert stored["ContentType"] == "image/png"


def test_classify_trusts_the_bytes_over_a_generic_content_type(client, aws):
    response = client.http.post(
        "/classify", headers={"Content-Type": "application/octet-stream"}, body=JPEG
    )

    assert response.status_code == 202
    image_id = response.json_body["image_id"]
    stored = aws.s3.head_object(
        Bucket=wiring.services().resources.input_bucket,
        Key=f"jobs/{image_id.rsplit('-', 1)[0]}/{image_id}",
    )
    assert stored["ContentType"] == "image/jpeg"


def test_classify_refuses_what_is_not_an_image(client):
    assert_error(
        client.http.post("/classify", headers={"Content-Type": "image/png"}, body=b"hello"),
        415, "UnsupportedMediaType",
    )
    assert_error(
        client.http.post("/classify", headers={"Content-Type": "text/plain"}, body=b"hello"),
        415, "UnsupportedMediaType",
    )


def test_classify_refuses_an_image_over_the_limit(client):
    response = client.http.post(
        "/classify", headers={"Content-Type": "image/png"}, body=PNG + b"\x00" * MAX_IMAGE_BYTES
    )

    assert_error(response, 413, "PayloadTooLarge")


def test_fleet_shows_queue_instances_and_the_last_decision(client, stage):
    client.lambda_.invoke("scale", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    ))

    fleet = client.http.get("/fleet").json_body

    assert fleet["queue"] == {"visible": 0, "in_flight": 0, "delayed": 0, "dead_letter": 0,
                              "ingesting": 0}
    assert sorted(i["id"] for i in fleet["instances"]) == sorted(stage.worker_instance_ids)
    assert {i["state"] for i in fleet["instances"]} == {"stopped"}
    assert fleet["last_decision"]["desired"] == 0


def test_the_web_page_is_served_and_uses_relative_urls(client):
    response = client.http.get("/")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert '<input id="files" type="file"' in page
    assert 'fetch("/' not in page
