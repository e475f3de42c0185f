"""A job's export: every answered image, as JSON Lines and as CSV, in the output bucket at
``exports/{job}.jsonl`` and ``exports/{job}.csv``.

Built from the job's ledger (ledger.py: a Query per megabyte of results, never a GET
per image) and streamed to S3 as it is read: a small export is one PUT per file, a big
one a multipart upload in parts of ``PART_BYTES``, so memory stays flat however many
images the job had. The JSONL holds each image's result object as the worker wrote it
(ARCHITECTURE.md, "Result"); the CSV holds one row per image — id, name, source,
status, the top-k labels and scores, and the reason a failed image gives — for a
spreadsheet, pandas or Athena. Names are written as they are (they are data).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skyclass.runtime import constants as c

PART_BYTES = 8 * 1024 * 1024  # S3 wants parts of at least 5 MiB (but the last)
JSONL_TYPE = "application/x-ndjson"
CSV_TYPE = "text/csv; charset=utf-8"


def export_key(job_id: str, fmt: str) -> str:
    return f"{c.EXPORTS_PREFIX}{job_id}.{fmt}"


def csv_header(top_k: int) -> list[str]:
    ranked = [f"{field}_{rank}" for rank in range(1, top_k + 1) for field in ("label", "score")]
    return ["image_id", "name", "source", "status", *ranked, "error", "finished_at"]


def csv_row(result: dict[str, Any], top_k: int) -> list[Any]:
    top = result.get("top") or []
    ranked: list[Any] = []
    for rank in range(top_k):
        entry = top[rank] if rank < len(top) else {}
        ranked += [entry.get("label", ""), "" if entry.get("score") is None
                   else f"{entry['score']:.6f}"]
    return [result.get("image_id"), result.get("name"), result.get("source"),
            result.get("status"), *ranked, result.get("error") or "",
            result.get("finished_at") or ""]


@dataclass(frozen=True)
class Export:
    rows: int
    jsonl_key: str
    csv_key: str
    jsonl_bytes: int
    csv_bytes: int

    def location(self, bucket: str) -> dict[str, Any]:
        return {"jsonl": f"s3://{bucket}/{self.jsonl_key}",
                "csv": f"s3://{bucket}/{self.csv_key}", "rows": self.rows}


def write_export(s3: Any, bucket: str, job_id: str, results: Iterable[dict[str, Any]],
                 top_k: int) -> Export:
    jsonl = S3Writer(s3, bucket, export_key(job_id, "jsonl"), JSONL_TYPE)
    table = S3Writer(s3, bucket, export_key(job_id, "csv"), CSV_TYPE)
    rows = 0
    try:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(csv_header(top_k))
        for result in results:
            jsonl.write((json.dumps(result, ensure_ascii=False, separators=(",", ":"))
                         + "\n").encode())
            writer.writerow(csv_row(result, top_k))
            rows += 1
            if text.tell() >= 64 * 1024:
                table.write(text.getvalue().encode())
                text.seek(0)
                text.truncate()
        table.write(text.getvalue().encode())
        return Export(rows, jsonl.key, table.key, jsonl.close(), table.close())
    except BaseException:
        jsonl.abort()
        table.abort()
        raise


class S3Writer:
    """An object written as it is produced: buffered up to PART_BYTES, then uploaded in
    parts; one plain PUT when it never filled a part."""

    def __init__(self, s3: Any, bucket: str, key: str, content_type: str,
                 part_bytes: int = PART_BYTES) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._content_type = content_type
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self._size += len(data)
        if len(self._buffer) >= self._part_bytes:
            self._flush_part()

    def close(self) -> int:
        if self._upload_id is None:
            self._s3.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer),
                                ContentType=self._content_type)
        else:
            if self._buffer:
                self._flush_part()
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts})
        return self._size

    def abort(self) -> None:
        if self._upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                            UploadId=self._upload_id)
            self._upload_id = None

    def _flush_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self._content_type)["UploadId"]
        number = len(self._parts) + 1
        etag = self._s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                    PartNumber=number, Body=bytes(self._buffer))["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})
        self._buffer.clear()
