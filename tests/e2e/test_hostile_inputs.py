"""Bad and awkward inputs (tests/support/corpus.py) through POST /classify and the drop
folder on the real local stack: each ends as designed, and the service still classifies
a good image right afterwards."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.corpus import Case, corpus
from tests.support.images import held_out_images
from tests.support.stack import RESULT_TIMEOUT

pytestmark = pytest.mark.e2e

CASES = corpus()


def _check_result(case: Case, result: dict) -> None:
    assert result["status"] == case.result, (case.name, result)
    if case.label:
        assert result["label"] == case.label, (case.name, result)
    if case.reason:
        assert case.reason in result["error"], (case.name, result["error"])
    if case.result == "failed":
        assert result["label"] is None and result["top"] == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_classify_answers_each_case_as_designed(local_stack, case):
    response = local_stack.post("/classify", data=case.body,
                                params={"name": case.name},
                                headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == case.classify_status, response.text
    body = response.json()
    if response.status_code == 200:
        _check_result(case, body)
        assert body["name"] == case.name
    else:
        assert set(body) == {"Code", "Message"} and body["Message"]
        assert "Traceback" not in response.text


def test_the_drop_folder_answers_every_case_and_the_service_stays_up(local_stack):
    # GIVEN the whole corpus dropped into the input bucket at once
    input_bucket, output_bucket = local_stack.buckets()
    s3 = local_stack.client("s3")
    folder = f"incoming/corpus-{uuid.uuid4().hex[:8]}/"
    for case in CASES:
        s3.put_object(Bucket=input_bucket, Key=folder + case.name, Body=case.body)

    def results() -> dict[str, dict] | None:
        found = {}
        for case in CASES:
            try:
                body = s3.get_object(Bucket=output_bucket,
                                     Key=f"results/{folder}{case.name}.json")["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None
            found[case.name] = json.loads(body)
        return found

    # THEN every file ends with exactly one result, as designed
    found = local_stack.eventually(results, RESULT_TIMEOUT, "a result for every dropped file")
    for case in CASES:
        _check_result(case, found[case.name])
    # AND a good image still classifies right afterwards
    label, body = held_out_images(per_class=1, first=7100)[0]
    answer = local_stack.post("/classify", data=body, headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200 and answer.json()["label"] == label
