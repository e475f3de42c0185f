"""Bulk jobs' routes and task handlers as a Chalice blueprint (docs/bulk.md).

Routes: ``POST /jobs/{id}/images`` (another page of uploads), ``POST /jobs/{id}/cancel``
and ``GET /jobs/{id}/export?format=csv|jsonl``; ``POST /jobs`` and ``GET /jobs/{id}``
themselves stay in chalice_app/api.py and reach the same service
(skyclass.runtime.bulk.service). Each route parses, calls one method, and answers.

Task handlers: ``on_list_task`` (the lister) and ``on_finish_task`` (the finisher), each
fed one task at a time by its SQS queue. Chalice subscribes them to the queues named
for the stage in ``SKYCLASS_STAGE`` when it deploys. A handler that raises leaves its
task to come back after the queue's visibility timeout, as Lambda does; after the last
try it lands in the tasks' dead-letter queue.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from chalice import Blueprint, Response
from chalice.app import SQSEvent

from chalice_app.api import json_body
from chalice_app.errors import json_errors
from chalice_app.wiring import lambda_settings, services
from skyclass.runtime import constants as c
from skyclass.runtime.bulk.tasks import Task
from skyclass.runtime.errors import InvalidMessageError
from skyclass.runtime.names import finish_queue_name, list_queue_name

log = logging.getLogger(__name__)

bp = Blueprint(__name__)

_STAGE = os.environ.get(c.STAGE) or "local"


@bp.route("/jobs/{job_id}/images", methods=["POST"])
@json_errors
def add_images(job_id: str) -> Response:
    return Response(body=services().bulk.add_images(job_id, json_body(bp)), status_code=201)


@bp.route("/jobs/{job_id}/cancel", methods=["POST"])
@json_errors
def cancel_job(job_id: str) -> dict[str, Any]:
    return services().bulk.cancel(job_id)


@bp.route("/jobs/{job_id}/export", methods=["GET"])
@json_errors
def export_link(job_id: str) -> dict[str, Any]:
    params = bp.current_request.query_params or {}
    return services().bulk.export_link(job_id, params.get("format"))


@bp.on_sqs_message(queue=list_queue_name(_STAGE), batch_size=1)
def on_list_task(event: SQSEvent) -> None:
    """List more of a source job's prefix into the work queue (skyclass.runtime.bulk.lister).

    Lambda handler ``chalice_app.bulk.on_list_task``; the local Lambda host calls it the
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
    (skyclass.runtime.bulk.finisher). Lambda handler ``chalice_app.bulk.on_finish_task``."""
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


def _remaining_time(context: Any):
    """Seconds this invocation has left (Lambda's context; else the tasks' timeout). The
    context comes with the event: a blueprint's ``lambda_context`` needs the app, which
    Lambda does not import for a handler of this module."""
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return lambda: context.get_remaining_time_in_millis() / 1000.0
    deadline = time.monotonic() + lambda_settings().task_timeout
    return lambda: deadline - time.monotonic()
