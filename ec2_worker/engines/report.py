"""Tell the fleet which engine this worker runs, in which precision, and why.

Once, when the worker is ready, two records beside the log line:

- a status object in the output bucket, ``fleet/workers/{worker_id}.json`` (the
  worker id is the EC2 instance id), which ``GET /fleet`` can show beside that
  instance: the engine, its precision, the reason, the start-up steps and what was
  measured on this machine;
- a CloudWatch datapoint ``EngineReady`` (seconds from process start to ready) with
  dimensions ``Stage``, ``Engine`` and ``Precision``, so the metrics can be split by
  engine, and ``EngineSpeedup`` (the chosen engine's measured speed over TensorFlow's
  at the largest batch, when ``auto`` measured one) with ``Stage`` and ``Engine``.

Neither may stop a worker: if the role may not write them, the worker logs it and works.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ec2_worker.engines.build import EngineReport
from skyclass.runtime.contracts import worker_status_key
from skyclass.runtime.metrics import NAMESPACE

log = logging.getLogger(__name__)

STATUS_VERSION = 1
ENGINE_READY = "EngineReady"
ENGINE_SPEEDUP = "EngineSpeedup"


def worker_status(report: EngineReport, worker_id: str, model: str, ready_seconds: float,
                  now: datetime | None = None) -> dict[str, Any]:
    """The status object: what ``/fleet`` shows of this worker's engine."""
    return {
        "v": STATUS_VERSION,
        "worker": worker_id,
        "model": model,
        **report.as_json(),
        "ready_s": round(ready_seconds, 2),
        "speedup": speedup(report),
        "started_at": (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
    }


def speedup(report: EngineReport) -> float | None:
    """The running engine's measured images/s over TensorFlow's at the largest batch
    size measured, or None when nothing was measured on this machine."""
    mine = report.measured.get(report.engine, {}).get("rates")
    tensorflow = report.measured.get("tensorflow", {}).get("rates")
    if not (mine and tensorflow):
        return None
    largest = max(tensorflow, key=int)
    return round(mine[largest] / tensorflow[largest], 3)


def publish(report: EngineReport, *, s3: Any, bucket: str, cloudwatch: Any, stage: str,
            worker_id: str, model: str, ready_seconds: float) -> None:
    status = worker_status(report, worker_id, model, ready_seconds)
    try:
        s3.put_object(Bucket=bucket, Key=worker_status_key(worker_id),
                      Body=json.dumps(status).encode(), ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        log.warning("cannot write the worker's status to s3://%s/%s: %s",
                    bucket, worker_status_key(worker_id), exc)
    engine = [{"Name": "Stage", "Value": stage}, {"Name": "Engine", "Value": report.engine}]
    data = [{"MetricName": ENGINE_READY, "Unit": "Seconds", "Value": ready_seconds,
             "Dimensions": [*engine, {"Name": "Precision", "Value": report.precision}]}]
    if status["speedup"] is not None:
        data.append({"MetricName": ENGINE_SPEEDUP, "Unit": "None", "Value": status["speedup"],
                     "Dimensions": engine})
    try:
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data)
    except (ClientError, BotoCoreError) as exc:
        log.warning("cannot publish the worker's engine metrics: %s", exc)
