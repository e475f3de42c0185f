"""One worker in the local stack draining a backlog, with ``SKYCLASS_ENGINE=auto`` and
then with ``tensorflow``, each against the plain ``tf.function``.

    python -m bench.stack_drain [--images 320] [--size 640x480] [--precision fp32]
                                [--boot-delay 30] [--engines auto,tensorflow] [--repeat 1]

Each engine drains the same JPEGs through a stack of its own, one after the other
(``--repeat`` alternates them), and the bench prints the ratio of the first engine's
drain to TensorFlow's, with what the worker says it runs and why (its status object,
``ec2_worker/engines/report.py``). With ``auto`` the first worker of the run measures the
engines at its start (its start-up shows ``prepare``; the model's conversions are made
once and kept), as on a machine without a record; later drains of the run read its
record.

The model is ResNet-50 built with ``weights=None`` and saved as a ``.keras`` file with a
1000-line labels file, passed as ``SKYCLASS_MODEL``/``SKYCLASS_LABELS`` (TIMING-ONLY: the
ImageNet weights are not on this machine, and speed does not depend on the weight
values; as a custom model it is fed [0, 255] pixels, which costs the same).

The plain ``tf.function`` (model and preprocessing, nothing else, in the worker's
precision) is timed in this process on batches of 32, over 256 images, just before and
just after the drain, with the stack up and no worker busy: the figure the worker is
held to, measured in the same run (the mean of the two; both are printed, so a change
in the machine's load shows).
``skyclass up`` starts with at most one worker, the JPEGs are dropped into ``incoming/``
at once, and the S3 events queue them. The first event cold-starts the worker's
instance, whose simulated boot (``--boot-delay``, 30 s) lets the whole backlog be queued
before the worker takes its first message: a backlog, as the issue has it, so that the
drain measures the worker and not the ingest Lambdas running beside it on the same two
cores (on AWS, neither they nor S3 and SQS run on the worker's instance). The bench
prints when the backlog was complete; with ``--boot-delay 0`` the drain overlaps the
ingest, and says so. The drain rate is taken from the results' ``finished_at``: images
finished after the first result, over the time from the first result to the last, so
the worker's start-up does not count.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.support import (  # noqa: E402
    cpu_line,
    model_env,
    plain_function,
    running_stack,
    timing_model,
)
from ec2_worker.engine import BF16, TENSORFLOW, as_mixed_bfloat16  # noqa: E402
from ec2_worker.engines.build import forget_measurement  # noqa: E402
from skyclass.runtime.constants import WORKER_STATUS_PREFIX  # noqa: E402
from skyclass.runtime.settings import Settings  # noqa: E402
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, make_image  # noqa: E402

PREFIX = "incoming/bench-drain/"
RESULTS = "results/" + PREFIX


def plain_runner(model_path: Path, precision: str,
                 batch: int = 32) -> Callable[[int], tuple[float, float]]:
    """A function timing the plain tf.function on this model, in ``precision`` as the
    worker runs it: (images/s, CPU milliseconds per image) over ``images``."""
    import keras

    model = keras.models.load_model(model_path, compile=False)
    if precision == BF16:
        model = as_mixed_bfloat16(model)
    run = plain_function(model, _as_is)
    pixels = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    run(pixels)

    def rate(images: int) -> float:
        calls = max(2, images // batch)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            run(pixels)
        cpu_ms = 1000 * (time.process_time() - cpu) / (calls * batch)
        return calls * batch / (time.perf_counter() - start), cpu_ms

    return rate


def _as_is(pixels):
    return pixels  # a custom model takes [0, 255] pixels as they are


def jpegs(count: int, size: tuple[int, int]) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        buffer = io.BytesIO()
        make_image(CLASSES[i % len(CLASSES)], HELD_OUT_SEED + 40_000 + i, size=size).save(
            buffer, format="JPEG", quality=90)
        files[f"{PREFIX}{i:05d}.jpg"] = buffer.getvalue()
    return files


def wait_for_backlog(stack, images: int, timeout: float = 300) -> float | None:
    """When all ``images`` were queued, or None if the worker took its first message
    before they were (the queue never held them all at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.queued() >= images:
            return time.time()
        if stack.result_keys(RESULTS):
            return None
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {images} messages queued after {timeout:g}s")


def overhead_per_image(stack, keys: list[str], results: list[dict]) -> dict[str, float]:
    """CPU milliseconds per image of what the worker does besides inference, measured
    one image at a time with the worker idle: the GET and the result PUT in boto3 (this
    process), the decode, and the emulator serving both. SQS calls (a few per batch of
    32) are left out."""
    from ec2_worker.decode import decode_image

    spent = {"boto3": 0.0, "decode": 0.0}
    emulator_before = stack.cpu_seconds()["emulator"]
    for i, (key, result) in enumerate(zip(keys, results, strict=False)):
        start = time.thread_time()
        data = stack.s3.get_object(Bucket=stack.input_bucket, Key=key)["Body"].read()
        decoded = time.thread_time()
        decode_image(data, (224, 224), 50_000_000)
        spent["decode"] += time.thread_time() - decoded
        put = time.thread_time()
        stack.s3.put_object(Bucket=stack.output_bucket, Key=f"bench-overhead/{i}.json",
                            Body=json.dumps(result).encode(), ContentType="application/json")
        spent["boto3"] += (decoded - start) + (time.thread_time() - put)
    spent["emulator"] = stack.cpu_seconds()["emulator"] - emulator_before
    return {step: 1000 * seconds / len(keys) for step, seconds in spent.items()}


def _time(result: dict) -> float:
    return datetime.fromisoformat(result["finished_at"].replace("Z", "+00:00")).timestamp()


def worker_engine(stack) -> dict:
    """What the stack's worker says it runs (its status object for ``/fleet``)."""
    keys = stack.result_keys(WORKER_STATUS_PREFIX)
    if not keys:
        return {"engine": "unknown (the worker published no status)", "precision": "?",
                "reason": "", "startup": {}, "ready_s": float("nan")}
    body = stack.s3.get_object(Bucket=stack.output_bucket, Key=keys[-1])["Body"].read()
    return json.loads(body)


def drain(engine: str, args: argparse.Namespace, files: dict[str, bytes], model_path: Path,
          labels_path: Path, plain_rate: Callable[[int], tuple[float, float]]
          ) -> tuple[float, float]:
    """One stack, one worker with ``engine``, draining ``files``; prints the figures and
    returns the drain rate and the plain tf.function's in the same stack."""
    width, height = (int(v) for v in args.size.split("x"))
    # Batches of 32, as the plain tf.function is timed (the local stack's default is 8).
    env = model_env(model_path, labels_path, SKYCLASS_PRECISION=args.precision,
                    SKYCLASS_ENGINE=engine, SKYCLASS_BATCH_SIZE="32")
    with running_stack(env, max_workers=1, boot_delay=args.boot_delay) as stack:
        plain_before = plain_rate(256)
        began = time.time()
        stack.upload(files)
        uploaded = time.time()
        queued = wait_for_backlog(stack, args.images)
        stack.wait_for_results(RESULTS, 1, timeout=900, poll=0.25)
        cpu_first = stack.cpu_seconds()
        stack.wait_until_drained(timeout=60 + 3 * args.images)
        cpu_last = stack.cpu_seconds()
        results = stack.results(RESULTS)
        status = worker_engine(stack)
        plain_after = plain_rate(256)
        overhead = overhead_per_image(stack, list(files)[:64], results)
    plain = (plain_before[0] + plain_after[0]) / 2
    model_ms = (plain_before[1] + plain_after[1]) / 2
    cpu = {role: cpu_last[role] - cpu_first[role] for role in cpu_last}

    times = sorted(_time(r) for r in results)
    first, last = times[0], times[-1]
    after_first = sum(1 for t in times if t > first)
    rate = after_first / (last - first)
    done = sum(1 for r in results if r["status"] == "done")
    kb = sum(len(data) for data in files.values()) / len(files) / 1024
    print(f"-- SKYCLASS_ENGINE={engine}: the worker runs {status['engine']} "
          f"{status['precision']}, ready in {status['ready_s']:.1f} s ("
          + ", ".join(f"{step} {sec:.1f} s" for step, sec in status["startup"].items())
          + f"); {status['reason']}")
    print(f"backlog                {args.images} JPEGs {width}x{height} (~{kb:.0f} KB each), "
          f"one worker, ResNet-50 random weights (TIMING-ONLY), {args.precision}")
    print(f"uploaded in            {uploaded - began:.1f} s; first result {first - began:.1f} s "
          f"after the first upload (worker cold start included)")
    print("backlog                " + (
        f"all {args.images} queued {queued - began:.1f} s after the first upload, "
        f"{first - queued:.1f} s before the first result" if queued is not None else
        "NOT all queued before the first result: the drain overlapped the ingest"))
    print(f"results                {len(results)} ({done} done), last {last - first:.1f} s "
          f"after the first")
    print("per image, median ms   " + ", ".join(
        f"{step} {np.median([r['timings_ms'][step] for r in results]):.0f}"
        for step in ("download", "decode", "infer_batch")) + " (infer_batch: its whole batch)")
    sizes = Counter(r["timings_ms"]["infer_batch"] for r in results)
    ends: dict[float, float] = {}  # a batch's inference time (ms) -> when it ended
    for r in results:
        infer = r["timings_ms"]["infer_batch"]
        ends[infer] = max(ends.get(infer, 0.0), _time(r))
    batches = sorted((end, infer) for infer, end in ends.items())
    gaps = [later[0] - earlier[0] - later[1] / 1000
            for earlier, later in zip(batches, batches[1:], strict=False)]
    print(f"batches                {len(batches)} (sizes {sorted(sizes.values())}); between one "
          f"batch's inference and the next, "
          f"median {1000 * float(np.median(gaps)):.0f} ms, total {sum(gaps):.1f} s "
          f"(the worker waiting for a batch)")
    print("CPU seconds in drain   " + ", ".join(f"{role} {sec:.1f}" for role, sec in cpu.items())
          + f" (2 cores x {last - first:.1f} s = {2 * (last - first):.1f} available)")
    print(f"plain tf.function      {plain:.1f} images/s (batch 32, {args.precision}, this run: "
          f"{plain_before[0]:.1f} before the drain, {plain_after[0]:.1f} after)")
    print(f"stack drain            {rate:.1f} images/s = {rate / plain:.2f}x plain tf.function")
    outside = sum(overhead.values())
    print("outside the model      CPU ms per image: " + ", ".join(
        f"{step} {ms:.1f}" for step, ms in overhead.items())
        + f" = {outside:.1f}; the plain tf.function uses {model_ms:.1f} "
        f"({model_ms * plain / 1000:.2f} of the 2 cores)")

    def bound(extra_ms: float) -> float:
        """The drain's best case over plain: the model's CPU plus ``extra_ms`` per image
        on 2 cores, and never faster than the model alone."""
        return min(1.0, 2000 / (model_ms + extra_ms) / plain)

    print(f"best case on 2 cores   {bound(outside):.2f}x plain tf.function (all that CPU "
          f"fitted around the model, SQS left out); with S3 and SQS off the worker's "
          f"cores, as on AWS, {bound(outside - overhead['emulator']):.2f}x")
    return rate, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--size", default="640x480", help="image size WxH")
    parser.add_argument("--precision", default="fp32", choices=["fp32", BF16])
    parser.add_argument("--boot-delay", type=float, default=30.0,
                        help="simulated instance boot, seconds (0: drain while ingesting)")
    parser.add_argument("--engines", default="auto,tensorflow",
                        help="SKYCLASS_ENGINE of each drain, in turn; the ratio is the first's "
                             "drain over tensorflow's")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the engines, in turn")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    engines = args.engines.split(",")

    print(cpu_line())
    model_path, labels_path = timing_model()
    # auto's first start in this run measures the engines now, not a record of an
    # earlier run on a differently busy machine.
    forget_measurement(Settings.from_env({}, model=str(model_path), labels=str(labels_path),
                                         precision=args.precision), {1, 32})
    plain_rate = plain_runner(model_path, args.precision)
    files = jpegs(args.images, (width, height))
    rates: dict[str, list[float]] = {}
    over_plain: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for engine in engines:
            rate, plain = drain(engine, args, files, model_path, labels_path, plain_rate)
            rates.setdefault(engine, []).append(rate)
            over_plain.setdefault(engine, []).append(rate / plain)
    summary = ", ".join(f"{engine} {' '.join(f'{r:.1f}' for r in found)}"
                        for engine, found in rates.items())
    print(f"drains, images/s       {summary} (same images, one stack each, in turn)")
    if TENSORFLOW in rates and engines[0] != TENSORFLOW:
        first = engines[0]
        ratio = float(np.median(rates[first])) / float(np.median(rates[TENSORFLOW]))
        print(f"drain {first} / drain tensorflow: {ratio:.2f}x (medians)")
        # Each drain over the plain tf.function timed in its own stack: a machine busier
        # during one stack than another moves both, so this ratio moves less.
        ratio = float(np.median(over_plain[first])) / float(np.median(over_plain[TENSORFLOW]))
        print(f"the same, each drain over its stack's plain tf.function: {ratio:.2f}x")


if __name__ == "__main__":
    main()
