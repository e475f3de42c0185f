"""The API key on a stage that requires one: refused without it, served with it."""

import json

import pytest
from chalice.test import Client

from app import app
from chalice_app import auth
from skyclass.runtime import constants as c
from skyclass.runtime.names import api_key_parameter_name
from tests.conftest import REPO_ROOT

KEY = "k3y-from-ssm-0123456789"


@pytest.fixture
def client(aws, lambda_env, monkeypatch):
    # GIVEN a deployed-like stage whose key lives in an SSM SecureString parameter
    # (the stage's own parameter: the API's role may read only that one)
    name = api_key_parameter_name("local")
    aws.client("ssm").put_parameter(Name=name, Value=KEY, Type="SecureString")
    monkeypatch.setenv(c.API_KEY_PARAMETER, name)
    auth.expected_key.cache_clear()
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as test_client:
        yield test_client
    auth.expected_key.cache_clear()


def _post_job(client, headers):
    body = {"images": [{"name": "a.png", "content_type": "image/png", "size": 10}]}
    return client.http.post("/jobs", body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["missing", "wrong"])
def test_a_request_without_the_right_key_is_refused(client, headers):
    for response in (_post_job(client, headers), client.http.get("/fleet", headers=headers),
                     client.http.get("/jobs/0123456789abcdef0123", headers=headers)):
        assert response.status_code == 403
        assert response.json_body["Code"] == "Forbidden"
        assert "x-api-key" in response.json_body["Message"]
        assert KEY not in response.body.decode()


def test_the_right_key_is_served(client):
    assert _post_job(client, {"x-api-key": KEY}).status_code == 201
    assert client.http.get("/fleet", headers={"x-api-key": KEY}).status_code == 200


def test_the_page_and_health_stay_open_and_the_page_asks_for_the_key(client):
    assert client.http.get("/health").status_code == 200
    page = client.http.get("/")
    assert page.status_code == 200
    assert '"api_key_required": true' in page.body.decode()


def test_a_stage_without_a_key_is_open(lambda_env):
    auth.expected_key.cache_clear()
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as open_client:
        assert open_client.http.get("/fleet").status_code == 200
        assert '"api_key_required": false' in open_client.http.get("/").body.decode()
