"""The emulator's eventual-consistency mode (`skyclass emulator --eventual-consistency S`):
for S seconds new instance profiles, images and tags are not found and released
snapshots stay in use, as on AWS; after that, all is as before. In process, on a fake
clock."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.support.clocks import FakeClock
from tests.support.lagging import lagging_emulator

LAG = 60


def _code(call) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


@pytest.fixture
def lagging(aws, monkeypatch):
    clock = FakeClock()
    lagging_emulator(monkeypatch, LAG, clock)
    return aws, clock


def test_a_new_instance_profile_is_refused_by_ec2_for_a_while(lagging):
    aws, clock = lagging
    iam = aws.client("iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps({"Statement": []}))
    arn = iam.create_instance_profile(InstanceProfileName="p")["InstanceProfile"]["Arn"]
    launch = lambda: aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,  # noqa: E731
                                           IamInstanceProfile={"Arn": arn})
    assert _code(launch) == "InvalidParameterValue"
    clock.sleep(LAG)
    assert launch()["Instances"]


def test_a_new_image_and_its_tags_are_not_found_for_a_while(lagging):
    aws, clock = lagging
    ami = aws.ec2.register_image(Name="img")["ImageId"]
    assert _code(lambda: aws.ec2.describe_images(ImageIds=[ami])) == "InvalidAMIID.NotFound"
    assert ami not in {i["ImageId"] for i in aws.ec2.describe_images(Owners=["self"])["Images"]}
    tag = lambda: aws.ec2.create_tags(Resources=[ami], Tags=[{"Key": "k", "Value": "v"}])  # noqa: E731
    assert _code(tag) == "InvalidAMIID.NotFound"
    clock.sleep(LAG)
    tag()
    assert aws.ec2.describe_images(ImageIds=[ami])["Images"][0]["Tags"] == [
        {"Key": "k", "Value": "v"}]


def test_a_deregistered_images_snapshot_stays_in_use_for_a_while(lagging):
    aws, clock = lagging
    ami = aws.ec2.register_image(Name="img")["ImageId"]
    clock.sleep(LAG)
    snapshot = aws.ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"][0][
        "Ebs"]["SnapshotId"]
    aws.ec2.deregister_image(ImageId=ami)
    delete = lambda: aws.ec2.delete_snapshot(SnapshotId=snapshot)  # noqa: E731
    assert _code(delete) == "InvalidSnapshot.InUse"
    clock.sleep(LAG)
    delete()
    assert _code(delete) == "InvalidSnapshot.NotFound"
