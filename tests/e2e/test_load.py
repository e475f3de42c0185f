"""Load on the real local stack: the classic workload generator's shape, 100 concurrent
multipart POST /classify requests with the file in field ``myfile``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.images import held_out_images

pytestmark = pytest.mark.e2e

CONCURRENT = 100


def test_100_concurrent_classify_requests_all_get_their_label(local_stack):
    images = held_out_images(per_class=34, first=4000)[:CONCURRENT]

    def classify(item: tuple[int, tuple[str, bytes]]) -> tuple[str, requests.Response]:
        i, (label, body) = item
        response = requests.post(f"{local_stack.api}/classify",
                                 files={"myfile": (f"test_{i}.JPEG", body, "image/jpeg")},
                                 timeout=120)
        return label, response

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        answers = list(pool.map(classify, enumerate(images)))
    statuses = [response.status_code for _, response in answers]
    assert statuses == [200] * CONCURRENT, f"not all 200: {sorted(set(statuses))}"
    assert [r.json()["label"] for _, r in answers] == [label for label, _ in answers]
    assert {r.json()["name"] for _, r in answers} == {f"test_{i}.JPEG" for i in range(CONCURRENT)}
