"""GET /: one document that states the limits the API enforces (browser tests drive it).

The expected limits are the documented ones (README.md, "Input limits"; up to 1,000
images a job), not read from the code under test; and each is checked against what
``POST /jobs`` does at the limit and one past it.
"""

from __future__ import annotations

import json
import re

from tests.support.api import MAX_IMAGE_BYTES, announce, post_json

CONFIG = re.compile(r'<script id="skyclass-config" type="application/json">(.*?)</script>')
DOCUMENTED_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp",
                    "image/tiff"]


def _status(client, images: list[tuple[str, str, int]]) -> int:
    return post_json(client, "/jobs", announce(images)).status_code


def test_the_page_states_the_limits_that_post_jobs_enforces(client):
    # GIVEN an API configured with a small image limit (MAX_IMAGE_BYTES)
    # WHEN the page is served
    response = client.http.get("/")
    # THEN it is one document (style and script inline) carrying the documented limits
    assert response.status_code == 200
    page = response.body.decode()
    config = json.loads(CONFIG.search(page).group(1))
    assert config == {"max_image_bytes": MAX_IMAGE_BYTES, "types": DOCUMENTED_TYPES,
                      "max_images_per_job": 1000, "max_name_chars": 255,
                      "api_key_required": False}
    assert "/*skyclass:" not in page  # every part inlined
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(?!data:)", page)
    # ... which are the API's: each limit is accepted, one past it refused
    size, count, chars = (config["max_image_bytes"], config["max_images_per_job"],
                          config["max_name_chars"])
    assert _status(client, [("a.jpg", "image/jpeg", size)]) == 201
    assert _status(client, [("a.jpg", "image/jpeg", size + 1)]) == 413
    assert _status(client, [(f"{i}.jpg", "image/jpeg", 10) for i in range(count)]) == 201
    assert _status(client, [(f"{i}.jpg", "image/jpeg", 10) for i in range(count + 1)]) == 400
    assert _status(client, [("n" * (chars - 4) + ".jpg", "image/jpeg", 10)]) == 201
    assert _status(client, [("n" * (chars - 3) + ".jpg", "image/jpeg", 10)]) == 400
    assert _status(client, [(f"a.{t.split('/')[1]}", t, 10) for t in config["types"]]) == 201
    assert _status(client, [("a.svg", "image/svg+xml", 10)]) == 415
