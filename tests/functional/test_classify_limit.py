"""A /classify body too large for a Lambda's event gets the app's own 413, naming the
way that takes larger images (POST /jobs), instead of an error from API Gateway.

The limit is the documented one (docs/reliability.md: over 4 MiB of request body, what
a 6 MB Lambda event carries once base64 has grown it by a third), not read from the code.
"""

from __future__ import annotations

import pytest

from chalice_app import wiring
from tests.support.images import PNG

FOUR_MIB = 4 * 1024 * 1024


@pytest.fixture
def default_image_limit(lambda_env, monkeypatch):
    """The default image limit (20 MiB), far above what /classify can carry."""
    monkeypatch.delenv("SKYCLASS_MAX_IMAGE_BYTES")
    wiring.reset()


@pytest.mark.parametrize("content_type", ["image/png", "multipart/form-data; boundary=b"])
def test_a_body_too_large_for_a_lambda_event_is_refused_with_the_way_to_send_it(
        default_image_limit, client, content_type):
    # GIVEN a request body one byte over 4 MiB
    body = PNG + b"\x00" * (FOUR_MIB + 1 - len(PNG))
    # WHEN it is sent to /classify
    response = client.http.post("/classify", headers={"Content-Type": content_type},
                                body=body)
    # THEN the API answers 413 and points to POST /jobs
    assert response.status_code == 413
    error = response.json_body
    assert error["Code"] == "PayloadTooLarge"
    assert str(FOUR_MIB) in error["Message"]
    assert "POST /jobs" in error["Message"]


def test_a_body_of_four_mib_is_taken(default_image_limit, client):
    # GIVEN a PNG body of exactly 4 MiB WHEN it is sent to /classify
    body = PNG + b"\x00" * (FOUR_MIB - len(PNG))
    response = client.http.post("/classify", headers={"Content-Type": "image/png"}, body=body)
    # THEN it is accepted (and waits for a worker)
    assert response.status_code == 202, response.json_body
