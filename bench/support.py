"""What the benchmarks that drive the real local stack share: start ``skyclass up`` with a
model, find its worker process, upload to the drop folder, wait for results."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psutil
import requests

from skyclass.operations.local.emulator import RequestCounter
from skyclass.runtime.names import queue_name, s3_events_queue_name
from testbed.stack_process import REPO_ROOT, StackProcess, start_stack

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

    def emulator_requests(self) -> dict[str, int]:
        """Requests the emulator has served so far, ``total`` and by service."""
        counts = requests.get(f"{self.stack.endpoint}{RequestCounter.PATH}", timeout=10).json()
        return {"total": counts["total"], **counts["by_service"]}

    def events_waiting(self) -> int:
        """S3 events the local bridge has not yet handed to ingest (waiting or in hand)."""
        url = self.sqs.get_queue_url(QueueName=s3_events_queue_name("local"))["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(count) for count in attributes.values())

    def worker_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for a worker's "ready" log line (model loaded and warmed up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for log in self.stack.log_dir.glob("*.log"):
                if " ready: model " in log.read_text(errors="replace"):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"no worker ready after {timeout:g}s\n{self.stack.diagnostics()}")


@dataclass(frozen=True)
class WorkerEvent:
    """A worker process of the stack started, got ready, was told to stop, or ended;
    ``at`` is when the bench saw the line (time.monotonic())."""

    at: float
    kind: str  # "started" | "ready" | "stopping" | "ended"
    instance: str
    seconds: float | None = None  # "ready": seconds from its start


@dataclass(frozen=True)
class ScalingStop:
    """A scaling decision that stopped instances, with the backlog it saw."""

    at: float
    instances: tuple[str, ...]
    backlog: int


class StackLog:
    """Follows the stack's console (the instance runner's reports) and the Lambda host's
    log (the scaler's decisions) as they grow, stamping each line with when it was seen."""

    _WORKER = [
        ("started", re.compile(r"worker (i-\w+) started \(pid")),
        ("ready", re.compile(r"worker (i-\w+) ready, ([\d.]+)s after its start")),
        ("stopping", re.compile(r"instance (i-\w+) is \w+: SIGTERM")),
        ("ended", re.compile(r"worker (i-\w+) (?:stopped \(exit code|exited with code)")),
    ]
    _STOP = re.compile(r"scaling: backlog (\d+) .*\(start \[.*\], stop \[(.+)\]\)")

    def __init__(self, stack: StackProcess, poll: float = 0.1) -> None:
        self._files = {"console": stack.console,
                       "lambda-host": stack.log_dir / "lambda-host.log"}
        self._offsets = dict.fromkeys(self._files, 0)
        self._poll = poll
        self.lines: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def workers(self, since: float = 0.0) -> list[WorkerEvent]:
        events = []
        for at, source, line in list(self.lines):
            if source != "console" or at < since:
                continue
            for kind, pattern in self._WORKER:
                if match := pattern.search(line):
                    seconds = float(match.group(2)) if kind == "ready" else None
                    events.append(WorkerEvent(at, kind, match.group(1), seconds))
        return events

    def scaling_stops(self, since: float = 0.0) -> list[ScalingStop]:
        stops = []
        for at, source, line in list(self.lines):
            if source == "lambda-host" and at >= since and (match := self._STOP.search(line)):
                ids = tuple(i.strip(" '") for i in match.group(2).split(","))
                stops.append(ScalingStop(at, ids, int(match.group(1))))
        return stops

    def _follow(self) -> None:
        while not self._stop.wait(self._poll):
            self._read()

    def _read(self) -> None:
        now = time.monotonic()
        for source, path in self._files.items():
            try:
                with path.open("rb") as log_file:
                    log_file.seek(self._offsets[source])
                    data = log_file.read()
            except OSError:
                continue
            complete = data.rfind(b"\n") + 1
            self._offsets[source] += complete
            self.lines += [(now, source, line) for line in
                           data[:complete].decode(errors="replace").splitlines()]


def worker_timeline(events: list[WorkerEvent]) -> tuple[int, int, int]:
    """(starts, stops, peak workers alive at once) over ``events``."""
    alive: set[str] = set()
    peak = 0
    for event in events:
        if event.kind == "started":
            alive.add(event.instance)
        elif event.kind == "ended":
            alive.discard(event.instance)
        peak = max(peak, len(alive))
    return (sum(e.kind == "started" for e in events), sum(e.kind == "stopping" for e in events),
            peak)


def cpu_flags() -> str:
    """The CPU's vector extensions that matter to TensorFlow on CPU."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n")[0].split())
    except (OSError, IndexError):
        return "unknown"
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
             if f in flags]
    return " ".join(shown) or "no AVX2"


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
def running_stack(env: Mapping[str, str], max_workers: int | None = 1,
                  boot_delay: float = 0.0) -> Iterator[BenchStack]:
    """``skyclass up`` with ``env`` (e.g. the model) and ``boot_delay`` seconds of
    simulated instance boot, stopped on the way out (``max_workers`` None: the stack
    sizes the fleet to the machine)."""
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


# ResNet-50 with random weights, for timing only (its labels mean nothing).
TIMING_MODEL = REPO_ROOT / ".skyclass" / "bench" / "resnet50_timing_only_v2"


def timing_model() -> tuple[Path, Path]:
    """ResNet-50 with ``weights=None`` as a ``.keras`` file, and a labels file naming its
    1000 outputs as timing-only (built once, cached)."""
    model_path, labels_path = TIMING_MODEL / "model.keras", TIMING_MODEL / "labels.txt"
    if not model_path.exists():
        import keras

        TIMING_MODEL.mkdir(parents=True, exist_ok=True)
        model = randomise_constant_weights(keras.applications.ResNet50(weights=None))
        model.save(model_path)
        labels_path.write_text("".join(f"timing_only_{i:04d}\n" for i in range(1000)))
    return model_path, labels_path


def plain_function(model, preprocess) -> Callable[[Any], Any]:
    """The model and its preprocessing in a ``tf.function``, nothing else."""
    import tensorflow as tf

    @tf.function
    def run(pixels):
        return model(preprocess(pixels), training=False)

    return lambda pixels: run(pixels).numpy()
