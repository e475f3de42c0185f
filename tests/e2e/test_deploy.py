"""`skyclass deploy` and `skyclass teardown` against a fresh `skyclass emulator`, as
processes, in a throwaway copy of the Chalice project.

The emulator cannot boot a builder, so the stage's AMI is registered beforehand (the
bake driver itself is tested in tests/functional/test_bake.py); everything else is the
real flow: bootstrap, `chalice deploy`, and teardown down to the last resource. It runs
as AWS would have it rather than as moto would: the emulator is eventually consistent
(new instance profiles, images and tags are not found, and released snapshots stay in
use, for a few seconds; `skyclass emulator --eventual-consistency`), the commands wait
within their stated limits scaled down to match (`--wait-scale`), and the region is
only in the operator's profile.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from testbed.waiting import eventually
from tests.support.chalice_project import chalice_project
from tests.support.iam.evaluator import evaluate
from tests.support.processes import emulator_process

pytestmark = pytest.mark.e2e

STAGE = "rehearsal"
MAX_WORKERS = 2
SKYCLASS = str(Path(sys.executable).parent / "skyclass")
REGION = "eu-west-1"  # only in the profile
# Seconds the emulator is late, and the commands' stated limits scaled down to suit (the
# shortest scaled limit, 6 s, still outlasts the lag).
LAG = 2.0
WAIT_SCALE = "0.02"


@pytest.fixture
def emulator():
    with emulator_process("--eventual-consistency", str(LAG)) as started:
        yield started.endpoint


class Account:
    """boto3 clients on the emulator, and the account's inventory as a user would list it."""

    def __init__(self, endpoint: str, region: str = REGION) -> None:
        self._endpoint = endpoint
        self._region = region

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self._endpoint, region_name=self._region)

    def __getattr__(self, service: str):
        return self.client(service)

    def inventory(self) -> dict[str, object]:
        instances = [i for r in self.ec2.describe_instances()["Reservations"]
                     for i in r["Instances"] if i["State"]["Name"] != "terminated"]
        return {
            "buckets": sorted(b["Name"] for b in self.s3.list_buckets()["Buckets"]),
            "queues": sorted(self.sqs.list_queues().get("QueueUrls", [])),
            "instances": sorted(i["InstanceId"] for i in instances),
            "images": sorted(i["ImageId"] for i in
                             self.ec2.describe_images(Owners=["self"])["Images"]),
            "snapshots": sorted(s["SnapshotId"] for s in
                                self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
            "log_groups": sorted(g["logGroupName"] for g in
                                 self.logs.describe_log_groups()["logGroups"]),
            "launch_templates": sorted(
                (t["LaunchTemplateId"], t["LatestVersionNumber"])
                for t in self.ec2.describe_launch_templates()["LaunchTemplates"]),
            "security_groups": sorted(g["GroupId"] for g in
                                      self.ec2.describe_security_groups()["SecurityGroups"]
                                      if g["GroupName"] != "default"),
            "roles": sorted(r["RoleName"] for r in self.iam.list_roles()["Roles"]),
            "instance_profiles": sorted(
                p["InstanceProfileName"]
                for p in self.iam.list_instance_profiles()["InstanceProfiles"]),
            "functions": sorted(f["FunctionArn"] for f in
                                self.client("lambda").list_functions()["Functions"]),
            "apis": sorted(a["id"] for a in self.apigateway.get_rest_apis()["items"]),
            "rules": sorted(r["Name"] for r in self.events.list_rules()["Rules"]),
            "parameters": sorted(p["Name"] for p in
                                 self.ssm.describe_parameters()["Parameters"]),
            "tables": sorted(self.dynamodb.list_tables()["TableNames"]),
            "event_buses": sorted(b["Name"] for b in self.events.list_event_buses()["EventBuses"]
                                  if b["Name"] != "default"),
            "event_source_mappings": sorted(
                m["UUID"] for m in
                self.client("lambda").list_event_source_mappings()["EventSourceMappings"]),
        }


def _profile_only_region(tmp_path: Path) -> dict[str, str]:
    """An operator whose region is in their profile and nowhere else."""
    config = tmp_path / "aws-config"
    config.write_text(f"[profile rehearsal]\nregion = {REGION}\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    return {**env, "AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "rehearsal"}


def _skyclass(endpoint: str, env: dict[str, str], *args: str,
              ok: bool = True) -> subprocess.CompletedProcess:
    env = {**env, "AWS_ENDPOINT_URL": endpoint, "SKYCLASS_MAX_WORKERS": str(MAX_WORKERS)}
    done = subprocess.run([SKYCLASS, *args, "--wait-scale", WAIT_SCALE], env=env,
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


def _until(check, what: str, timeout: float = 30.0):
    """Retry ``check`` as a person would while the emulator catches up."""
    return eventually(check, timeout, what, period=0.2, ignoring=(ClientError,))


def _tags(items) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items}


def _instance(account: Account, instance: dict) -> tuple[str, dict[str, str]]:
    """An instance's ARN, and its tags as the condition keys IAM evaluates."""
    arn = f"arn:aws:ec2:{REGION}:{account.sts.get_caller_identity()['Account']}:instance/" \
          f"{instance['InstanceId']}"
    return arn, {f"aws:ResourceTag/{k}": v for k, v in _tags(instance.get("Tags", [])).items()}


def _deployed_permissions(account: Account):
    """``may(role, action, resource, context)``: whether the stage's deployed role (a
    Lambda function's by its Chalice name, or ``worker``) is allowed it, by its inline
    policy as IAM holds it (tests/support/iam/evaluator.py)."""
    def document(role: str) -> dict:
        name = f"skyclass-{STAGE}-{role}"
        [policy] = account.iam.list_role_policies(RoleName=name)["PolicyNames"]
        return account.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]

    documents: dict[str, dict] = {}

    def may(role: str, action: str, resource: str, context: dict[str, str]) -> bool:
        documents.setdefault(role, document(role))
        return evaluate(documents[role], action, resource, context).allowed

    return may


def test_deploy_twice_then_teardown_leaves_nothing_of_the_stage(emulator, tmp_path):
    account = Account(emulator)
    env = _profile_only_region(tmp_path)
    snapshots = account.inventory()["snapshots"]  # the emulator's own, from its stock AMIs
    project = chalice_project(tmp_path / "project")
    # GIVEN a stage without an image, which the emulator cannot bake
    # WHEN it is deployed THEN it says so at once, and creates nothing
    refused = _skyclass(emulator, env, "deploy", "--stage", STAGE, "--project-dir",
                        str(project), ok=False)
    assert "no builder instance boots on an emulator" in refused.stderr
    assert account.s3.list_buckets()["Buckets"] == []
    # GIVEN a fresh account holding the stage's baked AMI and things that are not the stage's
    ami_id = account.ec2.register_image(
        Name=f"skyclass-{STAGE}-worker-20260101T000000Z", Architecture="x86_64",
        RootDeviceName="/dev/xvda", VirtualizationType="hvm")["ImageId"]
    # ... tagged as the bake tags it: the image and its snapshot (the operator's policy
    # lets teardown delete only what carries the stage's tag)
    [image] = _until(lambda: account.ec2.describe_images(ImageIds=[ami_id])["Images"],
                     "the new image")
    its_snapshots = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
                     if "SnapshotId" in m.get("Ebs", {})]
    _until(lambda: account.ec2.create_tags(Resources=[ami_id, *its_snapshots], Tags=[
        {"Key": "skyclass:stage", "Value": STAGE},
        {"Key": "skyclass:role", "Value": "worker-ami"}]), "tags on the new image")
    # ... an image named like the stage's but not tagged as it (newer than the stage's),
    # and the snapshot it holds
    theirs = account.ec2.register_image(
        Name=f"skyclass-{STAGE}-worker-theirs", Architecture="x86_64",
        RootDeviceName="/dev/xvda", VirtualizationType="hvm")["ImageId"]
    [their_image] = _until(lambda: account.ec2.describe_images(ImageIds=[theirs])["Images"],
                           "their image")
    snapshots += [m["Ebs"]["SnapshotId"] for m in their_image.get("BlockDeviceMappings", [])
                  if "SnapshotId" in m.get("Ebs", {})]
    account.s3.create_bucket(Bucket="someone-elses-bucket",
                             CreateBucketConfiguration={"LocationConstraint": REGION})
    other = _until(lambda: account.ec2.run_instances(
        ImageId=ami_id, MinCount=1, MaxCount=1, TagSpecifications=[{
            "ResourceType": "instance",
            "Tags": [{"Key": "skyclass:stage", "Value": "prod"},
                     {"Key": "skyclass:role", "Value": "worker"}]}]),
        "a launch from the new image")["Instances"][0]["InstanceId"]

    # WHEN the stage is deployed, with the region only in the operator's profile
    first = _skyclass(emulator, env, "deploy", "--stage", STAGE, "--project-dir", str(project))

    # THEN it waited for EC2 to accept the new instance profile, and said so
    assert "waiting for EC2 to accept the new worker instance profile" in first.stdout
    # AND the last line is the API's URL, in the profile's region
    api_id = account.apigateway.get_rest_apis()["items"][0]["id"]
    assert first.stdout.strip().splitlines()[-1] == (
        f"https://{api_id}.execute-api.{REGION}.amazonaws.com/api/")
    # AND nothing of the stage landed in another region
    elsewhere = Account(emulator, "us-east-1")
    assert elsewhere.sqs.list_queues().get("QueueUrls", []) == []
    assert elsewhere.client("lambda").list_functions()["Functions"] == []
    assert elsewhere.ec2.describe_instances()["Reservations"] == []
    # AND the buckets are private, encrypted, TLS only; old inputs expire
    names = json.loads((project / ".chalice" / "config.json").read_text())["stages"][STAGE][
        "environment_variables"]
    input_bucket, output_bucket = names["SKYCLASS_INPUT_BUCKET"], names["SKYCLASS_OUTPUT_BUCKET"]
    for bucket in (input_bucket, output_bucket):
        block = account.s3.get_public_access_block(Bucket=bucket)
        assert all(block["PublicAccessBlockConfiguration"].values())
        rule = account.s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        policy = json.loads(account.s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert policy["Statement"][0]["Effect"] == "Deny"
        assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = account.s3.get_bucket_lifecycle_configuration(Bucket=input_bucket)["Rules"]
    assert lifecycle[0]["Expiration"]["Days"] == 14
    # AND the work queue sends what keeps failing to its dead-letter queue
    redrive = json.loads(account.sqs.get_queue_attributes(
        QueueUrl=names["SKYCLASS_QUEUE_URL"], AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"])
    dlq_arn = account.sqs.get_queue_attributes(
        QueueUrl=names["SKYCLASS_DLQ_URL"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert redrive["deadLetterTargetArn"] == dlq_arn
    # AND the pool is stopped workers from the AMI, launched from the stage's template with
    # the worker instance profile, a security group nobody can connect to, and the
    # stage's settings in their user data
    workers = [i for r in account.ec2.describe_instances(Filters=[
        {"Name": "tag:skyclass:stage", "Values": [STAGE]},
        {"Name": "tag:skyclass:role", "Values": ["worker"]}])["Reservations"]
        for i in r["Instances"]]
    assert len(workers) == MAX_WORKERS
    assert {w["State"]["Name"] for w in workers} == {"stopped"}
    assert {w["ImageId"] for w in workers} == {ami_id}
    assert {w["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1] for w in workers} == {
        f"skyclass-{STAGE}-worker"}
    template = account.ec2.describe_launch_templates()["LaunchTemplates"][0]
    assert {_tags(w["Tags"])["aws:ec2launchtemplate:id"] for w in workers} == {
        template["LaunchTemplateId"]}
    data = account.ec2.describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"][0][
        "LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert f"SKYCLASS_QUEUE_URL={names['SKYCLASS_QUEUE_URL']}" in base64.b64decode(
        data["UserData"]).decode()
    group = account.ec2.describe_security_groups(GroupIds=data["SecurityGroupIds"])[
        "SecurityGroups"][0]
    assert group["IpPermissions"] == []
    # AND the five Lambdas run with the stage's names and their own least-privilege roles
    functions = {f["FunctionName"]: f
                 for f in account.client("lambda").list_functions()["Functions"]}
    assert sorted(functions) == [f"skyclass-{STAGE}", f"skyclass-{STAGE}-on_finish_task",
                                 f"skyclass-{STAGE}-on_list_task",
                                 f"skyclass-{STAGE}-on_s3_event", f"skyclass-{STAGE}-scale"]
    # AND the bulk jobs' task queues feed their Lambdas, one task at a time
    mappings = account.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    assert sorted((m["EventSourceArn"].rsplit(":", 1)[1], m["FunctionArn"].rsplit(":", 1)[1],
                   m["BatchSize"]) for m in mappings) == [
        (f"skyclass-{STAGE}-finish", f"skyclass-{STAGE}-on_finish_task", 1),
        (f"skyclass-{STAGE}-list", f"skyclass-{STAGE}-on_list_task", 1)]
    for function in functions.values():
        assert function["Environment"]["Variables"]["SKYCLASS_INPUT_BUCKET"] == input_bucket
    # AND the API's key is a SecureString the Lambdas know only by name
    key_parameter = names["SKYCLASS_API_KEY_PARAMETER"]
    parameters = {p["Name"]: p["Type"] for p in account.ssm.describe_parameters()["Parameters"]}
    # (and the key that signs job callbacks, only the finisher may read, is another)
    assert parameters == {key_parameter: "SecureString",
                          f"/skyclass/{STAGE}/callback-secret": "SecureString"}
    key = account.ssm.get_parameter(Name=key_parameter, WithDecryption=True)["Parameter"][
        "Value"]
    assert len(key) >= 32 and key not in (project / ".chalice" / "config.json").read_text()
    # AND each role's policy, as deployed, lets it do its part of the data flow
    # (ARCHITECTURE.md) on this stage's resources as the account names them, and refuses
    # the same on what is not the stage's; only the API may read the key
    may = _deployed_permissions(account)
    queue_arn = account.sqs.get_queue_attributes(
        QueueUrl=names["SKYCLASS_QUEUE_URL"], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    key_arn = account.ssm.get_parameter(Name=key_parameter)["Parameter"]["ARN"]
    [their_worker] = [i for r in account.ec2.describe_instances(InstanceIds=[other])[
        "Reservations"] for i in r["Instances"]]
    ours, not_ours = _instance(account, workers[0]), _instance(account, their_worker)
    inp, out = f"arn:aws:s3:::{input_bucket}", f"arn:aws:s3:::{output_bucket}"
    elsewhere = "arn:aws:s3:::someone-elses-bucket"
    duties = {
        "api_handler": [("s3:PutObject", f"{inp}/jobs/j/j-00000", {}),
                        ("s3:PutObject", f"{out}/jobs/j/manifest.json", {}),
                        ("s3:GetObject", f"{out}/results/j/j-00000.json", {}),
                        ("ssm:GetParameter", key_arn, {})],
        "on_s3_event": [("s3:GetObject", f"{inp}/incoming/cat.jpg", {}),
                        ("s3:PutObject", f"{out}/results/incoming/cat.jpg.json", {}),
                        ("sqs:SendMessage", queue_arn, {}), ("ec2:StartInstances", *ours)],
        "scale": [("ec2:StartInstances", *ours), ("ec2:StopInstances", *ours),
                  ("sqs:GetQueueAttributes", queue_arn, {})],
        "worker": [("sqs:ReceiveMessage", queue_arn, {}), ("sqs:DeleteMessage", queue_arn, {}),
                   ("s3:GetObject", f"{inp}/jobs/j/j-00000", {}),
                   ("s3:PutObject", f"{out}/results/j/j-00000.json", {})],
    }
    refused = [("s3:GetObject", f"{elsewhere}/jobs/j/j-00000", {}),
               ("s3:PutObject", f"{elsewhere}/results/j/j-00000.json", {}),
               ("ec2:StartInstances", *not_ours), ("ec2:StopInstances", *not_ours)]
    for role, allowed in duties.items():
        assert [d for d in allowed if not may(role, *d)] == [], role
        assert [d for d in refused if may(role, *d)] == [], role
    assert {role for role in duties if may(role, "ec2:StopInstances", *ours)} == {"scale"}
    assert {role for role in duties if may(role, "ssm:GetParameter", key_arn, {})} == {
        "api_handler"}
    # AND the schedule calls the scaling Lambda every minute
    [rule] = account.events.list_rules()["Rules"]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    [target] = account.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == functions[f"skyclass-{STAGE}-scale"]["FunctionArn"]
    # AND new objects in the input bucket go to the S3-event Lambda
    notification = account.s3.get_bucket_notification_configuration(Bucket=input_bucket)
    [subscription] = notification["LambdaFunctionConfigurations"]
    assert subscription["LambdaFunctionArn"] == functions[f"skyclass-{STAGE}-on_s3_event"][
        "FunctionArn"]
    assert subscription["Events"] == ["s3:ObjectCreated:*"]
    # AND events it fails to handle three times go to the stage's ingest-failures queue
    failures = account.sqs.get_queue_url(QueueName=f"skyclass-{STAGE}-ingest-failures")[
        "QueueUrl"]
    config = account.client("lambda").get_function_event_invoke_config(
        FunctionName=f"skyclass-{STAGE}-on_s3_event")
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == (
        account.sqs.get_queue_attributes(QueueUrl=failures, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"])
    assert config["MaximumRetryAttempts"] == 2
    # AND its Lambdas' and its workers' logs have groups, kept as long as it says
    groups = {g["logGroupName"]: g.get("retentionInDays")
              for g in account.logs.describe_log_groups()["logGroups"]}
    assert groups == {f"/skyclass/{STAGE}/workers": 30, f"/aws/lambda/skyclass-{STAGE}": 30,
                      f"/aws/lambda/skyclass-{STAGE}-on_s3_event": 30,
                      f"/aws/lambda/skyclass-{STAGE}-scale": 30,
                      f"/aws/lambda/skyclass-{STAGE}-on_list_task": 30,
                      f"/aws/lambda/skyclass-{STAGE}-on_finish_task": 30}

    # WHEN it is deployed again
    before = account.inventory()
    _skyclass(emulator, env, "deploy", "--stage", STAGE, "--project-dir", str(project))
    # THEN nothing was added, replaced or duplicated, and the key clients hold still works
    assert account.inventory() == before
    assert account.ssm.get_parameter(Name=key_parameter, WithDecryption=True)["Parameter"][
        "Value"] == key

    # WHEN the stage, holding an image and its result, is torn down
    account.s3.put_object(Bucket=input_bucket, Key="incoming/cat.jpg", Body=b"jpeg")
    account.s3.put_object(Bucket=output_bucket, Key="results/incoming/cat.jpg.json", Body=b"{}")
    torn = _skyclass(emulator, env, "teardown", "--stage", STAGE, "--project-dir",
                     str(project))
    # THEN it waited for the AMI's snapshot to be released, and deleted it
    assert "to be released by its deregistered AMI" in torn.stdout
    # AND it left the image that bears the stage's name without its tag, and said so
    assert f"left AMI {theirs}" in torn.stdout
    # AND nothing of it is left, and what was not the stage's is untouched
    after = account.inventory()
    assert after == {
        "buckets": ["someone-elses-bucket"], "queues": [], "instances": [other],
        "images": [theirs], "snapshots": sorted(snapshots), "log_groups": [],
        "launch_templates": [],
        "security_groups": [], "roles": [], "instance_profiles": [], "functions": [],
        "apis": [], "rules": [], "parameters": [], "tables": [], "event_buses": [],
        "event_source_mappings": [],
    }
    stage_config = json.loads((project / ".chalice" / "config.json").read_text())["stages"][
        STAGE]
    assert stage_config["environment_variables"] == {"SKYCLASS_STAGE": STAGE}
    assert not list((project / ".chalice").glob(f"policy-{STAGE}-*.json"))
    # AND a second teardown finds nothing left to do, and says so without failing
    again = _skyclass(emulator, env, "teardown", "--stage", STAGE, "--project-dir",
                      str(project))
    assert "no Lambdas or API recorded" in again.stdout
    assert account.inventory() == after
