"""The fleet against the in-process emulator: what ``GET /fleet`` and ``skyclass status``
show after a scaling tick, the pool that provisioning keeps full, and the S3-event cold
start when EC2 misbehaves."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from chalice.test import Client

from app import app
from chalice_app import wiring
from chalice_app.scaling import scale
from skyclass.operations.cli.fleet import render_fleet
from skyclass.operations.local.emulator import start_sets_launch_time
from skyclass.operations.local.lambda_host import scheduled_event
from skyclass.operations.provision.stage import provision
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.ingest import Ingestor
from skyclass.runtime.metrics import MetricsPublisher, publish_images_to_ingest
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.store import JsonStore
from tests.support.clocks import wall_clock_past
from tests.support.images import PNG
from tests.support.ingest import queued, s3_notifications
from tests.support.messages import enqueue
from tests.support.paths import REPO_ROOT


def test_fleet_shows_backlog_instances_measured_throughput_and_the_decision(aws, lambda_env):
    # GIVEN three queued images and workers that measured 8 img/s
    enqueue(WorkQueue(aws.sqs, lambda_env.queue_url), 3)
    MetricsPublisher(aws.cloudwatch, lambda_env.stage, flush_every=0,
                     warm_up_batches=0).record_batch(images=80, errors=0, seconds=10.0)
    # WHEN the scheduled Lambda ticks and a client asks for the fleet
    scale(scheduled_event("skyclass-scale", datetime.now(UTC)), None)
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as client:
        fleet = client.http.get("/fleet").json_body

    # THEN the shape clients rely on is there, with the new fields beside it
    assert fleet["queue"] == {"visible": 3, "in_flight": 0, "delayed": 0, "dead_letter": 0,
                              "ingesting": 0}
    assert fleet["backlog"] == 3
    assert fleet["limits"] == {"min_workers": 0, "max_workers": 3, "note": None}
    running = [i for i in fleet["instances"] if i["state"] == "running"]
    assert len(running) == 1 and len(fleet["instances"]) == 3
    assert running[0]["uptime_s"] is not None and running[0]["booting"] is True
    assert fleet["throughput"]["per_worker"] == 8.0
    assert fleet["throughput"]["source"] == "measured"
    decision = fleet["last_decision"]
    assert decision["started"] == [running[0]["id"]] and decision["desired"] == 1
    assert "needs 1" in decision["reason"]
    # AND skyclass status says the same in words
    text = render_fleet(fleet)
    assert "3 visible" in text and "8 img/s per worker (measured)" in text
    assert "1 up of 3" in text and "(booting)" in text
    assert f"started {running[0]['id']}" in text


def test_fleet_shows_the_engine_each_running_worker_chose_and_why(aws, lambda_env):
    from ec2_worker.engines.build import EngineReport
    from ec2_worker.engines.report import publish

    # GIVEN a tick that started one worker for a queued image
    enqueue(WorkQueue(aws.sqs, lambda_env.queue_url), 1)
    scale(scheduled_event("skyclass-scale", datetime.now(UTC)), None)
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as client:
        before = client.http.get("/fleet").json_body
        [running] = [i for i in before["instances"] if i["state"] == "running"]
        # WHEN its worker is ready, running OpenVINO after measuring it against TensorFlow
        report = EngineReport("auto", "openvino", "fp32", "auto, the fastest: openvino 1.50x",
                              measured={"tensorflow": {"rates": {"32": 40.0}},
                                        "openvino": {"rates": {"32": 60.0}}})
        publish(report, s3=aws.s3, bucket=lambda_env.output_bucket, cloudwatch=aws.cloudwatch,
                stage=lambda_env.stage, worker_id=running["id"], model="resnet50",
                ready_seconds=3.0)
        after = client.http.get("/fleet").json_body
    # THEN /fleet shows what runs its model and why, only beside that running instance
    assert running["engine"] is None
    by_id = {i["id"]: i for i in after["instances"]}
    assert by_id[running["id"]]["engine"] == {
        "engine": "openvino", "precision": "fp32", "speedup": 1.5,
        "reason": "auto, the fastest: openvino 1.50x"}
    assert all("engine" not in i for i in after["instances"] if i["state"] != "running")
    # AND skyclass status names it on the instance's line
    assert f"{running['id']}  running" in render_fleet(after)
    assert "openvino fp32" in render_fleet(after)


def test_fleet_says_why_its_limits_are_what_they_are_and_what_waits_to_be_ingested(
        aws, lambda_env, monkeypatch):
    # GIVEN a stage whose fleet size was chosen for the machine, and a bridge that
    # reports uploads still to ingest when the scaler ticks
    note = "at most 1 worker, sized to this machine"
    monkeypatch.setenv("SKYCLASS_FLEET_NOTE", note)
    wiring.reset()
    publish_images_to_ingest(aws.cloudwatch, lambda_env.stage, 7)
    scale(scheduled_event("skyclass-scale", datetime.now(UTC)), None)
    # WHEN a client asks for the fleet
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as client:
        fleet = client.http.get("/fleet").json_body
    # THEN it shows the note, and the images the tick saw still to ingest, in the backlog
    assert fleet["limits"]["note"] == note
    assert fleet["queue"]["ingesting"] == 7 and fleet["backlog"] == 7
    text = render_fleet(fleet)
    assert note in text and "7 still to ingest" in text


def test_a_restarted_instance_counts_its_uptime_from_the_restart(aws, stage, monkeypatch):
    from moto.ec2.models.instances import Instance

    monkeypatch.setattr(Instance, "start", Instance.start)  # undone after the test
    start_sets_launch_time()  # what the local emulator does
    pool = InstancePool(aws.ec2, stage.resources.stage)
    first = stage.worker_instance_ids[0]
    # GIVEN an instance that ran, stopped, and is started again a while later
    pool.start([first])
    pool.stop([first])
    before = next(i.started_at for i in pool.instances() if i.id == first)
    wall_clock_past(before + 1.0)
    pool.start([first])
    # THEN its start time is the restart's, as EC2's LaunchTime is
    after = next(i.started_at for i in pool.instances() if i.id == first)
    assert after - before >= 1.0


def test_provisioning_refills_a_pool_that_lost_an_instance(aws, stage, settings):
    # GIVEN a pool of max_workers, one of which was terminated
    lost = stage.worker_instance_ids[0]
    aws.ec2.terminate_instances(InstanceIds=[lost])
    # WHEN the stage is provisioned again
    again = provision(settings, aws, s3_events_to_queue=True, register_local_ami=True)
    # THEN the pool is full again with a new, stopped instance, and the survivors are kept
    pool = InstancePool(aws.ec2, settings.stage).instances()
    assert len(pool) == settings.max_workers
    assert lost not in {i.id for i in pool}
    assert set(stage.worker_instance_ids[1:]) <= {i.id for i in pool}
    assert {i.state for i in pool} == {"stopped"}
    assert sorted(again.worker_instance_ids) == sorted(i.id for i in pool)


@pytest.mark.parametrize("error_on", ["describe_instances", "start_instances"])
def test_a_cold_start_ec2_refuses_still_queues_the_image(aws, stage, settings, error_on):
    r = stage.resources
    ec2 = boto3.client("ec2", region_name="us-east-1")
    stubber = Stubber(ec2)
    if error_on == "start_instances":
        stubber.add_response("describe_instances", {"Reservations": [{"Instances": [
            {"InstanceId": "i-0123456789abcdef0", "State": {"Name": "stopped", "Code": 80}}
        ]}]})
    stubber.add_client_error(error_on, "RequestLimitExceeded", "slow down")
    ingestor = Ingestor(aws.s3, WorkQueue(aws.sqs, r.queue_url, r.dlq_url),
                        InstancePool(ec2, r.stage), JsonStore(aws.s3, r.output_bucket), r,
                        settings)
    # GIVEN an image lands while EC2 refuses to start a worker
    aws.s3.put_object(Bucket=r.input_bucket, Key="incoming/cat.png", Body=PNG)
    with stubber:
        reports = [ingestor.handle_event(body) for body in s3_notifications(aws, stage)
                   if "Records" in body]
    # THEN the image is queued all the same (the next tick starts a worker)
    assert [m.key for m in queued(aws, stage)] == ["incoming/cat.png"]
    assert reports[-1].queued == 1 and reports[-1].started == ()
