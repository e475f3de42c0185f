"""The IAM policy documents a deployed stage gets: no wildcard where a scoped resource is
possible. The documents are the ones bootstrap writes to .chalice/ (one per Lambda) and
puts on the worker role, read back from the files."""

from __future__ import annotations

import json

import pytest

from skyclass.operations.deploy.chalice_project import policy_file_name, write_stage
from skyclass.operations.provision.iam import StageArns, lambda_policies, worker_policy
from skyclass.runtime.names import StageResources
from tests.support.chalice_project import chalice_project

STAGE = "prod"
ACCOUNT = "111122223333"
REGION = "eu-west-1"
# AWS has no resource-level permissions for these: "*" is the only resource they take.
ONLY_ON_STAR = {"ec2:DescribeInstances", "cloudwatch:GetMetricData",
                "cloudwatch:PutMetricData"}
STAGE_TAG = {"aws:ResourceTag/skyclass:stage": STAGE,
             "aws:ResourceTag/skyclass:role": "worker"}


def _arns() -> StageArns:
    resources = StageResources(
        STAGE, f"skyclass-{STAGE}-input-{ACCOUNT}", f"skyclass-{STAGE}-output-{ACCOUNT}",
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/skyclass-{STAGE}-work",
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/skyclass-{STAGE}-work-dlq")
    return StageArns.of(resources, REGION, ACCOUNT)


def wildcard_problems(document: dict) -> list[str]:
    """Every place the document grants more than a scoped resource would."""
    problems = []
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
            statement["Resource"]]
        sid = statement.get("Sid", "?")
        problems += [f"{sid}: wildcard action {a}" for a in actions if "*" in a]
        for resource in resources:
            if resource == "*":
                if not set(actions) <= ONLY_ON_STAR:
                    problems.append(f"{sid}: {sorted(set(actions) - ONLY_ON_STAR)} on '*'")
                continue
            _, partition, service, region, account, name = resource.split(":", 5)
            if "*" in partition + service + region + account:
                problems.append(f"{sid}: {resource} leaves partition/region/account open")
            if service == "s3":
                bucket, _, key = name.partition("/")
                if "*" in bucket or ("*" in key and not key.endswith("/*")):
                    problems.append(f"{sid}: {resource} is not one bucket or key prefix")
            elif service == "ec2":
                tags = statement.get("Condition", {}).get("StringEquals", {})
                if "*" in name and tags != STAGE_TAG:
                    problems.append(f"{sid}: {resource} without this stage's tag condition")
            elif service == "logs":
                if "*" in name.removesuffix(":*"):
                    problems.append(f"{sid}: {resource} is more than one log group")
            elif "*" in name:
                problems.append(f"{sid}: {resource} is not one resource")
    return problems


def test_the_lambda_policy_files_name_only_this_stages_resources(tmp_path):
    # GIVEN a project bootstrapped for a stage (its policy files written to .chalice/)
    project = chalice_project(tmp_path / "project")
    write_stage(project, STAGE, {"SKYCLASS_STAGE": STAGE}, lambda_policies(_arns()))
    # WHEN each Lambda's policy file is read back
    for function in ("api_handler", "on_s3_event", "scale"):
        document = json.loads(
            (project / ".chalice" / policy_file_name(STAGE, function)).read_text())
        # THEN it has no wildcard where a scoped resource is possible
        assert wildcard_problems(document) == [], function
    # AND only the event and scaling Lambdas may start workers, only the latter stop them
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"][STAGE]["lambda_functions"]["scale"]["iam_policy_file"] == (
        f"policy-{STAGE}-scale.json")
    policies = lambda_policies(_arns())
    actions = {function: {a for s in doc["Statement"] for a in s["Action"]}
               for function, doc in policies.items()}
    assert not actions["api_handler"] & {"ec2:StartInstances", "ec2:StopInstances"}
    assert "ec2:StopInstances" not in actions["on_s3_event"]
    assert {"ec2:StartInstances", "ec2:StopInstances"} <= actions["scale"]


def test_the_worker_role_can_only_consume_work_and_write_results():
    document = worker_policy(_arns())
    assert wildcard_problems(document) == []
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not {a for a in actions if a.startswith("ec2:") or a.startswith("iam:")}
    metrics = next(s for s in document["Statement"] if s["Resource"] == ["*"])
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "skyclass"}}


@pytest.mark.parametrize("resource, actions", [
    ("arn:aws:s3:::skyclass-prod-input-*/*", ["s3:GetObject"]),
    ("arn:aws:sqs:*:*:skyclass-prod-work*", ["sqs:SendMessage"]),
    ("arn:aws:ec2:eu-west-1:111122223333:instance/*", ["ec2:StopInstances"]),
    ("*", ["s3:PutObject"]),
])
def test_the_check_catches_a_policy_broader_than_it_must_be(resource, actions):
    broad = {"Statement": [{"Sid": "Broad", "Effect": "Allow", "Action": actions,
                            "Resource": resource}]}
    assert wildcard_problems(broad)
