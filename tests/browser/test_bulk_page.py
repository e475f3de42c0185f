"""The page's bulk side in headless Chromium on the real local stack: a person types an
S3 prefix, watches it be classified in place, reads the finished job's summary and
downloads its export; a bucket the stage may not read is refused with the reason."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.support.stack import archive

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

JOB_TIMEOUT_MS = 180_000


def test_a_person_classifies_a_bucket_prefix_and_downloads_the_export(
    local_stack, browser_page, output_dir
):
    page = browser_page.page
    truth = archive(local_stack, "page-demo/", per_class=3, first=5000)
    # GIVEN the page
    page.goto(f"{local_stack.api}/")
    # WHEN a person asks for a prefix in the source bucket
    page.fill("#source", "s3://skyclass-e2e-archive/page-demo/")
    page.click("#source-go")
    # THEN the job's summary says it is done, with what was listed and skipped
    page.wait_for_function(
        """() => document.querySelector("#job-state").textContent.startsWith("Done:")
                 && document.querySelector("#exports .export-csv")""",
        timeout=JOB_TIMEOUT_MS)
    summary = page.text_content("#job-state")
    assert f"{len(truth)} images, {len(truth)} classified, 0 failed; 3 skipped" in summary
    # AND each image has its card with its true label
    labels = page.eval_on_selector_all(
        ".card", """cards => Object.fromEntries(cards.map(c => [
            c.dataset.name, c.querySelector(".label").firstChild.textContent]))""")
    assert labels == {key.removeprefix("page-demo/"): label for key, label in truth.items()}
    page.screenshot(path=str(output_dir / "bulk-done.png"), full_page=True)
    # AND the CSV link downloads the export, a row per image
    with page.expect_download() as download:
        page.click("#exports .export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["name"] for r in rows) == sorted(labels)
    # AND the job's URL brings the summary back
    page.reload()
    page.wait_for_function("""() => document.querySelector("#job-state")
                                      .textContent.startsWith("Done:")""",
                           timeout=JOB_TIMEOUT_MS)
    assert browser_page.errors == []


def test_a_bucket_the_stage_does_not_read_is_refused_on_the_page(local_stack, browser_page):
    page = browser_page.page
    page.goto(f"{local_stack.api}/")
    page.fill("#source", "s3://someone-elses-bucket/photos/")
    page.click("#source-go")
    page.wait_for_function("""() => document.querySelector("#source-error").textContent""")
    assert "SKYCLASS_SOURCE_BUCKETS" in page.text_content("#source-error")
    # The refusal is the API's answer, not the API key's: the key box stays hidden.
    assert page.is_hidden("#key-box")
    assert [e for e in browser_page.errors if "403" not in e] == []
