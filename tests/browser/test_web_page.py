"""The web page in headless Chromium, on the real local stack with the tiny model.

A person picks images, presses Classify, and reads each image's label on its card; the
job's URL brings the same results back; the page also works where API Gateway mounts
it, under a stage prefix.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from testbed.tiny_model import LABELS
from tests.support.browser import (
    PHONE,
    card_labels,
    drop_files,
    page_images,
    wait_for_every_card,
)
from tests.support.stage_proxy import StageProxy

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

def test_a_person_classifies_images_and_reopens_the_job(local_stack, browser_page, output_dir):
    page = browser_page.page
    files, truth = page_images(per_class=2, first=800)
    broken = {"name": "broken.png", "mimeType": "image/png", "buffer": b"not a PNG at all"}
    notes = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"shopping list"}
    long_name = {**files[0], "name": "n" * 300 + ".jpg"}

    # GIVEN the page, which says what it accepts before anything is uploaded
    page.goto(local_stack.api + "/")
    assert "up to 20 MiB per image" in page.text_content("#limits")
    assert "JPEG" in page.text_content("#limits")
    # WHEN a person picks six images, a broken "PNG", a text file and an image whose name
    # is too long, and presses Classify
    page.set_input_files("#files", [*files, broken, notes, long_name])
    # THEN the page refuses what the API would refuse, saying why, before uploading
    refused = page.locator("#refused li").all_text_contents()
    assert refused[0] == "notes.txt: text/plain is not accepted (send JPEG, PNG, GIF, WEBP, " \
                        "BMP, TIFF)"
    assert refused[1].endswith(": the name is 304 characters; the limit is 255")
    assert page.text_content("#go") == "Classify 7 images"
    page.click("#go")
    wait_for_every_card(page, len(files) + 1)

    # ... and each image's card shows its true label, the broken file says why it failed,
    # and the progress line sums it up
    labels = card_labels(page)
    assert {name: labels[name] for name in truth} == truth
    assert labels["broken.png"].startswith("failed: the file is not an image")
    assert page.text_content("#progress-text") == "Done: 7 images, 6 classified, 1 failed."
    first = page.locator(".card[data-status=done]").first
    first.locator(".card-main").click()
    assert first.locator(".top5 li").count() == min(5, len(LABELS))  # the top 5
    page.screenshot(path=str(output_dir / "desktop.png"), full_page=True)

    # WHEN the job's own URL is reloaded (or shared)
    job_url = page.url
    assert re.search(r"\?job=[0-9a-f]{20}$", job_url)
    assert page.get_attribute("#share-link", "href") == job_url
    page.reload()
    wait_for_every_card(page, len(files) + 1, timeout=30_000)

    # THEN the same results come back, by name
    assert card_labels(page) == labels
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(output_dir / "phone.png"), full_page=True)
    assert browser_page.errors == []


def test_the_page_works_under_a_stage_prefix(local_stack, browser_page, output_dir):
    page = browser_page.page
    files, truth = page_images(per_class=1, first=850)
    with StageProxy(local_stack.api) as stage:
        # GIVEN the page at the stage's URL, without a trailing slash, as API Gateway prints it
        page.goto(stage.url)
        # WHEN a person drops images on the page and presses Classify, by keyboard
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "files"
        drop_files(page, files)
        page.wait_for_function("!document.getElementById('go').disabled")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "go"
        page.keyboard.press("Enter")
        wait_for_every_card(page, len(files))
        # ... and the fleet panel has read the fleet
        page.wait_for_function("/^[0-9]+$/.test(document.getElementById('stat-running')"
                               ".textContent)")

        # THEN the labels are right, every API call went through the stage, none around it
        assert card_labels(page) == truth
        assert stage.refused == []
        assert any(path.startswith("/api/jobs") for path in stage.forwarded)
        assert any(path == "/api/fleet" for path in stage.forwarded)
        assert page.url.startswith(stage.url + "?job=")
        page.screenshot(path=str(output_dir / "under-prefix.png"), full_page=True)
    assert browser_page.errors == []


@pytest.mark.slow
def test_a_large_selection_is_split_into_jobs_and_every_image_comes_back(local_stack,
                                                                          browser_page):
    page = browser_page.page
    files, truth = page_images(per_class=50, first=3000)
    # GIVEN 150 images, more than the page puts in one job
    page.goto(local_stack.api + "/")
    # WHEN a person classifies them all at once
    page.set_input_files("#files", files)
    page.click("#go")
    wait_for_every_card(page, len(files), timeout=300_000)
    # THEN every card has its true label, and the URL names the jobs, which share the
    # images between them without losing or repeating one
    assert card_labels(page) == truth
    job_ids = parse_qs(urlparse(page.url).query)["job"]
    totals = [local_stack.get(f"/jobs/{job_id}").json()["total"] for job_id in job_ids]
    assert len(job_ids) > 1 and sum(totals) == len(files)
    assert browser_page.errors == []
