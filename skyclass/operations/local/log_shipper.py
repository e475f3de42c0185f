"""The local stand-in for the CloudWatch agent and for Lambda's log capture.

On AWS each Lambda's output lands in its log group, and each worker's in the stage's
workers group, one stream per instance (ami_build/start-log-agent). Locally the stack's
processes write files under ``.skyclass/local/logs``; the shipper copies their new lines
into the emulator's CloudWatch Logs under the same group names, so that
``skyclass logs`` (skyclass.operations.logs) reads a local stage exactly as a deployed
one:

* ``api.log`` (Chalice's local server: the API function) -> the API function's group;
* ``lambda-host.log`` (the S3-event bridge and the scaling timer, one process) -> the
  scaling function's group for the lines of the scaler and of the retried S3 events
  (their logger names), the S3-event function's group for the rest;
* ``worker-<instance id>.log`` -> the workers' group, stream ``<instance id>``.

A line's time is the one its logging format put at its start, else that of the line
before it (a traceback's), else now.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from skyclass.runtime.names import (
    API_FUNCTION,
    EVENTS_FUNCTION,
    SCALE_FUNCTION,
    lambda_log_group,
    worker_log_group,
)

log = logging.getLogger(__name__)

LOCAL_STREAM = "local"
# Loggers whose lines the scaling function writes on AWS (the lambda host runs both).
SCALE_LOGGERS = ("skyclass.runtime.fleet", "skyclass.runtime.ingest_failures",
                 "chalice_app.scaling")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\S+)")
# CloudWatch Logs' limits per PutLogEvents call.
_MAX_EVENTS = 10_000
_MAX_BYTES = 1_000_000
_EVENT_OVERHEAD = 26


@dataclass
class _File:
    offset: int = 0
    last_ms: int | None = None
    pending: bytes = b""


class LogShipper:
    def __init__(self, logs: Any, log_dir: Path, stage: str, retention_days: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._logs = logs
        self._dir = log_dir
        self._stage = stage
        self._retention = retention_days
        self._clock = clock
        self._files: dict[str, _File] = {}
        self._streams: set[tuple[str, str]] = set()

    def ship_once(self) -> int:
        """Ship every complete line written since the last call; returns how many."""
        batches: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for path in sorted(self._dir.glob("*.log")):
            for group, stream, timestamp, line in self._new_lines(path):
                batches[(group, stream)].append({"timestamp": timestamp, "message": line or " "})
        shipped = 0
        for (group, stream), events in batches.items():
            self._ensure_stream(group, stream)
            for chunk in _chunks(sorted(events, key=lambda e: e["timestamp"])):
                self._logs.put_log_events(logGroupName=group, logStreamName=stream,
                                          logEvents=chunk)
                shipped += len(chunk)
        return shipped

    def run(self, stop: threading.Event, period: float = 1.0) -> None:
        while not stop.wait(period):
            try:
                self.ship_once()
            except Exception:  # the emulator may be going down; the next pass retries
                log.warning("could not ship the local logs", exc_info=True)

    def _route(self, name: str, line: str) -> tuple[str, str] | None:
        if name == "api.log":
            return lambda_log_group(self._stage, API_FUNCTION), LOCAL_STREAM
        if name == "lambda-host.log":
            match = _STAMP.match(line)
            function = (SCALE_FUNCTION if match and match.group(3).startswith(SCALE_LOGGERS)
                        else EVENTS_FUNCTION)
            return lambda_log_group(self._stage, function), LOCAL_STREAM
        if name.startswith("worker-"):
            return worker_log_group(self._stage), name.removeprefix("worker-").removesuffix(
                ".log")
        return None

    def _new_lines(self, path: Path) -> list[tuple[str, str, int, str]]:
        if self._route(path.name, "") is None:
            return []
        state = self._files.setdefault(path.name, _File())
        try:
            size = path.stat().st_size
            if size < state.offset:  # written anew (a restarted stack)
                state.offset, state.pending = 0, b""
            with path.open("rb") as handle:
                handle.seek(state.offset)
                data = handle.read()
        except OSError:
            return []
        state.offset += len(data)
        data = state.pending + data
        complete, _, state.pending = data.rpartition(b"\n")
        if not complete and not data.endswith(b"\n"):
            return []
        lines = []
        for raw in complete.split(b"\n"):
            line = raw.decode(errors="replace")
            state.last_ms = _timestamp_ms(line) or state.last_ms or int(self._clock() * 1000)
            group, stream = self._route(path.name, line)  # type: ignore[misc]
            lines.append((group, stream, state.last_ms, line))
        return lines

    def _ensure_stream(self, group: str, stream: str) -> None:
        if (group, stream) in self._streams:
            return
        try:
            self._logs.create_log_group(logGroupName=group)
            self._logs.put_retention_policy(logGroupName=group,
                                            retentionInDays=self._retention)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        try:
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
        self._streams.add((group, stream))


def _timestamp_ms(line: str) -> int | None:
    match = _STAMP.match(line)
    if not match:
        return None
    moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")  # local time
    return int(time.mktime(moment.timetuple())) * 1000 + int(match.group(2))


def _chunks(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    for event in events:
        event_size = len(event["message"].encode()) + _EVENT_OVERHEAD
        if len(chunks[-1]) >= _MAX_EVENTS or size + event_size > _MAX_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(event)
        size += event_size
    return [chunk for chunk in chunks if chunk]
