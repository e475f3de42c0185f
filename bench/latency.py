"""``POST /classify`` of one image through the local stack, with a warm worker.

    python -m bench.latency [--requests 50] [--warm-up 5]

The model is the tests' tiny CNN (trained once, cached; 40x40 input), so the figures are
the pipeline's own latency: API, S3 upload, S3 event, ingest, SQS, the worker's receive,
download, decode and inference, the result write, and the API's polling for it. One
worker is kept running (``SKYCLASS_MIN_WORKERS=1``) and warmed by a few requests first;
then the requests are sent one after another and timed end to end at the client.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import requests

from bench.support import TINY_MODEL_CACHE, model_env, running_stack
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes, train_tiny_model


def classify(api: str, data: bytes) -> tuple[float, dict]:
    start = time.perf_counter()
    response = requests.post(f"{api}/classify", data=data,
                             headers={"Content-Type": "image/jpeg"}, timeout=60)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warm-up", type=int, default=5)
    args = parser.parse_args()

    tiny = train_tiny_model(TINY_MODEL_CACHE)
    env = model_env(tiny.model_path, tiny.labels_path, SKYCLASS_MIN_WORKERS="1")
    images = [(CLASSES[i % len(CLASSES)],
               image_bytes(CLASSES[i % len(CLASSES)], HELD_OUT_SEED + 50_000 + i,
                           size=(640, 480)))
              for i in range(args.requests + args.warm_up)]
    with running_stack(env, max_workers=1) as stack:
        stack.worker_ready()
        for _, data in images[: args.warm_up]:
            classify(stack.stack.api, data)
        timed = [classify(stack.stack.api, data) for _, data in images[args.warm_up:]]

    seconds = np.array([elapsed for elapsed, _ in timed]) * 1000
    right = sum(result.get("label") == label
                for (label, _), (_, result) in zip(images[args.warm_up:], timed, strict=True))
    statuses = {result.get("status") for _, result in timed}
    print(f"POST /classify         {args.requests} sequential requests, 640x480 JPEG, warm "
          f"worker, tiny CNN model (40x40)")
    print(f"latency                p50 {np.percentile(seconds, 50):.0f} ms, "
          f"p95 {np.percentile(seconds, 95):.0f} ms, max {seconds.max():.0f} ms")
    print(f"answers                statuses {sorted(statuses)}, right labels "
          f"{right}/{args.requests}")


if __name__ == "__main__":
    main()
