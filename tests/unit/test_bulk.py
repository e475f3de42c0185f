"""Bulk jobs' pure parts: what a source may be, which listed objects are images, how a
page is cut into steps, how a callback is signed, how an export row reads."""

from __future__ import annotations

import pytest

from skyclass.runtime.bulk.export import csv_header, csv_row
from skyclass.runtime.bulk.jobstore import Job
from skyclass.runtime.bulk.lister import plan_steps
from skyclass.runtime.bulk.notify import check_callback_url, sign, verify_signature
from skyclass.runtime.bulk.sources import (
    SKIP_ARCHIVED,
    SKIP_SIZE,
    SKIP_TYPE,
    Source,
    parse_source,
    skip_reason,
)
from skyclass.runtime.errors import BadRequestError, ForbiddenError


def test_a_source_is_an_s3_prefix_in_a_bucket_the_stage_reads():
    assert parse_source("s3://photos/2024/", ("photos",)) == Source("photos", "2024/")
    assert parse_source("s3://photos", ("photos",)) == Source("photos", "")
    with pytest.raises(ForbiddenError, match="SKYCLASS_SOURCE_BUCKETS"):
        parse_source("s3://other/2024/", ("photos",))
    for bad in ("photos/2024/", "https://photos.s3.amazonaws.com/x", "s3://Bad_Name/x", 7):
        with pytest.raises(BadRequestError):
            parse_source(bad, ("photos",))


def test_an_image_is_known_by_its_extension_size_and_storage_class():
    assert skip_reason("a/b/Cat.JPEG", 10, 100) is None
    assert skip_reason("a/b/notes.txt", 10, 100) == SKIP_TYPE
    assert skip_reason("a/b/", 0, 100) == SKIP_TYPE
    assert skip_reason("a/b/empty.png", 0, 100) == SKIP_SIZE
    assert skip_reason("a/b/huge.png", 101, 100) == SKIP_SIZE
    assert skip_reason("a/b/old.png", 10, 100, "DEEP_ARCHIVE") == SKIP_ARCHIVED
    assert skip_reason("a/b/ir.png", 10, 100, "GLACIER_IR") is None


def test_a_name_is_the_key_below_the_prefixes_folder():
    assert Source("b", "photos/").name_of("photos/2024/x.jpg") == "2024/x.jpg"
    assert Source("b", "photos/20").name_of("photos/2024/x.jpg") == "2024/x.jpg"
    assert Source("b", "").name_of("x.jpg") == "x.jpg"


def _objects(names):
    return [{"Key": n, "Size": 0 if n.endswith("/") else 5, "ETag": '"e"'} for n in names]


def test_a_page_is_cut_into_steps_of_at_most_ten_images_covering_every_key():
    names = [f"p/{i:02d}.jpg" for i in range(23)] + ["p/z.txt", "p/zz/"]
    steps = plan_steps(_objects(names), max_bytes=100)
    assert [len(s.images) for s in steps] == [10, 10, 3]
    assert sum(s.listed for s in steps) == len(names)
    assert steps[-1].last_key == "p/zz/" and steps[-1].skipped == {SKIP_TYPE: 2}
    assert steps[0].images[0] == ("p/00.jpg", 5, "e")


def test_a_page_of_nothing_but_skipped_objects_is_one_step_without_images():
    steps = plan_steps(_objects(["p/a.txt", "p/b.txt"]), max_bytes=100)
    assert [(s.last_key, s.images, s.listed) for s in steps] == [("p/b.txt", [], 2)]


def test_a_callback_signature_verifies_with_the_key_only_and_only_recently():
    body = b'{"job_id": "x"}'
    header = sign("key", 1_000_000, body)
    assert verify_signature("key", header, body, now=1_000_010)
    assert not verify_signature("other", header, body, now=1_000_010)
    assert not verify_signature("key", header, body + b" ", now=1_000_010)
    assert not verify_signature("key", header, body, now=1_000_000 + 3600)
    assert not verify_signature("key", "garbage", body)


@pytest.mark.parametrize("url", ["ftp://x/", "https://", "x" * 3000, 5])
def test_a_callback_url_must_be_http_or_https(url):
    with pytest.raises(BadRequestError):
        check_callback_url(url)


def test_an_export_row_holds_the_top_k_and_the_reason():
    done = {"image_id": "j-00000", "name": "a, b.jpg", "source": "s3://b/a, b.jpg",
            "status": "done", "top": [{"label": "cat", "score": 0.9}], "error": None}
    failed = {"image_id": "j-00001", "name": "x", "source": "s3://b/x", "status": "failed",
              "top": [], "error": "not an image"}
    assert csv_header(2) == ["image_id", "name", "source", "status", "label_1", "score_1",
                             "label_2", "score_2", "error", "finished_at"]
    assert csv_row(done, 2)[4:8] == ["cat", "0.900000", "", ""]
    assert csv_row(failed, 2)[8] == "not an image"


def test_a_cancelled_jobs_unanswered_images_are_cancelled_not_pending():
    job = Job(job_id="j", kind="upload", state="cancelled", sealed=True, created_at="",
              counts={"total": 5, "done": 2, "failed": 1})
    view = job.view()
    assert (view["pending"], view["cancelled"]) == (0, 2)
    running = Job(job_id="j", kind="upload", state="running", sealed=True, created_at="",
                  counts={"total": 5, "done": 2, "failed": 1})
    assert (running.view()["pending"], running.view()["cancelled"]) == (2, 0)
