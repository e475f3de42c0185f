"""The API key on a stage that requires one: every route but the page and the health
check refuses a caller without it and serves one with it; a key that cannot be read from
SSM closes the API rather than opening it; and of the stage's roles only the API's may
read the key."""

from __future__ import annotations

import re

import pytest
from chalice.test import Client

from app import app
from chalice_app import auth
from skyclass.runtime import constants as c
from skyclass.runtime.names import api_key_parameter_name
from tests.support.api import post_json
from tests.support.iam.components import Stage, policy_of
from tests.support.iam.evaluator import evaluate
from tests.support.images import PNG
from tests.support.paths import REPO_ROOT

KEY = "k3y-from-ssm-0123456789"
# docs/reliability.md, "Security": every route but these two needs x-api-key.
OPEN = {("GET", "/"), ("GET", "/health")}
SOME_ID = "0123456789abcdef0123"


@pytest.fixture
def keyed(aws, lambda_env, monkeypatch):
    """A deployed-like stage whose key lives in an SSM SecureString parameter (the
    stage's own parameter: the API's role may read only that one). Returns its name."""
    name = api_key_parameter_name("local")
    aws.client("ssm").put_parameter(Name=name, Value=KEY, Type="SecureString")
    monkeypatch.setenv(c.API_KEY_PARAMETER, name)
    auth.expected_key.cache_clear()
    yield name
    auth.expected_key.cache_clear()


def _protected_requests() -> list[tuple[str, str]]:
    """Every (method, path) of the app's own route table but the open ones, with an id
    wherever the path takes one: a route added later is checked without a change here."""
    routes = [(method, re.sub(r"\{[^}]+\}", SOME_ID, path))
              for path, methods in app.routes.items() for method in methods]
    assert len(routes) >= 7 and set(routes) >= OPEN
    return [route for route in routes if route not in OPEN]


def _call(client, method: str, path: str, headers: dict[str, str]):
    if method == "GET":
        return client.http.get(path, headers=headers)
    return client.http.request(method, path, headers={"Content-Type": "image/png", **headers},
                               body=PNG)


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["missing", "wrong"])
@pytest.mark.parametrize(("method", "path"), _protected_requests())
def test_every_route_but_the_open_ones_refuses_a_caller_without_the_key(
        keyed, client, headers, method, path):
    response = _call(client, method, path, headers)
    assert response.status_code == 403, (method, path, response.body)
    assert response.json_body["Code"] == "Forbidden"
    assert "x-api-key" in response.json_body["Message"]
    assert KEY not in response.body.decode()


def test_the_right_key_is_served_on_every_route(keyed, client):
    key = {"x-api-key": KEY}
    job = post_json(client, "/jobs", {"images": [
        {"name": "a.png", "content_type": "image/png", "size": 10}]}, headers=key)
    assert job.status_code == 201
    assert client.http.get(f"/jobs/{job.json_body['job_id']}", headers=key).status_code == 200
    assert client.http.get("/fleet", headers=key).status_code == 200
    classified = client.http.post("/classify", headers={"Content-Type": "image/png", **key},
                                  body=PNG)
    assert classified.status_code == 202
    image_id = classified.json_body["image_id"]
    assert client.http.get(f"/images/{image_id}", headers=key).status_code == 202
    assert client.http.get(f"/images/{SOME_ID}-00000", headers=key).status_code == 404


def test_the_page_and_health_stay_open_and_the_page_asks_for_the_key(keyed, client):
    assert client.http.get("/health").status_code == 200
    page = client.http.get("/")
    assert page.status_code == 200
    assert '"api_key_required": true' in page.body.decode()


def test_a_key_that_cannot_be_read_closes_the_api_until_it_can(keyed, aws, client):
    # GIVEN a stage whose key parameter cannot be read (here: it is missing)
    aws.client("ssm").delete_parameter(Name=keyed)
    # WHEN a caller asks, with or without a key
    for headers in ({}, {"x-api-key": KEY}):
        response = client.http.get("/fleet", headers=headers)
        # THEN nothing is served: a 500 that names no secret and shows no traceback
        assert response.status_code == 500, response.body
        assert set(response.json_body) == {"Code", "Message"}
        assert b"Traceback" not in response.body and KEY.encode() not in response.body
    # AND once the key can be read again, the same container serves it (no failure kept)
    aws.client("ssm").put_parameter(Name=keyed, Value=KEY, Type="SecureString")
    assert client.http.get("/fleet", headers={"x-api-key": KEY}).status_code == 200
    assert client.http.get("/fleet").status_code == 403


def test_a_stage_without_a_key_is_open(lambda_env):
    auth.expected_key.cache_clear()
    with Client(app, stage_name="local", project_dir=str(REPO_ROOT)) as open_client:
        assert open_client.http.get("/fleet").status_code == 200
        assert '"api_key_required": false' in open_client.http.get("/").body.decode()


def test_of_the_stages_roles_only_the_apis_may_read_the_key():
    # GIVEN a deployed stage's generated policies, and its key's parameter ARN as AWS
    # names it (docs: SecureString /skyclass/{stage}/api-key)
    stage = Stage("prod", "eu-west-1", "111122223333")
    key = "arn:aws:ssm:eu-west-1:111122223333:parameter/skyclass/prod/api-key"
    other_stage = "arn:aws:ssm:eu-west-1:111122223333:parameter/skyclass/dev/api-key"
    readers = {role for role in ("api_handler", "on_s3_event", "scale", "worker")
               if evaluate(policy_of(role, stage), "ssm:GetParameter", key).allowed}
    # THEN only the API function may read it, and not another stage's
    assert readers == {"api_handler"}
    assert not evaluate(policy_of("api_handler", stage), "ssm:GetParameter",
                        other_stage).allowed
    assert not any(evaluate(policy_of(role, stage), "ssm:GetParameters", key).allowed
                   for role in ("on_s3_event", "scale", "worker"))
