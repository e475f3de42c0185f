"""The region comes from the chain boto3 and Chalice use (AWS_REGION, AWS_DEFAULT_REGION,
the profile), so a stage lands in one region: its buckets, queues, pool, the image it
looks for, and the region `chalice` is told. In-process emulator, through the CLI."""

from __future__ import annotations

import base64

import boto3
import pytest
from moto import mock_aws
from moto.s3.models import FakeBucket

from skyclass.operations.cli import main
from skyclass.operations.deploy.chalice_project import chalice_env
from skyclass.operations.local.emulator import count_requests_as_tls
from tests.support.chalice_project import chalice_project

STAGE = "dev"
REGION = "eu-west-1"


@pytest.fixture
def region_only_in(monkeypatch, tmp_path):
    """Point the environment's region chain at ``REGION`` one way or another."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))

    def where(source: str) -> None:
        if source == "AWS_DEFAULT_REGION":
            monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        else:
            (tmp_path / "aws-config").write_text(f"[profile ops]\nregion = {REGION}\n")
            monkeypatch.setenv("AWS_PROFILE", "ops")

    return where


@pytest.mark.parametrize("source", ["AWS_DEFAULT_REGION", "profile"])
def test_bootstrap_puts_the_whole_stage_in_the_chains_region(region_only_in, source, tmp_path,
                                                              monkeypatch, capsys):
    region_only_in(source)
    monkeypatch.setattr(FakeBucket, "get_permission", FakeBucket.get_permission)
    with mock_aws():
        count_requests_as_tls()
        # GIVEN the stage's baked image, registered in that region
        ec2 = boto3.client("ec2", region_name=REGION)
        ami = ec2.register_image(Name=f"skyclass-{STAGE}-worker-20260101T000000Z")["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "skyclass:stage", "Value": STAGE},
                                               {"Key": "skyclass:role", "Value": "worker-ami"}])
        project = chalice_project(tmp_path / "project")
        # WHEN the stage is bootstrapped with the region only there
        assert main(["bootstrap", "--stage", STAGE, "--project-dir", str(project),
                     "--max-workers", "1"]) == 0
        # THEN it found the image, and its queues, buckets and workers are in that region
        assert f"AMI {ami}" in capsys.readouterr().out
        sqs = boto3.client("sqs", region_name=REGION)
        assert len(sqs.list_queues(QueueNamePrefix=f"skyclass-{STAGE}-")["QueueUrls"]) >= 2
        assert boto3.client("sqs", region_name="us-east-1").list_queues().get(
            "QueueUrls", []) == []
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in s3.list_buckets()["Buckets"]:
            location = s3.get_bucket_location(Bucket=bucket["Name"])["LocationConstraint"]
            assert location == REGION
        [template] = ec2.describe_launch_templates()["LaunchTemplates"]
        data = ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"][0][
            "LaunchTemplateData"]
        # AND its workers are told that region
        assert f"AWS_REGION={REGION}\n" in base64.b64decode(data["UserData"]).decode()


def test_chalice_is_told_the_stages_region_whatever_the_profile_says(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    env = chalice_env({"SKYCLASS_STAGE": STAGE}, REGION)
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == REGION
    assert env["SKYCLASS_STAGE"] == STAGE
