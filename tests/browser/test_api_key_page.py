"""The web page on a stage that requires an API key: the page asks for it, sends it, and
classifies; the API refuses a caller without it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.browser.test_web_page import _images, _labels, _wait_for_every_card
from tests.support.stack_process import StackProcess, start_stack

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

KEY = "a-local-test-key-5f1c"


@pytest.fixture(scope="module")
def keyed_stack(tiny_model, tmp_path_factory) -> Iterator[StackProcess]:
    stack = start_stack(tmp_path_factory.mktemp("keyed-stack"), {
        "SKYCLASS_MODEL": str(tiny_model.model_path),
        "SKYCLASS_LABELS": str(tiny_model.labels_path),
        "SKYCLASS_API_KEY": KEY,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }, max_workers=1)
    try:
        stack.wait_ready(timeout=120)
        yield stack
    finally:
        stack.stop()


def test_the_page_asks_for_the_key_and_classifies_with_it(keyed_stack, browser_page):
    # GIVEN a stage that requires a key, which a bare caller does not have
    refused = requests.get(f"{keyed_stack.api}/fleet", timeout=10)
    assert refused.status_code == 403 and refused.json()["Code"] == "Forbidden"
    page = browser_page.page
    files, truth = _images(per_class=1, first=900)
    # WHEN a person opens the page, it asks for the key; they type it and classify
    page.goto(keyed_stack.api + "/")
    assert page.is_visible("#api-key")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.set_input_files("#files", files)
    page.click("#go")
    # THEN every card shows its true label, and the page made no failed call
    _wait_for_every_card(page, len(files))
    assert _labels(page) == truth
    assert browser_page.errors == []
