"""What a bulk job may read, and which of the objects it lists are images.

A source is ``s3://BUCKET/PREFIX``; only buckets named in ``SKYCLASS_SOURCE_BUCKETS``
are accepted (IAM grants the lister and the workers read access to exactly those, so
the API's refusal and AWS's agree). An object is classified when its key ends in an
image extension, its size is within the input limit and it is not in an archive
storage class (Glacier Flexible Retrieval, Deep Archive: S3 answers no GET until it is
restored); others are skipped and counted by reason, never silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from skyclass.runtime import constants as c
from skyclass.runtime.errors import BadRequestError, ForbiddenError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp",
                              ".tif", ".tiff"})
SKIP_TYPE = "skip_type"  # not an image by its extension (folder markers included)
SKIP_SIZE = "skip_size"  # empty, or above SKYCLASS_MAX_IMAGE_BYTES
SKIP_ARCHIVED = "skip_archived"  # in an archive storage class: no GET until restored
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_PREFIX_BYTES = 1024  # S3's longest key


@dataclass(frozen=True)
class Source:
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def name_of(self, key: str) -> str:
        """An object's name in its job: its key below the prefix's last folder, so
        ``s3://b/photos/`` names ``photos/2024/x.jpg`` ``2024/x.jpg``."""
        folder = self.prefix.rsplit("/", 1)[0] + "/" if "/" in self.prefix else ""
        return key[len(folder):] or key


def parse_source(value: object, readable: tuple[str, ...]) -> Source:
    """The source a client asks for, if the stage may read it: BadRequestError for what
    is no ``s3://BUCKET/PREFIX``, ForbiddenError, naming the setting, for a bucket the
    stage is not configured to read."""
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise BadRequestError("'source' must be an S3 URL: s3://BUCKET/PREFIX/")
    parts = urlsplit(value)
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    if parts.query or parts.fragment or not _BUCKET.match(bucket):
        raise BadRequestError(f"{value[:100]!r} is not s3://BUCKET/PREFIX/")
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise BadRequestError(f"the prefix is longer than S3's {MAX_PREFIX_BYTES} bytes")
    if bucket not in readable:
        configured = ", ".join(readable) if readable else "empty"
        raise ForbiddenError(
            f"this stage does not read bucket {bucket}: only the buckets in "
            f"{c.SOURCE_BUCKETS} may be classified in place ({configured}); the operator "
            f"adds it there and bootstraps again, which grants read access to it")
    return Source(bucket, prefix)


def skip_reason(key: str, size: int, max_bytes: int,
                storage_class: str | None = None) -> str | None:
    """Why an object listed under a source is not classified, or None for an image."""
    name = key.rsplit("/", 1)[-1]
    extension = name[name.rfind("."):].lower() if "." in name else ""
    if not name or extension not in IMAGE_EXTENSIONS:
        return SKIP_TYPE
    if not 0 < size <= max_bytes:
        return SKIP_SIZE
    if storage_class in ARCHIVED_CLASSES:
        return SKIP_ARCHIVED
    return None
