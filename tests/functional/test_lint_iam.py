"""Every IAM policy skyclass generates, through parliament (Duo Labs' IAM linter, with
AWS's own action/resource/condition database): no unknown action, no action on a
resource type it does not take, no condition key an action does not support, no
malformed document (the workers' trust policy, AWS's fixed one for EC2, is no identity
policy and not parliament's to read). A finding fails the test unless ``EXPLAINED``
gives the reason it does not apply; the last test shows the linter does find such
mistakes."""

from __future__ import annotations

import json

import pytest
from parliament import analyze_policy_string

from skyclass.operations.provision.iam import (
    lambda_policies,
    operator_policy,
    tls_only_bucket_policy,
    worker_policy,
)
from tests.support.iam.components import Stage

SPLIT = ("IAM authorizes each resource of a call on its own, so one call's resources may "
         "sit in several statements, each with the condition that fits it (a new "
         "instance's tags, an existing template's tags, none for the image); parliament "
         "wants every resource type of the action in one statement")
# (document, statement Sid, parliament issue): why the finding does not apply.
EXPLAINED = {
    **{("operator", sid, "RESOURCE_MISMATCH"): SPLIT
       for sid in ("LaunchOnlyTaggedInstances", "LaunchFrom", "LaunchFromThisStagesTemplate",
                   "GroupsInTheDefaultVpc", "NewImages")},
    ("operator", "BaseImage", "RESOURCE_MISMATCH"):
        "AWS's public parameters have no account in their ARN "
        "(arn:aws:ssm:REGION::parameter/aws/service/...); parliament's pattern wants one",
    ("operator", "*", "RESOURCE_POLICY_PRIVILEGE_ESCALATION"):
        "bootstrap sets the buckets' TLS-only policy, so the operator who creates the "
        "buckets may write their policy; it owns them anyway",
}


def documents(region: str) -> dict[str, dict]:
    arns = Stage("prod", region, "111122223333").arns()
    return {**lambda_policies(arns), "worker": worker_policy(arns),
            "operator": operator_policy(arns),
            "bucket": tls_only_bucket_policy("skyclass-prod-input-111122223333")}


def lint(name: str, document: dict) -> list[tuple[str, str, str]]:
    """(document, Sid, issue) of each finding; a finding about the whole document (a
    privilege escalation) has the Sid "*"."""
    text = json.dumps(document)
    spans, start = [], 0
    for statement in document["Statement"]:
        start = text.index(json.dumps(statement), start)
        spans.append((start, start + len(json.dumps(statement)), statement.get("Sid", "?")))
    found = []
    for finding in analyze_policy_string(text, include_community_auditors=False).findings:
        column = (finding.location or {}).get("column")
        sid = next((sid for begin, end, sid in spans
                    if column is not None and begin <= column - 1 < end), "*")
        found.append((name, sid, finding.issue))
    return found


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_every_generated_policy_passes_the_iam_linter(region):
    findings = [f for name, doc in documents(region).items() for f in lint(name, doc)]
    unexplained = [f for f in findings if f not in EXPLAINED]
    assert unexplained == []
    # and every explanation is still needed
    assert set(EXPLAINED) <= set(findings)


@pytest.mark.parametrize("statement, issue", [
    ({"Effect": "Allow", "Action": "s3:GetObjects", "Resource": "*"}, "UNKNOWN_ACTION"),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"},
     "RESOURCE_MISMATCH"),
    ({"Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*",
      "Condition": {"StringEquals": {"cloudwatch:namespace": "skyclass"}}},
     "UNKNOWN_CONDITION_FOR_ACTION"),
])
def test_the_linter_finds_the_mistakes_it_is_here_for(statement, issue):
    assert (issue in {i for _, _, i in lint("bad", {"Statement": [{"Sid": "Bad",
                                                                 **statement}]})})
