"""`skyclass teardown` against AWS's lateness: a deregistered AMI's snapshot stays "in use"
for a while, and a teardown that gave up on it must be finishable by the next one.
In-process emulator with its eventual-consistency mode on a fake clock."""

from __future__ import annotations

import json

import pytest

from skyclass.operations.deploy.deployer import bake_ami
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.deploy.teardown import Teardown
from skyclass.operations.waiting import Waits
from skyclass.runtime.names import StageNames, bucket_name, tag_list
from skyclass.runtime.settings import Settings
from tests.support.builder import Builder
from tests.support.chalice_project import chalice_project
from tests.support.clocks import FakeClock
from tests.support.lagging import fake_waiter, lagging_emulator

STAGE = "dev"
SETTINGS = Settings.from_env({}, stage=STAGE, max_workers=1)


def _baked_stage(aws, project, clock):
    output = bucket_name(STAGE, "output", aws.sts.get_caller_identity()["Account"])
    builder = Builder(aws, output, "ready", clock)
    return bake_ami(SETTINGS, aws, project, print, waiter=builder.waiter([]))


def _stage_snapshots(aws):
    return [s["SnapshotId"] for s in aws.ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:skyclass:stage", "Values": [STAGE]}])["Snapshots"]]


def test_teardown_waits_while_aws_keeps_the_snapshot_in_use(tls_aws, tmp_path,
                                                             monkeypatch):
    aws, clock, said = tls_aws, FakeClock(), []
    project = chalice_project(tmp_path / "project")
    # GIVEN a baked stage, on AWS that keeps a released snapshot in use for 3 minutes
    lagging_emulator(monkeypatch, lag=180, clock=clock)
    result = _baked_stage(aws, project, clock)
    assert len(_stage_snapshots(aws)) == 1
    # WHEN it is torn down
    Teardown(SETTINGS, aws, project, said.append, waiter=fake_waiter(clock, said)).run()
    # THEN the AMI and its snapshot are gone, after a wait it reported
    assert aws.ec2.describe_images(Owners=["self"])["Images"] == []
    assert _stage_snapshots(aws) == []
    assert any("to be released by its deregistered AMI" in line for line in said)
    assert f"deregistered AMI {result.ami_id}" in said
    # AND so is its workers' log group
    assert aws.client("logs").describe_log_groups(
        logGroupNamePrefix=f"/skyclass/{STAGE}/")["logGroups"] == []


def test_a_teardown_that_gave_up_on_a_snapshot_is_finished_by_the_next(
        tls_aws, tmp_path, monkeypatch):
    aws, clock, said = tls_aws, FakeClock(), []
    project = chalice_project(tmp_path / "project")
    # GIVEN a baked stage, on AWS that keeps a released snapshot in use for longer than
    # teardown waits
    _baked_stage(aws, project, clock)
    lagging_emulator(monkeypatch, lag=Waits().snapshot_release.limit_s + 600, clock=clock)
    [snapshot] = _stage_snapshots(aws)
    # WHEN it is torn down
    teardown = Teardown(SETTINGS, aws, project, said.append, waiter=fake_waiter(clock, said))
    with pytest.raises(DeployError, match=f"except snapshot {snapshot} .*Run `skyclass "
                                          "teardown` again"):
        teardown.run()
    # THEN everything else is gone, and the snapshot is still tagged as the stage's
    assert aws.ec2.describe_images(Owners=["self"])["Images"] == []
    assert aws.s3.list_buckets()["Buckets"] == []
    assert _stage_snapshots(aws) == [snapshot]
    # WHEN AWS has released it and teardown runs again
    clock.sleep(600)
    Teardown(SETTINGS, aws, project, said.append, waiter=fake_waiter(clock, said)).run()
    # THEN it found the snapshot by its tag and deleted it
    assert _stage_snapshots(aws) == []
    assert f"deleted snapshot {snapshot}" in said


def _inventory(aws) -> dict[str, list]:
    """What a person would list in the account, sorted."""
    iam, ssm, logs = aws.client("iam"), aws.client("ssm"), aws.client("logs")
    return {
        "buckets": sorted(b["Name"] for b in aws.s3.list_buckets()["Buckets"]),
        "queues": sorted(aws.sqs.list_queues().get("QueueUrls", [])),
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "instance_profiles": sorted(p["InstanceProfileName"] for p in
                                    iam.list_instance_profiles()["InstanceProfiles"]),
        "parameters": sorted(p["Name"] for p in ssm.describe_parameters()["Parameters"]),
        "log_groups": sorted(g["logGroupName"] for g in
                             logs.describe_log_groups()["logGroups"]),
        "launch_templates": sorted(t["LaunchTemplateName"] for t in
                                   aws.ec2.describe_launch_templates()["LaunchTemplates"]),
        "security_groups": sorted(g["GroupName"] for g in
                                  aws.ec2.describe_security_groups()["SecurityGroups"]),
        "images": sorted(i["Name"] for i in
                         aws.ec2.describe_images(Owners=["self"])["Images"]),
        "instances": sorted(i["InstanceId"] for r in aws.ec2.describe_instances()["Reservations"]
                            for i in r["Instances"] if i["State"]["Name"] != "terminated"),
    }


def test_teardown_leaves_what_has_the_stages_names_but_not_its_tag(tls_aws, tmp_path):
    aws, said = tls_aws, []
    project = chalice_project(tmp_path / "project")
    names = StageNames.of(STAGE, aws.sts.get_caller_identity()["Account"])
    theirs = {"skyclass:stage": "prod"}
    # GIVEN an account where everything that bears the stage's names is someone else's:
    # untagged, or tagged as another stage's
    for bucket in names.buckets:
        aws.s3.create_bucket(Bucket=bucket)
    aws.s3.put_bucket_tagging(Bucket=names.input_bucket, Tagging={"TagSet": tag_list(theirs)})
    for queue in names.queues:
        aws.sqs.create_queue(QueueName=queue, tags=theirs)
    iam = aws.client("iam")
    iam.create_role(RoleName=names.worker_role, AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": []}), Tags=tag_list(theirs))
    iam.create_instance_profile(InstanceProfileName=names.worker_role)
    aws.client("ssm").put_parameter(Name=names.api_key_parameter, Value="their key",
                                    Type="SecureString")
    for group in names.log_groups:
        aws.client("logs").create_log_group(logGroupName=group, tags=theirs)
    aws.ec2.create_launch_template(LaunchTemplateName=names.launch_template,
                                   LaunchTemplateData={})
    aws.ec2.create_security_group(GroupName=names.security_group, Description="theirs")
    aws.ec2.register_image(Name=f"skyclass-{STAGE}-worker-theirs")
    ami = aws.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    aws.ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": tag_list({**theirs, "skyclass:role": "worker"})}])
    before = _inventory(aws)
    # WHEN the stage is torn down
    Teardown(SETTINGS, aws, project, said.append, waiter=fake_waiter(FakeClock(), said)).run()
    # THEN all of it is still there
    assert _inventory(aws) == before
    # AND the report names each thing it left alone because of its tag
    for name in (*names.buckets, *names.queues, names.worker_role, names.api_key_parameter,
                 *names.log_groups, f"skyclass-{STAGE}-worker-theirs"):
        assert any(name in line and "alone" in line for line in said), (name, said)
