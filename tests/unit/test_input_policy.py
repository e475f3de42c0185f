"""The input policy: what counts as an acceptable image, before any worker sees it."""

from __future__ import annotations

import pytest

from skyclass.runtime import input_policy as policy
from skyclass.runtime.errors import (
    BadRequestError,
    InvalidImageError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

MAX = 1000

MAGIC = {
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "gif": b"GIF89a\x01\x00\x01\x00",
    "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "bmp": b"BM\x36\x00\x00\x00\x00\x00",
    "tiff": b"II*\x00\x08\x00\x00\x00",
}


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_each_supported_format_is_recognised_by_its_magic_bytes(fmt):
    assert policy.check_bytes(MAGIC[fmt], 500, MAX) == fmt
    assert policy.check_content_type(policy.content_type_of(fmt)) == policy.content_type_of(fmt)


def test_text_is_not_an_image():
    with pytest.raises(UnsupportedMediaTypeError, match="not an image"):
        policy.check_bytes(b"hello, world\n", 13, MAX)


def test_an_empty_file_is_refused():
    with pytest.raises(InvalidImageError, match="empty"):
        policy.check_bytes(b"", 0, MAX)


def test_a_file_over_the_limit_is_refused_with_both_sizes():
    with pytest.raises(PayloadTooLargeError, match="1001 bytes.*1000 bytes"):
        policy.check_bytes(MAGIC["png"], MAX + 1, MAX)


def test_declared_content_types_are_normalised():
    assert policy.check_content_type("Image/JPEG; charset=binary") == "image/jpeg"
    assert policy.check_content_type("image/jpg") == "image/jpeg"


def test_an_unsupported_declared_type_names_the_accepted_ones():
    with pytest.raises(UnsupportedMediaTypeError, match="^a.svg: .*image/png"):
        policy.check_declared("a.svg", "image/svg+xml", 10, MAX)


@pytest.mark.parametrize(
    ("name", "content_type", "size", "error"),
    [
        ("", "image/png", 10, BadRequestError),
        (None, "image/png", 10, BadRequestError),
        ("a.png", "image/png", "10", BadRequestError),
        ("a.png", "image/png", True, BadRequestError),
        ("a.png", None, 10, UnsupportedMediaTypeError),
        ("a.png", "image/png", MAX + 1, PayloadTooLargeError),
        ("a.png", "image/png", 0, InvalidImageError),
    ],
)
def test_bad_declarations_are_refused(name, content_type, size, error):
    with pytest.raises(error):
        policy.check_declared(name, content_type, size, MAX)


def test_a_good_declaration_returns_its_content_type():
    assert policy.check_declared("cat.jpg", "image/jpeg", 500, MAX) == "image/jpeg"
