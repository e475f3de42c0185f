"""What the benchmarks that drive the real local stack share: start ``skyclass up`` with a
model, find its worker process, upload to the drop folder, wait for results."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import psutil

from skyclass.resources import queue_name
from tests.support.stack_process import REPO_ROOT, StackProcess, start_stack

READY_TIMEOUT = 180.0
# Where the benchmarks keep the tests' tiny model between runs (trained once).
TINY_MODEL_CACHE = REPO_ROOT / ".skyclass" / "bench" / "tiny_model"


class BenchStack:
    def __init__(self, stack: StackProcess) -> None:
        self.stack = stack
        # The emulator takes any credentials; these keep a shell's real ones out of it.
        self.s3 = boto3.client("s3", endpoint_url=stack.endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        names = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        self.input_bucket = next(n for n in names if n.startswith("skyclass-local-input-"))
        self.output_bucket = next(n for n in names if n.startswith("skyclass-local-output-"))
        self.sqs = boto3.client("sqs", endpoint_url=stack.endpoint, region_name="us-east-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        self.queue_url = self.sqs.get_queue_url(QueueName=queue_name("local"))["QueueUrl"]

    def upload(self, files: Mapping[str, bytes]) -> None:
        """Put each ``{key: data}`` in the input bucket, a few at a time."""
        def put(item: tuple[str, bytes]) -> None:
            self.s3.put_object(Bucket=self.input_bucket, Key=item[0], Body=item[1])

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, files.items()))

    def queued(self) -> int:
        """Work messages in the queue, waiting or being worked on (SQS's approximate
        counts, exact on the emulator)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(count) for count in attributes.values())

    def result_keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.output_bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def wait_for_results(self, prefix: str, count: int, timeout: float,
                         poll: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.result_keys(prefix)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} results under {prefix} after "
                                   f"{timeout:g}s\n{self.stack.diagnostics()}")
            time.sleep(poll)

    def wait_until_drained(self, timeout: float, poll: float = 0.5) -> None:
        """Wait until the queue holds no message, waiting or in flight: every image has
        been answered (a worker deletes a message only once its result is stored) or
        sent to the dead-letter queue. One cheap SQS call per poll, so watching a drain
        costs the emulator next to nothing, where listing the results costs more with
        every result (and, on two cores, slows the very drain being measured)."""
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the queue still holds messages after {timeout:g}s\n"
                                   f"{self.stack.diagnostics()}")
            time.sleep(poll)

    def results(self, prefix: str) -> list[dict[str, Any]]:
        return [json.loads(self.s3.get_object(Bucket=self.output_bucket, Key=key)["Body"].read())
                for key in self.result_keys(prefix)]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of each of the stack's processes, by role:
        ``worker``, ``emulator`` and ``other`` (the API, the Lambda host, the supervisor)."""
        seconds = {"worker": 0.0, "emulator": 0.0, "other": 0.0}
        root = psutil.Process(self.stack.process.pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                command = " ".join(process.cmdline())
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            role = ("worker" if "ec2_worker" in command
                    else "emulator" if "local.emulator" in command else "other")
            seconds[role] += times.user + times.system
        return seconds

    def worker_process(self, timeout: float = READY_TIMEOUT) -> psutil.Process:
        """The stack's one live ``ec2_worker`` process, once it has been started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.stack.worker_processes()
            if workers:
                return workers[0]
            time.sleep(0.2)
        raise TimeoutError(f"no worker process after {timeout:g}s")

    def worker_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for a worker's "ready" log line (model loaded and warmed up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for log in self.stack.log_dir.glob("*.log"):
                if " ready: model " in log.read_text(errors="replace"):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"no worker ready after {timeout:g}s\n{self.stack.diagnostics()}")


def randomise_constant_weights(model: Any, seed: int = 0) -> Any:
    """Give every weight array of ``model`` that holds one repeated value (what
    ``weights=None`` leaves in biases, batch-norm betas, means and variances) random
    values around it instead, and return ``model``.

    For TIMING-ONLY models: a frozen graph lets TensorFlow drop an addition of zeros or
    a multiplication by ones, which no trained model allows, so a model with such
    weights would time faster than the real one. Values stay positive where they were
    (variances)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = []
    for array in model.get_weights():
        if array.size and np.all(array == array.flat[0]):
            array = (array * rng.uniform(0.5, 1.5, array.shape)
                     + np.abs(rng.normal(0, 0.05, array.shape))).astype(array.dtype)
        weights.append(array)
    model.set_weights(weights)
    return model


def model_env(model_path: Path, labels_path: Path, **extra: str) -> dict[str, str]:
    """The environment that makes the stack's workers serve a custom model."""
    return {"SKYCLASS_MODEL": str(model_path), "SKYCLASS_LABELS": str(labels_path), **extra}


@contextmanager
def running_stack(env: Mapping[str, str], max_workers: int = 1,
                  boot_delay: float = 0.0) -> Iterator[BenchStack]:
    """``skyclass up`` with ``env`` (e.g. the model) and ``boot_delay`` seconds of
    simulated instance boot, stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="skyclass-bench-") as tmp:
        stack = start_stack(Path(tmp), {"TF_CPP_MIN_LOG_LEVEL": "2", **env},
                            max_workers=max_workers, boot_delay=boot_delay)
        try:
            stack.wait_ready(timeout=READY_TIMEOUT)
            yield BenchStack(stack)
        finally:
            stack.stop()


def cpu_line() -> str:
    """The CPU the figures come from: its model name, processors and the SIMD flags the
    engines use (read from /proc/cpuinfo), for every benchmark to print."""
    from ec2_worker.engines.records import cpu_description

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU: unknown (no /proc/cpuinfo)"
    cpu = cpu_description(text)
    return (f"CPU: {cpu['model']}, {cpu['cpus']} processors, flags "
            f"{' '.join(cpu['flags']) or '(none of avx2, avx512f, avx512_bf16, amx)'}")


def recalibrate_batch_norm(model: Any, pixels: Any, preprocess: Any) -> Any:
    """Set every batch-norm layer's moving mean and variance to the statistics of its
    inputs over ``pixels``, and return ``model``.

    For AGREEMENT on random weights: with ``randomise_constant_weights`` alone nothing
    normalises ResNet-50's activations, they grow layer after layer and the softmax
    saturates (one class takes all), so any engine "agrees". Recalibrated, activations
    stay near unit scale as in a trained network and the softmax is spread over many
    classes, close calls included: a fair test of how an engine's arithmetic moves the
    scores. (One training-mode call with momentum 0 sets the moving statistics.)"""
    import keras

    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(preprocess(pixels), training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return model
