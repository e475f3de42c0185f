"""Worker metrics in CloudWatch: what the workers publish and how the scaler reads it.

Workers publish, per stage (dimension ``Stage``), the images they answered
(``ImagesClassified``, failed ones included: they cost the same receive/delete work),
the seconds they spent busy on batches (``BusySeconds``), per-batch latency
(``BatchLatency``, milliseconds) and ``Errors`` (failed results and transient faults).
Counts are summed in the worker and sent at most every ``flush_every`` seconds, so a
busy fleet makes a few requests a minute, not one per batch.

The scaler and ``GET /fleet`` read the fleet's real per-worker throughput as
``sum(ImagesClassified) / sum(BusySeconds)`` over a recent window: images per second of
one busy worker, however many workers there were and however idle they were.
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
BATCH_LATENCY = "BatchLatency"
ERRORS = "Errors"


def _dimensions(stage: str) -> list[dict[str, str]]:
    return [{"Name": "Stage", "Value": stage}]


class MetricsPublisher:
    """Accumulates a worker's batch figures and sends them in one request at most every
    ``flush_every`` seconds (and on ``flush()``, e.g. at shutdown). Thread-safe."""

    def __init__(self, cloudwatch: Any, stage: str, *, flush_every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cloudwatch = cloudwatch
        self._stage = stage
        self._flush_every = flush_every
        self._clock = clock
        self._lock = threading.Lock()
        self._reset()
        self._last_flush = clock()

    def record_batch(self, images: int, errors: int, seconds: float) -> None:
        with self._lock:
            self._images += images
            self._errors += errors
            self._busy += seconds
            self._latencies.append(seconds * 1000.0)
        if self._clock() - self._last_flush >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._latencies:
                return
            images, errors, busy, latencies = (self._images, self._errors, self._busy,
                                               self._latencies)
            self._reset()
            self._last_flush = self._clock()
        dims = _dimensions(self._stage)
        self._cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[
            {"MetricName": IMAGES, "Dimensions": dims, "Value": images, "Unit": "Count"},
            {"MetricName": ERRORS, "Dimensions": dims, "Value": errors, "Unit": "Count"},
            {"MetricName": BUSY_SECONDS, "Dimensions": dims, "Value": busy, "Unit": "Seconds"},
            {"MetricName": BATCH_LATENCY, "Dimensions": dims, "Unit": "Milliseconds",
             "StatisticValues": {"SampleCount": len(latencies), "Sum": sum(latencies),
                                 "Minimum": min(latencies), "Maximum": max(latencies)}},
        ])

    def _reset(self) -> None:
        self._images = 0
        self._errors = 0
        self._busy = 0.0
        self._latencies: list[float] = []


@dataclass(frozen=True)
class Throughput:
    images: float
    busy_seconds: float

    @property
    def per_worker(self) -> float | None:
        """Images per second of one busy worker, or None with too little to go on."""
        return self.images / self.busy_seconds if self.busy_seconds >= 1.0 else None


def read_throughput(cloudwatch: Any, stage: str, now: datetime | None = None,
                    window: timedelta = timedelta(minutes=10)) -> Throughput:
    """The fleet's images and busy seconds over the last ``window``."""
    now = now or datetime.now(UTC)
    queries = [
        {"Id": metric.lower(), "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                       "Dimensions": _dimensions(stage)},
            "Period": int(window.total_seconds()), "Stat": "Sum"}}
        for metric in (IMAGES, BUSY_SECONDS)
    ]
    response = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=now - window,
                                          EndTime=now + timedelta(minutes=1))
    sums = {r["Id"]: sum(r.get("Values", [])) for r in response["MetricDataResults"]}
    return Throughput(images=sums.get(IMAGES.lower(), 0.0),
                      busy_seconds=sums.get(BUSY_SECONDS.lower(), 0.0))
