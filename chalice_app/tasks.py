"""Bulk jobs' background work as a Chalice blueprint: ``on_list_task`` (the lister) and
``on_finish_task`` (the finisher), each fed one task at a time by its SQS queue
(skyclass.runtime.bulk.tasks). Chalice subscribes them to the queues named for the
stage in ``SKYCLASS_STAGE`` when it deploys. A handler that raises leaves its task to
come back after the queue's visibility timeout, as Lambda does; after the last try it
lands in the tasks' dead-letter queue.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from chalice import Blueprint
from chalice.app import SQSEvent

from chalice_app.wiring import lambda_settings, services
from skyclass.runtime import constants as c
from skyclass.runtime.bulk.tasks import Task
from skyclass.runtime.errors import InvalidMessageError
from skyclass.runtime.names import finish_queue_name, list_queue_name

log = logging.getLogger(__name__)

bp = Blueprint(__name__)

_STAGE = os.environ.get(c.STAGE) or "local"


@bp.on_sqs_message(queue=list_queue_name(_STAGE), batch_size=1)
def on_list_task(event: SQSEvent) -> None:
    """List more of a source job's prefix into the work queue (skyclass.runtime.bulk.lister).

    Lambda handler ``chalice_app.tasks.on_list_task``; the local Lambda host calls it the
    same way, with an SQS event and a context."""
    remaining = _remaining_time(event.context)
    for record in event:
        task = _task(record.body)
        if task is not None:
            report = services().lister.run(task.job_id, remaining)
            log.info("job %s: listed %d keys, queued %d (%d sent again), %d page(s): %s",
                     task.job_id, report.listed, report.queued, report.resent, report.pages,
                     report.outcome)


@bp.on_sqs_message(queue=finish_queue_name(_STAGE), batch_size=1)
def on_finish_task(event: SQSEvent) -> None:
    """Export an ended job, emit its event and call it back
    (skyclass.runtime.bulk.finisher). Lambda handler ``chalice_app.tasks.on_finish_task``."""
    for record in event:
        task = _task(record.body)
        if task is not None:
            report = services().finisher.run(task)
            log.info("job %s: exported %s rows, event %s, callback %s, finished %s",
                     task.job_id, report.exported, report.event, report.callback,
                     report.finished)


def _task(body: str) -> Task | None:
    try:
        return Task.from_json(body)
    except InvalidMessageError as exc:  # nothing to retry: drop it, say so
        log.error("dropping a task that is not one: %s", exc.message)
        return None


def _remaining_time(context: Any) -> Callable[[], float]:
    """Seconds this invocation has left (Lambda's context; else the tasks' timeout). The
    context comes with the event: a blueprint's ``lambda_context`` needs the app, which
    Lambda does not import for a handler of this module."""
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return lambda: context.get_remaining_time_in_millis() / 1000.0
    deadline = time.monotonic() + lambda_settings().task_timeout
    return lambda: deadline - time.monotonic()
