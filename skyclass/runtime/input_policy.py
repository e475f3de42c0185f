"""What the service accepts as an image, decided before any worker sees it.

The API checks a client's declared type and size (``POST /jobs``) and the actual bytes
(``POST /classify``); ingest checks what landed in the input bucket (size from a HEAD,
format from the first bytes of a ranged GET). Formats are recognised by their magic
bytes, so this module needs no Pillow and can run in a Lambda. Each refusal is a typed
error with a message a person understands; chalice_app/errors.py maps it to HTTP.
"""

from __future__ import annotations

from skyclass.runtime.errors import (
    BadRequestError,
    InvalidImageError,
    PayloadTooLargeError,
    SkyclassError,
    UnsupportedMediaTypeError,
)

# Content type -> format name, for the formats the worker can decode.
ALLOWED_TYPES: dict[str, str] = {
    "image/jpeg": "jpeg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
}
# Non-standard spellings some clients send.
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-ms-bmp": "image/bmp"}

# Names are data (kept in the manifest and, URL-encoded, in S3 metadata, whose limit is
# 2 KB); any longer name is a mistake, not a file name.
MAX_NAME_CHARS = 255

# How many leading bytes sniff_format needs (WebP's signature ends at byte 12).
SNIFF_BYTES = 16

# POST /classify carries the image inside the Lambda's event: API Gateway base64-encodes
# a binary body, and a synchronous invocation takes at most 6 MB, envelope included
# (every header twice, the request context). A request body of this size is 5.6 MB in
# base64, which leaves the envelope room (tests/unit/test_classify_limit.py); a larger
# body may never reach the Lambda (API Gateway then answers a 5xx of its own), so the
# API refuses what does reach it with 413 and names POST /jobs, whose presigned uploads
# go straight to S3, up to SKYCLASS_MAX_IMAGE_BYTES.
CLASSIFY_MAX_BODY_BYTES = 4 * 1024 * 1024


def normalise_content_type(content_type: str | None) -> str:
    """``"Image/JPEG; charset=x"`` -> ``"image/jpeg"``; aliases to their standard name."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def check_content_type(content_type: str | None) -> str:
    """The normalised content type, or UnsupportedMediaTypeError naming what is accepted."""
    normalised = normalise_content_type(content_type)
    if normalised not in ALLOWED_TYPES:
        raise UnsupportedMediaTypeError(
            f"content type {content_type or '(none)'!r} is not supported; "
            f"send one of: {', '.join(ALLOWED_TYPES)}"
        )
    return normalised


def check_size(size: int, max_bytes: int) -> None:
    if size <= 0:
        raise InvalidImageError("the image is empty (0 bytes)")
    if size > max_bytes:
        raise PayloadTooLargeError(
            f"the image is {size} bytes; the limit is {max_bytes} bytes"
        )


def check_name(name: object) -> str:
    """An image's original name: any text, never used as a path or a header, at most
    MAX_NAME_CHARS characters."""
    if not isinstance(name, str) or not name.strip():
        raise BadRequestError("each image needs a non-empty 'name'")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequestError(
            f"the name {name[:40]!r}... is {len(name)} characters; the limit is {MAX_NAME_CHARS}"
        )
    return name


def check_declared(name: object, content_type: object, size: object, max_bytes: int) -> str:
    """Validate one image a client announces in ``POST /jobs``; returns the normalised
    content type."""
    check_name(name)
    if isinstance(size, bool) or not isinstance(size, int):
        raise BadRequestError(f"{name!r}: 'size' must be the image's size in bytes")
    try:
        normalised = check_content_type(content_type if isinstance(content_type, str) else None)
        check_size(size, max_bytes)
    except SkyclassError as exc:
        raise type(exc)(f"{name}: {exc.message}") from exc
    return normalised


def sniff_format(head: bytes) -> str | None:
    """The image format named by the file's magic bytes, or None if it is none we know."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    return None


def check_bytes(head: bytes, size: int, max_bytes: int) -> str:
    """Check an image's size and its first bytes (at least SNIFF_BYTES of them, or all
    of a smaller file); returns the format."""
    check_size(size, max_bytes)
    fmt = sniff_format(head)
    if fmt is None:
        raise UnsupportedMediaTypeError(
            "the file is not an image in a supported format "
            f"({', '.join(sorted(set(ALLOWED_TYPES.values())))})"
        )
    return fmt


def content_type_of(fmt: str) -> str:
    """The standard content type of a format sniff_format returned."""
    return next(t for t, f in ALLOWED_TYPES.items() if f == fmt)


def check_classify_body(size: int, max_image_bytes: int) -> None:
    """Refuse a ``POST /classify`` request body that cannot travel in a Lambda's event."""
    if size > CLASSIFY_MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"POST /classify takes a request body of at most {CLASSIFY_MAX_BODY_BYTES} bytes "
            f"(this one is {size}): AWS Lambda receives it base64-encoded, within a 6 MB "
            f"limit. Send larger images with POST /jobs, which uploads them straight to S3 "
            f"(up to {max_image_bytes} bytes); the skyclass CLI and web page do."
        )
