"""Least-privilege IAM policy documents for a stage, built from its exact resource names.

Every Lambda gets its own role (Chalice gives each function one when ``autogen_policy``
is off) and the worker instances get the instance profile's role. Each statement names
this stage's buckets (down to the key prefixes of ARCHITECTURE.md's S3 layout), its
queues and its own log group, in this region and account. Two kinds of action cannot be
scoped by resource: ``ec2:DescribeInstances`` and CloudWatch's metric calls accept only
``"*"`` (AWS offers no resource-level permission for them); the metric write is then
held to skyclass's namespace by a condition. Starting and stopping instances is allowed
only on instances tagged as this stage's workers (``aws:ResourceTag`` conditions).

Pure: no AWS calls; ``bootstrap`` writes the documents for Chalice and IAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skyclass.runtime import constants as c
from skyclass.runtime.bulk.jobstore import ACTIVE_INDEX
from skyclass.runtime.metrics import NAMESPACE
from skyclass.runtime.names import (
    API_FUNCTION,
    EVENTS_FUNCTION,
    FINISH_FUNCTION,
    LIST_FUNCTION,
    SCALE_FUNCTION,
    StageResources,
    api_key_parameter_name,
    callback_secret_parameter_name,
    event_bus_name,
    finish_queue_name,
    ingest_failures_queue_name,
    jobs_table_name,
    lambda_function_name,
    list_queue_name,
    queue_name_of,
    worker_log_group,
)

# The only actions granted on "*": AWS has no resource-level permissions for them.
UNSCOPABLE_ACTIONS = frozenset(
    {"ec2:DescribeInstances", "cloudwatch:GetMetricData", "cloudwatch:PutMetricData"}
)

Statement = dict[str, Any]


@dataclass(frozen=True)
class StageArns:
    """ARNs of one stage's resources in one account and region."""

    stage: str
    region: str
    account: str
    input_bucket: str
    output_bucket: str
    queue: str
    dlq: str
    source_buckets: tuple[str, ...] = ()

    @classmethod
    def of(cls, resources: StageResources, region: str, account: str) -> StageArns:
        return cls(
            stage=resources.stage, region=region, account=account,
            input_bucket=resources.input_bucket, output_bucket=resources.output_bucket,
            queue=queue_name_of(resources.queue_url), dlq=queue_name_of(resources.dlq_url),
            source_buckets=resources.source_buckets,
        )

    # ---- bulk jobs (docs/bulk.md) ----

    def table(self) -> str:
        return (f"arn:aws:dynamodb:{self.region}:{self.account}:table/"
                f"{jobs_table_name(self.stage)}")

    def active_index(self) -> str:
        return f"{self.table()}/index/{ACTIVE_INDEX}"

    def list_queue(self) -> str:
        return self.queue_arn(list_queue_name(self.stage))

    def finish_queue(self) -> str:
        return self.queue_arn(finish_queue_name(self.stage))

    def event_bus(self) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:event-bus/{event_bus_name(self.stage)}"

    def source_bucket_arns(self) -> list[str]:
        return [f"arn:aws:s3:::{bucket}" for bucket in self.source_buckets]

    def source_object_arns(self) -> list[str]:
        return [f"arn:aws:s3:::{bucket}/*" for bucket in self.source_buckets]

    def objects(self, bucket: str, *prefixes: str) -> list[str]:
        return [f"arn:aws:s3:::{bucket}/{prefix}*" for prefix in prefixes]

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def instances(self) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:instance/*"

    def parameter(self, name: str) -> str:
        return f"arn:aws:ssm:{self.region}:{self.account}:parameter/{name.lstrip('/')}"

    def log_group(self, function_name: str) -> str:
        return (f"arn:aws:logs:{self.region}:{self.account}:log-group:"
                f"/aws/lambda/{function_name}:*")

    def ingest_failures(self) -> str:
        return self.queue_arn(ingest_failures_queue_name(self.stage))

    def worker_logs(self) -> str:
        return (f"arn:aws:logs:{self.region}:{self.account}:log-group:"
                f"{worker_log_group(self.stage)}:*")


def lambda_policies(arns: StageArns) -> dict[str, dict[str, Any]]:
    """One policy document per Lambda function, keyed by Chalice's function name."""
    jobs, incoming, results = c.JOBS_PREFIX, c.INCOMING_PREFIX, c.RESULTS_PREFIX
    fleet = c.FLEET_DECISION_KEY.rsplit("/", 1)[0] + "/"
    statements: dict[str, list[Statement]] = {
        API_FUNCTION: [
            _allow("UploadImages", ["s3:PutObject"], arns.objects(arns.input_bucket, jobs)),
            _allow("WriteManifests", ["s3:PutObject"], arns.objects(arns.output_bucket, jobs)),
            _allow("ReadManifestsResultsAndFleet", ["s3:GetObject"],
                   arns.objects(arns.output_bucket, jobs, results, fleet)),
            _allow("ListResults", ["s3:ListBucket"], [f"arn:aws:s3:::{arns.output_bucket}"],
                   {"StringLike": {"s3:prefix": [f"{results}*"]}}),
            _allow("QueueDepths", ["sqs:GetQueueAttributes"],
                   [arns.queue_arn(arns.queue), arns.queue_arn(arns.dlq)]),
            _see_instances(),
            # A SecureString under SSM's AWS-managed key: ssm:GetParameter suffices.
            _allow("ReadApiKey", ["ssm:GetParameter"],
                   [arns.parameter(api_key_parameter_name(arns.stage))]),
            _allow("Jobs", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                            "dynamodb:Query", "dynamodb:BatchWriteItem"], [arns.table()]),
            *_send_tasks(arns, arns.list_queue(), arns.finish_queue()),
            # Presigning signs with the API's own role: the export link works only so.
            _allow("LinkExports", ["s3:GetObject"],
                   arns.objects(arns.output_bucket, c.EXPORTS_PREFIX)),
        ],
        EVENTS_FUNCTION: [
            _allow("ReadNewImages", ["s3:GetObject"],
                   arns.objects(arns.input_bucket, jobs, incoming)),
            _allow("FailBadImages", ["s3:PutObject"],
                   arns.objects(arns.output_bucket, results)),
            _allow("EnqueueWork", ["sqs:SendMessage"], [arns.queue_arn(arns.queue)]),
            _see_instances(),
            _start_stop(arns, ["ec2:StartInstances"]),
            # Lambda sends the on-failure destination's records with the function's role.
            _allow("RecordFailedInvocations", ["sqs:SendMessage"], [arns.ingest_failures()]),
            _count_answers(arns),
            *_send_tasks(arns, arns.finish_queue()),
        ],
        SCALE_FUNCTION: [
            _allow("QueueDepths", ["sqs:GetQueueAttributes"],
                   [arns.queue_arn(arns.queue), arns.queue_arn(arns.dlq)]),
            _allow("RecordDecisions", ["s3:GetObject", "s3:PutObject"],
                   arns.objects(arns.output_bucket, fleet)),
            _see_instances(),
            _start_stop(arns, ["ec2:StartInstances", "ec2:StopInstances"]),
            _allow("ReadThroughput", ["cloudwatch:GetMetricData"], ["*"]),
            # Each tick retries failed S3-event invocations through the Ingestor, which
            # needs what the S3-event function has, and fails images that stay stuck.
            _allow("RetryFailedInvocations", ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
                   [arns.ingest_failures()]),
            _allow("ReingestImages", ["s3:GetObject"],
                   arns.objects(arns.input_bucket, jobs, incoming)),
            _allow("RequeueImages", ["sqs:SendMessage"], [arns.queue_arn(arns.queue)]),
            _allow("FailStuckImages", ["s3:GetObject", "s3:PutObject"],
                   arns.objects(arns.output_bucket, results)),
            # A missing result must answer 404, not 403, to the check before writing one.
            _allow("ListResults", ["s3:ListBucket"], [f"arn:aws:s3:::{arns.output_bucket}"],
                   {"StringLike": {"s3:prefix": [f"{results}*"]}}),
            _allow("ActiveJobs", ["dynamodb:Query"], [arns.active_index()]),
            # Completes jobs no worker completed; counts the images it fails (above).
            _count_answers(arns),
            *_send_tasks(arns, arns.finish_queue()),
        ],
        LIST_FUNCTION: [
            _consume_tasks(arns.list_queue()),
            # Read-only, and only the configured buckets: list here, get in the workers.
            *([_allow("ListSources", ["s3:ListBucket"], arns.source_bucket_arns())]
              if arns.source_buckets else []),
            _allow("ListingState", ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                   [arns.table()]),
            _allow("EnqueueWork", ["sqs:SendMessage"], [arns.queue_arn(arns.queue)]),
            *_send_tasks(arns, arns.list_queue(), arns.finish_queue()),
        ],
        FINISH_FUNCTION: [
            _consume_tasks(arns.finish_queue()),
            _allow("ReadJobs", ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"],
                   [arns.table()]),
            _allow("WriteExports", ["s3:PutObject", "s3:AbortMultipartUpload"],
                   arns.objects(arns.output_bucket, c.EXPORTS_PREFIX)),
            _allow("AnnounceCompletion", ["events:PutEvents"], [arns.event_bus()]),
            # Only the finisher signs callbacks, so only it reads the key.
            _allow("ReadCallbackSecret", ["ssm:GetParameter"],
                   [arns.parameter(callback_secret_parameter_name(arns.stage))]),
            *_send_tasks(arns, arns.finish_queue()),
        ],
    }
    return {
        function: _document([
            _allow("OwnLogs", ["logs:CreateLogGroup", "logs:CreateLogStream",
                               "logs:PutLogEvents"],
                   [arns.log_group(lambda_function_name(arns.stage, function))]),
            *function_statements,
        ])
        for function, function_statements in statements.items()
    }


def worker_policy(arns: StageArns) -> dict[str, Any]:
    """The worker instances' role: consume the work queue, read inputs (and the
    configured source buckets), write results and count them in their jobs."""
    return _document([
        _allow("ConsumeWork",
               ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes"],
               [arns.queue_arn(arns.queue)]),
        _allow("ReadImages", ["s3:GetObject"],
               arns.objects(arns.input_bucket, c.JOBS_PREFIX, c.INCOMING_PREFIX)),
        _allow("WriteResults", ["s3:PutObject"],
               arns.objects(arns.output_bucket, c.RESULTS_PREFIX)),
        _allow("PublishMetrics", ["cloudwatch:PutMetricData"], ["*"],
               {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}),
        # The CloudWatch agent ships the worker's log to its instance's stream in the
        # stage's workers group (bootstrap creates the group and sets its retention).
        _allow("ShipLogs", ["logs:CreateLogStream", "logs:PutLogEvents",
                            "logs:DescribeLogStreams"], [arns.worker_logs()]),
        # Bulk jobs: objects read in place, read-only, in the configured buckets only.
        *([_allow("ReadSources", ["s3:GetObject"], arns.source_object_arns())]
          if arns.source_buckets else []),
        _count_answers(arns),
        *_send_tasks(arns, arns.finish_queue()),
    ])


EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


def tls_only_bucket_policy(bucket: str) -> dict[str, Any]:
    """Refuse every request to the bucket that does not come over TLS."""
    return _document([{
        "Sid": "DenyPlainHttp",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }])


def _count_answers(arns: StageArns) -> Statement:
    """Screen a batch (BatchGetItem), count its answers exactly once (TransactWriteItems
    of conditional puts and updates) and complete jobs (GetItem, UpdateItem)."""
    return _allow("CountAnswers",
                  ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem",
                   "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"], [arns.table()])


def _send_tasks(arns: StageArns, *queues: str) -> list[Statement]:
    return [_allow("SendTasks", ["sqs:SendMessage", "sqs:GetQueueUrl"], list(queues))]


def _consume_tasks(queue: str) -> Statement:
    """What Lambda's SQS event source needs of the function's role."""
    return _allow("ConsumeTasks", ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                   "sqs:GetQueueAttributes"], [queue])


def _see_instances() -> Statement:
    return _allow("SeeWorkers", ["ec2:DescribeInstances"], ["*"])


def _start_stop(arns: StageArns, actions: list[str]) -> Statement:
    return _allow("StartStopOnlyThisStagesWorkers", actions, [arns.instances()], {
        "StringEquals": {
            f"aws:ResourceTag/{c.TAG_STAGE}": arns.stage,
            f"aws:ResourceTag/{c.TAG_ROLE}": c.ROLE_WORKER,
        }
    })


def _allow(sid: str, actions: list[str], resources: list[str],
           condition: dict[str, Any] | None = None) -> Statement:
    statement: Statement = {"Sid": sid, "Effect": "Allow", "Action": actions,
                            "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _document(statements: list[Statement]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}
