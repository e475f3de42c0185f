"""Bulk jobs on the real local stack: an S3 prefix classified in place, end to end.

A few dozen images stand in for the 10,000 of ``python -m bench.bulk`` (docs/bulk.md):
the same properties, in the test's time. The lister is SIGKILLed mid-listing (pages of
two keys make the listing long enough to land in); the Lambda host starts a new lister
process and the task comes back after its visibility timeout, as on Lambda.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import time
from datetime import datetime

import psutil
import pytest
import requests

from testbed.waiting import eventually
from tests.support.callbacks import CallbackReceiver
from tests.support.stack import SOURCE_BUCKET, RunningStack, archive, run_cli

pytestmark = pytest.mark.e2e

JOB_TIMEOUT = 240.0


def subscribe_to_job_events(stack: RunningStack) -> str:
    """An SQS queue that receives the stage bus's job-completion events."""
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="e2e-job-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    events.put_rule(Name="e2e-jobs", EventBusName="skyclass-local", EventPattern=json.dumps(
        {"source": ["skyclass"], "detail-type": ["skyclass Job Completed"]}))
    events.put_targets(Rule="e2e-jobs", EventBusName="skyclass-local",
                       Targets=[{"Id": "e2e", "Arn": arn}])
    return url


def job_events(stack: RunningStack, url: str) -> dict[str, dict]:
    messages = stack.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=1).get("Messages", [])
    return {e["detail"]["job_id"]: e for e in (json.loads(m["Body"]) for m in messages)}


def job_item(stack: RunningStack, job_id: str) -> dict:
    item = stack.client("dynamodb").get_item(
        TableName="skyclass-local-jobs", Key={"pk": {"S": job_id}, "sk": {"S": "job"}},
        ConsistentRead=True)["Item"]
    return {k: int(v["N"]) if "N" in v else v.get("S") for k, v in item.items()}


def lister_processes(stack: RunningStack) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(stack.process.pid).children(recursive=True):
        try:
            if "on_list_task" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def callback_secret(stack: RunningStack) -> str:
    return stack.client("ssm").get_parameter(Name="/skyclass/local/callback-secret",
                                             WithDecryption=True)["Parameter"]["Value"]


def test_a_prefix_is_classified_in_place_through_a_killed_lister(local_stack, tmp_path):
    from skyclass.runtime.bulk.notify import SIGNATURE_HEADER, verify_signature

    stack = local_stack
    truth = archive(stack, "archive/", per_class=12, first=3000)
    events = subscribe_to_job_events(stack)
    with CallbackReceiver(fail_first=1) as receiver:
        # GIVEN a job over the prefix, with a callback that fails its first call
        created = stack.post("/jobs", json={"source": f"s3://{SOURCE_BUCKET}/archive/",
                                            "callback_url": receiver.url})
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        # WHEN the lister is SIGKILLed once it has listed some of the keys
        listed = eventually(lambda: job_item(stack, job_id).get("listed", 0) or None, 60,
                            "the listing starting", explain=stack.diagnostics, period=0.02)
        [lister] = lister_processes(stack)
        lister.send_signal(signal.SIGKILL)
        at_kill = job_item(stack, job_id)
        # THEN it was killed mid-listing, and the host starts a new lister
        assert 0 < listed <= at_kill["listed"] < len(truth) + 3, at_kill
        assert at_kill.get("sealed") is None or not at_kill["sealed"]
        eventually(lambda: [p for p in lister_processes(stack) if p.pid != lister.pid], 30,
                   "a new lister process", explain=stack.diagnostics)
        # WHEN the task comes back and the job runs to its end
        job = eventually(lambda: _ended(stack, job_id), JOB_TIMEOUT, "the job completing",
                         explain=stack.diagnostics)
        # THEN every key was listed and queued once, and every image answered once
        assert (job["state"], job["listed"], job["queued"], job["total"]) == (
            "complete", len(truth) + 3, len(truth), len(truth))
        assert job["skipped"] == {"total": 3, "not_an_image": 2, "size": 1, "archived": 0}
        assert (job["done"], job["failed"], job["pending"]) == (len(truth), 0, 0)
        # AND only the step in flight at the kill could have been sent twice; any second
        # copy was dropped by a worker without inference
        assert 0 <= job["resent"] <= 10 and job["duplicates_dropped"] <= job["resent"]
        results = _results(stack, job_id)
        assert len(results) == len(truth)
        assert {r["source"]: r["label"] for r in results} == {
            f"s3://{SOURCE_BUCKET}/{key}": label for key, label in truth.items()}
        # AND the export has one row per image, in both formats, linked by the API
        rows = list(csv.DictReader(io.StringIO(_export(stack, job_id, "csv"))))
        assert sorted(r["source"] for r in rows) == sorted(r["source"] for r in results)
        assert {r["name"]: r["label_1"] for r in rows} == {
            key.removeprefix("archive/"): label for key, label in truth.items()}
        lines = _export(stack, job_id, "jsonl").splitlines()
        assert len(lines) == len(truth)
        # AND the completion event reached the bus's subscriber
        event = eventually(lambda: job_events(stack, events).get(job_id), 30,
                           "the job's event", explain=stack.diagnostics)
        assert event["detail"]["counts"]["done"] == len(truth)
        assert event["detail"]["export"]["rows"] == len(truth)
        # AND the callback was retried and arrived signed with the stage's secret
        eventually(lambda: len(receiver.calls) >= 2, 30, "the callback's second call",
                   explain=stack.diagnostics)
    call = receiver.calls[-1]
    assert call.summary == event["detail"]
    assert verify_signature(callback_secret(stack), call.headers[SIGNATURE_HEADER], call.body)
    final = stack.get(f"/jobs/{job_id}").json()
    assert final["callback"]["status"] == "delivered"


def test_a_cancelled_job_stops_using_workers_at_the_next_scaling_tick(local_stack):
    stack = local_stack
    truth = archive(stack, "cancel-me/", per_class=40, first=4000)
    # GIVEN a job under way, its prefix partly listed
    job_id = stack.post("/jobs", json={"source": f"s3://{SOURCE_BUCKET}/cancel-me/"}).json()[
        "job_id"]
    eventually(lambda: stack.get(f"/jobs/{job_id}").json()["listed"] >= 10, JOB_TIMEOUT,
               "the listing under way", explain=stack.diagnostics, period=0.05)
    # WHEN it is cancelled
    cancelled = stack.post(f"/jobs/{job_id}/cancel")
    cancelled_at = time.time()
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    # THEN the first scaling decision after it counts none of the job's work: nothing to
    # list, none of its queued messages (workers drop them unclassified)
    decision = eventually(lambda: _decision_after(stack, cancelled_at), 30,
                          "a scaling tick after the cancel", explain=stack.diagnostics, period=0.2)
    assert (decision["jobs"]["listing"], decision["jobs"]["to_list"]) == (0, 0)
    assert "backlog 0 " in decision["reason"], decision["reason"]
    # AND its listing stopped part-way, and every image it had queued ended classified
    # (in a worker's hands at the cancel) or cancelled (dropped without inference)
    job = eventually(lambda: _drained(stack, job_id), JOB_TIMEOUT, "the queue draining",
                     explain=stack.diagnostics)
    assert job["state"] == "cancelled" and job["listed"] < len(truth) + 3
    assert job["done"] + job["failed"] + job["cancelled"] == job["total"]
    # AND its end was announced with its export, as for any job
    export = eventually(lambda: stack.get(f"/jobs/{job_id}").json().get("export"), 60,
                        "the export", explain=stack.diagnostics)
    assert export["rows"] <= job["done"]


def _ended(stack: RunningStack, job_id: str) -> dict | None:
    job = stack.get(f"/jobs/{job_id}").json()
    return job if job["state"] != "running" and job.get("export") else None


def _decision_after(stack: RunningStack, at: float) -> dict | None:
    decision = stack.get("/fleet").json().get("last_decision") or {}
    when = decision.get("at")
    # Decisions are stamped to the second: one stamped after the cancel's second was
    # taken after it.
    if not when or datetime.fromisoformat(when).timestamp() <= at:
        return None
    return decision


def _drained(stack: RunningStack, job_id: str) -> dict | None:
    item = job_item(stack, job_id)
    left = item["total"] - item.get("done", 0) - item.get("failed", 0) - item.get("dropped", 0)
    return stack.get(f"/jobs/{job_id}").json() if left <= 0 else None


def _results(stack: RunningStack, job_id: str) -> list[dict]:
    s3 = stack.client("s3")
    output = next(b["Name"] for b in s3.list_buckets()["Buckets"]
                  if b["Name"].startswith("skyclass-local-output-"))
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=output, Prefix=f"results/{job_id}/") for o in page.get("Contents", [])]
    return [json.loads(s3.get_object(Bucket=output, Key=k)["Body"].read()) for k in keys]


def _export(stack: RunningStack, job_id: str, fmt: str) -> str:
    link = stack.get(f"/jobs/{job_id}/export?format={fmt}")
    assert link.status_code == 200, link.text
    download = requests.get(link.json()["url"], timeout=30)
    assert download.status_code == 200
    return download.content.decode()


def test_the_cli_classifies_a_prefix_and_downloads_its_export(local_stack, tmp_path):
    truth = archive(local_stack, "cli/", per_class=2, first=6000)
    out = tmp_path / "labels.csv"
    # WHEN a person classifies the prefix from the command line, asking for a CSV
    done = run_cli(local_stack, "classify", f"s3://{SOURCE_BUCKET}/cli/", "--out", str(out))
    # THEN it exits zero, says what happened, and the CSV has each image's true label
    assert done.returncode == 0, done.stderr
    assert "complete: 6 done, 0 failed" in done.stderr and "3 skipped" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["name"]: r["label_1"] for r in rows} == {
        key.removeprefix("cli/"): label for key, label in truth.items()}
