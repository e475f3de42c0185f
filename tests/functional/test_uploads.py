"""The presigned uploads ``POST /jobs`` hands out. S3 enforces a POST policy; the
emulator ignores it, so an upload through the emulator proves nothing about the limits.
The policy is decoded here and held to what the docs promise (README.md, "Input limits",
and docs/reliability.md, "Security"): each upload goes to its own key in the input
bucket, is bound to the announced size and content type, and expires after 300 s; and
a job takes up to 1,000 images."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from tests.support.api import announce, assert_error, post_json

EXPIRES = timedelta(seconds=300)
# Form fields S3 itself reads rather than checks against a condition.
UNCONDITIONED = {"AWSAccessKeyId", "policy", "signature", "file"}


def _policy(upload: dict) -> dict:
    return json.loads(base64.b64decode(upload["fields"]["policy"]))


def test_each_upload_is_bound_to_its_key_size_and_type_for_300_seconds(client, lambda_env):
    # GIVEN a job of two images, announced with their sizes and types
    images = [("cat.png", "image/png", 700), ("dog photo.jpg", "image/jpeg", 1000)]
    before = datetime.now(UTC).replace(microsecond=0)
    job = post_json(client, "/jobs", announce(images)).json_body
    after = datetime.now(UTC)
    for upload, (_, content_type, size) in zip(job["uploads"], images, strict=True):
        # WHEN its upload's POST policy is decoded
        policy = _policy(upload)
        conditions = policy["conditions"]
        # THEN it may only write its own key in the input bucket ...
        key = f"jobs/{job['job_id']}/{upload['image_id']}"
        assert upload["fields"]["key"] == key
        assert {"bucket": lambda_env.input_bucket} in conditions
        assert {"key": key} in conditions
        # ... a body of 1 byte up to the announced size, of the announced type ...
        assert ["content-length-range", 1, size] in conditions
        assert {"Content-Type": content_type} in conditions
        assert upload["fields"]["Content-Type"] == content_type
        # ... with no form field S3 would take unchecked ...
        for field, value in upload["fields"].items():
            if field not in UNCONDITIONED:
                assert {field: value} in conditions, field
        # ... and it expires 300 s after it was made
        expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC)
        assert before + EXPIRES <= expires <= after + EXPIRES


def test_a_job_takes_a_thousand_images_and_refuses_one_more(client, aws, lambda_env):
    # GIVEN jobs of 1,000 and of 1,001 images
    thousand = [(f"{i}.png", "image/png", 10) for i in range(1000)]
    # WHEN each is announced
    taken = post_json(client, "/jobs", announce(thousand))
    refused = post_json(client, "/jobs", announce([*thousand, ("one more.png", "image/png", 10)]))
    # THEN the first gets an upload per image, each to its own key
    assert taken.status_code == 201
    keys = {u["fields"]["key"] for u in taken.json_body["uploads"]}
    assert len(keys) == 1000
    # AND the second is refused as a whole, saying how to split it, and stores nothing
    assert_error(refused, 400, "BadRequest")
    assert "1001 images" in refused.json_body["Message"]
    manifests = aws.s3.list_objects_v2(Bucket=lambda_env.output_bucket, Prefix="jobs/")
    assert [o["Key"] for o in manifests.get("Contents", [])] == [
        f"jobs/{taken.json_body['job_id']}/manifest.json"]
