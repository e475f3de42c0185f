"""The bake driver against the emulator. The emulator cannot boot an image, so the test
plays the builder: when the driver waits, it writes the builder's status report. The
driver waits through a Waiter on a fake clock (tests/support/lagging.py), so the
minutes AWS takes pass at once."""

import io
import tarfile

import botocore.waiter
import pytest

from ami_build.bake import (
    AmiBaker,
    BakeError,
    pack_sources,
    refuse_where_nothing_boots,
)
from skyclass.operations.local.emulator import tag_image_snapshots
from skyclass.operations.provision.stage import find_worker_ami, provision
from skyclass.runtime.names import pool_filters
from tests.support.builder import Builder, instances_of_role
from tests.support.clocks import FakeClock
from tests.support.lagging import lagging_emulator
from tests.support.paths import REPO_ROOT


def _tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


@pytest.fixture
def snapshot_tags(monkeypatch):
    """The emulator's tags for snapshots at CreateImage (skyclass emulator has them)."""
    tag_image_snapshots(monkeypatch.setattr)


def test_a_bake_leaves_a_tagged_ami_and_snapshot_and_no_builder(settings, aws, snapshot_tags):
    # GIVEN a stage with buckets and queues but no worker AMI yet
    first = provision(settings, aws)
    assert first.ami_id is None and first.worker_instance_ids == []
    bucket = first.resources.output_bucket
    said = []
    # WHEN the AMI is baked and the builder reports success
    result = AmiBaker(aws, first.resources, Builder(aws, bucket, "ready").waiter(said)).bake(
        REPO_ROOT)
    # THEN the stage has a tagged worker AMI, its snapshot is tagged too, the builder is
    # gone, and so are the bake's files
    assert find_worker_ami(aws, settings.stage) == result.ami_id
    image = aws.ec2.describe_images(ImageIds=[result.ami_id])["Images"][0]
    assert image["Name"].startswith("skyclass-local-worker-")
    assert _tags(image) == {"skyclass:stage": "local", "skyclass:role": "worker-ami"}
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert _tags(aws.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]) == {
        "skyclass:stage": "local", "skyclass:role": "worker-ami"}
    assert [i["State"]["Name"] for i in instances_of_role(aws, "ami-builder")] == ["terminated"]
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=bucket, Prefix="bake/")
    # AND provisioning now fills the pool from it, stopped
    second = provision(settings, aws)
    assert second.ami_id == result.ami_id and len(second.worker_instance_ids) == 3
    states = {i["State"]["Name"] for r in aws.ec2.describe_instances(
        Filters=pool_filters("local"))["Reservations"] for i in r["Instances"]}
    assert states == {"stopped"}


def test_a_failed_provisioning_makes_no_ami_and_cleans_up(settings, aws, snapshot_tags):
    resources = provision(settings, aws).resources
    baker = AmiBaker(aws, resources, Builder(aws, resources.output_bucket, "failed").waiter([]))
    with pytest.raises(BakeError, match="provisioning failed"):
        baker.bake(REPO_ROOT)
    assert find_worker_ami(aws, settings.stage) is None
    assert [i["State"]["Name"] for i in instances_of_role(aws, "ami-builder")] == ["terminated"]


def test_a_bake_succeeds_while_new_images_and_their_tags_are_not_found(settings, aws,
                                                                       monkeypatch):
    # GIVEN AWS that does not find a new image, nor lets it be tagged, for two minutes
    clock = FakeClock()
    lagging_emulator(monkeypatch, lag=120, clock=clock)
    resources = provision(settings, aws).resources
    builder = Builder(aws, resources.output_bucket, "ready", clock)
    said = []
    # WHEN the AMI is baked
    result = AmiBaker(aws, resources, builder.waiter(said)).bake(REPO_ROOT)
    # THEN it waited for the image, which is tagged as the stage's, as is its snapshot
    builder.clock.sleep(120)
    image = aws.ec2.describe_images(ImageIds=[result.ami_id])["Images"][0]
    assert _tags(image)["skyclass:stage"] == "local"
    snapshot = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert _tags(aws.ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0])[
        "skyclass:stage"] == "local"
    assert find_worker_ami(aws, settings.stage) == result.ami_id


def test_a_bake_waits_for_a_snapshot_that_takes_longer_than_ten_minutes(settings, aws,
                                                                         snapshot_tags,
                                                                         monkeypatch):
    # GIVEN an image whose first snapshot takes 40 minutes (pending until then)
    from moto.ec2.models import EC2Backend

    resources = provision(settings, aws).resources
    builder = Builder(aws, resources.output_bucket, "ready")
    create, ready_at = EC2Backend.create_image, {}

    def slow_create_image(backend, *args, **kwargs):
        image = create(backend, *args, **kwargs)
        image.state, ready_at[image] = "pending", builder.clock() + 40 * 60
        return image

    def sleep(seconds):  # the image becomes available when its time has come
        builder.sleep(seconds)
        for image, at in ready_at.items():
            if builder.clock() >= at:
                image.state = "available"

    monkeypatch.setattr(EC2Backend, "create_image", slow_create_image)
    # (boto3's own image_available waiter would sleep on the same fake clock)
    monkeypatch.setattr(botocore.waiter.time, "sleep", sleep)
    said = []
    # WHEN the AMI is baked
    result = AmiBaker(aws, resources, builder.waiter(said, sleep)).bake(REPO_ROOT)
    # THEN the bake waited the 40 minutes, saying so as it went
    assert find_worker_ami(aws, settings.stage) == result.ami_id
    assert any(f"still waiting for AMI {result.ami_id} to become available" in line
               for line in said)


@pytest.mark.parametrize("endpoint, boots", [
    ("https://ec2.eu-west-1.amazonaws.com", True),
    ("https://ec2.cn-north-1.amazonaws.com.cn", True),
    ("http://127.0.0.1:4566", False),
    ("http://localhost:4566", False),
])
def test_a_bake_refuses_at_once_where_no_builder_can_boot(endpoint, boots):
    if boots:
        refuse_where_nothing_boots(endpoint, "dev")
    else:
        with pytest.raises(BakeError, match="no builder instance boots on an emulator.*"
                                            "skyclass-dev-worker-<anything>"):
            refuse_where_nothing_boots(endpoint, "dev")


def test_the_source_bundle_holds_the_worker_and_its_provisioning():
    with tarfile.open(fileobj=io.BytesIO(pack_sources(REPO_ROOT))) as tar:
        names = set(tar.getnames())
    assert {"skyclass/ami_build/provision.sh", "skyclass/pyproject.toml",
            "skyclass/constraints.txt", "skyclass/skyclass/runtime/contracts.py"} <= names
    assert not any("__pycache__" in n for n in names)
