"""Provisioning: one idempotent function that creates a stage's resources, the same code
for AWS and for the local emulator (ARCHITECTURE.md, "Local mode").

It makes the input and output buckets (private, encrypted, TLS only, CORS for browser
uploads, old inputs expiring), the work queue with its dead-letter queue and redrive,
optionally the S3-notification queue the local bridge reads, and the pool of stopped
worker instances from the stage's AMI. On AWS the pool launches from a launch template
with the worker instance profile and a closed security group
(skyclass.operations.provision.workers); locally the runner stands in for EC2, so plain
instances do. Running it twice changes nothing; running it with other settings or a new
AMI replaces the stopped workers launched from an older version of the template, so a
worker never starts with settings the stage no longer has. Waits on AWS (a new
instance profile, a new image, instances changing state) go through a ``Waiter``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from skyclass.operations.provision.bulk import BulkProvisioned, provision_bulk
from skyclass.operations.provision.iam import tls_only_bucket_policy
from skyclass.operations.provision.queues import ensure_queue, queue_arn
from skyclass.operations.provision.workers import (
    WorkerLaunch,
    ensure_worker_launch,
    not_yet_visible_to_ec2,
)
from skyclass.operations.waiting import Waiter, error_code
from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.names import (
    LAMBDA_FUNCTIONS,
    ROLE_WORKER_AMI,
    StageResources,
    bucket_name,
    dlq_name,
    ingest_failures_queue_name,
    lambda_log_group,
    pool_filters,
    queue_name,
    s3_events_queue_name,
    stage_filter,
    stage_tags,
    tag_list,
    worker_ami_name,
    worker_log_group,
    worker_tags,
)
from skyclass.runtime.settings import Settings

log = logging.getLogger(__name__)

# Inputs are only needed until classified (results live in the output bucket).
INPUT_RETENTION_DAYS = 14


@dataclass(frozen=True)
class Provisioned:
    resources: StageResources
    ami_id: str | None
    worker_instance_ids: list[str]
    s3_events_queue_url: str | None
    launch: WorkerLaunch | None = None
    bulk: BulkProvisioned | None = None


def provision(
    settings: Settings,
    aws: AwsClients,
    *,
    s3_events_to_queue: bool = False,
    register_local_ami: bool = False,
    cors_origins: tuple[str, ...] = ("*",),
    aws_stage: bool = False,
    ami_id: str | None = None,
    waiter: Waiter | None = None,
) -> Provisioned:
    """Create whatever of the stage is missing and return its names.

    ``s3_events_to_queue``: deliver the input bucket's ObjectCreated events to an SQS
    queue (the local bridge reads it; on AWS, ``chalice deploy`` subscribes the Lambda).
    ``register_local_ami``: register a stand-in worker AMI if the stage has none (the
    emulator cannot run a bake; the local runner runs the worker from this checkout).
    ``aws_stage``: provision as for a deployed stage (``skyclass bootstrap``): buckets
    refuse plain HTTP, and the pool launches from the stage's launch template with the
    worker instance profile and security group. The local stack leaves it off: its
    emulator only speaks plain HTTP, and its runner stands in for the instances.
    ``ami_id``: the worker image to use (a bake just made it: a listing may not show it
    yet); by default the stage's newest.
    """
    waiter = waiter or Waiter(log.info)
    stage = settings.stage
    account = aws.sts.get_caller_identity()["Account"]
    tags = stage_tags(stage)
    input_bucket = settings.input_bucket or bucket_name(stage, "input", account)
    output_bucket = settings.output_bucket or bucket_name(stage, "output", account)
    for bucket in (input_bucket, output_bucket):
        _ensure_bucket(aws, bucket, aws.region, tags, tls_only=aws_stage)
    _put_cors(aws, input_bucket, cors_origins)
    _expire_old_inputs(aws, input_bucket)

    dlq_url = settings.dlq_url or ensure_queue(
        aws, dlq_name(stage), {"MessageRetentionPeriod": str(14 * 24 * 3600)}, tags
    )
    dlq_arn = queue_arn(aws, dlq_url)
    queue_url = settings.queue_url or ensure_queue(
        aws,
        queue_name(stage),
        {
            "VisibilityTimeout": str(settings.visibility_timeout),
            "MessageRetentionPeriod": str(4 * 24 * 3600),
            "ReceiveMessageWaitTimeSeconds": "20",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receives)}
            ),
        },
        tags,
    )

    # The stage's logs, kept as long as it says: its Lambdas' (made here, before Lambda
    # would make them to keep for ever; Chalice's log_retention_in_days misnames the API
    # function's group) and its workers' (the CloudWatch agent's, one stream each).
    # Locally the stack's log shipper writes into the same groups.
    for group in (*(lambda_log_group(stage, f) for f in LAMBDA_FUNCTIONS),
                  worker_log_group(stage)):
        _ensure_log_group(aws, group, settings.log_retention_days, tags)

    # S3-event invocations that failed every try wait here for the scaling tick.
    ensure_queue(aws, ingest_failures_queue_name(stage),
                  {"MessageRetentionPeriod": str(14 * 24 * 3600)}, tags)

    events_url = None
    if s3_events_to_queue:
        events_url = ensure_queue(aws, s3_events_queue_name(stage), {}, tags)
        _notify_queue(aws, input_bucket, events_url)

    ami_id = ami_id or find_worker_ami(aws, stage)
    if ami_id is None and register_local_ami:
        ami_id = _register_stand_in_ami(aws, stage)
    resources = StageResources(stage, input_bucket, output_bucket, queue_url, dlq_url,
                               source_buckets=settings.source_bucket_names)
    bulk = provision_bulk(settings, aws)
    launch = None
    if ami_id and aws_stage:
        launch = ensure_worker_launch(aws, settings, resources, account, ami_id)
    instance_ids = _ensure_pool(aws, settings, ami_id, launch, waiter) if ami_id else []

    return Provisioned(
        resources=resources,
        ami_id=ami_id,
        worker_instance_ids=instance_ids,
        s3_events_queue_url=events_url,
        launch=launch,
        bulk=bulk,
    )


# ---- buckets ---------------------------------------------------------------------

def _ensure_bucket(
    aws: AwsClients, bucket: str, region: str, tags: dict[str, str], *, tls_only: bool
) -> None:
    s3 = aws.s3
    try:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        log.info("created bucket %s", bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    if tls_only:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_bucket_policy(bucket)))
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list(tags)})


def _expire_old_inputs(aws: AwsClients, bucket: str) -> None:
    aws.s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-old-inputs",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": INPUT_RETENTION_DAYS},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )


def _put_cors(aws: AwsClients, bucket: str, origins: tuple[str, ...]) -> None:
    aws.s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedMethods": ["POST"],  # presigned POSTs only
                    "AllowedOrigins": list(origins),
                    "AllowedHeaders": ["*"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )


def _notify_queue(aws: AwsClients, bucket: str, queue_url: str) -> None:
    arn = queue_arn(aws, queue_url)
    aws.sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={
            "Policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": arn,
                            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
                        }
                    ],
                }
            )
        },
    )
    # moto wants lower-case filter rule names; AWS accepts either.
    aws.s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": f"skyclass-{prefix.rstrip('/')}",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
                for prefix in (c.JOBS_PREFIX, c.INCOMING_PREFIX)
            ]
        },
    )


# ---- logs ------------------------------------------------------------------------

def _ensure_log_group(aws: AwsClients, name: str, retention_days: int,
                      tags: dict[str, str]) -> None:
    logs = aws.client("logs")
    try:
        logs.create_log_group(logGroupName=name, tags=tags)
        log.info("created log group %s", name)
    except ClientError as exc:
        if error_code(exc) != "ResourceAlreadyExistsException":
            raise
    logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)


# ---- worker AMI and pool ---------------------------------------------------------

def find_worker_ami(aws: AwsClients, stage: str) -> str | None:
    """The stage's newest available worker image: named ``skyclass-{stage}-worker-…``
    *and* tagged with the stage, so that deploy only ever uses an image teardown will
    remove (an untagged one of that name is not the stage's to use)."""
    name = worker_ami_name(stage)
    images = aws.ec2.describe_images(
        Owners=["self"], Filters=[{"Name": "name", "Values": [name, f"{name}-*"]},
                                  stage_filter(stage)]
    )["Images"]
    available = [i for i in images if i.get("State") == "available"]
    if not available:
        return None
    return max(available, key=lambda i: i.get("CreationDate", ""))["ImageId"]


def _register_stand_in_ami(aws: AwsClients, stage: str) -> str:
    ami_id = aws.ec2.register_image(
        Name=worker_ami_name(stage),
        Description="skyclass worker (local stand-in: the runner starts ec2_worker locally)",
        Architecture="x86_64",
        RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
    )["ImageId"]
    aws.ec2.create_tags(
        Resources=[ami_id], Tags=tag_list({**stage_tags(stage), c.TAG_ROLE: ROLE_WORKER_AMI})
    )
    return ami_id


def _ensure_pool(
    aws: AwsClients, settings: Settings, ami_id: str, launch: WorkerLaunch | None,
    waiter: Waiter,
) -> list[str]:
    """Keep ``max_workers`` worker instances in the pool; new ones are stopped at once,
    so an idle pool costs only its EBS volumes. With a launch template, stopped members
    not launched from its current version are replaced: a worker's settings (its user
    data) are fixed when it is launched, so this is how a re-bake or new settings reach
    the pool. Running ones are left to finish their work; the next bootstrap after the
    scaler stops them replaces them."""
    ec2 = aws.ec2
    existing = [
        i
        for r in ec2.describe_instances(Filters=pool_filters(settings.stage))["Reservations"]
        for i in r["Instances"]
    ]
    if launch is not None:
        existing = _replace_stale_members(aws, existing, ami_id, launch, waiter)
    ids = [i["InstanceId"] for i in existing]
    missing = settings.max_workers - len(ids)
    if missing <= 0:
        return ids
    if launch is None:
        created = ec2.run_instances(
            ImageId=ami_id,
            InstanceType=settings.instance_type,
            MinCount=missing,
            MaxCount=missing,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": tag_list(worker_tags(settings.stage))}
            ],
        )["Instances"]
    else:
        created = waiter.retry(
            "EC2 to accept the new worker instance profile",
            lambda: ec2.run_instances(
                LaunchTemplate={"LaunchTemplateId": launch.launch_template_id,
                                "Version": str(launch.template_version)},
                IamInstanceProfile={"Arn": launch.instance_profile_arn},
                MinCount=missing,
                MaxCount=missing,
            ),
            not_yet_visible_to_ec2, waiter.waits.iam_propagation,
        )["Instances"]
    new_ids = [i["InstanceId"] for i in created]
    # EC2 refuses to stop an instance that is still pending.
    wait_for_instances(aws, waiter, new_ids, "running", "new worker(s)")
    ec2.stop_instances(InstanceIds=new_ids)
    log.info("added %d stopped worker instance(s) to the pool", len(new_ids))
    return ids + new_ids


def _replace_stale_members(aws: AwsClients, members: list[dict[str, Any]], ami_id: str,
                           launch: WorkerLaunch, waiter: Waiter) -> list[dict[str, Any]]:
    """Terminate the stopped members not launched from the template's current version;
    returns the members that stay."""
    stale = [i for i in members
             if i["ImageId"] != ami_id or not launch.launched_from_current(i)]
    stopped = [i["InstanceId"] for i in stale if i["State"]["Name"] == "stopped"]
    running = [i["InstanceId"] for i in stale if i["State"]["Name"] != "stopped"]
    if stopped:
        aws.ec2.terminate_instances(InstanceIds=stopped)
        waiter.report(f"replacing {len(stopped)} stopped worker(s) launched with an older "
                      f"AMI or settings (template version now {launch.template_version})")
    if running:
        waiter.report(f"{len(running)} worker(s) running with an older AMI or settings "
                      f"({', '.join(running)}) keep working; once the scaler stops them, "
                      "the next bootstrap replaces them")
    return [i for i in members if i["InstanceId"] not in stopped]


def wait_for_instances(aws: AwsClients, waiter: Waiter, ids: list[str], state: str,
                       what: str = "instance(s)") -> None:
    """Wait, reporting progress, until every instance of ``ids`` is in ``state``."""

    def reached() -> bool | None:
        try:
            reservations = aws.ec2.describe_instances(InstanceIds=ids)["Reservations"]
        except ClientError as exc:  # new instance ids can be unknown for a moment
            if error_code(exc) == "InvalidInstanceID.NotFound":
                return None
            raise
        states = {i["State"]["Name"] for r in reservations for i in r["Instances"]}
        return True if states == {state} else None

    waiter.until(f"{len(ids)} {what} to be {state}", reached, waiter.waits.instance_state)

