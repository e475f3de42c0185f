"""The policy evaluator and the operation table behind the IAM judge (tests/support/iam):
AWS's evaluation rules, and what each kind of call needs, on small examples."""

from __future__ import annotations

import pytest

from tests.support.iam.actions import Call, Lookup, UnmappedCallError, needs
from tests.support.iam.evaluator import (
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    UnsupportedConditionError,
    evaluate,
)

BUCKET = "arn:aws:s3:::out"
LIST_RESULTS = {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket",
                "Resource": BUCKET, "Condition": {"StringLike": {"s3:prefix": ["results/*"]}}}
OWNED = {"Sid": "Own", "Effect": "Allow", "Action": ["ec2:StopInstances"],
         "Resource": "arn:aws:ec2:r:1:instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/skyclass:stage": "dev"}}}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_an_allow_must_match_action_and_resource_and_a_deny_wins():
    doc = policy({"Effect": "Allow", "Action": "S3:Get*", "Resource": f"{BUCKET}/jobs/*"},
                 {"Sid": "No", "Effect": "Deny", "Action": "s3:GetObject",
                  "Resource": f"{BUCKET}/jobs/secret*"})
    assert evaluate(doc, "s3:GetObject", f"{BUCKET}/jobs/a/b").outcome == ALLOW
    assert evaluate(doc, "s3:PutObject", f"{BUCKET}/jobs/a").outcome == IMPLICIT_DENY
    assert evaluate(doc, "s3:GetObject", f"{BUCKET}/results/a").outcome == IMPLICIT_DENY
    assert evaluate(doc, "s3:GetObject", f"{BUCKET}/jobs/secret").outcome == EXPLICIT_DENY


def test_not_action_and_not_resource_and_the_single_character_wildcard():
    doc = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::x?"})
    assert evaluate(doc, "s3:GetObject", "arn:aws:s3:::yy").allowed
    assert not evaluate(doc, "s3:GetObject", "arn:aws:s3:::x1").allowed
    assert not evaluate(doc, "iam:PassRole", "arn:aws:s3:::yy").allowed


def test_a_prefix_condition_holds_only_for_keys_under_the_prefix():
    doc = policy(LIST_RESULTS)
    assert evaluate(doc, "s3:ListBucket", BUCKET, {"s3:prefix": "results/j/1.json"}).allowed
    assert not evaluate(doc, "s3:ListBucket", BUCKET, {"s3:prefix": "fleet/x"}).allowed
    assert not evaluate(doc, "s3:ListBucket", BUCKET, {}).allowed  # no key: no match


def test_a_resource_tag_condition_needs_the_tag_unless_if_exists():
    doc = policy(OWNED)
    instance = "arn:aws:ec2:r:1:instance/i-1"
    assert evaluate(doc, "ec2:StopInstances", instance,
                    {"aws:ResourceTag/skyclass:stage": "dev"}).allowed
    assert not evaluate(doc, "ec2:StopInstances", instance,
                        {"aws:ResourceTag/skyclass:stage": "prod"}).allowed
    assert not evaluate(doc, "ec2:StopInstances", instance, {}).allowed
    lenient = policy({**OWNED, "Condition": {
        "StringEqualsIfExists": {"aws:ResourceTag/skyclass:stage": "dev"}}})
    assert evaluate(lenient, "ec2:StopInstances", instance, {}).allowed


def test_set_qualifiers_and_null_and_an_unknown_operator():
    keys = {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*", "Condition": {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}}
    assert evaluate(policy(keys), "ec2:CreateTags", "x", {"aws:TagKeys": ["a"]}).allowed
    assert not evaluate(policy(keys), "ec2:CreateTags", "x", {"aws:TagKeys": ["a", "c"]}).allowed
    null = {**keys, "Condition": {"Null": {"aws:RequestTag/x": "true"}}}
    assert evaluate(policy(null), "ec2:CreateTags", "x", {}).allowed
    odd = {**keys, "Condition": {"NumericLessThan": {"s3:max-keys": "10"}}}
    with pytest.raises(UnsupportedConditionError):
        evaluate(policy(odd), "ec2:CreateTags", "x", {"s3:max-keys": "5"})


class Tags(Lookup):
    def ec2_tags(self, resource_type, resource_id):
        return {"skyclass:stage": "dev"} if resource_id == "i-1" else {}


def call(service, operation, **params):
    return Call(service, operation, params, "eu-west-1", "111122223333")


def test_s3_operations_need_the_actions_aws_names():
    [head] = needs(call("s3", "HeadObject", Bucket="b", Key="jobs/x"), Lookup())
    assert (head.action, head.resource) == ("s3:GetObject", "arn:aws:s3:::b/jobs/x")
    [listing] = needs(call("s3", "ListObjectsV2", Bucket="b", Prefix="results/j/"), Lookup())
    assert (listing.action, listing.resource, listing.context) == (
        "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "results/j/"})
    deleted = needs(call("s3", "DeleteObjects", Bucket="b", Delete={"Objects": [
        {"Key": "a"}, {"Key": "b", "VersionId": "v"}]}), Lookup())
    assert [(n.action, n.resource) for n in deleted] == [
        ("s3:DeleteObject", "arn:aws:s3:::b/a"), ("s3:DeleteObjectVersion", "arn:aws:s3:::b/b")]


def test_batch_tagging_and_launch_calls_need_every_action_they_imply():
    url = "https://sqs.eu-west-1.amazonaws.com/111122223333/q"
    [send] = needs(call("sqs", "SendMessageBatch", QueueUrl=url, Entries=[]), Lookup())
    assert (send.action, send.resource) == ("sqs:SendMessage",
                                            "arn:aws:sqs:eu-west-1:111122223333:q")
    created = needs(call("sqs", "CreateQueue", QueueName="q", tags={"k": "v"}), Lookup())
    assert [n.action for n in created] == ["sqs:CreateQueue", "sqs:TagQueue"]
    [stop] = needs(call("ec2", "StopInstances", InstanceIds=["i-1"]), Tags())
    assert stop.context == {"aws:ResourceTag/skyclass:stage": "dev"}
    launched = needs(call("ec2", "RunInstances", ImageId="ami-1", MinCount=1, MaxCount=1,
                          TagSpecifications=[{"ResourceType": "instance", "Tags": [
                              {"Key": "skyclass:stage", "Value": "dev"}]}]), Lookup())
    resources = {(n.action, n.resource.rsplit(":", 1)[-1]) for n in launched}
    assert ("ec2:RunInstances", "instance/*") in resources
    assert ("ec2:RunInstances", "image/ami-1") in resources
    assert ("ec2:CreateTags", "instance/*") in resources
    [tagging] = [n for n in launched if n.action == "ec2:CreateTags"]
    assert tagging.context["ec2:CreateAction"] == "RunInstances"


def test_rest_api_calls_are_verbs_on_paths_and_some_calls_need_nothing():
    api = Call("apigateway", "CreateDeployment", {"restApiId": "abc"}, "eu-west-1", "1",
               http=("POST", "/restapis/abc/deployments"))
    [need] = needs(api, Lookup())
    assert (need.action, need.resource) == (
        "apigateway:POST", "arn:aws:apigateway:eu-west-1::/restapis/abc/deployments")
    assert needs(call("sts", "GetCallerIdentity"), Lookup()) == []
    with pytest.raises(UnmappedCallError):
        needs(call("apigateway", "GetRestApis"), Lookup())
