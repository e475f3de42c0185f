"""Talking to the API in-process, through Chalice's test client (the ``client`` fixture,
tests/functional/conftest.py), as the functional tier does."""

from __future__ import annotations

import json
from typing import Any

# The image limit the functional tier's Lambda environment sets (``lambda_env``): small,
# so a test can cross it with a small body.
MAX_IMAGE_BYTES = 1000


def post_json(client: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.http.post(path, body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json", **(headers or {})})


def announce(images: list[tuple[str, str, int]]) -> dict[str, Any]:
    """The body of ``POST /jobs`` for (name, content type, size) triples."""
    return {"images": [{"name": name, "content_type": content_type, "size": size}
                       for name, content_type, size in images]}


def assert_error(response: Any, status: int, code: str) -> None:
    """The API's error document: the status, ``{"Code", "Message"}``, no traceback."""
    assert response.status_code == status, response.body
    assert response.json_body["Code"] == code
    assert response.json_body["Message"]
    assert b"Traceback" not in response.body
