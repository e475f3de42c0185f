"""`skyclass teardown` against AWS's lateness: a deregistered AMI's snapshot stays "in use"
for a while, and a teardown that gave up on it must be finishable by the next one.
In-process emulator with its eventual-consistency mode on a fake clock."""

from __future__ import annotations

import pytest

from skyclass.operations.deploy.deployer import bake_ami
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.deploy.teardown import Teardown
from skyclass.operations.waiting import Waits
from skyclass.runtime.names import bucket_name
from skyclass.runtime.settings import Settings
from tests.functional.test_bake import Builder
from tests.functional.test_deploy import STAGE, tls_aws  # noqa: F401 (a fixture)
from tests.support.chalice_project import chalice_project
from tests.support.lagging import FakeClock, fake_waiter, lagging_emulator

SETTINGS = Settings.from_env({}, stage=STAGE, max_workers=1)


def _baked_stage(aws, project, clock):
    output = bucket_name(STAGE, "output", aws.sts.get_caller_identity()["Account"])
    builder = Builder(aws, output, "ready", clock)
    return bake_ami(SETTINGS, aws, project, print, waiter=builder.waiter([]))


def _stage_snapshots(aws):
    return [s["SnapshotId"] for s in aws.ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:skyclass:stage", "Values": [STAGE]}])["Snapshots"]]


def test_teardown_waits_while_aws_keeps_the_snapshot_in_use(tls_aws, tmp_path,  # noqa: F811
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
        tls_aws, tmp_path, monkeypatch):  # noqa: F811
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
