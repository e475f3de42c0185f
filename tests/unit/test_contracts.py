"""Keys, ids and the work message: the contracts other parts rely on."""

import json

import pytest

from skyclass.runtime.contracts import (
    Prediction,
    WorkMessage,
    done_result,
    failed_result,
    image_id_for,
    job_id_of_image,
    job_input_key,
    new_job_id,
    parse_input_key,
    result_key,
)
from skyclass.runtime.errors import InvalidMessageError


def _message(**overrides):
    job_id = new_job_id()
    image_id = image_id_for(job_id, 3)
    fields = dict(bucket="in", key=job_input_key(job_id, image_id), job_id=job_id,
                  image_id=image_id, name="cat.jpg", size=10, etag="e")
    fields.update(overrides)
    return WorkMessage(**fields)


def test_result_key_is_derived_from_the_input_key():
    assert result_key("jobs/abc/abc-00001") == "results/abc/abc-00001.json"
    assert result_key("incoming/a b/ü.jpg") == "results/incoming/a b/ü.jpg.json"


def test_keys_outside_the_two_prefixes_are_refused():
    with pytest.raises(InvalidMessageError):
        result_key("results/x.json")


def test_image_ids_carry_their_job_id():
    job_id = new_job_id()
    assert job_id_of_image(image_id_for(job_id, 42)) == job_id
    assert job_id_of_image("../../etc/passwd") is None


def test_parse_input_key_recognises_jobs_and_the_drop_folder():
    job_id = new_job_id()
    image_id = image_id_for(job_id, 0)
    assert parse_input_key(job_input_key(job_id, image_id)) == (job_id, image_id)
    assert parse_input_key("incoming/holiday/beach.jpg") == (None, "holiday/beach.jpg")
    with pytest.raises(InvalidMessageError):
        parse_input_key(f"jobs/{job_id}/manifest.json")


def test_a_work_message_survives_the_round_trip():
    message = _message(name="naïve café.jpg")
    assert WorkMessage.from_json(message.to_json()) == message


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", json.dumps({"v": 2}), json.dumps({"v": 1, "bucket": "b"}),
     json.dumps({"v": 1, "bucket": "b", "key": "elsewhere/x", "image_id": "i", "name": "n",
                 "size": 1})],
)
def test_malformed_bodies_raise_a_typed_error(body):
    with pytest.raises(InvalidMessageError):
        WorkMessage.from_json(body)


def test_a_broken_body_that_names_its_image_is_salvaged_for_a_failed_result():
    # GIVEN a body of an unknown version that still names a job upload
    job_id = new_job_id()
    key = job_input_key(job_id, image_id_for(job_id, 7))
    body = json.dumps({"v": 99, "bucket": "in", "key": key})
    # WHEN it is salvaged
    message = WorkMessage.salvage(body)
    # THEN it stands in for the image, so its result lands where the image's belongs
    assert (message.job_id, message.image_id) == parse_input_key(key)
    assert message.result_key == result_key(key)
    assert message.name == image_id_for(job_id, 7)


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", json.dumps({"key": "incoming/a.jpg"}),
     json.dumps({"bucket": "in", "key": "elsewhere/a.jpg"}),
     json.dumps({"bucket": "in", "key": 7})],
)
def test_a_body_that_names_no_input_key_cannot_be_salvaged(body):
    assert WorkMessage.salvage(body) is None


def test_results_follow_the_contract():
    message = _message()
    done = done_result(message, [Prediction("tabby", "n02123045", 0.9),
                                 Prediction("tiger_cat", "n02123159", 0.05)],
                       model="resnet50", worker="i-1", timings_ms={"infer": 3.0})
    assert done["status"] == "done" and done["label"] == "tabby" and done["error"] is None
    assert done["top"][1] == {"label": "tiger_cat", "wnid": "n02123159", "score": 0.05}
    assert done["source"] == f"s3://in/{message.key}"
    failed = failed_result(message, "not an image", model="resnet50", worker="i-1")
    assert failed["status"] == "failed" and failed["error"] == "not an image"
    assert failed["label"] is None and failed["top"] == []
    expected = {"v", "image_id", "job_id", "name", "source", "status", "label", "score",
                "top", "error", "model", "worker", "timings_ms", "finished_at"}
    assert set(done) == set(failed) == expected
