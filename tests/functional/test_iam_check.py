"""The IAM judge itself (tests/support/iam): each component's calls are judged against
its own generated policy, a policy without one action it needs fails the test that
makes the call (naming the component, the action and the resource), and every action
a policy grants is one some component's flow uses.

Each flow below is what the component does in production, on the in-process emulator:
the API's routes, the S3-event handler, a scaling tick up and down, the worker on a
good and a vanished image, and the operator's bake-ami and teardown."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest
from chalice.test import Client

from app import app
from chalice_app import wiring
from skyclass.operations.deploy.deployer import bake_ami
from skyclass.operations.deploy.teardown import Teardown
from skyclass.operations.provision.iam import lambda_policies, operator_policy, worker_policy
from skyclass.runtime import constants as c
from skyclass.runtime import contracts
from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.fleet.scaler import Scaler
from skyclass.runtime.metrics import MetricsPublisher
from skyclass.runtime.names import bucket_name
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore
from tests.support.builder import Builder
from tests.support.chalice_project import chalice_project
from tests.support.clocks import FakeClock
from tests.support.iam.components import Stage, without
from tests.support.iam.judge import LOG_DIR_ENV, WITHOUT_ENV, Judge
from tests.support.ingest import deliver
from tests.support.lagging import fake_waiter
from tests.support.paths import REPO_ROOT

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
API_KEY = "the-stages-key"
ARNS = Stage("dev", "us-east-1", "123456789012").arns()
OPERATOR = "operator"
# Granted, but not used by the code these flows run: (component, action), each for a
# reason ("operator" stands for bootstrap, deploy, bake and teardown, one policy).
NOT_IN_THESE_FLOWS = {
    # The Lambda runtime, not skyclass's code, writes a function's logs; the CloudWatch
    # agent the workers' (ami_build/start-log-agent).
    *((f, a) for f in ("api_handler", "on_s3_event", "scale", "on_list_task",
                       "on_finish_task", "worker")
      for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                "logs:DescribeLogStreams")),
    # Lambda's SQS event source polls the task queues with the task functions' roles.
    *((f, a) for f in ("on_list_task", "on_finish_task")
      for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")),
    # An export abandoned part-way (tests/functional/test_bulk_finisher.py), and the
    # scaler's retry of a tracked job's failed S3 event counting its failed image.
    ("on_finish_task", "s3:AbortMultipartUpload"),
    ("scale", "dynamodb:BatchGetItem"), ("scale", "dynamodb:PutItem"),
    # Chalice's deploy and delete, teardown's chalice part and the S3-event function's
    # failure destination: tests/e2e/test_deploy.py.
    *((OPERATOR, a) for s in operator_policy(ARNS)["Statement"] for a in s["Action"]
      if a.split(":")[0] in ("lambda", "events", "apigateway")),
    (OPERATOR, "iam:GetRole"), (OPERATOR, "s3:GetBucketNotification"),
    (OPERATOR, "s3:PutBucketNotification"),
    # What a bootstrap of a stage whose worker launch exists already does, and teardown's
    # search for snapshots by tag (tests/functional/test_deploy.py, test_teardown.py).
    (OPERATOR, "ec2:ModifyLaunchTemplate"), (OPERATOR, "ec2:CreateLaunchTemplateVersion"),
    (OPERATOR, "ec2:DescribeLaunchTemplateVersions"), (OPERATOR, "iam:GetInstanceProfile"),
    (OPERATOR, "ec2:RevokeSecurityGroupIngress"), (OPERATOR, "sqs:SetQueueAttributes"),
    (OPERATOR, "ec2:StartInstances"), (OPERATOR, "ec2:DescribeSnapshots"),
    # moto in-process lists an unversioned object without a version id; AWS (and the
    # emulator server) give "null", and teardown then deletes that version.
    (OPERATOR, "s3:DeleteObjectVersion"),
    # The worker's retry paths (tests/functional/test_worker.py, test_redrive.py).
    ("worker", "sqs:ChangeMessageVisibility"), ("worker", "sqs:GetQueueAttributes"),
    # The S3-event function's failure destination is written by Lambda with its role,
    # and the scaler's retries of failed S3 events (tests/functional/test_ingest_failures.py).
    ("on_s3_event", "sqs:SendMessage"),
    *(("scale", a) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage")),
}


def unused(component: str, granted: set[str], used: set[str]) -> set[str]:
    return {a for a in granted - used if (component, a) not in NOT_IN_THESE_FLOWS}



# ---- the flows -------------------------------------------------------------------------

SOURCE_BUCKET = "photo-archive"


def bulk_flow(aws, stage, settings) -> None:
    """Bulk jobs (docs/bulk.md) through every component that has a part in them: a job
    over a source prefix listed (and handed on), cancelled, exported, announced and
    called back (once more, after its callback failed); a prefix with nothing in it;
    uploads in pages; a tracked job's bad upload rejected by ingest; the scaler seeing
    the jobs and completing one no worker completed."""
    import json

    from chalice_app.wiring import services
    from skyclass.runtime.bulk.backlog import JobsWatch
    from skyclass.runtime.bulk.jobstore import JobStore
    from skyclass.runtime.bulk.ledger import Ledger
    from skyclass.runtime.bulk.tasks import TaskQueues
    from tests.support.callbacks import CallbackReceiver

    aws.s3.create_bucket(Bucket=SOURCE_BUCKET)
    for i in range(3):
        aws.s3.put_object(Bucket=SOURCE_BUCKET, Key=f"p/{i}.png", Body=PNG)
    key = {"x-api-key": API_KEY, "Content-Type": "application/json"}
    tasks = TaskQueues(aws.sqs, stage.resources.stage, stage.resources.queue_url)

    def task(kind: str) -> dict:
        [message] = aws.sqs.receive_message(QueueUrl=tasks.url(kind)).get("Messages", [])
        aws.sqs.delete_message(QueueUrl=tasks.url(kind), ReceiptHandle=message["ReceiptHandle"])
        return message

    with CallbackReceiver(fail_first=3) as receiver, Client(
            app, stage_name="local", project_dir=str(REPO_ROOT)) as client:
        job = client.http.post("/jobs", headers=key, body=json.dumps(
            {"source": f"s3://{SOURCE_BUCKET}/p/", "callback_url": receiver.url})).json_body
        task("list")
        # One step, then the invocation's time is up: it hands the listing on.
        left = iter([100.0, 100.0, 0.0])
        assert services().lister.run(job["job_id"], lambda: next(left, 0.0)).outcome == (
            "handed on")
        client.lambda_.invoke("on_list_task", client.events.generate_sqs_event(
            message_bodies=[task("list")["Body"]], queue_name="skyclass-local-list"))
        assert client.http.post(f"/jobs/{job['job_id']}/cancel", headers=key,
                                body=b"").status_code == 200
        client.lambda_.invoke("on_finish_task", client.events.generate_sqs_event(
            message_bodies=[task("finish")["Body"]], queue_name="skyclass-local-finish"))
        assert client.http.get(f"/jobs/{job['job_id']}/export?format=csv",
                               headers=key).status_code == 200
        assert client.http.get(f"/jobs/{job['job_id']}?limit=1", headers=key).status_code == 200
        empty = client.http.post("/jobs", headers=key, body=json.dumps(
            {"source": f"s3://{SOURCE_BUCKET}/none/"})).json_body
        assert services().lister.run(empty["job_id"], lambda: 100.0).outcome == "listed"
        upload = client.http.post("/jobs", headers=key, body=json.dumps(
            {"images": [{"name": "a.png", "content_type": "image/png", "size": 100}],
             "more": True})).json_body
        assert client.http.post(f"/jobs/{upload['job_id']}/images", headers=key, body=json.dumps(
            {"images": [{"name": "b.png", "content_type": "image/png", "size": 100}]})
        ).status_code == 201
    dynamodb = aws.client("dynamodb")
    store = JobStore(dynamodb, stage.bulk.jobs_table)
    # A tracked job's one upload, which is no image: ingest answers and counts it.
    rejected = contracts.new_job_id()
    image_id = contracts.image_id_for(rejected, 0)
    Ledger(dynamodb, stage.bulk.jobs_table).declare(rejected, [{
        "image_id": image_id, "name": "x.png", "key": contracts.job_input_key(rejected, image_id)}])
    store.create(rejected, "upload", total=1, sealed=True)
    aws.s3.put_object(Bucket=stage.resources.input_bucket,
                      Key=contracts.job_input_key(rejected, image_id), Body=b"not an image")
    deliver(aws, stage)
    assert store.get(rejected).state == "complete"
    # A job whose images are all counted but that no worker completed: the scaler does.
    orphan = contracts.new_job_id()
    store.create(orphan, "upload", total=1, sealed=True)
    store.set_fields(orphan, done=1)
    r = stage.resources
    Scaler(WorkQueue(aws.sqs, r.queue_url, r.dlq_url), InstancePool(aws.ec2, r.stage),
           JsonStore(aws.s3, r.output_bucket), settings, time.time,
           jobs=JobsWatch(store, tasks, settings).observe).run_once()
    assert store.get(orphan).state == "complete"

def api_flow(aws, stage) -> None:
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as client:
        key = {"x-api-key": API_KEY}
        job = client.http.post("/jobs", headers={**key, "Content-Type": "application/json"},
                               body='{"images": [{"name": "a.png", "content_type": '
                                    '"image/png", "size": 100}]}').json_body
        image_id = job["uploads"][0]["image_id"]
        assert client.http.get(f"/jobs/{job['job_id']}", headers=key).status_code == 200
        assert client.http.get(f"/jobs/{contracts.new_job_id()}",
                               headers=key).status_code == 404
        assert client.http.get(f"/images/{image_id}", headers=key).status_code == 202
        assert client.http.get("/fleet", headers=key).status_code == 200
        classified = client.http.post("/classify", body=PNG,
                                      headers={**key, "Content-Type": "image/png"})
        assert classified.status_code == 202, classified.json_body


def ingest_flow(aws, stage) -> None:
    bucket = stage.resources.input_bucket
    aws.s3.put_object(Bucket=bucket, Key="incoming/good.png", Body=PNG)
    aws.s3.put_object(Bucket=bucket, Key="incoming/bad.png", Body=b"not an image")
    aws.s3.put_object(Bucket=bucket, Key="incoming/gone.png", Body=PNG)
    aws.s3.delete_object(Bucket=bucket, Key="incoming/gone.png")
    reports = deliver(aws, stage)
    assert sum(r["queued"] for r in reports) >= 1 and sum(r["rejected"] for r in reports) == 1


def scale_flow(aws, stage, settings) -> None:
    r = stage.resources
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    pool, store = InstancePool(aws.ec2, r.stage), JsonStore(aws.s3, r.output_bucket)
    now = [time.time()]
    scaler = Scaler(queue, pool, store, settings, lambda: now[0], cloudwatch=aws.cloudwatch)
    queue.send([WorkMessage(bucket="in", key="incoming/a.png", job_id=None, image_id="a.png",
                            name="a.png", size=10, etag="x")])
    assert scaler.run_once().start
    queue.delete(queue.receive(10, wait_seconds=0))
    now[0] += settings.idle_grace + 60
    assert scaler.run_once().stop


def operator_flow(aws, tmp_path) -> None:
    """bake-ami (bootstrap, bake, bootstrap again), then teardown."""
    settings = Settings.from_env({}, stage="dev", max_workers=2)
    account = aws.sts.get_caller_identity()["Account"]
    builder = Builder(aws, bucket_name("dev", "output", account), "ready")
    project = chalice_project(tmp_path / "project")
    bake_ami(settings, aws, project, lambda line: None, waiter=builder.waiter([]))
    Teardown(settings, aws, project, lambda line: None,
             waiter=fake_waiter(FakeClock(), [])).run()


@pytest.fixture
def api_env(lambda_env, aws, monkeypatch):
    name = "/skyclass/local/api-key"
    aws.client("ssm").put_parameter(Name=name, Value=API_KEY, Type="SecureString")
    monkeypatch.setenv(c.API_KEY_PARAMETER, name)
    wiring.reset()
    from chalice_app import auth

    auth.expected_key.cache_clear()
    yield
    auth.expected_key.cache_clear()


# ---- the checks ------------------------------------------------------------------------

def _used(iam: Judge, mark: int) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for verdict in iam.judged(mark):
        for need in verdict.needs:
            used.setdefault(verdict.component, set()).add(need["action"])
    return used


def _granted(document) -> set[str]:
    return {a for s in document["Statement"] for a in s["Action"]}


def test_each_lambda_uses_exactly_what_its_policy_grants(api_env, stage, settings, aws,
                                                          iam_check, monkeypatch):
    # GIVEN the functions' flows, judged against their generated policies
    monkeypatch.setenv(c.SOURCE_BUCKETS, SOURCE_BUCKET)
    mark = iam_check.mark()
    scale_flow(aws, stage, settings)
    api_flow(aws, stage)
    ingest_flow(aws, stage)
    bulk_flow(aws, stage, settings)
    # THEN no call was refused (iam_check fails the test otherwise) ...
    used = _used(iam_check, mark)
    policies = lambda_policies(Stage("local", "us-east-1", "123456789012").arns())
    # ... each function made calls of its own, and every action its policy grants was
    # needed by one of them (nothing granted for nothing)
    for function, document in policies.items():
        assert used.get(function), f"no call of {function} was judged"
        assert unused(function, _granted(document), used[function]) == set(), function


def test_the_operator_policy_covers_bake_ami_and_teardown(tls_aws, tmp_path, iam_check):
    mark = iam_check.mark()
    operator_flow(tls_aws, tmp_path)
    used = _used(iam_check, mark)
    # (bake-ami's bootstrap and bake are deploy's: the outermost component on the stack)
    assert {"deploy", "teardown"} <= set(used) <= {"deploy", "bootstrap", "bake", "teardown"}
    everything = set().union(*used.values())
    assert unused(OPERATOR, _granted(operator_policy(ARNS)), everything) == set()


@pytest.mark.slow
def test_the_worker_uses_exactly_what_its_policy_grants(stage, settings, aws, tiny_model,
                                                        iam_check, monkeypatch):
    from ec2_worker.engine import InferenceEngine
    from ec2_worker.model import custom_classifier
    from ec2_worker.worker import Worker
    from skyclass.runtime.bulk.jobstore import JobStore
    from skyclass.runtime.bulk.tracker import JobTracker
    from testbed.tiny_model import CLASSES, image_bytes

    r = stage.resources
    monkeypatch.setenv(c.SOURCE_BUCKETS, SOURCE_BUCKET)
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    aws.s3.put_object(Bucket=r.input_bucket, Key="incoming/cat.png",
                      Body=image_bytes(CLASSES[0], 1, fmt="PNG"))
    queue.send([WorkMessage(bucket=r.input_bucket, key=f"incoming/{name}.png", job_id=None,
                            image_id=f"{name}.png", name=f"{name}.png", size=10, etag="x")
                for name in ("cat", "gone")])
    # A bulk job's one image, read where it is in a source bucket.
    aws.s3.create_bucket(Bucket=SOURCE_BUCKET)
    aws.s3.put_object(Bucket=SOURCE_BUCKET, Key="p/dog.png",
                      Body=image_bytes(CLASSES[1], 2, fmt="PNG"))
    job_id = contracts.new_job_id()
    JobStore(aws.client("dynamodb"), stage.bulk.jobs_table).create(
        job_id, "source", total=1, sealed=True, source_bucket=SOURCE_BUCKET, source_prefix="p/")
    queue.send([WorkMessage(bucket=SOURCE_BUCKET, key="p/dog.png", job_id=job_id,
                            image_id=contracts.image_id_for(job_id, 0), name="dog.png",
                            size=10, etag="x", origin=contracts.SOURCE)])
    engine = InferenceEngine(custom_classifier(tiny_model.model_path,
                                               str(tiny_model.labels_path)), top_k=1)
    mark = iam_check.mark()
    metrics = MetricsPublisher(aws.cloudwatch, r.stage, flush_every=0)
    worker = Worker(queue=queue, results=JsonStore(aws.s3, r.output_bucket), s3=aws.s3,
                    engine=engine, settings=settings.replace(source_buckets=SOURCE_BUCKET),
                    input_bucket=r.input_bucket, worker_id="i-0", poll_seconds=0,
                    metrics=metrics, tracker=JobTracker.for_stage(aws, r))
    while worker.process_batch():
        pass
    gone = JsonStore(aws.s3, r.output_bucket).get("results/incoming/gone.png.json")
    assert gone["error"] == "the uploaded object is gone"
    used = _used(iam_check, mark)["worker"]
    assert unused("worker", _granted(worker_policy(ARNS)), used) == set()


@pytest.mark.parametrize("component, action, flow", [
    ("api_handler", "s3:ListBucket", "api"),
    ("api_handler", "ssm:GetParameter", "api"),
    ("on_s3_event", "sqs:SendMessage", "ingest"),
    ("on_s3_event", "s3:ListBucket", "ingest"),
    ("scale", "s3:ListBucket", "scale"),
    ("scale", "ec2:StopInstances", "scale"),
    ("deploy", "iam:PassRole", "operator"),
    ("deploy", "ec2:CreateImage", "operator"),
    ("deploy", "logs:PutRetentionPolicy", "operator"),
    ("teardown", "s3:DeleteBucket", "operator"),
])
def test_a_policy_without_one_action_it_needs_is_caught(
        component, action, flow, api_env, stage, settings, tls_aws, tmp_path, iam_check):
    # GIVEN skyclass's policies, but the component's without one action it needs
    mark = iam_check.mark()
    with iam_check.generating(without(component, action)):
        # WHEN the component does its work (refused calls answer AccessDenied, as on AWS)
        run = {"api": lambda: api_flow(tls_aws, stage),
               "ingest": lambda: ingest_flow(tls_aws, stage),
               "scale": lambda: scale_flow(tls_aws, stage, settings),
               "operator": lambda: operator_flow(tls_aws, tmp_path)}[flow]
        # The component may fail on the refusal, or carry on: either way it is caught.
        with contextlib.suppress(Exception):
            run()
    # THEN the check has a finding that names the component, the action and a resource
    findings = iam_check.take(mark)
    assert findings, f"{component} without {action}: nothing was caught"
    explained = "\n".join(f.explain() for f in findings)
    assert any(f.component == component and any(d["action"] == action for d in f.denied)
               for f in findings), explained
    assert f"{component} " in explained and action in explained and "arn:aws:" in explained


def test_the_test_that_needs_the_action_fails_and_says_what_to_add():
    # GIVEN the scaling function's policy without s3:ListBucket (as before issue 13)
    env = {**os.environ, WITHOUT_ENV: "scale:s3:ListBucket"}
    env.pop(LOG_DIR_ENV)  # its own session, its own findings
    # WHEN the test of a stage's first scaling tick runs
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/functional/test_scaler_ticks.py::"
         "test_the_first_tick_of_a_stage_decides_and_records"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    # THEN it fails, naming the component, the action, the resource and the statement
    assert run.returncode == 1, run.stdout[-3000:]
    assert "scale read a missing key (GetObject) and AWS would answer 403" in run.stdout
    assert '"Action": "s3:ListBucket"' in run.stdout
    assert "arn:aws:s3:::skyclass-local-output-123456789012" in run.stdout
