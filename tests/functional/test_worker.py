"""The worker against the in-process emulator with a small real model: every image that
is queued ends with exactly one result object, right label or a clear reason; with each
engine that can run the model."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from skyclass.runtime.contracts import WorkMessage, image_id_for, job_input_key, new_job_id
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, LABELS, image_bytes
from testbed.waiting import eventually
from tests.support.corpus import corpus
from tests.support.engines import ENGINES, engine_for
from tests.support.paths import REPO_ROOT
from tests.support.worker import WORKER_ID, a_job


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, tiny_model):
    """Each engine in turn (TensorFlow, OpenVINO, ONNX Runtime), as the worker builds it;
    the functional tier's ``world`` runs on it here."""
    return engine_for(tiny_model, request.param)


def test_every_queued_image_gets_a_done_result_with_its_label(world):
    # GIVEN a job of held-out images and drop-folder images in other formats, all queued
    uploads = a_job(world, 7)
    for index, fmt in enumerate(["PNG", "WEBP", "GIF"]):
        label = CLASSES[index]
        data = image_bytes(label, HELD_OUT_SEED + 50 + index, fmt=fmt)
        uploads.append((world.upload(f"incoming/holiday/{label} {index}.{fmt.lower()}", data),
                        label))
    world.queue.send([message for message, _ in uploads])

    # WHEN a worker runs until the queue is empty
    batches = world.drain(batch_size=4)

    # THEN each image has one result, done, with the label its picture shows
    assert batches == 3
    for message, label in uploads:
        result = world.result(message)
        assert result["status"] == "done", result
        assert result["label"] == label
        assert result["error"] is None
        assert result["image_id"] == message.image_id
        assert result["job_id"] == message.job_id
        assert result["source"] == message.source
        assert [p["label"] for p in result["top"]][0] == label
        assert sorted(p["label"] for p in result["top"]) == sorted(LABELS)
        assert result["model"] == "model.keras"
        assert result["worker"] == WORKER_ID
        assert {"download", "decode", "infer"} <= set(result["timings_ms"])
    # AND nothing is left in the queue
    depths = world.queue.depths()
    assert (depths.backlog, depths.dead_letter) == (0, 0)


def test_bad_images_get_failed_results_with_reasons_and_do_not_stop_the_good_ones(world):
    # GIVEN one batch with a good image, a text file, a truncated JPEG, an object that was
    # deleted before the worker came, and an image above the byte limit
    good, label = a_job(world, 1)[0]
    job_id = new_job_id()
    key0, key1, key2, key3 = (job_input_key(job_id, image_id_for(job_id, i)) for i in range(4))
    text = world.upload(key0, b"name,score\ncat,0.9\n")
    cut = world.upload(key1, image_bytes("red_disc", HELD_OUT_SEED, size=(400, 300))[:1500])
    gone = world.message(key2)
    big = world.upload(key3, image_bytes("red_disc", HELD_OUT_SEED, fmt="BMP"))
    world.queue.send([good, text, cut, gone, big])

    # WHEN a worker runs, with a byte limit the BMP is above
    world.drain(max_image_bytes=20_000)

    # THEN the good image is done, each bad one failed with a reason, and the queue is empty
    assert world.result(good)["label"] == label
    reasons = {name: world.result(m) for name, m in
               [("text", text), ("cut", cut), ("gone", gone), ("big", big)]}
    assert {r["status"] for r in reasons.values()} == {"failed"}
    assert reasons["text"]["error"].startswith("not an image")
    assert reasons["cut"]["error"].startswith("truncated image")
    assert reasons["gone"]["error"] == "the uploaded object is gone"
    assert reasons["big"]["error"] == "image is 23094 bytes, above the limit of 20000 bytes"
    assert all(r["label"] is None and r["top"] == [] for r in reasons.values())
    assert world.queue.depths().backlog == 0


def test_an_image_outside_the_input_bucket_is_not_fetched(world):
    # GIVEN a message naming an object in some other bucket the worker's role could read
    world.aws.s3.create_bucket(Bucket="someone-elses-bucket")
    world.aws.s3.put_object(Bucket="someone-elses-bucket", Key="incoming/secret.jpg",
                            Body=image_bytes("red_disc", HELD_OUT_SEED))
    message = WorkMessage(bucket="someone-elses-bucket", key="incoming/secret.jpg",
                          job_id=None, image_id="secret.jpg", name="secret.jpg", size=1, etag="")
    world.queue.send([message])
    # WHEN a worker handles it
    world.drain()
    # THEN it is answered as failed, not classified
    result = world.result(message)
    assert result["status"] == "failed"
    assert "not the input bucket" in result["error"]


def test_labels_are_the_same_in_a_batch_as_one_at_a_time(world):
    # GIVEN nine images
    uploads = a_job(world, 9, fmt="PNG")
    messages = [message for message, _ in uploads]

    # WHEN they are classified one at a time, then again as one batch
    world.queue.send(messages)
    assert world.drain(batch_size=1) == 9
    alone = [world.result(m) for m in messages]
    world.queue.send(messages)
    assert world.drain(batch_size=9) == 1
    batched = [world.result(m) for m in messages]

    # THEN each image gets the same label and score either way
    assert [r["label"] for r in batched] == [r["label"] for r in alone]
    assert [r["label"] for r in batched] == [label for _, label in uploads]
    for one, many in zip(alone, batched, strict=True):
        assert many["score"] == pytest.approx(one["score"], abs=1e-4)


def test_a_redelivered_message_rewrites_the_same_single_result(world):
    # GIVEN an image whose message arrives twice (SQS delivers at least once)
    message, label = a_job(world, 1)[0]
    world.queue.send([message, message])

    # WHEN the worker handles both
    world.drain(batch_size=1)

    # THEN the job has exactly one result object, done
    keys = list(world.results.keys(f"results/{message.job_id}/"))
    assert keys == [message.result_key]
    assert world.result(message)["label"] == label
    assert world.queue.depths().backlog == 0


def test_a_body_that_is_no_work_message_is_left_for_the_dead_letter_queue(world):
    # GIVEN a message that is not a work message and names no image
    world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody="{not json")

    # WHEN a worker receives it
    world.drain()

    # THEN no result is written and the message is not deleted: it is in flight, and comes
    # back until SQS moves it to the dead-letter queue
    assert list(world.results.keys("results/")) == []
    assert world.queue.depths().in_flight == 1


def test_a_broken_message_that_still_names_its_image_gets_a_failed_result(world):
    # GIVEN a message of an unknown version that names an uploaded image
    message = world.upload("incoming/scan.jpg", image_bytes("blue_triangle", HELD_OUT_SEED))
    body = message.to_json().replace('"v":1', '"v":99')
    world.aws.sqs.send_message(QueueUrl=world.queue.url, MessageBody=body)

    # WHEN a worker receives it
    world.drain()

    # THEN the image is answered (failed, with the reason) instead of vanishing
    result = world.result(message)
    assert result["status"] == "failed"
    assert "unsupported message version 99" in result["error"]
    assert world.queue.depths().backlog == 0


def test_when_results_cannot_be_stored_the_message_comes_back_after_its_back_off(world):
    # GIVEN a queued image, and an output bucket that has disappeared
    message, _ = a_job(world, 1)[0]
    world.queue.send([message])
    world.aws.s3.delete_bucket(Bucket=world.resources.output_bucket)

    # WHEN a worker whose messages stay hidden a minute once taken handles it
    started = time.monotonic()
    world.drain(visibility_timeout=60)

    # THEN the message is not deleted, nor visible again at once: it waits its back-off
    depths = world.queue.depths()
    assert (depths.visible, depths.in_flight) == (0, 1)
    # AND it comes back by itself after the first back-off (5 s), well before the minute
    eventually(lambda: world.queue.depths().visible == 1, 45, "the message back")
    assert time.monotonic() - started >= 5


@pytest.mark.parametrize("max_receives", [5, 1])
def test_an_image_that_cannot_be_read_is_retried_and_answered_on_its_last_try(
    world, max_receives
):
    # GIVEN a queued image whose input bucket cannot be read (here: it has vanished)
    message = world.message("incoming/lost.jpg")
    world.queue.send([message])
    world.aws.s3.delete_bucket(Bucket=world.resources.input_bucket)

    # WHEN a worker handles a delivery
    world.drain(max_receives=max_receives)

    if max_receives > 1:
        # THEN, before its last delivery, the message is kept for another try, hidden for
        # its back-off
        assert world.result(message) is None
        depths = world.queue.depths()
        assert (depths.visible, depths.in_flight) == (0, 1)
    else:
        # THEN, on its last delivery before the dead-letter queue, the image is answered
        result = world.result(message)
        assert result["status"] == "failed"
        assert result["error"].startswith("could not read the uploaded image (")
        assert "NoSuchBucket" in result["error"]
        assert result["error"].endswith("gave up after 1 try")
        assert world.queue.depths().backlog == 0


def test_run_finishes_its_work_and_stops_when_told(world):
    # GIVEN a worker running in the background, and a queued job
    uploads = a_job(world, 3)
    world.queue.send([message for message, _ in uploads])
    stop = threading.Event()
    runner = threading.Thread(target=world.worker().run, args=(stop,))
    runner.start()

    # WHEN the results are there and the worker is told to stop
    eventually(lambda: all(world.result(m) for m, _ in uploads), 30, "every result")
    stop.set()
    runner.join(timeout=10)

    # THEN it has answered every image and stopped
    assert [world.result(m)["label"] for m, _ in uploads] == [label for _, label in uploads]
    assert not runner.is_alive()


def test_the_worker_process_without_weights_exits_with_the_reason(tmp_path):
    # GIVEN a machine without the ResNet-50 weights
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "SKYCLASS_MODEL": "resnet50"}
    # WHEN the worker process starts
    done = subprocess.run([sys.executable, "-m", "ec2_worker"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    # THEN it exits non-zero, saying which file is missing
    assert done.returncode != 0
    assert "resnet50_weights_tf_dim_ordering_tf_kernels.h5" in done.stderr
    assert str(tmp_path) in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unexpected_decode_error_retries_that_image_and_answers_the_rest(
        world, monkeypatch):
    # GIVEN two queued images, one of which the decoder fails on unexpectedly
    (good, label), (bad, _) = a_job(world, 2)
    world.queue.send([good, bad])
    from ec2_worker import steps

    decode = steps.decode_image
    bad_bytes = world.aws.s3.get_object(Bucket=bad.bucket, Key=bad.key)["Body"].read()

    def decode_or_run_out_of_memory(data, *args, **kwargs):
        if data == bad_bytes:
            raise MemoryError("no room for this one")
        return decode(data, *args, **kwargs)

    monkeypatch.setattr(steps, "decode_image", decode_or_run_out_of_memory)

    # WHEN a worker handles the batch
    world.drain()

    # THEN the good image is answered, and the other is neither answered nor stranded:
    # its message is kept for another try, visible again after the back-off
    assert world.result(good)["label"] == label
    assert world.result(bad) is None
    assert world.queue.depths().backlog == 1
    eventually(lambda: world.queue.depths().visible == 1, 30, "the failed image back")


def test_a_photo_stored_sideways_is_classified_as_it_is_seen(world):
    # GIVEN stripes running across, stored on their side with EXIF orientation 6, as a
    # phone stores a photo taken sideways (the corpus's rotated.jpg)
    [case] = [c for c in corpus() if c.name == "rotated.jpg"]
    message = world.upload("incoming/rotated.jpg", case.body)
    world.queue.send([message])
    # WHEN a worker classifies it
    world.drain()
    # THEN it sees the stripes across, as a person viewing the photo does (a worker that
    # ignored the orientation would see them running down)
    assert case.label == "stripes_across"
    assert world.result(message)["label"] == "stripes_across"
