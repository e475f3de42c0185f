"""`skyclass bake-ami` as a flow: bootstrap, bake, roll the new AMI into the launch template
and the pool. In-process emulator; the test plays the builder (as test_bake.py does)."""

from __future__ import annotations

import functools
import time

import pytest
from moto.s3.models import FakeBucket

from ami_build.bake import AmiBaker
from skyclass.operations.deploy.chalice_project import lambda_environment
from skyclass.operations.deploy.deployer import bake_ami
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.local.emulator import count_requests_as_tls
from skyclass.runtime.names import StageResources, bucket_name, pool_filters
from skyclass.runtime.settings import Settings
from tests.functional.test_bake import _builder
from tests.support.chalice_project import chalice_project

STAGE = "dev"


@pytest.fixture
def tls_aws(aws, monkeypatch):
    """The in-process emulator, with requests counted as TLS as `skyclass emulator` does
    (a deployed stage's buckets refuse anything else)."""
    monkeypatch.setattr(FakeBucket, "get_permission", FakeBucket.get_permission)
    count_requests_as_tls()
    return aws


def _pool(aws):
    return [i for r in aws.ec2.describe_instances(Filters=pool_filters(STAGE))["Reservations"]
            for i in r["Instances"]]


def _bake(aws, project, said):
    settings = Settings.from_env({}, stage=STAGE, max_workers=2)
    output = bucket_name(STAGE, "output", aws.sts.get_caller_identity()["Account"])
    baker = functools.partial(AmiBaker, sleep=_builder(aws, output, "ready"), poll_interval=0)
    return bake_ami(settings, aws, project, said.append, baker=baker)


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
    assert any("boot to ready 0 s" in line for line in said)
    # WHEN it is baked again (a second later: images are named and ordered by the second)
    time.sleep(1.1)
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
