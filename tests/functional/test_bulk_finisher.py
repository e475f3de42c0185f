"""An ended job's completion against the in-process emulator: the export in both formats
from the ledger, the EventBridge event on the stage's bus, and the signed callback,
retried while it fails."""

from __future__ import annotations

import csv
import functools
import io
import json

import pytest

from skyclass.runtime.bulk.finisher import Finisher
from skyclass.runtime.bulk.jobstore import JobStore
from skyclass.runtime.bulk.ledger import Answer, Ledger
from skyclass.runtime.bulk.notify import SIGNATURE_HEADER, post_callback, verify_signature
from skyclass.runtime.bulk.tasks import Task, TaskQueues
from skyclass.runtime.contracts import (
    Prediction,
    WorkMessage,
    done_result,
    failed_result,
    image_id_for,
    job_input_key,
)
from tests.support.callbacks import CallbackReceiver

JOB = "0123456789abcdef0123"
TOP = [Prediction("tabby", "n02123045", 0.75), Prediction("lynx", "n02127052", 0.2)]


class World:
    def __init__(self, aws, stage, settings):
        self.aws = aws
        self.stage = stage
        dynamodb = aws.client("dynamodb")
        self.jobs = JobStore(dynamodb, stage.bulk.jobs_table)
        self.ledger = Ledger(dynamodb, stage.bulk.jobs_table)
        self.tasks = TaskQueues(aws.sqs, stage.resources.stage,
                                stage.resources.queue_url)
        self.settings = settings.replace(top_k=2)

    def ended_job(self, images: int, callback_url: str | None = None) -> None:
        """A job of ``images`` uploads, every one answered (the last failed), complete."""
        self.jobs.create(JOB, "upload", total=images, sealed=True, callback_url=callback_url)
        answers = []
        for index in range(images):
            image_id = image_id_for(JOB, index)
            message = WorkMessage(bucket="in", key=job_input_key(JOB, image_id), job_id=JOB,
                                  image_id=image_id, name=f"photo, \"{index}\".jpg", size=1,
                                  etag="e")
            result = (failed_result(message, "not an image", model="m", worker="w")
                      if index == images - 1 else
                      done_result(message, TOP, model="m", worker="w", timings_ms={}))
            answers.append(Answer(JOB, image_id, result, message.key))
        self.ledger.record(answers)
        assert self.jobs.complete(JOB)

    def finisher(self, **kwargs) -> Finisher:
        return Finisher(self.aws.s3, self.aws.client("events"), self.aws.client("ssm"),
                        self.jobs, self.ledger, self.tasks,
                        output_bucket=self.stage.resources.output_bucket,
                        bus=self.stage.bulk.event_bus, settings=self.settings, **kwargs)

    def export(self, fmt: str) -> str:
        return self.aws.s3.get_object(Bucket=self.stage.resources.output_bucket,
                                      Key=f"exports/{JOB}.{fmt}")["Body"].read().decode()

    def subscribe(self) -> str:
        """A queue that receives the bus's job events, as a subscriber would set up."""
        sqs, events = self.aws.sqs, self.aws.client("events")
        url = sqs.create_queue(QueueName="job-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        bus = self.stage.bulk.event_bus
        events.put_rule(Name="done", EventBusName=bus, EventPattern=json.dumps(
            {"source": ["skyclass"], "detail-type": ["skyclass Job Completed"]}))
        events.put_targets(Rule="done", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
        return url

    def secret(self) -> str:
        return self.aws.client("ssm").get_parameter(
            Name=self.stage.bulk.callback_secret_parameter, WithDecryption=True)[
            "Parameter"]["Value"]


@pytest.fixture
def world(aws, stage, settings):
    return World(aws, stage, settings)


def test_an_ended_job_is_exported_announced_and_called_back_signed(world):
    with CallbackReceiver(fail_first=1) as receiver:
        # GIVEN a complete job of 25 images with a callback, and a subscriber to the bus
        world.ended_job(25, callback_url=receiver.url)
        events = world.subscribe()
        # WHEN its completion task runs
        report = world.finisher().run(Task("finish", JOB))
    # THEN the export has a row per image in each format
    assert report.exported == 25 and report.finished
    lines = [json.loads(line) for line in world.export("jsonl").splitlines()]
    assert [r["image_id"] for r in lines] == [image_id_for(JOB, i) for i in range(25)]
    rows = list(csv.DictReader(io.StringIO(world.export("csv"))))
    assert len(rows) == 25
    assert (rows[0]["name"], rows[0]["label_1"], rows[0]["score_1"], rows[0]["label_2"]) == (
        'photo, "0".jpg', "tabby", "0.750000", "lynx")
    assert (rows[-1]["status"], rows[-1]["error"], rows[-1]["label_1"]) == (
        "failed", "not an image", "")
    # AND the event reached the subscriber with the counts and the export's location
    [message] = world.aws.sqs.receive_message(QueueUrl=events).get("Messages", [])
    event = json.loads(message["Body"])
    assert event["detail-type"] == "skyclass Job Completed"
    assert event["detail"]["counts"]["done"] == 24 and event["detail"]["counts"]["failed"] == 1
    assert event["detail"]["export"]["csv"].endswith(f"exports/{JOB}.csv")
    # AND the callback was retried after a 503, and carries the same summary, signed
    assert len(receiver.calls) == 2
    call = receiver.calls[-1]
    assert call.summary == event["detail"]
    assert verify_signature(world.secret(), call.headers[SIGNATURE_HEADER], call.body)
    assert not verify_signature("another key", call.headers[SIGNATURE_HEADER], call.body)
    # AND the job records it all, so a second delivery of the task does nothing
    job = world.jobs.get(JOB)
    assert (job.callback["status"], job.finish, job.active) == ("delivered", "finished", False)
    assert world.finisher().run(Task("finish", JOB)).exported is None


def test_a_callback_that_keeps_failing_is_tried_again_later(world):
    # GIVEN a job whose callback URL answers nothing
    world.ended_job(2, callback_url="http://127.0.0.1:9/nobody-listens")
    no_pause = {"post": functools.partial(post_callback, attempts=2, pause_s=0)}
    # WHEN the completion task runs
    report = world.finisher(**no_pause).run(Task("finish", JOB))
    # THEN the export and event are done, the callback is to be tried again with a
    # delayed task, and the job's view says so
    assert report.exported == 2 and report.event and report.callback == "retrying"
    assert not report.finished
    job = world.jobs.get(JOB)
    assert job.view()["callback"]["status"] == "retrying"
    assert "could not connect" in job.view()["callback"]["last_error"]
    attributes = world.aws.sqs.get_queue_attributes(
        QueueUrl=world.tasks.url("finish"), AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    # WHEN the last round fails too
    last = world.finisher(**no_pause).run(Task("finish", JOB, attempt=6))
    # THEN it gives up, says why, and the job's work is finished
    assert last.callback == "failed" and last.finished and last.exported is None
