"""Worker memory over a long run: RSS of the worker process every 500 images, to 5000.

    python -m bench.memory [--images 5000] [--step 500]

The local stack runs one worker (``SKYCLASS_MIN_WORKERS=1``) with the tests' tiny CNN, so
thousands of images take a minute or two; what grows with the image count (buffers,
results, the pipeline's queues) does not depend on the model. Fifty 640x480 JPEGs are
dropped into ``incoming/`` (their S3 events queue them); after that the bench sends the
same work messages the S3 event handler sends, naming those fifty objects over and over,
so the backlog costs no uploads. Each step waits for the queue to be empty, then reads
the worker's resident set size with psutil.
"""

from __future__ import annotations

import argparse
import time

import boto3

from bench.support import TINY_MODEL_CACHE, BenchStack, model_env, running_stack
from skyclass.runtime.contracts import WorkMessage, parse_input_key
from skyclass.runtime.queue import WorkQueue
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes, train_tiny_model

PREFIX = "incoming/bench-memory/"
OBJECTS = 50


def work_queue(stack: BenchStack) -> WorkQueue:
    sqs = boto3.client("sqs", endpoint_url=stack.stack.endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return WorkQueue(sqs, sqs.get_queue_url(QueueName="skyclass-local-work")["QueueUrl"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--step", type=int, default=500)
    args = parser.parse_args()

    tiny = train_tiny_model(TINY_MODEL_CACHE)
    env = model_env(tiny.model_path, tiny.labels_path, SKYCLASS_MIN_WORKERS="1")
    files = {f"{PREFIX}{i:03d}.jpg": image_bytes(CLASSES[i % len(CLASSES)],
                                                 HELD_OUT_SEED + 60_000 + i, size=(640, 480))
             for i in range(OBJECTS)}
    rss: list[tuple[int, float]] = []
    with running_stack(env, max_workers=1) as stack:
        queue = work_queue(stack)
        stack.upload(files)
        stack.wait_for_results("results/" + PREFIX, OBJECTS, timeout=300)
        worker = stack.worker_process()
        messages = []
        for key, data in files.items():
            _, image_id = parse_input_key(key)
            messages.append(WorkMessage(bucket=stack.input_bucket, key=key, job_id=None,
                                        image_id=image_id, name=image_id, size=len(data),
                                        etag=""))
        done, started = OBJECTS, time.monotonic()
        while done < args.images:
            batch = min(args.step - done % args.step or args.step, args.images - done)
            queue.send([messages[(done + i) % OBJECTS] for i in range(batch)])
            stack.wait_until_drained(timeout=600)
            done += batch
            if done % args.step == 0 or done == args.images:
                rss.append((done, worker.memory_info().rss / 2**20))
                print(f"after {done:5d} images  worker RSS {rss[-1][1]:7.1f} MiB", flush=True)
        elapsed = time.monotonic() - started
        same_worker = worker.is_running()

    first, last = rss[0], rss[-1]
    print(f"worker RSS             {first[1]:.1f} MiB after {first[0]} images, {last[1]:.1f} MiB "
          f"after {last[0]}: {last[1] / first[1]:.3f}x (tiny CNN, 640x480 JPEGs, "
          f"{(last[0] - OBJECTS) / elapsed:.0f} images/s, same process throughout: {same_worker})")


if __name__ == "__main__":
    main()
