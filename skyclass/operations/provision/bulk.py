"""Provisioning for bulk jobs (docs/bulk.md), called by ``provision`` for every stage,
local ones included: the jobs table, the listing and completion task queues with their
dead-letter queue, the stage's event bus and the secret that signs job callbacks.

The table bills on demand (a job's load comes in bursts, and an idle stage then costs
only its storage) and has one sparse index, ``active``, of the jobs still running or
with work still queued. Task queues hide a task for six times the tasks' timeout, as
AWS advises for a Lambda's SQS event source, and give up on a task after
``TASK_RECEIVES`` tries. Everything is tagged with the stage and found again by name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from botocore.exceptions import ClientError

from skyclass.operations.provision.api_key import ensure_callback_secret
from skyclass.operations.provision.queues import ensure_queue
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.bulk.jobstore import ACTIVE_INDEX
from skyclass.runtime.names import (
    event_bus_name,
    finish_queue_name,
    jobs_table_name,
    list_queue_name,
    stage_tags,
    tag_list,
    tasks_dlq_name,
)
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

TASK_RECEIVES = 5
VISIBILITY_PER_TIMEOUT = 6


@dataclass(frozen=True)
class BulkProvisioned:
    jobs_table: str
    list_queue_url: str
    finish_queue_url: str
    tasks_dlq_url: str
    event_bus: str
    callback_secret_parameter: str


def provision_bulk(settings: Settings, aws: AwsClients) -> BulkProvisioned:
    stage = settings.stage
    tags = stage_tags(stage)
    table = ensure_jobs_table(aws, jobs_table_name(stage), tags)
    dlq_url = ensure_queue(aws, tasks_dlq_name(stage),
                            {"MessageRetentionPeriod": str(14 * 24 * 3600)}, tags)
    dlq_arn = aws.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    task_attributes = {
        "VisibilityTimeout": str(VISIBILITY_PER_TIMEOUT * settings.task_timeout),
        "MessageRetentionPeriod": str(4 * 24 * 3600),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(TASK_RECEIVES)}),
    }
    list_url = ensure_queue(aws, list_queue_name(stage), task_attributes, tags)
    finish_url = ensure_queue(aws, finish_queue_name(stage), task_attributes, tags)
    bus = ensure_event_bus(aws, event_bus_name(stage), tags)
    parameter = ensure_callback_secret(aws, stage)
    return BulkProvisioned(table, list_url, finish_url, dlq_url, bus, parameter)


def ensure_jobs_table(aws: AwsClients, name: str, tags: dict[str, str]) -> str:
    dynamodb = aws.client("dynamodb")
    try:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                  for a in ("pk", "sk", "act")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": ACTIVE_INDEX,
                "KeySchema": [{"AttributeName": "act", "KeyType": "HASH"},
                              {"AttributeName": "pk", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }],
            SSESpecification={"Enabled": True},
            Tags=tag_list(tags),
        )
        log.info("created table %s", name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name,
                                             WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    return name


def ensure_event_bus(aws: AwsClients, name: str, tags: dict[str, str]) -> str:
    events = aws.client("events")
    try:
        events.create_event_bus(Name=name, Tags=tag_list(tags))
        log.info("created event bus %s", name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    return name
