"""GET /: one document that states the limits the API enforces (browser tests drive it)."""

from __future__ import annotations

import json
import re

import pytest
from chalice.test import Client

from app import app
from skyclass.runtime.input_policy import ALLOWED_TYPES, MAX_NAME_CHARS
from skyclass.runtime.jobs import MAX_IMAGES_PER_JOB
from tests.conftest import REPO_ROOT
from tests.functional.conftest import MAX_IMAGE_BYTES

CONFIG = re.compile(r'<script id="skyclass-config" type="application/json">(.*?)</script>')


@pytest.fixture
def client(lambda_env):
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as test_client:
        yield test_client


def _announce(client, size):
    body = {"images": [{"name": "a.jpg", "content_type": "image/jpeg", "size": size}]}
    return client.http.post("/jobs", headers={"Content-Type": "application/json"},
                            body=json.dumps(body).encode())


def test_the_page_states_the_limits_that_post_jobs_enforces(client):
    # GIVEN an API configured with a small image limit (MAX_IMAGE_BYTES)
    # WHEN the page is served
    response = client.http.get("/")
    # THEN it is one document (style and script inline) carrying those very limits ...
    assert response.status_code == 200
    page = response.body.decode()
    config = json.loads(CONFIG.search(page).group(1))
    assert config == {"max_image_bytes": MAX_IMAGE_BYTES, "types": list(ALLOWED_TYPES),
                      "max_images_per_job": MAX_IMAGES_PER_JOB,
                      "max_name_chars": MAX_NAME_CHARS, "api_key_required": False}
    assert "/*skyclass:" not in page  # every part inlined
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(?!data:)", page)
    # ... which are the API's: the largest size the page allows is accepted, one more refused
    assert _announce(client, config["max_image_bytes"]).status_code == 201
    assert _announce(client, config["max_image_bytes"] + 1).status_code == 413
