"""`skyclass logs`: one image's trail through a stage's logs in CloudWatch Logs. The local
stack's log files are shipped into the emulator's CloudWatch Logs under the deployed
stage's group names, and the same reader follows an image through them. In-process
emulator; the log files are written as the stack's processes write them."""

from __future__ import annotations

import time

from skyclass.operations.local.log_shipper import LogShipper
from skyclass.operations.logs import LogTrail
from skyclass.operations.provision.stage import provision

IMAGE = "0123456789abcdef0123-00000"
OTHER = "0123456789abcdef0123-00001"
WORKER = "i-0123456789abcdef0"


def _stamp(seconds_ago: float) -> str:
    at = time.time() - seconds_ago
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f",{int(at % 1 * 1000):03d}"


def _write(folder, name, *lines):
    with (folder / name).open("a") as handle:
        handle.writelines(line + "\n" for line in lines)


def test_one_images_trail_across_api_ingest_worker_and_scaler(aws, settings, tmp_path):
    # GIVEN a local stage whose processes logged an image's way and another image's
    provision(settings, aws)
    _write(tmp_path, "api.log",
           f"{_stamp(9)} skyclass.runtime.jobs job 0123: image {IMAGE} (cat.jpg, 10 bytes) "
           "may be uploaded",
           f"{_stamp(9)} skyclass.runtime.jobs job 0123: image {OTHER} (dog.jpg, 10 bytes) "
           "may be uploaded")
    _write(tmp_path, "lambda-host.log",
           f"{_stamp(8)} skyclass.runtime.ingest image {IMAGE} queued (s3://in/jobs/x, 10 bytes)",
           f"{_stamp(7)} skyclass.runtime.ingest_failures image(s) jobs/0123/{IMAGE} queued "
           "after their S3 event had failed (boom)",
           f"{_stamp(7)} skyclass.runtime.fleet.scaler scaling: backlog 1 (start ['i-1'])")
    _write(tmp_path, f"worker-{WORKER}.log",
           "--- started 2026-01-01 00:00:00",
           f"{_stamp(5)} INFO ec2_worker.worker: image {IMAGE} done: tabby",
           f"{_stamp(5)} INFO ec2_worker.worker: image {OTHER} done: beagle")
    # WHEN the stack ships them and someone asks for the image's trail
    assert LogShipper(aws.client("logs"), tmp_path, "local", 30).ship_once() == 8
    trail = LogTrail(aws.client("logs"), "local").read(int((time.time() - 60) * 1000), IMAGE)
    # THEN it has the image's lines only, from each component, in the order they happened
    assert [(line.component, line.message.split(" ", 2)[2]) for line in trail] == [
        ("api", f"skyclass.runtime.jobs job 0123: image {IMAGE} (cat.jpg, 10 bytes) may be "
                "uploaded"),
        ("ingest", f"skyclass.runtime.ingest image {IMAGE} queued (s3://in/jobs/x, 10 bytes)"),
        ("scaler", f"skyclass.runtime.ingest_failures image(s) jobs/0123/{IMAGE} queued after "
                   "their S3 event had failed (boom)"),
        (f"worker/{WORKER}", f"INFO ec2_worker.worker: image {IMAGE} done: tabby"),
    ]
    # AND each line renders with its time and its component
    assert trail[-1].render().split(" ", 1)[1].startswith(f"worker/{WORKER}")
    # AND the workers' group keeps what the stage says
    [group] = aws.client("logs").describe_log_groups(
        logGroupNamePrefix="/skyclass/local/workers")["logGroups"]
    assert group["retentionInDays"] == settings.log_retention_days


def test_following_an_image_shows_its_lines_as_they_arrive(aws, tmp_path):
    # GIVEN an image queued a moment ago
    shipper = LogShipper(aws.client("logs"), tmp_path, "local", 30)
    _write(tmp_path, "lambda-host.log", f"{_stamp(2)} skyclass.runtime.ingest image {IMAGE} queued")
    shipper.ship_once()
    trail = LogTrail(aws.client("logs"), "local")
    looks = []

    def sleep(_seconds):  # meanwhile a worker classifies it, and its line is shipped
        looks.append(_seconds)
        _write(tmp_path, f"worker-{WORKER}.log",
               f"{_stamp(1)} INFO ec2_worker.worker: image {IMAGE} done: tabby")
        shipper.ship_once()

    # WHEN someone follows it for two looks
    lines = list(trail.follow(int((time.time() - 60) * 1000), IMAGE,
                              stop=lambda: len(looks) >= 1, sleep=sleep))
    # THEN each line came once, the worker's after ingest's
    assert [line.component for line in lines] == ["ingest", f"worker/{WORKER}"]


def test_a_stage_with_no_logs_yet_has_an_empty_trail(aws):
    assert LogTrail(aws.client("logs"), "dev").read(0, IMAGE) == []


def test_the_lambdas_info_lines_reach_their_logs(lambda_env):
    # GIVEN the deployed app, whose Chalice sets its "skyclass" logger to ERROR
    import logging

    import app  # noqa: F401
    from chalice_app import wiring

    # WHEN a Lambda builds its objects
    wiring.services()
    # THEN an image queued by ingest, or a job's uploads, are logged
    for name in ("skyclass.runtime.ingest", "skyclass.runtime.jobs",
                 "skyclass.runtime.ingest_failures"):
        assert logging.getLogger(name).isEnabledFor(logging.INFO), name
