"""The bake driver against the emulator. The emulator cannot boot an image, so the test
plays the builder: when the driver waits, it writes the builder's status report."""

import io
import tarfile

import pytest

from ami_build.bake import AmiBaker, BakeError, pack_sources, status_document
from skyclass.operations.provision.stage import find_worker_ami, provision
from skyclass.runtime.names import pool_filters
from tests.conftest import REPO_ROOT


def _builder(aws, bucket, status):
    """A fake sleep that answers as the builder instance would, once it exists."""

    def sleep(_seconds):
        builders = [
            i for r in aws.ec2.describe_instances(
                Filters=[{"Name": "tag:skyclass:role", "Values": ["ami-builder"]}]
            )["Reservations"] for i in r["Instances"]
        ]
        assert builders, "the driver waits before it has launched a builder"
        key = next(k["Key"] for k in aws.s3.list_objects_v2(Bucket=bucket, Prefix="bake/")
                   ["Contents"] if k["Key"].endswith("source.tar.gz"))
        aws.s3.put_object(Bucket=bucket, Key=key.replace("source.tar.gz", "status.json"),
                          Body=status_document(status, 95, "provision.sh: ..."))

    return sleep


def _instances(aws, role):
    return [i for r in aws.ec2.describe_instances(
        Filters=[{"Name": "tag:skyclass:role", "Values": [role]}])["Reservations"]
        for i in r["Instances"]]


def test_a_bake_leaves_a_tagged_ami_and_no_builder(settings, aws):
    # GIVEN a stage with buckets and queues but no worker AMI yet
    first = provision(settings, aws)
    assert first.ami_id is None and first.worker_instance_ids == []
    bucket = first.resources.output_bucket
    # WHEN the AMI is baked and the builder reports success
    result = AmiBaker(aws, first.resources, sleep=_builder(aws, bucket, "ready"),
                      poll_interval=0).bake(REPO_ROOT)
    # THEN the stage has a tagged worker AMI, the builder is gone, and so are the bake's files
    assert find_worker_ami(aws, settings.stage) == result.ami_id
    image = aws.ec2.describe_images(ImageIds=[result.ami_id])["Images"][0]
    assert image["Name"].startswith("skyclass-local-worker-")
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    assert tags == {"skyclass:stage": "local", "skyclass:role": "worker-ami"}
    assert [i["State"]["Name"] for i in _instances(aws, "ami-builder")] == ["terminated"]
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=bucket, Prefix="bake/")
    # AND provisioning now fills the pool from it, stopped
    second = provision(settings, aws)
    assert second.ami_id == result.ami_id and len(second.worker_instance_ids) == 3
    states = {i["State"]["Name"] for r in aws.ec2.describe_instances(
        Filters=pool_filters("local"))["Reservations"] for i in r["Instances"]}
    assert states == {"stopped"}


def test_a_failed_provisioning_makes_no_ami_and_cleans_up(settings, aws):
    resources = provision(settings, aws).resources
    baker = AmiBaker(aws, resources, sleep=_builder(aws, resources.output_bucket, "failed"),
                     poll_interval=0)
    with pytest.raises(BakeError, match="provisioning failed"):
        baker.bake(REPO_ROOT)
    assert find_worker_ami(aws, settings.stage) is None
    assert [i["State"]["Name"] for i in _instances(aws, "ami-builder")] == ["terminated"]


def test_the_source_bundle_holds_the_worker_and_its_provisioning():
    with tarfile.open(fileobj=io.BytesIO(pack_sources(REPO_ROOT))) as tar:
        names = set(tar.getnames())
    assert {"skyclass/ami_build/provision.sh", "skyclass/pyproject.toml",
            "skyclass/constraints.txt", "skyclass/skyclass/runtime/contracts.py"} <= names
    assert not any("__pycache__" in n for n in names)
