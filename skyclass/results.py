"""ResultStore: result objects in the output bucket, keyed by input key (one per image)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


class ResultStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put(self, key: str, result: dict[str, Any]) -> None:
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(result, ensure_ascii=False).encode("utf-8"),
            ContentType="application/json",
        )

    def get(self, key: str) -> dict[str, Any] | None:
        """The JSON object at ``key``, or None if there is none (yet)."""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise
        return json.loads(body)

    def keys(self, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def get_many(self, keys: list[str], threads: int = 16) -> list[dict[str, Any]]:
        """Fetch many objects concurrently; objects that vanished are left out."""
        if not keys:
            return []
        with ThreadPoolExecutor(max_workers=min(threads, len(keys))) as pool:
            return [r for r in pool.map(self.get, keys) if r is not None]
