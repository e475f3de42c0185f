"""Headless Chromium (Debian's, driven by Playwright) against the session's local stack.

Playwright's own browser downloads are not used: the tests launch ``/usr/bin/chromium``
(``make test`` installs it where missing) with a fresh profile per test. Every console
error and uncaught exception on a page is collected, so a test can assert there were
none. What the tests do with the page is tests/support/browser.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, BrowserPage


@pytest.fixture
def browser_page(tmp_path) -> Iterator[BrowserPage]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport=DESKTOP,
        )
        try:
            page = context.new_page()
            under_test = BrowserPage(page)
            page.on("console", lambda message: message.type == "error"
                    and under_test.errors.append(f"console: {message.text}"))
            page.on("pageerror", lambda error: under_test.errors.append(f"page: {error}"))
            yield under_test
        finally:
            context.close()
