"""The local stand-in for the Lambda service's event sources (its own process).

On AWS, S3 invokes the ``on_s3_event`` Lambda for each new input object and
EventBridge invokes the ``scale`` Lambda on a schedule. The emulator can deliver S3
notifications only to SQS (its Lambda needs Docker), so locally (ARCHITECTURE.md,
"Local mode"):

* ``S3EventBridge`` long-polls the S3-notification queue that provisioning created and
  calls the same Chalice handler with the same event shape, the records of one receive
  in one call (a record alone if that call fails). A notification is deleted only after
  the handler returned; if the handler raised, the message reappears after its
  visibility timeout and is retried, at most ``MAX_ATTEMPTS`` times in all, as Lambda
  retries an asynchronous invocation. After that, as the deployed function's on-failure
  destination does, a record of the failed invocation goes to the stage's
  ingest-failures queue, where the scaling tick retries it or fails its images
  (skyclass.runtime.ingest_failures). Every second it publishes how many notifications
  wait (``ImagesToIngest``, skyclass.runtime.metrics): what the scaler sees of images
  not yet ingested.
* ``Schedule`` calls the scaling handler every ``SKYCLASS_SCALE_PERIOD`` seconds with
  an EventBridge "Scheduled Event".
* The SQS-triggered functions of bulk jobs run in processes of their own, which this
  host starts and restarts (skyclass.operations.local.sqs_functions).

Both take the handler as an argument, so they are tested without Chalice.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

log = logging.getLogger("skyclass.operations.local.lambda_host")

Handler = Callable[[dict[str, Any], Any], Any]
ContextFactory = Callable[[str], Any]

# Lambda's asynchronous invocation: one try and two retries.
MAX_ATTEMPTS = 3
RETRY_AFTER_SECONDS = 5
POLLERS = 4  # receives delivered at once (each event's records are read concurrently)
REPORT_PERIOD_S = 1.0
LAMBDA_TIMEOUT_MS = 60_000
LAMBDA_MEMORY_MB = 512


def lambda_context(function_name: str) -> Any:
    """A context object with the attributes and methods Lambda's runtime provides."""
    from chalice.local import LambdaContext

    return LambdaContext(function_name, LAMBDA_MEMORY_MB, max_runtime_ms=LAMBDA_TIMEOUT_MS)


class S3EventBridge:
    """Turns S3 notifications waiting in SQS into invocations of the S3 event handler.

    Lambda runs one invocation per S3 event, many side by side; on one machine that many
    Python calls cost more than the work they do, so the bridge hands the handler the
    records of one receive (up to ten) in one event, as those invocations side by side
    would have queued them, and deletes them in one batch. If that call fails, each
    record is delivered alone, as Lambda would, so a record that keeps failing is retried,
    and then sent to the on-failure destination, on its own. ``pollers`` such receives
    run at once."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str = "on_s3_event",
        context_factory: ContextFactory = lambda_context,
        wait_seconds: int = 1,
        max_attempts: int = MAX_ATTEMPTS,
        retry_after: int = RETRY_AFTER_SECONDS,
        pollers: int = POLLERS,
        failure_queue_url: str | None = None,
        report_waiting: Callable[[int], None] | None = None,
    ):
        """``report_waiting(n)``: told, once a second while any wait and once when none
        is left, how many notifications wait for the handler (the scaler counts them)."""
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._context_factory = context_factory
        self._wait_seconds = wait_seconds
        self._max_attempts = max_attempts
        self._retry_after = retry_after
        self._pollers = pollers
        self._failure_queue_url = failure_queue_url
        self._report_waiting = report_waiting
        self._reported = 0

    def poll_once(self) -> int:
        """Receive up to ten notifications and deliver them; returns how many arrived."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait_seconds,
            VisibilityTimeout=self._retry_after,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        events = []
        done = []
        for message in messages:
            records = self._records(message)
            if records:
                events.append((message, records))
            else:
                done.append(message)
        if len(events) == 1:
            message, records = events[0]
            if self._deliver(message, records):
                done.append(message)
        elif events:
            try:
                self._invoke([r for _, records in events for r in records])
                done += [message for message, _ in events]
            except Exception:
                log.warning("%s failed on %d events together; delivering each alone",
                            self._function_name, len(events), exc_info=True)
                done += [message for message, records in events
                         if self._deliver(message, records)]
        self._delete(done)
        return len(messages)

    def report_waiting(self) -> int:
        """Tell ``report_waiting`` how many notifications wait (received or not), if any
        do or the last count was not zero; returns the count."""
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        waiting = sum(int(count) for count in attributes.values())
        if self._report_waiting is not None and (waiting or self._reported):
            self._report_waiting(waiting)
        self._reported = waiting
        return waiting

    def run(self, stop: threading.Event) -> None:
        """Poll with ``pollers`` threads, and report what waits every second, until
        ``stop``."""
        threads = [threading.Thread(target=self._poll_until, args=(stop,), daemon=True,
                                    name=f"{self._function_name}-{n}")
                   for n in range(self._pollers)]
        if self._report_waiting is not None:
            threads.append(threading.Thread(target=self._report_until, args=(stop,),
                                            daemon=True, name="report-waiting"))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _report_until(self, stop: threading.Event) -> None:
        while not stop.wait(REPORT_PERIOD_S):
            try:
                self.report_waiting()
            except Exception:  # the emulator may be going down; the next second retries
                log.warning("could not report the S3 notifications waiting", exc_info=True)

    def _poll_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:  # the emulator may be going down; retry, don't die
                log.exception("could not poll the S3 notification queue")
                stop.wait(1.0)

    def _records(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The S3 records of a notification; none for anything else (e.g. the
        s3:TestEvent sent when notifications are configured), which is dropped."""
        try:
            records = json.loads(message["Body"]).get("Records")
        except (ValueError, AttributeError):
            log.warning("dropping a notification that is not an S3 event: %.200s", message["Body"])
            return []
        return records or []

    def _invoke(self, records: list[dict[str, Any]]) -> None:
        self._handler({"Records": records}, self._context_factory(self._function_name))

    def _deliver(self, message: dict[str, Any], records: list[dict[str, Any]]) -> bool:
        """Deliver one notification's records, one per call, as Lambda would; whether
        it is done with (delivered, or failed for the last time)."""
        try:
            for record in records:
                self._invoke([record])
        except Exception as exc:
            attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if attempt >= self._max_attempts:
                self._record_failure({"Records": records}, exc, attempt)
                return True
            log.exception(
                "%s failed (attempt %d of %d); retrying in %ds",
                self._function_name, attempt, self._max_attempts, self._retry_after,
            )
            return False
        return True

    def _record_failure(self, event: dict[str, Any], exc: Exception, attempts: int) -> None:
        """What Lambda does with an invocation that failed every try: send its record to
        the on-failure destination (if there is none, the event is lost, as on AWS)."""
        if self._failure_queue_url is None:
            log.error("%s failed %d times; dropping the event: %s", self._function_name,
                      attempts, exc)
            return
        record = invocation_failure_record(self._function_name, event, exc, attempts)
        self._sqs.send_message(QueueUrl=self._failure_queue_url, MessageBody=json.dumps(record))
        log.error("%s failed %d times (%s); sent the event to its on-failure destination",
                  self._function_name, attempts, exc)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        if messages:
            self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                for n, m in enumerate(messages)])


def invocation_failure_record(function_name: str, event: dict[str, Any], exc: Exception,
                              attempts: int) -> dict[str, Any]:
    """The record Lambda sends to an on-failure destination after the last try."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": function_name,
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(exc), "errorType": type(exc).__name__},
    }


def scheduled_event(
    rule_name: str, now: datetime, region: str = "us-east-1", account: str = "123456789012"
) -> dict[str, Any]:
    """The event EventBridge sends to a Lambda on a schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{rule_name}"],
        "detail": {},
    }


class Schedule:
    """Calls a handler every ``period`` seconds, as an EventBridge rule would."""

    def __init__(
        self,
        handler: Handler,
        period: float,
        *,
        function_name: str = "scale",
        region: str = "us-east-1",
        context_factory: ContextFactory = lambda_context,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._handler = handler
        self._period = period
        self._function_name = function_name
        self._region = region
        self._context_factory = context_factory
        self._now = now

    def fire(self) -> None:
        event = scheduled_event(f"skyclass-{self._function_name}", self._now(), self._region)
        try:
            self._handler(event, self._context_factory(self._function_name))
        except Exception:  # a failed run is logged; the next tick runs again, as on AWS
            log.exception("%s failed", self._function_name)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._period):
            self.fire()


def main() -> int:
    """Run the bridge and the schedule for the stage in the environment until SIGTERM."""
    from chalice_app.events import on_s3_event
    from chalice_app.scaling import scale
    from skyclass.operations.local.sqs_functions import FUNCTIONS, FunctionProcesses
    from skyclass.operations.local.stack import local_state_dir
    from skyclass.operations.project import PROJECT_DIR
    from skyclass.runtime.aws import AwsClients
    from skyclass.runtime.metrics import publish_images_to_ingest
    from skyclass.runtime.names import ingest_failures_queue_name, s3_events_queue_name
    from skyclass.runtime.settings import Settings

    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    settings = Settings.from_env()
    aws = AwsClients(settings.region)
    events_url = aws.sqs.get_queue_url(QueueName=s3_events_queue_name(settings.stage))["QueueUrl"]
    failures_url = aws.sqs.get_queue_url(
        QueueName=ingest_failures_queue_name(settings.stage))["QueueUrl"]
    bridge = S3EventBridge(
        aws.sqs, events_url, on_s3_event, failure_queue_url=failures_url,
        report_waiting=lambda n: publish_images_to_ingest(aws.cloudwatch, settings.stage, n))
    schedule = Schedule(scale, settings.scale_period, region=aws.region)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    threads = [
        threading.Thread(target=bridge.run, args=(stop,), name="s3-events", daemon=True),
        threading.Thread(target=schedule.run, args=(stop,), name="schedule", daemon=True),
    ]
    for thread in threads:
        thread.start()
    log.info(
        "delivering S3 events from %s; calling scale every %gs", events_url, settings.scale_period
    )
    functions = FunctionProcesses(list(FUNCTIONS), os.environ, PROJECT_DIR,
                                  local_state_dir() / "logs")
    functions.tick()
    while not stop.wait(0.5):
        functions.tick()
    functions.stop()
    deadline = time.monotonic() + 5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
