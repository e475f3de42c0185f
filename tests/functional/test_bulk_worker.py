"""The worker's side of bulk jobs, with the small real model against the in-process
emulator: each image of a job is classified and counted once however often its message
arrives, and a cancelled job's queued messages are dropped without inference."""

from __future__ import annotations

from skyclass.runtime.bulk.jobstore import JobStore
from skyclass.runtime.bulk.ledger import Ledger
from skyclass.runtime.bulk.tasks import Task
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.contracts import image_id_for, job_input_key, new_job_id
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes
from tests.support.worker import World


class CountingEngine:
    """The real engine, counting the images it is asked to classify."""

    def __init__(self, real):
        self._engine = real
        self.classifier = real.classifier
        self.images = 0

    def predict(self, pixels):
        self.images += len(pixels)
        return self._engine.predict(pixels)


def tracked_job(world: World, stage, count: int):
    """A job of ``count`` uploads in the job store, uploaded; their work messages."""
    dynamodb = world.aws.client("dynamodb")
    table = stage.bulk.jobs_table
    job_id = new_job_id()
    entries = [{"image_id": image_id_for(job_id, i), "name": f"{i}.jpg",
                "key": job_input_key(job_id, image_id_for(job_id, i))} for i in range(count)]
    Ledger(dynamodb, table).declare(job_id, entries)
    JobStore(dynamodb, table).create(job_id, "upload", total=count, sealed=True)
    messages = [world.upload(e["key"], image_bytes(CLASSES[i % 3], HELD_OUT_SEED + i))
                for i, e in enumerate(entries)]
    return job_id, messages


def run_worker(world: World, stage, counting: CountingEngine, **settings) -> None:
    from ec2_worker.worker import Worker

    worker = Worker(queue=world.queue, results=world.results, s3=world.aws.s3, engine=counting,
                    settings=world.settings.replace(**settings),
                    input_bucket=world.resources.input_bucket, worker_id="i-test",
                    poll_seconds=0,
                    tracker=JobTracker.for_stage(world.aws, stage.resources))
    while worker.process_batch():
        pass


def test_redelivered_messages_are_classified_and_counted_once(world, stage):
    # GIVEN a tracked job of five images whose first two messages arrive twice more
    job_id, messages = tracked_job(world, stage, 5)
    world.queue.send(messages + messages[:2] + messages[:2])
    counting = CountingEngine(world.engine)
    # WHEN a worker drains the queue in batches of three
    run_worker(world, stage, counting, batch_size=3)
    # THEN each image has its result, was classified once, and counts once
    assert all(world.result(m)["status"] == "done" for m in messages)
    assert counting.images == 5
    job = JobStore(world.aws.client("dynamodb"), stage.bulk.jobs_table).get(job_id)
    assert (job.count("done"), job.count("failed"), job.state) == (5, 0, "complete")
    assert job.view()["duplicates_dropped"] == 4
    # AND the job's completion is queued once, and no message is left
    tasks = world.aws.sqs.receive_message(QueueUrl=stage.bulk.finish_queue_url,
                                          MaxNumberOfMessages=10).get("Messages", [])
    assert [Task.from_json(t["Body"]).job_id for t in tasks] == [job_id]
    assert world.queue.depths().backlog == 0


def test_a_cancelled_jobs_queued_messages_are_dropped_without_inference(world, stage):
    # GIVEN a tracked job of four queued images, cancelled before any worker came
    job_id, messages = tracked_job(world, stage, 4)
    world.queue.send(messages)
    store = JobStore(world.aws.client("dynamodb"), stage.bulk.jobs_table)
    store.cancel(job_id)
    counting = CountingEngine(world.engine)
    # WHEN a worker drains the queue
    run_worker(world, stage, counting)
    # THEN nothing was classified or written, the messages are gone, and the job knows
    # the workers dropped them
    assert counting.images == 0
    assert all(world.result(m) is None for m in messages)
    assert world.queue.depths().backlog == 0
    job = store.get(job_id)
    assert (job.count("done"), job.count("dropped"), job.view()["cancelled"]) == (0, 4, 4)
