"""The one file in a ``multipart/form-data`` body (RFC 7578), for ``POST /classify``.

Small and exact on binary data: split on the boundary, take the first part that has a
filename, whatever its field is called (``file``, ``myfile``...).
"""

from __future__ import annotations

import re

from skyclass.runtime.errors import BadRequestError

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_FILENAME = re.compile(r'filename\*?="?([^";\r\n]*)"?', re.IGNORECASE)


def first_file(body: bytes, content_type: str) -> tuple[str, bytes]:
    """(filename, bytes) of the first file part; BadRequestError if there is none."""
    match = _BOUNDARY.search(content_type)
    if not match:
        raise BadRequestError("multipart/form-data without a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        headers, sep, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = next(
            (line for line in headers.decode("utf-8", "replace").split("\r\n")
             if line.lower().startswith("content-disposition:")),
            "",
        )
        filename = _FILENAME.search(disposition)
        if filename:
            return filename.group(1) or "upload", content.removesuffix(b"\r\n")
    raise BadRequestError("the multipart body has no file field; send the image as a file")
