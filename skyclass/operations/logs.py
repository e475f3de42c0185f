"""An image's trail through a stage's logs, from CloudWatch Logs (``skyclass logs``).

Every component that handles an image names its id in a log line: the API (the job's
uploads, ``/classify``), ingest (queued, rejected), the workers (done, failed) and the
scaling tick (an S3 event retried or failed). A deployed stage's lines are in CloudWatch
Logs: one log group per Lambda, and the workers' group with a stream per instance (the
CloudWatch agent ships each worker's log, ami_build/start-log-agent). The local stack
ships its processes' logs into the emulator's CloudWatch Logs under the same group
names (skyclass.operations.local.log_shipper), so this one reader serves both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from skyclass.runtime.names import (
    API_FUNCTION,
    EVENTS_FUNCTION,
    SCALE_FUNCTION,
    lambda_log_group,
    worker_log_group,
)

# What each log group's lines are, for a person reading the trail.
COMPONENTS = ((API_FUNCTION, "api"), (EVENTS_FUNCTION, "ingest"), (SCALE_FUNCTION, "scaler"))
WORKER = "worker"
_LOCAL_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    component: str  # api, ingest, scaler, or worker/<instance id>
    message: str
    event_id: str

    def render(self) -> str:
        at = datetime.fromtimestamp(self.timestamp_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
        # The time is in front already; a local line's own copy of it is dropped.
        message = _LOCAL_STAMP.sub("", self.message.rstrip(), count=1)
        return f"{at} {self.component:<26} {message}"


def stage_log_groups(stage: str) -> dict[str, str]:
    """Log group -> component, for every log group of the stage."""
    groups = {lambda_log_group(stage, function): label for function, label in COMPONENTS}
    groups[worker_log_group(stage)] = WORKER
    return groups


class LogTrail:
    """Reads a stage's log lines, optionally only those naming one image, merged in time."""

    def __init__(self, logs: Any, stage: str) -> None:
        self._logs = logs
        self._groups = stage_log_groups(stage)

    def read(self, since_ms: int, image_id: str | None = None) -> list[LogLine]:
        """Every line since ``since_ms`` (that names ``image_id``), oldest first; a group
        that does not exist yet (no worker has run) has none."""
        lines = [line for group, component in self._groups.items()
                 for line in self._group(group, component, since_ms, image_id)]
        return sorted(lines, key=lambda line: (line.timestamp_ms, line.event_id))

    def follow(self, since_ms: int, image_id: str | None = None, *, period: float = 2.0,
               stop: Callable[[], bool] = lambda: False,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[LogLine]:
        """The lines as they arrive, until ``stop()``; each line once. CloudWatch Logs
        takes a few seconds to make a line searchable, so each look goes back a little."""
        seen: set[str] = set()
        newest = since_ms
        while True:
            for line in self.read(max(since_ms, newest - 30_000), image_id):
                if line.event_id not in seen:
                    seen.add(line.event_id)
                    newest = max(newest, line.timestamp_ms)
                    yield line
            if stop():
                return
            sleep(period)

    def _group(self, group: str, component: str, since_ms: int,
               image_id: str | None) -> Iterator[LogLine]:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": since_ms}
        if image_id:
            # A quoted term matches the id anywhere in a line, dashes and dots included.
            kwargs["filterPattern"] = f'"{image_id}"'
        try:
            for page in self._logs.get_paginator("filter_log_events").paginate(**kwargs):
                for event in page.get("events", []):
                    label = component
                    if component == WORKER:
                        label = f"{WORKER}/{event['logStreamName']}"
                    yield LogLine(event["timestamp"], label, event["message"],
                                  event["eventId"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
