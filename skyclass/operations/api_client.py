"""A small HTTP client for the skyclass API, used by the CLI and the tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import requests

from skyclass.runtime.constants import API_KEY
from skyclass.runtime.errors import SkyclassError


class ApiError(SkyclassError):
    """The API answered with an error document ``{"Code", "Message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class LocalImage:
    path: Path
    name: str
    content_type: str
    size: int


class SkyclassClient:
    def __init__(self, base_url: str, session: requests.Session | None = None,
                 timeout: float = 60.0, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = session or requests.Session()
        self._timeout = timeout
        # The stage's API key (x-api-key), from the argument or SKYCLASS_API_KEY.
        self._api_headers = {}
        key = api_key or os.environ.get(API_KEY)
        if key:
            self._api_headers["x-api-key"] = key

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def create_job(self, images: list[LocalImage]) -> dict[str, Any]:
        body = {
            "images": [
                {"name": i.name, "content_type": i.content_type, "size": i.size} for i in images
            ]
        }
        return self._call("POST", "/jobs", json=body)

    def upload(self, upload: dict[str, Any], image: LocalImage) -> None:
        """Send one image through its presigned POST, straight to S3."""
        data = image.path.read_bytes()
        response = self._http.post(
            upload["url"],
            data=upload.get("fields") or {},
            files={"file": (image.name, data, image.content_type)},
            timeout=self._timeout,
        )
        if response.status_code >= 300:
            raise ApiError(response.status_code, "UploadFailed", response.text[:300])

    def get_job(self, job_id: str, *, cursor: str | None = None,
                limit: int | None = None) -> dict[str, Any]:
        params = {k: v for k, v in (("cursor", cursor), ("limit", limit)) if v is not None}
        return self._call("GET", f"/jobs/{job_id}", params=params or None)

    def results(self, job_id: str, first: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every result of a job, page by page (``first``: a page already read)."""
        page = first or self.get_job(job_id)
        results = list(page["results"])
        while page.get("next_cursor"):
            page = self.get_job(job_id, cursor=page["next_cursor"])
            results.extend(page["results"])
        return results

    def create_source_job(self, source: str, callback_url: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"source": source}
        if callback_url:
            body["callback_url"] = callback_url
        return self._call("POST", "/jobs", json=body)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/jobs/{job_id}/cancel")

    def export_link(self, job_id: str, fmt: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}/export", params={"format": fmt})

    def download(self, url: str, out: Path | BinaryIO) -> None:
        """Stream ``url`` (a presigned link) to a file or a binary stream."""
        with self._http.get(url, stream=True, timeout=self._timeout) as response:
            if response.status_code >= 300:
                raise ApiError(response.status_code, "DownloadFailed", response.text[:300])
            if isinstance(out, Path):
                with out.open("wb") as file:
                    for chunk in response.iter_content(1 << 20):
                        file.write(chunk)
            else:
                for chunk in response.iter_content(1 << 20):
                    out.write(chunk)

    def wait_for_job(self, job_id: str, *, timeout: float = 3600.0, interval: float = 0.5,
                     on_progress: Callable[[dict[str, Any]], None] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if on_progress:
                on_progress(job)
            if job["pending"] == 0 or time.monotonic() > deadline:
                return job
            sleep(interval)

    def classify(self, data: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        response = self._http.post(f"{self.base_url}/classify", data=data,
                                   headers={"Content-Type": content_type,
                                            **self._api_headers},
                                   timeout=self._timeout)
        return response.status_code, self._json(response)

    def fleet(self) -> dict[str, Any]:
        return self._call("GET", "/fleet")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, self.base_url + path, timeout=self._timeout,
                                      headers=self._api_headers, **kwargs)
        return self._json(response)

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {"Code": "BadResponse", "Message": response.text[:300]}
        if response.status_code >= 400:
            raise ApiError(response.status_code, body.get("Code", "Error"),
                           body.get("Message", ""))
        return body
