"""The worker's pipeline (``Worker.run``) against the in-process emulator: prefetching,
the heartbeat on long batches, SIGTERM with batches in hand, and the metrics it publishes.

A ``GatedEngine`` wraps the real engine and holds each batch at the start of inference
until the test lets it go, so a test can stop the worker mid-batch, with the next batch
already prefetched, without depending on how fast this machine is.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from skyclass.runtime.metrics import ERRORS, NAMESPACE, MetricsPublisher, read_throughput
from testbed.waiting import eventually
from tests.support.worker import GatedEngine, Running, World, a_job


@pytest.fixture
def gated(engine):
    return GatedEngine(engine)


@pytest.fixture
def world(aws, stage, settings, gated):
    return World(aws, stage, settings, gated)


def test_sigterm_mid_batch_with_a_batch_prefetched_loses_no_image(world, gated):
    # GIVEN twelve queued images and a worker with batches of four, held mid-inference
    # on its first batch while it has prefetched the second and received the third
    uploads = a_job(world, 12)
    world.queue.send([message for message, _ in uploads])
    running = Running(world.worker(batch_size=4))
    assert gated.started.wait(30)
    eventually(lambda: world.queue.depths().in_flight == 12, 30,
               "the first batch in inference, the next prefetched, the third received")

    # WHEN it is told to stop, and the batch in inference completes
    running.stop_event.set()
    gated.go.set()
    running.stop()

    # THEN the batch in hand has its results, and the prefetched images are back in the
    # queue at once, not hidden until a visibility timeout runs out
    answered = [m for m, _ in uploads if world.result(m)]
    assert len(answered) == 4
    depths = world.queue.depths()
    assert (depths.visible, depths.in_flight) == (8, 0)

    # AND once another worker runs, every image has its one result with its label
    world.drain(batch_size=32)
    assert [world.result(m)["label"] for m, _ in uploads] == [label for _, label in uploads]
    assert world.queue.depths().backlog == 0


def test_a_batch_that_runs_past_the_visibility_timeout_is_not_handed_to_another_worker(
    world, gated, monkeypatch
):
    # GIVEN a worker whose messages are hidden for 3 s at a time, on a batch that takes
    # longer than that (held at the gate)
    uploads = a_job(world, 3)
    world.queue.send([message for message, _ in uploads])
    beats = _count_heartbeats(world.queue, monkeypatch)
    running = Running(world.worker(visibility_timeout=3))
    assert gated.started.wait(30)

    # WHEN its heartbeat has beaten seven times (at least a second apart, a third of the
    # timeout: past twice the visibility timeout since the batch was received)
    eventually(lambda: beats["held"] >= 7, 60, "seven heartbeats")

    # THEN another worker finds nothing to take: the images are still in hand
    assert world.queue.receive(10, wait_seconds=0, visibility_timeout=0) == []
    depths = world.queue.depths()
    assert (depths.visible, depths.in_flight) == (0, 3)
    # AND when the batch completes, each image has its result and the queue is empty
    gated.go.set()
    eventually(lambda: all(world.result(m) for m, _ in uploads), 30, "every result")
    running.stop()
    assert [world.result(m)["label"] for m, _ in uploads] == [label for _, label in uploads]
    assert world.queue.depths().backlog == 0


def _count_heartbeats(queue, monkeypatch) -> dict[str, int]:
    """Counts the heartbeat's extensions of held messages to a full timeout (a clock the
    test waits on, not an outcome it asserts)."""
    beats = {"held": 0}
    extend = queue.change_visibility

    def counted(received, timeout):
        if timeout > 0 and threading.current_thread().name == "heartbeat":
            beats["held"] += 1
        return extend(received, timeout)

    monkeypatch.setattr(queue, "change_visibility", counted)
    return beats


def test_the_pipeline_answers_a_backlog_in_order_of_batches_with_the_right_labels(
    world, gated
):
    # GIVEN a backlog of 25 images, including one that is not an image
    gated.go.set()
    uploads = a_job(world, 24)
    bad = world.upload("incoming/notes.jpg", b"not a picture at all")
    world.queue.send([message for message, _ in uploads] + [bad])

    # WHEN a worker with batches of 8 runs until all are answered
    running = Running(world.worker(batch_size=8))
    eventually(lambda: world.result(bad) and all(world.result(m) for m, _ in uploads), 30,
               "every result")
    running.stop()

    # THEN every good image has its label, the bad one a reason, and the queue is empty
    assert [world.result(m)["label"] for m, _ in uploads] == [label for _, label in uploads]
    assert world.result(bad)["error"].startswith("not an image")
    assert world.queue.depths().backlog == 0


def test_the_worker_publishes_images_errors_and_busy_time_and_flushes_on_stop(
    world, gated, aws, settings
):
    # GIVEN a worker that publishes metrics (rarely: only the flush at stop sends them)
    gated.go.set()
    uploads = a_job(world, 5)
    bad = world.upload("incoming/broken.jpg", b"\xff\xd8 truncated")
    world.queue.send([message for message, _ in uploads] + [bad])
    metrics = MetricsPublisher(aws.cloudwatch, settings.stage, flush_every=3600)

    # WHEN it answers them and is stopped
    running = Running(world.worker(metrics=metrics))
    eventually(lambda: world.result(bad) and all(world.result(m) for m, _ in uploads), 30,
               "every result")
    running.stop()

    # THEN CloudWatch has the six images answered, one error, and some busy time
    throughput = read_throughput(aws.cloudwatch, settings.stage)
    assert throughput.images == 6
    assert throughput.busy_seconds > 0
    now = datetime.now(UTC)
    errors = aws.cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=ERRORS,
        Dimensions=[{"Name": "Stage", "Value": settings.stage}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1),
        Period=600, Statistics=["Sum"])
    assert sum(p["Sum"] for p in errors["Datapoints"]) == 1
