"""Messages that keep failing land in the dead-letter queue, are counted where an
operator looks (``GET /fleet``, ``skyclass status``), and ``skyclass redrive`` sends them
back unchanged after a fix: here the worker itself puts them there, for real reasons.

The stage's queue dead-letters a message after its first receive (``max_receives`` 1),
so the whole journey takes one back-off (5 s), not five."""

from __future__ import annotations

import pytest

from skyclass.operations.cli import main
from skyclass.operations.cli.fleet import render_fleet
from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from testbed.waiting import eventually
from tests.support.iam.components import without
from tests.support.messages import job_message
from tests.support.worker import a_job


@pytest.fixture
def settings():
    return Settings.from_env({}, max_workers=3, max_receives=1)


def test_poison_goes_worker_to_dead_letters_to_fleet_to_redrive_to_done(
        world, client, iam_check, capsys):
    # GIVEN a queued image, and a body that is no work message at all
    [(image, label)] = a_job(world, 1)
    world.queue.send([image])
    world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody="{not json")
    mark = iam_check.mark()
    # WHEN workers whose role may not write results (a broken policy) keep at them
    with iam_check.generating(without("worker", "s3:PutObject")):
        def dead_lettered() -> bool:
            world.drain(visibility_timeout=1)
            return world.queue.depths().dead_letter == 2

        eventually(dead_lettered, 60, "both messages in the dead-letter queue", period=0.5)
    # THEN the image has no result, and the refusal was the worker's PutObject
    assert world.result(image) is None
    refused = {(f.component, d["action"]) for f in iam_check.take(mark) for d in f.denied}
    assert refused == {("worker", "s3:PutObject")}
    # AND GET /fleet and `skyclass status` count both dead letters
    fleet = client.http.get("/fleet").json_body
    assert fleet["queue"]["dead_letter"] == 2
    assert "2 dead letters" in render_fleet(fleet)

    # WHEN the policy is fixed and the operator runs `skyclass redrive`
    assert main(["redrive"]) == 0
    # THEN both are back in the work queue, unchanged, and the dead-letter queue is empty
    assert "moved 2 message(s)" in capsys.readouterr().out
    depths = world.queue.depths()
    assert (depths.visible, depths.dead_letter) == (2, 0)
    # AND a worker answers the image: done, with its label
    world.drain()
    assert world.result(image)["status"] == "done"
    assert world.result(image)["label"] == label


def test_redrive_sends_back_the_message_as_it_was(aws, stage):
    r = stage.resources
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    message = job_message(r.input_bucket)
    aws.sqs.send_message(QueueUrl=r.dlq_url, MessageBody=message.to_json())
    assert queue.redrive() == 1
    back = queue.receive(10, wait_seconds=0)
    assert [WorkMessage.from_json(m.body) for m in back] == [message]
    assert queue.depths().dead_letter == 0


def test_redrive_respects_a_limit(aws, stage):
    r = stage.resources
    for _ in range(3):
        aws.sqs.send_message(QueueUrl=r.dlq_url, MessageBody=job_message(r.input_bucket).to_json())
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    assert queue.redrive(limit=2) == 2
    assert queue.depths().dead_letter == 1
