"""JsonStore: the JSON documents skyclass keeps in a bucket (the output bucket): each
image's result (keyed by its input key, so one per image), job manifests, the scaler's
last decision and a bake's status.

``read_prefix`` reads every result under a prefix (a job's) and remembers what it read
by ETag, so a client polling a big job from a warm Lambda costs one LIST per 1,000
results plus a GET per result that is new or changed since its last poll, not a GET
per result every time. ``wait_for`` waits for the results of given input keys the same
way: listed, not fetched blindly, and never mistaking the result of an earlier upload
of the same name for the one awaited.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

# What S3 answers for a key that does not exist (GET says NoSuchKey, HEAD a bare 404).
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# What S3 answers a conditional write whose condition no longer holds (412), or that
# raced another conditional write to the same key (409).
CONFLICT_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def is_not_found(exc: ClientError) -> bool:
    """Whether an S3 error means the object is not there.

    S3 answers a missing key with 404 only to a caller that may list the key's prefix
    (``s3:ListBucket``, evaluated with the key as ``s3:prefix``); to any other caller
    it answers 403 AccessDenied, exactly as for a key the caller may not read. So 403
    is never taken for "absent" here: every skyclass role that reads a key which may be
    missing is granted that listing (skyclass.operations.provision.iam), and a 403 is a
    real refusal, raised for the operator to see rather than hidden as "no such image".
    """
    return exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def is_conflict(exc: ClientError) -> bool:
    """Whether a conditional write lost: the object changed (or appeared) since."""
    return exc.response.get("Error", {}).get("Code") in CONFLICT_CODES


class JsonStore:
    def __init__(self, s3: Any, bucket: str, cache_size: int = 50_000) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._cache: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def put(self, key: str, result: dict[str, Any]) -> str:
        """Write ``result`` at ``key``; returns its ETag."""
        return self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(result, ensure_ascii=False).encode("utf-8"),
            ContentType="application/json",
        )["ETag"]

    def replace(self, key: str, document: dict[str, Any], etag: str | None) -> str | None:
        """Write ``document`` at ``key`` only if the object there is still the one with
        ``etag`` (None: only if there is none); returns the new ETag, or None if another
        writer got there first. S3 checks the condition, so of two writers that read
        the same version, exactly one wins."""
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            return self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(document, ensure_ascii=False).encode("utf-8"),
                ContentType="application/json",
                **condition,
            )["ETag"]
        except ClientError as exc:
            if is_conflict(exc):
                return None
            raise

    def get(self, key: str) -> dict[str, Any] | None:
        """The JSON object at ``key``, or None if there is none (yet)."""
        found = self._get(key)
        return None if found is None else found[1]

    def get_versioned(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """The ETag and JSON object at ``key`` (for ``replace``), or None if there is none."""
        return self._get(key)

    def keys(self, prefix: str) -> list[str]:
        return [key for key, _ in self._list(prefix)]

    def etags(self, keys: Iterable[str]) -> dict[str, str]:
        """The ETag of each of ``keys`` that exists now (one LIST per 1,000 objects under
        their common prefix): what ``wait_for`` must not take for a new result."""
        wanted = set(keys)
        if not wanted:
            return {}
        return {key: etag for key, etag in self._list(_common_prefix(wanted)) if key in wanted}

    def wait_for(self, keys: Iterable[str], timeout: float, poll: float = 1.0,
                 earlier: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 ) -> tuple[list[dict[str, Any]], set[str]]:
        """Wait up to ``timeout`` seconds for a result at each of ``keys``; returns the
        results found (in key order) and the keys still without one.

        A result whose ETag is in ``earlier`` (from ``etags`` before the upload) is the
        answer to an earlier upload of the same name, so it is not taken. Each poll costs
        whichever is fewer: one LIST per 1,000 objects under the keys' common prefix, or
        a GET per key still awaited; a GET only follows the LIST for a key it shows new."""
        earlier = earlier or {}
        waiting = set(keys)
        found: dict[str, dict[str, Any]] = {}
        prefix = _common_prefix(waiting)
        listing_pages = 1  # LIST calls the last listing took; learnt on the first
        deadline = clock() + timeout
        while waiting:
            if listing_pages < len(waiting):
                listed = self._list(prefix)
                listing_pages = 1 + len(listed) // 1000
                candidates = [key for key, etag in listed
                              if key in waiting and earlier.get(key) != etag]
            else:
                candidates = sorted(waiting)
            for key in candidates:
                got = self._get(key)
                if got is not None and earlier.get(key) != got[0]:
                    found[key] = got[1]
                    waiting.discard(key)
            if not waiting or clock() >= deadline:
                break
            sleep(poll)
        return [found[key] for key in sorted(found)], waiting

    def read_prefix(self, prefix: str, threads: int = 16) -> list[dict[str, Any]]:
        """Every JSON object under ``prefix``, in key order; unchanged ones from memory."""
        listed = self._list(prefix)
        with self._lock:
            known = {key: self._cache[key] for key, etag in listed
                     if self._cached_etag(key) == etag}
        stale = [key for key, _ in listed if key not in known]
        if stale:
            with ThreadPoolExecutor(max_workers=min(threads, len(stale))) as pool:
                for key, found in zip(stale, pool.map(self._get, stale), strict=True):
                    if found is not None:
                        known[key] = found
                        self._remember(key, *found)
        return [known[key][1] for key, _ in listed if key in known]

    def _list(self, prefix: str) -> list[tuple[str, str]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        return [
            (item["Key"], item["ETag"])
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def _get(self, key: str) -> tuple[str, dict[str, Any]] | None:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return response["ETag"], json.loads(response["Body"].read())

    def _cached_etag(self, key: str) -> str | None:
        entry = self._cache.get(key)
        return entry[0] if entry else None

    def _remember(self, key: str, etag: str, document: dict[str, Any]) -> None:
        with self._lock:
            self._cache[key] = (etag, document)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _common_prefix(keys: Iterable[str]) -> str:
    return os.path.commonprefix(sorted(keys))
