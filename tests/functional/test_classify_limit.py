"""A /classify body too large for a Lambda's event gets the app's own 413, naming the
way that takes larger images (POST /jobs), instead of an error from API Gateway."""

from __future__ import annotations

import pytest
from chalice.test import Client

from app import app
from chalice_app import wiring
from skyclass.runtime.input_policy import CLASSIFY_MAX_BODY_BYTES
from tests.conftest import REPO_ROOT

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(lambda_env, monkeypatch):
    # The default image limit (20 MiB), far above what /classify can carry.
    monkeypatch.delenv("SKYCLASS_MAX_IMAGE_BYTES")
    wiring.reset()
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as test_client:
        yield test_client


@pytest.mark.parametrize("content_type", ["image/png", "multipart/form-data; boundary=b"])
def test_a_body_too_large_for_a_lambda_event_is_refused_with_the_way_to_send_it(
        client, content_type):
    # GIVEN a request body one byte over what a Lambda's event can carry
    body = PNG + b"\x00" * (CLASSIFY_MAX_BODY_BYTES + 1 - len(PNG))
    # WHEN it is sent to /classify
    response = client.http.post("/classify", headers={"Content-Type": content_type},
                                body=body)
    # THEN the API answers 413 and points to POST /jobs
    assert response.status_code == 413
    error = response.json_body
    assert error["Code"] == "PayloadTooLarge"
    assert str(CLASSIFY_MAX_BODY_BYTES) in error["Message"]
    assert "POST /jobs" in error["Message"]
