"""The web page on a stage that requires an API key: the page asks for it, sends it, and
classifies; the API refuses a caller without it."""

from __future__ import annotations

import pytest
import requests

from tests.support.browser import card_labels, page_images, wait_for_every_card
from tests.support.stack import STACK_API_KEY

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_the_page_asks_for_the_key_and_classifies_with_it(keyed_stack, browser_page):
    # GIVEN a stage that requires a key, which a bare caller does not have
    refused = requests.get(f"{keyed_stack.api}/fleet", timeout=10)
    assert refused.status_code == 403 and refused.json()["Code"] == "Forbidden"
    page = browser_page.page
    files, truth = page_images(per_class=1, first=900)
    # WHEN a person opens the page, it asks for the key; they type it and classify
    page.goto(keyed_stack.api + "/")
    assert page.is_visible("#api-key")
    page.fill("#api-key", STACK_API_KEY)
    page.dispatch_event("#api-key", "change")
    page.set_input_files("#files", files)
    page.click("#go")
    # THEN every card shows its true label, and the page made no failed call
    wait_for_every_card(page, len(files))
    assert card_labels(page) == truth
    assert browser_page.errors == []
