"""The local stand-in for Lambda's SQS event sources: the bulk jobs' task handlers
(``on_list_task``, ``on_finish_task``), each in a process of its own.

On AWS, Lambda polls a function's queue, invokes the function with a batch of records
and deletes them when it returns; if the function raises, or its execution environment
dies, the records come back after the queue's visibility timeout and are tried again,
until the queue's redrive policy moves them to the dead-letter queue. Locally:

* ``SqsEventSource`` does the polling and invoking inside a function's process: one
  message at a time (the functions' batch size), the event shape Lambda builds, a
  context with the tasks' timeout (``SKYCLASS_TASK_TIMEOUT``), delete on return.
* ``FunctionProcesses`` (in the Lambda host) keeps one such process per function and
  starts a new one whenever one exits, as Lambda starts a fresh execution environment.
  The host never runs these handlers itself, so a function's process that dies — the
  end-to-end test SIGKILLs the lister mid-listing — costs one invocation, which is
  retried when its message comes back, never the host or the stack.

    python -m skyclass.operations.local.sqs_functions on_list_task
"""

from __future__ import annotations

import importlib
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from skyclass.operations.local.processes import signal_group, spawn
from skyclass.runtime.names import (
    FINISH_FUNCTION,
    LIST_FUNCTION,
    finish_queue_name,
    list_queue_name,
)

log = logging.getLogger("skyclass.operations.local.sqs_functions")

# Chalice's function name -> (handler, the queue named for a stage).
FUNCTIONS: dict[str, tuple[str, Callable[[str], str]]] = {
    LIST_FUNCTION: ("chalice_app.tasks.on_list_task", list_queue_name),
    FINISH_FUNCTION: ("chalice_app.tasks.on_finish_task", finish_queue_name),
}
LAMBDA_MEMORY_MB = 512
RESTART_DELAY_S = 1.0
STOP_GRACE_S = 5.0


def sqs_event(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source passes for one received message."""
    attributes = message.get("Attributes", {})
    return {"Records": [{
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in (
            "ApproximateReceiveCount", "SentTimestamp", "SenderId",
            "ApproximateFirstReceiveTimestamp") if name in attributes},
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }]}


class SqsEventSource:
    """Polls one queue and invokes one handler per message, as Lambda would."""

    def __init__(self, sqs: Any, queue_url: str, handler: Callable[[dict, Any], Any],
                 context_factory: Callable[[], Any], region: str = "us-east-1",
                 wait_seconds: int = 2) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._handler = handler
        self._context_factory = context_factory
        self._region = region
        self._wait_seconds = wait_seconds
        self._arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def poll_once(self) -> int:
        messages = self._sqs.receive_message(
            QueueUrl=self._url, MaxNumberOfMessages=1, WaitTimeSeconds=self._wait_seconds,
            MessageSystemAttributeNames=["All"]).get("Messages", [])
        for message in messages:
            try:
                self._handler(sqs_event(message, self._arn, self._region),
                              self._context_factory())
            except Exception:  # Lambda's retry: the message comes back when it is visible
                log.exception("the handler failed; its message comes back after the "
                              "queue's visibility timeout")
                continue
            self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the emulator may be going down; retry, don't die
                log.exception("could not poll %s", self._url)
                stop.wait(1.0)


class FunctionProcesses:
    """One process per SQS-triggered function, started again whenever it exits."""

    def __init__(self, functions: list[str], env: Mapping[str, str], cwd: Path,
                 log_dir: Path, restart_delay: float = RESTART_DELAY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._functions = functions
        self._env = dict(env)
        self._cwd = cwd
        self._log_dir = log_dir
        self._restart_delay = restart_delay
        self._clock = clock
        self._processes: dict[str, subprocess.Popen] = {}
        self._restart_at: dict[str, float] = {}

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._processes.items() if p.poll() is None}

    def tick(self) -> None:
        """Start what is not running (call from the main thread: see
        processes.die_with_parent)."""
        now = self._clock()
        for name in self._functions:
            process = self._processes.get(name)
            if process is not None and process.poll() is None:
                continue
            if process is not None:
                log.warning("%s's process exited with code %s; starting a new one, as "
                            "Lambda would", name, process.returncode)
                del self._processes[name]
                self._restart_at[name] = now + self._restart_delay
            if now < self._restart_at.get(name, 0.0):
                continue
            self._log_dir.mkdir(parents=True, exist_ok=True)
            self._processes[name] = spawn(
                [sys.executable, "-m", "skyclass.operations.local.sqs_functions", name],
                self._env, self._cwd, self._log_dir / f"function-{name}.log", append=True)

    def stop(self) -> None:
        for process in self._processes.values():
            signal_group(process.pid, signal.SIGTERM)
        for process in self._processes.values():
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                signal_group(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()


def main(argv: list[str] | None = None) -> int:
    """Run one function's event source until SIGTERM."""
    from chalice.local import LambdaContext

    from skyclass.runtime.aws import AwsClients
    from skyclass.runtime.settings import Settings

    name = (argv or sys.argv[1:])[0]
    handler_path, queue_name = FUNCTIONS[name]
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    settings = Settings.from_env()
    aws = AwsClients(settings.region)
    module, _, attribute = handler_path.rpartition(".")
    handler = getattr(importlib.import_module(module), attribute)
    url = aws.sqs.get_queue_url(QueueName=queue_name(settings.stage))["QueueUrl"]
    source = SqsEventSource(
        aws.sqs, url, handler, region=settings.region or "us-east-1",
        context_factory=lambda: LambdaContext(name, LAMBDA_MEMORY_MB,
                                              max_runtime_ms=settings.task_timeout * 1000))
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("%s: invoking %s for each task in %s", name, handler_path, url)
    source.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
