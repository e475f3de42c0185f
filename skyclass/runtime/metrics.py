"""Worker metrics in CloudWatch: what the workers publish and how the scaler reads it.

Workers publish, per stage (dimension ``Stage``), the images they answered
(``ImagesClassified``, failed ones included: they cost the same receive/delete work),
the seconds they spent busy on batches (``BusySeconds``), per-batch latency
(``BatchLatency``, milliseconds) and ``Errors`` (failed results and transient faults);
and the same images and busy seconds without a worker's first ``WARM_UP_BATCHES``
batches (``WarmImages``, ``WarmBusySeconds``): those run batch shapes its warm-up did
not compile, against cold caches and connections, and would make a fleet that is
starting look slower than it is. Counts are summed in the worker and sent at most every
``flush_every`` seconds, so a busy fleet makes a few requests a minute, not one per
batch; the first batch after a quiet spell is sent at once, so the scaler sees a
trickle of images that no tick catches waiting. Data points are high-resolution, so the
scaler can ask about the last few seconds as well as the last minutes.

The local S3-event bridge publishes ``ImagesToIngest``, the uploads it holds that are not
yet work messages (``read_images_to_ingest``). The scaler reads, in one request
(``read_activity``): one warm worker's throughput,
``sum(WarmImages) / sum(WarmBusySeconds)`` over ``THROUGHPUT_WINDOW`` (images per second
of one busy worker, however many workers there were and however idle they were); the
images the fleet finished over ``FINISHED_WINDOW``; and those finished within the idle
grace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

NAMESPACE = "skyclass"
IMAGES = "ImagesClassified"
BUSY_SECONDS = "BusySeconds"
WARM_IMAGES = "WarmImages"
WARM_BUSY_SECONDS = "WarmBusySeconds"
BATCH_LATENCY = "BatchLatency"
ERRORS = "Errors"
# Images uploaded but not yet queued as work, where something can count them: the local
# S3-event bridge, which holds S3's notifications in a queue (on AWS they wait inside
# Lambda's own queue, which has no depth to read; docs/scaling.md).
IMAGES_TO_INGEST = "ImagesToIngest"

# A worker's first batches, left out of its warm throughput.
WARM_UP_BATCHES = 2
# Idle this long before a batch, a worker sends that batch's figures at once.
QUIET_SPELL_S = 2.0
# How recent a count of images to ingest must be to count (its publisher sends one a
# second while there are any, and a zero when there are none left).
INGEST_FRESH_S = 5
# What the scaler reads: one warm worker's throughput over the last ten minutes, and the
# fleet's finished images over the last two (long enough for a few of the workers'
# flushes, short enough to follow a changing stream). The query's granularity: the
# finest the windows need, and a period CloudWatch offers for high-resolution data.
THROUGHPUT_WINDOW = timedelta(minutes=10)
FINISHED_WINDOW = timedelta(minutes=2)
QUERY_PERIOD_S = 10


def _dimensions(stage: str) -> list[dict[str, str]]:
    return [{"Name": "Stage", "Value": stage}]


class MetricsPublisher:
    """Accumulates a worker's batch figures and sends them in one request at most every
    ``flush_every`` seconds, at once for the first batch after a quiet spell, and on
    ``flush()`` (e.g. at shutdown). Thread-safe."""

    def __init__(self, cloudwatch: Any, stage: str, *, flush_every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 warm_up_batches: int = WARM_UP_BATCHES) -> None:
        self._cloudwatch = cloudwatch
        self._stage = stage
        self._flush_every = flush_every
        self._clock = clock
        self._lock = threading.Lock()
        self._reset()
        self._last_flush = clock()
        self._last_record: float | None = None
        self._cold_batches = warm_up_batches

    def record_batch(self, images: int, errors: int, seconds: float) -> None:
        now = self._clock()
        with self._lock:
            self._images += images
            self._errors += errors
            self._busy += seconds
            self._latencies.append(seconds * 1000.0)
            if self._cold_batches > 0:
                self._cold_batches -= 1
            else:
                self._warm_images += images
                self._warm_busy += seconds
            # Idle before this batch: the time since the last one, less its busy time.
            quiet = self._last_record is None or (
                now - self._last_record - seconds >= QUIET_SPELL_S)
            self._last_record = now
        if quiet or now - self._last_flush >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._latencies:
                return
            images, errors, busy, latencies = (self._images, self._errors, self._busy,
                                               self._latencies)
            warm_images, warm_busy = self._warm_images, self._warm_busy
            self._reset()
            self._last_flush = self._clock()
        dims = _dimensions(self._stage)

        def datum(name: str, value: float, unit: str) -> dict[str, Any]:
            return {"MetricName": name, "Dimensions": dims, "Value": value, "Unit": unit,
                    "StorageResolution": 1}

        self._cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[
            datum(IMAGES, images, "Count"),
            datum(ERRORS, errors, "Count"),
            datum(BUSY_SECONDS, busy, "Seconds"),
            datum(WARM_IMAGES, warm_images, "Count"),
            datum(WARM_BUSY_SECONDS, warm_busy, "Seconds"),
            {"MetricName": BATCH_LATENCY, "Dimensions": dims, "Unit": "Milliseconds",
             "StorageResolution": 1,
             "StatisticValues": {"SampleCount": len(latencies), "Sum": sum(latencies),
                                 "Minimum": min(latencies), "Maximum": max(latencies)}},
        ])

    def _reset(self) -> None:
        self._images = 0
        self._errors = 0
        self._busy = 0.0
        self._warm_images = 0
        self._warm_busy = 0.0
        self._latencies: list[float] = []


@dataclass(frozen=True)
class Throughput:
    images: float
    busy_seconds: float

    @property
    def per_worker(self) -> float | None:
        """Images per second of one busy worker, or None with too little to go on."""
        return self.images / self.busy_seconds if self.busy_seconds >= 1.0 else None


@dataclass(frozen=True)
class FleetActivity:
    """What the scaler reads from the workers' metrics in one request."""

    warm: Throughput  # one warm worker's images and busy seconds, THROUGHPUT_WINDOW
    finished: float  # images the fleet finished within FINISHED_WINDOW
    finished_in_grace: float  # ... and within the idle grace

    @property
    def finished_rate(self) -> float:
        return self.finished / FINISHED_WINDOW.total_seconds()


def publish_images_to_ingest(cloudwatch: Any, stage: str, images: int) -> None:
    """Report how many uploaded images wait to be ingested (the local bridge does)."""
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": IMAGES_TO_INGEST, "Dimensions": _dimensions(stage), "Value": images,
         "Unit": "Count", "StorageResolution": 1}])


def read_images_to_ingest(cloudwatch: Any, stage: str, now: datetime | None = None) -> int:
    """The latest count of images waiting to be ingested, if one was published within
    the last ``INGEST_FRESH_S`` seconds; else 0 (nothing counts them, as on AWS)."""
    now = now or datetime.now(UTC)
    response = cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": "ingest", "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": IMAGES_TO_INGEST,
                       "Dimensions": _dimensions(stage)},
            "Period": 1, "Stat": "Maximum"}}],
        StartTime=now - timedelta(seconds=INGEST_FRESH_S), EndTime=now + timedelta(seconds=1))
    points = [(at, value) for result in response["MetricDataResults"]
              for at, value in zip(result.get("Timestamps", []), result.get("Values", []),
                                   strict=False)]
    return round(max(points)[1]) if points else 0


def read_throughput(cloudwatch: Any, stage: str, now: datetime | None = None,
                    window: timedelta = THROUGHPUT_WINDOW) -> Throughput:
    """The fleet's images and busy seconds over the last ``window``, warm-up included."""
    sums = _sums(cloudwatch, stage, (IMAGES, BUSY_SECONDS), now or datetime.now(UTC), window)
    return Throughput(images=sum(sums[IMAGES].values()),
                      busy_seconds=sum(sums[BUSY_SECONDS].values()))


def read_activity(cloudwatch: Any, stage: str, grace: float,
                  now: datetime | None = None) -> FleetActivity:
    """One warm worker's throughput, and the images finished lately and within the
    last ``grace`` seconds, in one GetMetricData request."""
    now = now or datetime.now(UTC)
    window = max(THROUGHPUT_WINDOW, FINISHED_WINDOW, timedelta(seconds=grace))
    sums = _sums(cloudwatch, stage, (WARM_IMAGES, WARM_BUSY_SECONDS, IMAGES), now, window)

    def since(metric: str, seconds: float) -> float:
        # A period counts if it ends after the cut: coarse, so never too late to see.
        cut = now - timedelta(seconds=seconds + QUERY_PERIOD_S)
        return sum(v for at, v in sums[metric].items() if at > cut)

    warm = Throughput(images=since(WARM_IMAGES, THROUGHPUT_WINDOW.total_seconds()),
                      busy_seconds=since(WARM_BUSY_SECONDS,
                                         THROUGHPUT_WINDOW.total_seconds()))
    return FleetActivity(warm=warm,
                         finished=since(IMAGES, FINISHED_WINDOW.total_seconds()),
                         finished_in_grace=since(IMAGES, grace))


def _sums(cloudwatch: Any, stage: str, metrics: tuple[str, ...], now: datetime,
          window: timedelta) -> dict[str, dict[datetime, float]]:
    """Each metric's sums per ``QUERY_PERIOD_S`` over the last ``window``, by the start
    of their period."""
    queries = [
        {"Id": f"m{n}", "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                       "Dimensions": _dimensions(stage)},
            "Period": QUERY_PERIOD_S, "Stat": "Sum"}}
        for n, metric in enumerate(metrics)
    ]
    sums: dict[str, dict[datetime, float]] = {metric: {} for metric in metrics}
    kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": now - window,
                              "EndTime": now + timedelta(seconds=QUERY_PERIOD_S)}
    while True:
        response = cloudwatch.get_metric_data(**kwargs)
        for result in response["MetricDataResults"]:
            metric = metrics[int(result["Id"][1:])]
            for at, value in zip(result.get("Timestamps", []), result.get("Values", []),
                                 strict=False):
                sums[metric][at] = sums[metric].get(at, 0.0) + value
        if not response.get("NextToken"):
            return sums
        kwargs["NextToken"] = response["NextToken"]
