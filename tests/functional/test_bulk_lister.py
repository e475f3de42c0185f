"""The lister against the in-process emulator: a source prefix listed a page at a time
into the work queue, every image once, what is not an image counted, across hand-offs,
crashes at any step, cancellation and a source that cannot be listed."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from app import app
from skyclass.runtime.bulk.jobstore import JobStore
from skyclass.runtime.bulk.lister import Lister
from skyclass.runtime.bulk.tasks import Task, TaskQueues
from skyclass.runtime.contracts import SOURCE, WorkMessage
from skyclass.runtime.queue import WorkQueue
from tests.support.paths import REPO_ROOT

SOURCE_BUCKET = "photo-archive"
MISSING_BUCKET = "no-such-archive"
IMAGES = 37


@pytest.fixture
def settings(monkeypatch):
    """The stage reads two buckets in place (one of which does not exist): in the
    environment too, where IAM's grants for them come from."""
    from skyclass.runtime.settings import Settings

    monkeypatch.setenv("SKYCLASS_SOURCE_BUCKETS", f"{SOURCE_BUCKET},{MISSING_BUCKET}")
    return Settings.from_env({}, max_workers=3, list_page_size=7, max_image_bytes=1000)


@pytest.fixture
def archive(aws, stage):
    """A source bucket: 37 images under photos/ among five things that are not (text, a
    folder marker, empty, too big, archived), and others elsewhere."""
    s3 = aws.s3
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    for i in range(IMAGES):
        s3.put_object(Bucket=SOURCE_BUCKET, Key=f"photos/{i % 4}/img-{i:03d}.JPG", Body=b"x" * 50)
    s3.put_object(Bucket=SOURCE_BUCKET, Key="photos/notes.txt", Body=b"text")
    s3.put_object(Bucket=SOURCE_BUCKET, Key="photos/sub/", Body=b"")
    s3.put_object(Bucket=SOURCE_BUCKET, Key="photos/empty.png", Body=b"")
    s3.put_object(Bucket=SOURCE_BUCKET, Key="photos/huge.png", Body=b"x" * 2000)
    s3.put_object(Bucket=SOURCE_BUCKET, Key="photos/archived.jpg", Body=b"x" * 50,
                  StorageClass="DEEP_ARCHIVE")
    s3.put_object(Bucket=SOURCE_BUCKET, Key="elsewhere/other.jpg", Body=b"x" * 50)
    return stage


class World:
    def __init__(self, aws, stage, settings):
        self.aws = aws
        self.stage = stage
        self.settings = settings
        self.store = JobStore(aws.client("dynamodb"), stage.bulk.jobs_table)
        self.tasks = TaskQueues(aws.sqs, stage.resources.stage, stage.resources.queue_url)
        self.queue = WorkQueue(aws.sqs, stage.resources.queue_url)

    def job(self, prefix: str = "photos/", bucket: str = SOURCE_BUCKET) -> str:
        job_id = "0123456789abcdef0123"
        self.store.create(job_id, "source", sealed=False, source_bucket=bucket,
                          source_prefix=prefix)
        return job_id

    def lister(self, queue=None) -> Lister:
        return Lister(self.aws.s3, self.store, queue or self.queue, self.tasks, self.settings)

    def queued(self) -> list[WorkMessage]:
        found = []
        while True:
            batch = self.queue.receive(10, wait_seconds=0)
            if not batch:
                return found
            found += [WorkMessage.from_json(r.body) for r in batch]
            self.queue.delete(batch)

    def tasks_in(self, kind: str) -> list[Task]:
        messages = self.aws.sqs.receive_message(QueueUrl=self.tasks.url(kind),
                                                MaxNumberOfMessages=10).get("Messages", [])
        return [Task.from_json(m["Body"]) for m in messages]


@pytest.fixture
def world(aws, archive, settings):
    return World(aws, archive, settings)


def budget(steps: int):
    """An invocation's remaining time that runs out after ``steps`` looks at the clock."""
    calls = iter(range(steps, -1, -1))
    return lambda: 100.0 if next(calls, 0) > 0 else 0.0


def test_a_prefix_is_listed_into_one_message_per_image_across_hand_offs(world):
    job_id = world.job()
    # WHEN the lister runs in short invocations, each handing on to the next
    outcomes = []
    for _ in range(50):
        report = world.lister().run(job_id, budget(3))
        outcomes.append(report.outcome)
        if report.outcome == "listed":
            break
    # THEN it took several invocations, each handing the listing on with a task
    assert outcomes.count("handed on") >= 3 and outcomes[-1] == "listed"
    assert len(world.tasks_in("list")) >= 1
    # AND every image under the prefix is queued once, numbered in listing order
    messages = world.queued()
    keys = sorted(m.key for m in messages)
    assert len(messages) == len(set(keys)) == IMAGES
    assert all(m.origin == SOURCE and m.bucket == SOURCE_BUCKET for m in messages)
    by_index = sorted(messages, key=lambda m: m.image_id)
    assert [m.key for m in by_index] == keys
    assert by_index[0].image_id == f"{job_id}-00000"
    assert by_index[0].result_key == f"results/{job_id}/{job_id}-00000.json"
    assert by_index[0].name == "0/img-000.JPG"
    # AND the job counts what it listed, queued and skipped, and is sealed
    view = world.store.get(job_id).view()
    assert (view["listed"], view["queued"], view["total"], view["listing"]) == (
        IMAGES + 5, IMAGES, IMAGES, False)
    assert view["skipped"] == {"total": 5, "not_an_image": 2, "size": 2, "archived": 1}


class DyingQueue(WorkQueue):
    """The work queue of an invocation that dies at its ``dies_at``-th send, before or
    after the send reached SQS."""

    def __init__(self, queue: WorkQueue, dies_at: int, after_send: bool):
        super().__init__(queue._sqs, queue.url)
        self.sends = 0
        self.dies_at = dies_at
        self.after_send = after_send

    def send(self, messages):
        self.sends += 1
        if self.sends == self.dies_at and not self.after_send:
            raise SystemExit("killed before the send")
        super().send(messages)
        if self.sends == self.dies_at:
            raise SystemExit("killed after the send")


@pytest.mark.parametrize("dies_at", [1, 2, 4])
@pytest.mark.parametrize("after_send", [False, True])
def test_a_listing_killed_at_any_step_resumes_losing_no_key(world, dies_at, after_send):
    job_id = world.job()
    # GIVEN an invocation killed at a step, before or after its send reached SQS
    with pytest.raises(SystemExit):
        world.lister(DyingQueue(world.queue, dies_at, after_send)).run(job_id, budget(1000))
    # WHEN the task comes back and a new invocation lists on
    report = world.lister().run(job_id, budget(1000))
    assert report.outcome == "listed"
    # THEN every image is queued; the step in flight was sent again, so only a step
    # killed after its send reached SQS has a second copy (at most ten keys)
    messages = world.queued()
    assert {m.key for m in messages} == {f"photos/{i % 4}/img-{i:03d}.JPG"
                                         for i in range(IMAGES)}
    assert 1 <= report.resent <= 10
    assert len(messages) - IMAGES == (report.resent if after_send else 0)
    # AND each image kept one number, whichever copy a worker gets
    ids = {}
    for m in messages:
        assert ids.setdefault(m.key, m.image_id) == m.image_id
    # AND the counts are exact
    view = world.store.get(job_id).view()
    assert (view["queued"], view["listed"], view["resent"]) == (
        IMAGES, IMAGES + 5, report.resent)


def test_a_cancelled_job_stops_listing(world):
    job_id = world.job()
    world.lister().run(job_id, budget(2))
    world.store.cancel(job_id)
    report = world.lister().run(job_id, budget(1000))
    assert report.outcome == "nothing to do"
    assert world.store.get(job_id).view()["listing"] is False


def test_a_source_that_cannot_be_listed_fails_the_job_with_the_reason(world):
    job_id = world.job(bucket=MISSING_BUCKET)
    report = world.lister().run(job_id, budget(1000))
    assert report.outcome == "failed"
    job = world.store.get(job_id)
    assert job.state == "failed" and "NoSuchBucket" in job.error
    assert [t.job_id for t in world.tasks_in("finish")] == [job_id]


def test_an_empty_prefix_completes_the_job_at_once(world):
    job_id = world.job(prefix="nothing-here/")
    assert world.lister().run(job_id, budget(1000)).outcome == "listed"
    assert world.store.get(job_id).state == "complete"
    assert [t.job_id for t in world.tasks_in("finish")] == [job_id]


def test_post_jobs_with_a_source_starts_the_listing_through_the_list_handler(
    world, lambda_env, monkeypatch
):
    monkeypatch.setenv("SKYCLASS_MAX_IMAGE_BYTES", "1000")
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as client:
        # GIVEN a job over the prefix, created through the API
        created = client.http.post("/jobs", headers={"Content-Type": "application/json"},
                                   body=json.dumps({"source": f"s3://{SOURCE_BUCKET}/photos/"}))
        assert created.status_code == 201, created.json_body
        job = created.json_body
        assert (job["state"], job["listing"], job["source"]) == (
            "running", True, f"s3://{SOURCE_BUCKET}/photos/")
        # WHEN its listing task is handed to the list handler, as Lambda would
        [task] = world.tasks_in("list")
        event = client.events.generate_sqs_event(message_bodies=[task.to_json()],
                                                 queue_name="skyclass-local-list")
        client.lambda_.invoke("on_list_task", event)
        # THEN the job's images are queued
        status = client.http.get(f"/jobs/{job['job_id']}").json_body
        assert status["queued"] == IMAGES and status["pending"] == IMAGES
