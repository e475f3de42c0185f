"""`skyclass bake-ami` and `skyclass bootstrap` as flows: bootstrap, bake, roll the new AMI
or new settings into the launch template and the pool, wait for AWS to agree with itself.
In-process emulator; the test plays the builder (as test_bake.py does) and AWS's
eventual consistency on a fake clock (tests/support/lagging.py)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from skyclass.operations.cli import main
from skyclass.operations.deploy.bootstrap import bootstrap
from skyclass.operations.deploy.chalice_project import lambda_environment
from skyclass.operations.deploy.deployer import bake_ami
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.provision.workers import NoDefaultVpcError
from skyclass.runtime.names import StageResources, bucket_name, pool_filters
from skyclass.runtime.settings import Settings
from tests.support.builder import Builder
from tests.support.chalice_project import chalice_project
from tests.support.clocks import FakeClock, wall_clock_past
from tests.support.lagging import fake_waiter, lagging_emulator

STAGE = "dev"


def _pool(aws):
    return [i for r in aws.ec2.describe_instances(Filters=pool_filters(STAGE))["Reservations"]
            for i in r["Instances"]]


def _bake(aws, project, said, clock=None):
    settings = Settings.from_env({}, stage=STAGE, max_workers=2)
    output = bucket_name(STAGE, "output", aws.sts.get_caller_identity()["Account"])
    builder = Builder(aws, output, "ready", clock)
    return bake_ami(settings, aws, project, said.append, waiter=builder.waiter(said))


def test_a_bake_reaches_the_launch_template_and_the_pool(tls_aws, tmp_path):
    aws, said = tls_aws, []
    project = chalice_project(tmp_path / "project")
    # GIVEN a stage that has never had an AMI
    # WHEN its AMI is baked
    first = _bake(aws, project, said)
    # THEN the pool is stopped workers of that AMI, and the boot-to-ready time was reported
    pool = _pool(aws)
    assert len(pool) == 2 and {i["ImageId"] for i in pool} == {first.ami_id}
    assert {i["State"]["Name"] for i in pool} == {"stopped"}
    assert any("builder boot to ready 10 s" in line for line in said)  # one 10 s poll
    # WHEN it is baked again (a second later: images are named and ordered by the second)
    wall_clock_past(int(time.time()) + 1)
    second = _bake(aws, project, said)
    # THEN the template launches the new AMI and the stopped workers were replaced by it
    [template] = aws.ec2.describe_launch_templates()["LaunchTemplates"]
    default = aws.ec2.describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Default"])[
        "LaunchTemplateVersions"][0]
    assert default["LaunchTemplateData"]["ImageId"] == second.ami_id
    pool = _pool(aws)
    assert len(pool) == 2 and {i["ImageId"] for i in pool} == {second.ami_id}


def test_the_local_stage_is_not_deployed(aws, tmp_path):
    project = chalice_project(tmp_path / "project")
    with pytest.raises(DeployError, match="skyclass up"):
        bake_ami(Settings.from_env({}, stage="local"), aws, project, print)


def test_the_lambdas_get_the_stages_names_and_the_operators_choices_only():
    # GIVEN an operator who chose a shorter idle grace and a region, and has a local key
    settings = Settings.from_env({"SKYCLASS_IDLE_GRACE": "120", "AWS_REGION": "eu-west-1",
                                  "SKYCLASS_API_KEY": "secret"},
                                 stage=STAGE, max_workers=8)
    resources = StageResources(STAGE, "in-bucket", "out-bucket", "https://q/work",
                               "https://q/dlq")
    # WHEN the Lambdas' environment is derived
    env = lambda_environment(settings, resources, "/skyclass/dev/api-key")
    # THEN it holds the names, the pool size, the key's parameter and the choice; neither
    # what Lambda reserves nor a secret
    assert env == {
        "SKYCLASS_STAGE": STAGE, "SKYCLASS_INPUT_BUCKET": "in-bucket",
        "SKYCLASS_OUTPUT_BUCKET": "out-bucket", "SKYCLASS_QUEUE_URL": "https://q/work",
        "SKYCLASS_DLQ_URL": "https://q/dlq", "SKYCLASS_MAX_WORKERS": "8",
        "SKYCLASS_MIN_WORKERS": "0", "SKYCLASS_IDLE_GRACE": "120.0",
        "SKYCLASS_API_KEY_PARAMETER": "/skyclass/dev/api-key",
    }


def _register_image(aws):
    ami = aws.ec2.register_image(Name=f"skyclass-{STAGE}-worker-20260101T000000Z")["ImageId"]
    aws.ec2.create_tags(Resources=[ami], Tags=[{"Key": "skyclass:stage", "Value": STAGE},
                                               {"Key": "skyclass:role", "Value": "worker-ami"}])
    return ami


def _user_data(aws, instance_id):
    value = aws.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")[
        "UserData"]["Value"]
    return base64.b64decode(value).decode()


def test_bootstrap_waits_for_ec2_to_accept_a_new_instance_profile(tls_aws, tmp_path,
                                                                   monkeypatch):
    aws, said, clock = tls_aws, [], FakeClock()
    project = chalice_project(tmp_path / "project")
    # GIVEN the stage's image, and AWS whose EC2 refuses a new instance profile for 2 min
    _register_image(aws)
    lagging_emulator(monkeypatch, lag=120, clock=clock)
    # WHEN the stage is bootstrapped (creating its profile)
    done = bootstrap(Settings.from_env({}, stage=STAGE, max_workers=2), aws, project,
                     waiter=fake_waiter(clock, said))
    # THEN the pool was launched once EC2 accepted the profile, within the stated limit
    assert len(done.provisioned.worker_instance_ids) == 2 and len(_pool(aws)) == 2
    assert 120 <= clock.slept <= 300
    # AND it said what it was waiting for, as it waited
    assert "waiting for EC2 to accept the new worker instance profile (InvalidParameterValue)" \
        in said
    assert any(line.startswith("still waiting for EC2 to accept") for line in said)


def test_new_settings_reach_the_pools_stopped_workers(tls_aws, tmp_path):
    aws, said = tls_aws, []
    project = chalice_project(tmp_path / "project")
    # GIVEN a bootstrapped stage whose pool has one worker at work and one stopped
    _register_image(aws)
    waiter = fake_waiter(FakeClock(), said)
    bootstrap(Settings.from_env({}, stage=STAGE, max_workers=2), aws, project, waiter=waiter)
    busy, idle = sorted(i["InstanceId"] for i in _pool(aws))
    aws.ec2.start_instances(InstanceIds=[busy])
    # WHEN the operator bootstraps it again with another setting
    changed = Settings.from_env({"SKYCLASS_MAX_IMAGE_BYTES": "1000"}, stage=STAGE,
                                max_workers=2)
    bootstrap(changed, aws, project, waiter=waiter)
    # THEN the stopped worker was replaced by one that starts with the new setting
    pool = {i["InstanceId"]: i for i in _pool(aws)}
    assert idle not in pool and busy in pool and len(pool) == 2
    [fresh] = [i for i in pool if i != busy]
    assert "SKYCLASS_MAX_IMAGE_BYTES=1000\n" in _user_data(aws, fresh)
    # AND the working one was left to its work, and named
    assert "SKYCLASS_MAX_IMAGE_BYTES=1000\n" not in _user_data(aws, busy)
    assert any(busy in line and "keep working" in line for line in said)
    # WHEN it has stopped and the stage is bootstrapped again
    aws.ec2.stop_instances(InstanceIds=[busy])
    bootstrap(changed, aws, project, waiter=waiter)
    # THEN every worker starts with the new setting
    pool = [i["InstanceId"] for i in _pool(aws)]
    assert busy not in pool and len(pool) == 2
    assert all("SKYCLASS_MAX_IMAGE_BYTES=1000\n" in _user_data(aws, i) for i in pool)
    # AND one more bootstrap with the same settings replaces nothing
    bootstrap(changed, aws, project, waiter=waiter)
    assert sorted(i["InstanceId"] for i in _pool(aws)) == sorted(pool)


def test_bootstrap_writes_the_project_around_the_current_directory(tls_aws, tmp_path,
                                                                    monkeypatch, capsys):
    # GIVEN an installed checkout, and another copy of the project the operator is in
    installed = chalice_project(tmp_path / "installed")
    mine = chalice_project(tmp_path / "mine")
    (mine / "docs").mkdir()
    monkeypatch.setattr("skyclass.operations.cli.deploy.PROJECT_DIR", installed, raising=False)
    monkeypatch.setattr("skyclass.operations.project.PROJECT_DIR", installed)
    monkeypatch.chdir(mine / "docs")
    _register_image(tls_aws)
    # WHEN the operator bootstraps from inside that copy
    assert main(["bootstrap", "--stage", STAGE, "--max-workers", "1"]) == 0
    # THEN the stage was written to that copy's .chalice/, as `chalice` would use it
    def stage_env(project):
        config = json.loads((project / ".chalice" / "config.json").read_text())
        return config["stages"].get(STAGE, {}).get("environment_variables", {})
    assert "SKYCLASS_INPUT_BUCKET" in stage_env(mine)
    assert "SKYCLASS_INPUT_BUCKET" not in stage_env(installed)
    # AND outside any project it says so, and writes nothing
    monkeypatch.chdir(tmp_path)
    assert main(["bootstrap", "--stage", STAGE]) == 2
    assert "no skyclass project (app.py and .chalice/config.json)" in capsys.readouterr().err


def test_the_stage_keeps_its_logs_as_long_as_it_says(tls_aws, tmp_path):
    aws = tls_aws
    project = chalice_project(tmp_path / "project")
    _register_image(aws)
    # WHEN a stage is bootstrapped to keep its logs 14 days
    settings = Settings.from_env({"SKYCLASS_LOG_RETENTION_DAYS": "14"}, stage=STAGE,
                                 max_workers=1)
    bootstrap(settings, aws, project, waiter=fake_waiter(FakeClock(), []))
    # THEN its workers' and its Lambdas' log groups keep them 14 days
    groups = {g["logGroupName"]: g.get("retentionInDays")
              for g in aws.client("logs").describe_log_groups()["logGroups"]}
    assert groups == {f"/skyclass/{STAGE}/workers": 14, f"/aws/lambda/skyclass-{STAGE}": 14,
                      f"/aws/lambda/skyclass-{STAGE}-on_s3_event": 14,
                      f"/aws/lambda/skyclass-{STAGE}-scale": 14,
                      f"/aws/lambda/skyclass-{STAGE}-on_list_task": 14,
                      f"/aws/lambda/skyclass-{STAGE}-on_finish_task": 14}
    # AND the workers may write only their own stage's group
    policy = aws.client("iam").get_role_policy(RoleName=f"skyclass-{STAGE}-worker",
                                               PolicyName="skyclass-worker")["PolicyDocument"]
    [ship] = [s for s in policy["Statement"] if s["Sid"] == "ShipLogs"]
    assert ship["Resource"] == [f"arn:aws:logs:us-east-1:123456789012:log-group:"
                                f"/skyclass/{STAGE}/workers:*"]


def test_a_retention_cloudwatch_does_not_offer_is_refused_by_name():
    with pytest.raises(Exception, match="SKYCLASS_LOG_RETENTION_DAYS must be one of"):
        Settings.from_env({"SKYCLASS_LOG_RETENTION_DAYS": "10"})


def test_without_a_default_vpc_bootstrap_says_how_to_make_one(tls_aws, tmp_path):
    aws = tls_aws
    project = chalice_project(tmp_path / "project")
    _register_image(aws)
    # GIVEN an account whose default VPC was deleted
    [vpc] = aws.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    for subnet in aws.ec2.describe_subnets(Filters=[
            {"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
        aws.ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    for gateway in aws.ec2.describe_internet_gateways()["InternetGateways"]:
        aws.ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"],
                                        VpcId=vpc["VpcId"])
        aws.ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
    aws.ec2.delete_vpc(VpcId=vpc["VpcId"])
    # WHEN the stage is bootstrapped THEN it says what is missing and how to make it
    with pytest.raises(NoDefaultVpcError, match="aws ec2 create-default-vpc --region us-east-1"):
        bootstrap(Settings.from_env({}, stage=STAGE, max_workers=1), aws, project,
                  waiter=fake_waiter(FakeClock(), []))
