"""``skyclass teardown``: delete everything a stage created, and nothing else.

Chalice's part (Lambdas, their roles, the API, the schedule, the S3 subscription) goes
with ``chalice delete``, from what ``chalice deploy`` recorded in this project. The rest
is found by the stage's names and checked against its ``skyclass:stage`` tag before it is
deleted: instances (workers and builders), the launch template, the security group,
the worker role and instance profile, the stage's AMIs and their snapshots, the buckets
(emptied first), the queues, the API key's parameter and the Lambdas' log groups, and
bulk jobs' table, event bus and callback secret. A resource with the right name but
without the stage's tag is left alone and named in the report.

Snapshots are found through their images *and* by their own tag (a bake tags them as it
creates the image), so a teardown that stopped half-way finds them again. AWS keeps a
snapshot "in use" for a while after its image is deregistered: each delete is retried
within a stated limit (``Waits.snapshot_release``). Whatever is still left after that is
named at the end, after everything else is gone, and a second run removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from skyclass.operations.deploy.chalice_project import (
    deployed_resources,
    forget_stage,
    refuse_local,
    run_chalice,
)
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.project import chalice_stage_env
from skyclass.operations.provision.stage import wait_for_instances
from skyclass.operations.waiting import Waiter, WaitTimeoutError, error_code
from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.names import StageNames, is_tagged, stage_filter, worker_ami_name
from skyclass.runtime.settings import Settings

Report = Callable[[str], None]


class Teardown:
    def __init__(self, settings: Settings, aws: AwsClients, project_dir: Path, report: Report,
                 waiter: Waiter | None = None) -> None:
        refuse_local(settings.stage)
        self._settings = settings
        self._stage = settings.stage
        self._aws = aws
        self._project_dir = project_dir
        self._report = report
        self._waiter = waiter or Waiter(report)
        self._left: list[str] = []

    def run(self) -> None:
        account = self._aws.sts.get_caller_identity()["Account"]
        names = StageNames.of(self._stage, account, self._settings.input_bucket,
                              self._settings.output_bucket)
        self._chalice_delete()
        self._instances()
        self._launch_template(names.launch_template)
        self._security_group(names.security_group)
        self._worker_role(names.worker_role)
        self._images()
        for bucket in names.buckets:
            self._bucket(bucket)
        for queue in names.queues:
            self._queue(queue)
        self._api_key(names.api_key_parameter)
        self._api_key(names.callback_secret_parameter)
        self._jobs_table(names.jobs_table)
        self._event_bus(names.event_bus)
        self._log_groups(names.log_groups, account)
        forget_stage(self._project_dir, self._stage)
        if self._left:
            raise DeployError(
                f"stage {self._stage} removed except {'; '.join(self._left)}. Run "
                "`skyclass teardown` again: it finds them by the stage's tag")
        self._report(f"stage {self._stage} removed; .chalice/config.json keeps only its name")

    # ---- Chalice ------------------------------------------------------------------

    def _chalice_delete(self) -> None:
        if not deployed_resources(self._project_dir, self._stage):
            self._report(f"no .chalice/deployed/{self._stage}.json here: no Lambdas or API "
                         "recorded for this stage in this project")
            return
        environment = chalice_stage_env(self._project_dir, self._stage)
        run_chalice(self._project_dir, ["delete", "--stage", self._stage], environment,
                    self._aws.region, self._report)
        self._report("deleted the Lambdas, their roles, the API, the schedule and the "
                     "S3 subscription (chalice delete)")

    # ---- EC2 ----------------------------------------------------------------------

    def _instances(self) -> None:
        ec2 = self._aws.ec2
        ids = [
            i["InstanceId"]
            for r in ec2.describe_instances(Filters=[
                stage_filter(self._stage),
                {"Name": "instance-state-name",
                 "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]},
            ])["Reservations"]
            for i in r["Instances"]
        ]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
            wait_for_instances(self._aws, self._waiter, ids, "terminated")
            self._report(f"terminated {len(ids)} instance(s)")

    def _launch_template(self, name: str) -> None:
        ec2 = self._aws.ec2
        for template in ec2.describe_launch_templates(Filters=[
            {"Name": "launch-template-name", "Values": [name]},
            stage_filter(self._stage),
        ])["LaunchTemplates"]:
            ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
            self._report(f"deleted launch template {template['LaunchTemplateId']}")

    def _security_group(self, name: str) -> None:
        ec2 = self._aws.ec2
        for group in ec2.describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [name]},
            stage_filter(self._stage),
        ])["SecurityGroups"]:
            # Network interfaces of just-terminated instances can hold it a little longer.
            self._waiter.retry(
                f"security group {group['GroupId']} to be free of terminated instances",
                lambda g=group: ec2.delete_security_group(GroupId=g["GroupId"]),
                lambda exc: error_code(exc) == "DependencyViolation",
                self._waiter.waits.group_release)
            self._report(f"deleted security group {group['GroupId']}")

    def _images(self) -> None:
        ec2 = self._aws.ec2
        images = ec2.describe_images(Owners=["self"], Filters=[stage_filter(self._stage)])[
            "Images"]
        snapshots = {m["Ebs"]["SnapshotId"] for image in images
                     for m in image.get("BlockDeviceMappings", [])
                     if m.get("Ebs", {}).get("SnapshotId")}
        snapshots |= {s["SnapshotId"] for s in ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[stage_filter(self._stage)])["Snapshots"]}
        for image in images:
            ec2.deregister_image(ImageId=image["ImageId"])
            self._report(f"deregistered AMI {image['ImageId']}")
        self._name_untagged_images({i["ImageId"] for i in images})
        for snapshot in sorted(snapshots):
            self._snapshot(snapshot)

    def _snapshot(self, snapshot: str) -> None:
        ec2 = self._aws.ec2
        try:
            self._waiter.retry(
                f"snapshot {snapshot} to be released by its deregistered AMI",
                lambda: ec2.delete_snapshot(SnapshotId=snapshot),
                lambda exc: error_code(exc) == "InvalidSnapshot.InUse",
                self._waiter.waits.snapshot_release)
        except ClientError as exc:
            self._unless_missing(exc, "InvalidSnapshot.NotFound")
            return
        except WaitTimeoutError as exc:
            self._report(exc.message)
            self._left.append(f"snapshot {snapshot} (still in use)")
            return
        self._report(f"deleted snapshot {snapshot}")

    def _name_untagged_images(self, tagged: set[str]) -> None:
        name = worker_ami_name(self._stage)
        for image in self._aws.ec2.describe_images(Owners=["self"], Filters=[
                {"Name": "name", "Values": [name, f"{name}-*"]}])["Images"]:
            if image["ImageId"] not in tagged:
                self._report(f"left AMI {image['ImageId']} ({image.get('Name')}) alone: it "
                             f"is named like the stage's but not tagged {c.TAG_STAGE}="
                             f"{self._stage}; if it is yours, deregister it and delete its "
                             "snapshot by hand")

    # ---- IAM ----------------------------------------------------------------------

    def _worker_role(self, name: str) -> None:
        iam = self._aws.client("iam")
        try:
            tags = iam.list_role_tags(RoleName=name)["Tags"]
        except ClientError as exc:
            self._unless_missing(exc, "NoSuchEntity")
            return
        if not self._tagged(tags, f"role {name}"):
            return
        try:
            iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=name)
        except ClientError as exc:
            self._unless_missing(exc, "NoSuchEntity")
        try:
            iam.delete_instance_profile(InstanceProfileName=name)
        except ClientError as exc:
            self._unless_missing(exc, "NoSuchEntity")
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
        self._report(f"deleted the worker role and instance profile {name}")

    # ---- S3, SQS, logs ------------------------------------------------------------

    def _bucket(self, bucket: str) -> None:
        s3 = self._aws.s3
        try:
            tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchTagSet":
                tags = []
            else:
                self._unless_missing(exc, "NoSuchBucket")
                return
        if not self._tagged(tags, f"bucket {bucket}"):
            return
        emptied = 0
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                      for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if doomed:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
                emptied += len(doomed)
        s3.delete_bucket(Bucket=bucket)
        self._report(f"deleted bucket {bucket} ({emptied} object(s))")

    def _queue(self, name: str) -> None:
        sqs = self._aws.sqs
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            self._unless_missing(exc, "AWS.SimpleQueueService.NonExistentQueue",
                                 "QueueDoesNotExist")
            return
        tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        if not self._tagged([{"Key": k, "Value": v} for k, v in tags.items()],
                            f"queue {name}"):
            return
        sqs.delete_queue(QueueUrl=url)
        self._report(f"deleted queue {name}")

    def _api_key(self, name: str) -> None:
        ssm = self._aws.client("ssm")
        try:
            tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)[
                "TagList"]
        except ClientError as exc:
            self._unless_missing(exc, "InvalidResourceId", "ParameterNotFound")
            return
        if self._tagged(tags, f"parameter {name}"):
            ssm.delete_parameter(Name=name)
            self._report(f"deleted the parameter {name}")

    def _jobs_table(self, name: str) -> None:
        dynamodb = self._aws.client("dynamodb")
        try:
            arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        except ClientError as exc:
            self._unless_missing(exc, "ResourceNotFoundException")
            return
        tags = dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])
        if self._tagged(tags, f"table {name}"):
            dynamodb.delete_table(TableName=name)
            self._report(f"deleted table {name}")

    def _event_bus(self, name: str) -> None:
        events = self._aws.client("events")
        try:
            arn = events.describe_event_bus(Name=name)["Arn"]
        except ClientError as exc:
            self._unless_missing(exc, "ResourceNotFoundException")
            return
        if not self._tagged(events.list_tags_for_resource(ResourceARN=arn).get("Tags", []),
                            f"event bus {name}"):
            return
        # A bus goes only once its rules do (those its subscribers made included).
        for rule in events.list_rules(EventBusName=name).get("Rules", []):
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=name)
            ids = [t["Id"] for t in targets.get("Targets", [])]
            if ids:
                events.remove_targets(Rule=rule["Name"], EventBusName=name, Ids=ids)
            events.delete_rule(Name=rule["Name"], EventBusName=name)
        events.delete_event_bus(Name=name)
        self._report(f"deleted event bus {name}")

    def _log_groups(self, groups: tuple[str, ...], account: str) -> None:
        logs = self._aws.client("logs")
        for group in groups:
            arn = f"arn:aws:logs:{self._aws.region}:{account}:log-group:{group}"
            try:
                tags = logs.list_tags_for_resource(resourceArn=arn)["tags"]
            except ClientError as exc:
                self._unless_missing(exc, "ResourceNotFoundException")
                continue
            if not self._tagged([{"Key": k, "Value": v} for k, v in tags.items()],
                                f"log group {group}"):
                continue
            try:
                logs.delete_log_group(logGroupName=group)
            except ClientError as exc:  # the emulator keeps a deleted group's tags
                self._unless_missing(exc, "ResourceNotFoundException")
                continue
            self._report(f"deleted log group {group}")

    # ---- helpers ------------------------------------------------------------------

    def _tagged(self, tags: list[dict[str, str]], what: str) -> bool:
        if is_tagged(tags, self._stage):
            return True
        self._report(f"left {what} alone: it is not tagged {c.TAG_STAGE}={self._stage}")
        return False

    @staticmethod
    def _unless_missing(exc: ClientError, *codes: str) -> None:
        if exc.response["Error"]["Code"] not in codes:
            raise exc
