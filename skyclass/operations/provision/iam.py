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
    LAMBDA_FUNCTIONS,
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
    lambda_log_group,
    lambda_role_name,
    list_queue_name,
    queue_name_of,
    s3_events_queue_name,
    schedule_rule_name,
    tasks_dlq_name,
    worker_log_group,
    worker_role_name,
)

# The only actions granted on "*": AWS has no resource-level permissions for them.
UNSCOPABLE_ACTIONS = frozenset(
    {"ec2:DescribeInstances", "cloudwatch:GetMetricData", "cloudwatch:PutMetricData",
     "ec2:DescribeImages", "ec2:DescribeLaunchTemplates",
     "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeSecurityGroups",
     "ec2:DescribeSnapshots", "ec2:DescribeVpcs"}
)
# The AMI bake's base image: Amazon's public parameter (ami_build/bake.py).
BASE_IMAGE_PARAMETERS = "/aws/service/ami-amazon-linux-latest/*"

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

    def log_group_named(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}"

    def ec2(self, resource_type: str, resource_id: str = "*") -> str:
        # Images and snapshots are named without an account.
        owner = "" if resource_type in ("image", "snapshot") else self.account
        return f"arn:aws:ec2:{self.region}:{owner}:{resource_type}/{resource_id}"

    def role(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"

    def instance_profile(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:instance-profile/{name}"

    def function(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def rule(self, name: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:rule/{name}"

    def buckets(self) -> list[str]:
        return [f"arn:aws:s3:::{self.input_bucket}", f"arn:aws:s3:::{self.output_bucket}"]

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
            # Lists results; and, for a missing manifest, result or decision, S3 answers
            # 404 only to a caller that may list the key's prefix (else 403).
            _list("ListJobsResultsAndFleet", arns.output_bucket, jobs, results, fleet),
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
            # The HEAD of an input deleted since its event answers 404, not 403.
            _list("ListNewImages", arns.input_bucket, jobs, incoming),
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
            # Missing keys must answer 404, not 403: the decision before the first tick,
            # a result not written yet, an input deleted before it was retried.
            _list("ListDecisionsAndResults", arns.output_bucket, fleet, results),
            _list("ListRetriedImages", arns.input_bucket, jobs, incoming),
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
        # An input deleted before its turn answers 404 ("gone"), not 403.
        _list("ListImages", arns.input_bucket, c.JOBS_PREFIX, c.INCOMING_PREFIX),
        _allow("WriteResults", ["s3:PutObject"],
               arns.objects(arns.output_bucket, c.RESULTS_PREFIX)),
        # Which engine it runs and why, once when ready, for GET /fleet.
        _allow("ReportEngine", ["s3:PutObject"],
               arns.objects(arns.output_bucket, c.WORKER_STATUS_PREFIX)),
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


def operator_policy(arns: StageArns) -> dict[str, Any]:
    """What the operator (a person or CI) needs to run ``skyclass bootstrap``, ``deploy``,
    ``bake-ami`` and ``teardown`` for this stage, ``chalice deploy``/``delete`` inside
    them included; docs/deploy.md prints it (``python -m
    skyclass.operations.provision.iam``). Scoped like the components' policies: the
    stage's names, and ``skyclass:stage`` tags for EC2 resources whose ids are not
    known in advance (request tags when created, resource tags when changed). Left
    open, for want of a narrower form in AWS: the EC2 describes, the parts of a launch
    that are not the instance (image, subnet, interface, group, volume), the images
    and snapshots a new AMI creates, and API Gateway's REST APIs (their ids are
    unknown until Chalice creates one)."""
    stage, region = arns.stage, arns.region
    tagged = {"StringEquals": {f"aws:RequestTag/{c.TAG_STAGE}": stage}}
    owned = {"StringEquals": {f"aws:ResourceTag/{c.TAG_STAGE}": stage}}
    queues = [arns.queue_arn(arns.queue), arns.queue_arn(arns.dlq),
              arns.queue_arn(s3_events_queue_name(stage)), arns.ingest_failures(),
              arns.list_queue(), arns.finish_queue(), arns.queue_arn(tasks_dlq_name(stage))]
    task_functions = [arns.function(lambda_function_name(stage, f))
                      for f in (LIST_FUNCTION, FINISH_FUNCTION)]
    log_groups = [*(lambda_log_group(stage, f) for f in LAMBDA_FUNCTIONS),
                  worker_log_group(stage)]
    worker_role = worker_role_name(stage)
    functions = [arns.function(lambda_function_name(stage, f)) for f in LAMBDA_FUNCTIONS]
    return _document([
        # S3: the stage's two buckets, their settings, and emptying them on teardown.
        _allow("StageBuckets",
               ["s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions",
                "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:PutBucketPublicAccessBlock",
                "s3:PutEncryptionConfiguration", "s3:PutBucketPolicy"], arns.buckets()),
        _allow("InputBucketSettings",
               ["s3:PutBucketCORS", "s3:PutLifecycleConfiguration",
                "s3:GetBucketNotification", "s3:PutBucketNotification"],
               [f"arn:aws:s3:::{arns.input_bucket}"]),
        _allow("EmptyStageBuckets", ["s3:DeleteObject", "s3:DeleteObjectVersion"],
               [f"{bucket}/*" for bucket in arns.buckets()]),
        _allow("BakeSources", ["s3:PutObject", "s3:GetObject"],
               arns.objects(arns.output_bucket, "bake/")),
        # SQS: the stage's queues (the S3-events one is only found, never made, on AWS).
        _allow("StageQueues",
               ["sqs:CreateQueue", "sqs:TagQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes", "sqs:ListQueueTags", "sqs:DeleteQueue"], queues),
        # EC2: describes take no resource.
        _allow("SeeEc2",
               ["ec2:DescribeInstances", "ec2:DescribeImages", "ec2:DescribeLaunchTemplates",
                "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeSecurityGroups",
                "ec2:DescribeSnapshots", "ec2:DescribeVpcs"], ["*"]),
        # EC2: what is created must carry the stage's tag, set in the creating call.
        _allow("LaunchOnlyTaggedInstances", ["ec2:RunInstances"], [arns.ec2("instance")],
               tagged),
        _allow("CreateTaggedTemplates", ["ec2:CreateLaunchTemplate"],
               [arns.ec2("launch-template")], tagged),
        _allow("CreateTaggedGroups", ["ec2:CreateSecurityGroup"],
               [arns.ec2("security-group")], tagged),
        _allow("LaunchFrom",
               ["ec2:RunInstances"],
               [arns.ec2("image"), arns.ec2("subnet"), arns.ec2("network-interface"),
                arns.ec2("security-group"), arns.ec2("volume")]),
        _allow("LaunchFromThisStagesTemplate", ["ec2:RunInstances"],
               [arns.ec2("launch-template")], owned),
        _allow("GroupsInTheDefaultVpc", ["ec2:CreateSecurityGroup"], [arns.ec2("vpc")]),
        _allow("TagWhileCreating", ["ec2:CreateTags"],
               [arns.ec2(t) for t in ("instance", "volume", "launch-template",
                                      "security-group", "image", "snapshot")],
               {"StringEquals": {
                   "ec2:CreateAction": ["RunInstances", "CreateLaunchTemplate",
                                        "CreateSecurityGroup", "CreateImage"],
                   f"aws:RequestTag/{c.TAG_STAGE}": stage}}),
        # A new AMI: its image and snapshot have no tag yet (they get the stage's).
        _allow("NewImages", ["ec2:CreateImage"], [arns.ec2("image"), arns.ec2("snapshot")]),
        _allow("TagNewImages", ["ec2:CreateTags"], [arns.ec2("image"), arns.ec2("snapshot")],
               tagged),
        # EC2: change or delete only what carries the stage's tag.
        _allow("ChangeOnlyThisStagesEc2",
               ["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances",
                "ec2:CreateImage", "ec2:DeregisterImage", "ec2:DeleteSnapshot",
                "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate",
                "ec2:DeleteLaunchTemplate", "ec2:RevokeSecurityGroupIngress",
                "ec2:DeleteSecurityGroup"],
               [arns.ec2(t) for t in ("instance", "image", "snapshot", "launch-template",
                                      "security-group")], owned),
        # IAM: the worker role and profile, and the roles Chalice makes for the Lambdas.
        _allow("StageRoles",
               ["iam:CreateRole", "iam:TagRole", "iam:GetRole", "iam:PutRolePolicy",
                "iam:DeleteRolePolicy", "iam:ListRolePolicies", "iam:ListRoleTags",
                "iam:DeleteRole"],
               [arns.role(worker_role),
                *(arns.role(lambda_role_name(stage, f)) for f in LAMBDA_FUNCTIONS)]),
        _allow("WorkerInstanceProfile",
               ["iam:CreateInstanceProfile", "iam:TagInstanceProfile", "iam:GetInstanceProfile",
                "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
                "iam:DeleteInstanceProfile"], [arns.instance_profile(worker_role)]),
        _allow("PassTheWorkerRoleToEc2", ["iam:PassRole"], [arns.role(worker_role)],
               {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        _allow("PassTheLambdaRolesToLambda", ["iam:PassRole"],
               [arns.role(lambda_role_name(stage, f)) for f in LAMBDA_FUNCTIONS],
               {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}),
        # Lambda, EventBridge, API Gateway: what chalice deploy and delete do.
        _allow("StageFunctions",
               ["lambda:CreateFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                "lambda:DeleteFunction", "lambda:AddPermission", "lambda:RemovePermission",
                "lambda:GetPolicy", "lambda:ListTags", "lambda:TagResource",
                "lambda:UntagResource", "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency"], functions),
        _allow("KeepFailedS3Events", ["lambda:PutFunctionEventInvokeConfig"],
               [arns.function(lambda_function_name(stage, EVENTS_FUNCTION))]),
        _allow("ScalingSchedule",
               ["events:PutRule", "events:DescribeRule", "events:PutTargets",
                "events:ListTargetsByRule", "events:RemoveTargets", "events:DeleteRule"],
               [arns.rule(schedule_rule_name(stage))]),
        _allow("RestApis",
               ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH",
                "apigateway:DELETE"],
               [f"arn:aws:apigateway:{region}::/restapis",
                f"arn:aws:apigateway:{region}::/restapis/*"]),
        # Chalice subscribes the bulk jobs' task Lambdas to their queues (creating and
        # listing mappings takes no resource; the function is the condition).
        _allow("TaskEventSources", ["lambda:CreateEventSourceMapping"], ["*"],
               {"ArnLike": {"lambda:FunctionArn": task_functions}}),
        _allow("SeeEventSources", ["lambda:ListEventSourceMappings"], ["*"]),
        _allow("ChangeTaskEventSources",
               ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping",
                "lambda:DeleteEventSourceMapping"],
               [f"arn:aws:lambda:{region}:{arns.account}:event-source-mapping:*"],
               {"ArnLike": {"lambda:FunctionArn": task_functions}}),
        # Bulk jobs: the jobs table, the stage's event bus (and, on teardown, the rules
        # its subscribers put on it) and the callback secret.
        _allow("JobsTable",
               ["dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:TagResource",
                "dynamodb:ListTagsOfResource", "dynamodb:DeleteTable"], [arns.table()]),
        _allow("EventBus",
               ["events:CreateEventBus", "events:DescribeEventBus", "events:TagResource",
                "events:ListTagsForResource", "events:DeleteEventBus"], [arns.event_bus()]),
        _allow("ListRules", ["events:ListRules"], ["*"]),
        _allow("SubscribersRules",
               ["events:ListTargetsByRule", "events:RemoveTargets", "events:DeleteRule"],
               [arns.rule(f"{event_bus_name(stage)}/*")]),
        # SSM: the API key and the callback secret, and the base image's id for a bake.
        _allow("ApiKey",
               ["ssm:PutParameter", "ssm:AddTagsToResource", "ssm:ListTagsForResource",
                "ssm:DeleteParameter"], [arns.parameter(api_key_parameter_name(stage)),
                                         arns.parameter(callback_secret_parameter_name(stage))]),
        _allow("BaseImage", ["ssm:GetParameter"],
               [f"arn:aws:ssm:{region}::parameter{BASE_IMAGE_PARAMETERS}"]),
        # The Lambdas' and the workers' log groups, made with the stage's retention.
        _allow("StageLogGroups",
               ["logs:CreateLogGroup", "logs:TagResource", "logs:PutRetentionPolicy",
                "logs:ListTagsForResource", "logs:DeleteLogGroup"],
               [arns.log_group_named(name) for name in log_groups]),
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
    of conditional puts and updates: PutItem, UpdateItem) and complete jobs (GetItem,
    UpdateItem)."""
    return _allow("CountAnswers",
                  ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem",
                   "dynamodb:UpdateItem"], [arns.table()])


def _send_tasks(arns: StageArns, *queues: str) -> list[Statement]:
    return [_allow("SendTasks", ["sqs:SendMessage"], list(queues))]


def _consume_tasks(queue: str) -> Statement:
    """What Lambda's SQS event source needs of the function's role."""
    return _allow("ConsumeTasks", ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                                   "sqs:GetQueueAttributes"], [queue])


def _list(sid: str, bucket: str, *prefixes: str) -> Statement:
    """List ``bucket`` under ``prefixes`` only. Besides listing, this decides what S3
    answers for a missing key: 404 to a caller that may list the key's prefix, 403 to
    one that may not (S3 evaluates the permission with the key as ``s3:prefix``)."""
    return _allow(sid, ["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"],
                  {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}})


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


def main(argv: list[str] | None = None) -> int:
    """Print a stage's policy documents: ``operator`` (default), ``worker`` or a
    Lambda function's name."""
    import argparse
    import json

    from skyclass.runtime.names import bucket_name, dlq_name, queue_name

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("which", nargs="?", default="operator",
                        choices=["operator", "worker", *LAMBDA_FUNCTIONS])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--account", required=True, help="the AWS account id")
    parser.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    sqs = f"https://sqs.{args.region}.amazonaws.com/{args.account}"
    resources = StageResources(
        args.stage, bucket_name(args.stage, "input", args.account),
        bucket_name(args.stage, "output", args.account),
        f"{sqs}/{queue_name(args.stage)}", f"{sqs}/{dlq_name(args.stage)}")
    arns = StageArns.of(resources, args.region, args.account)
    document = {"operator": operator_policy, "worker": worker_policy}.get(
        args.which, lambda a: lambda_policies(a)[args.which])(arns)
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
