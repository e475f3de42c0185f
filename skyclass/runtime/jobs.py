"""JobService: the API's side of a job (``POST /jobs``, ``GET /jobs/{id}``,
``GET /images/{id}``, ``POST /classify``).

A job is a manifest in the output bucket plus one input object per image under
``jobs/{job_id}/{image_id}`` in the input bucket. Clients upload straight to S3 with
presigned POSTs that S3 itself limits in size and content type; the S3 event then
queues the work (skyclass.runtime.ingest). ``classify`` takes the same path for one image
and waits, bounded, for its result (skyclass.runtime.waiter). Image names are data: they
live in the manifest and in object metadata (URL-encoded, since S3 metadata is ASCII),
never in a key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from skyclass.runtime import constants as c
from skyclass.runtime import contracts, input_policy
from skyclass.runtime.errors import BadRequestError, ImageNotFoundError, JobNotFoundError
from skyclass.runtime.names import StageResources
from skyclass.runtime.settings import MAX_CLASSIFY_WAIT, Settings
from skyclass.runtime.store import JsonStore
from skyclass.runtime.waiter import ResultWaiter

log = logging.getLogger(__name__)

# Images per POST /jobs request (a job takes more in pages: skyclass.runtime.bulk.service),
# so a request, its manifest and its reply stay small.
MAX_IMAGES_PER_JOB = 1000
# Images a process remembers it has seen the manifest of.
_KNOWN_IMAGES = 10_000


@dataclass(frozen=True)
class Classified:
    """What ``POST /classify`` answers: the image's result once it has one (``done`` or
    ``failed``), else where to ask for it later."""

    image_id: str
    result: dict[str, Any] | None

    @property
    def status_url(self) -> str:
        # Relative to the request's URL, so it resolves under API Gateway's stage prefix.
        return f"images/{self.image_id}"


class JobService:
    def __init__(
        self,
        s3: Any,
        store: JsonStore,
        resources: StageResources,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        waiter: ResultWaiter | None = None,
    ) -> None:
        """``waiter``: the process's one waiter for ``classify`` results (one is made
        if none is given; JobService is built once per process)."""
        self._s3 = s3
        self._store = store
        self._resources = resources
        self._settings = settings
        self._clock = clock
        self._waiter = waiter or ResultWaiter(store, clock=clock)
        self._known: OrderedDict[str, None] = OrderedDict()
        self._known_lock = threading.Lock()

    # ---- POST /jobs ----------------------------------------------------------------

    def create_job(self, images: object) -> dict[str, Any]:
        """Validate the announced images, write the manifest, return one presigned
        upload per image. Nothing is written if any image is refused."""
        entries = self.check_images(images)
        job_id = contracts.new_job_id()
        manifest = self._write_manifest(job_id, entries)
        return {"job_id": job_id, "uploads": self.presign(manifest["images"])}

    def check_images(self, images: object) -> list[tuple[str, str, int]]:
        """The (name, content type, size) of each image a client announces in one
        request, or the reason the request is refused."""
        if not isinstance(images, list) or not images:
            raise BadRequestError("'images' must be a non-empty list of {name, content_type, size}")
        if len(images) > MAX_IMAGES_PER_JOB:
            raise BadRequestError(
                f"{len(images)} images in one request; send at most {MAX_IMAGES_PER_JOB} "
                "and add the rest to the job in pages (POST /jobs/{job_id}/images)"
            )
        entries = []
        for image in images:
            if not isinstance(image, dict):
                raise BadRequestError("each image must be an object {name, content_type, size}")
            content_type = input_policy.check_declared(
                image.get("name"), image.get("content_type"), image.get("size"),
                self._settings.max_image_bytes,
            )
            entries.append((image["name"], content_type, image["size"]))
        return entries

    def presign(self, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One presigned upload per image entry (``describe_images``)."""
        uploads = [self._presigned_upload(image) for image in images]
        # One line per image, so `skyclass logs --image ID` finds where each one began.
        for image in images:
            log.info("job %s: image %s (%s, %d bytes) may be uploaded",
                     contracts.job_id_of_image(image["image_id"]), image["image_id"],
                     image["name"], image["size"])
        return uploads

    def describe_images(self, job_id: str, entries: list[tuple[str, str, int]],
                        first_index: int = 0) -> list[dict[str, Any]]:
        """Each announced image's entry: its id (numbered from ``first_index``), name,
        content type, size and input key."""
        images = []
        for index, (name, content_type, size) in enumerate(entries, start=first_index):
            image_id = contracts.image_id_for(job_id, index)
            images.append({
                "image_id": image_id,
                "name": name,
                "content_type": content_type,
                "size": size,
                "key": contracts.job_input_key(job_id, image_id),
            })
        return images

    def _write_manifest(self, job_id: str, entries: list[tuple[str, str, int]]) -> dict[str, Any]:
        return self.write_manifest(job_id, self.describe_images(job_id, entries))

    def write_manifest(self, job_id: str, images: list[dict[str, Any]]) -> dict[str, Any]:
        manifest = {
            "v": 1,
            "job_id": job_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "images": images,
        }
        self._store.put(contracts.manifest_key(job_id), manifest)
        return manifest

    def _presigned_upload(self, image: dict[str, Any]) -> dict[str, Any]:
        meta_name = quote(image["name"], safe="")
        fields = {"Content-Type": image["content_type"], f"x-amz-meta-{c.META_NAME}": meta_name}
        post = self._s3.generate_presigned_post(
            Bucket=self._resources.input_bucket,
            Key=image["key"],
            Fields=fields,
            Conditions=[
                {"Content-Type": image["content_type"]},
                {f"x-amz-meta-{c.META_NAME}": meta_name},
                ["content-length-range", 1, image["size"]],
            ],
            ExpiresIn=self._settings.upload_expires,
        )
        return {
            "image_id": image["image_id"],
            "name": image["name"],
            "url": post["url"],
            "method": "POST",
            "fields": post["fields"],
        }

    # ---- GET /jobs/{job_id}, GET /images/{image_id} --------------------------------

    def get_job(self, job_id: str) -> dict[str, Any]:
        manifest = self._manifest(job_id)
        if manifest is None:
            raise JobNotFoundError(f"no job {job_id!r}")
        found = {
            r["image_id"]: r
            for r in self._store.read_prefix(contracts.job_results_prefix(job_id))
        }
        results = [
            found.get(image["image_id"])
            or {"image_id": image["image_id"], "name": image["name"],
                "status": contracts.PENDING}
            for image in manifest["images"]
        ]
        counts = {status: sum(r["status"] == status for r in results)
                  for status in (*contracts.RESULT_STATUSES, contracts.PENDING)}
        return {"job_id": job_id, "total": len(results), **counts, "results": results}

    def get_image(self, image_id: str) -> dict[str, Any] | None:
        """The image's result once it has one (``done`` or ``failed``); None while its
        job is known but the result is not there yet."""
        job_id = contracts.job_id_of_image(image_id)
        if job_id is None:
            raise ImageNotFoundError(f"no image {image_id!r}")
        result = self._store.get(_result_key(job_id, image_id))
        if result is not None or image_id in self._known:
            return result
        manifest = self._manifest(job_id)
        if manifest is None or image_id not in {i["image_id"] for i in manifest["images"]}:
            raise ImageNotFoundError(f"no image {image_id!r}")
        self._remember(image_id)
        return None

    def _remember(self, image_id: str) -> None:
        """An image this process knows exists (its manifest was written or read here), so
        polling its status costs one GET, not two."""
        with self._known_lock:
            self._known[image_id] = None
            while len(self._known) > _KNOWN_IMAGES:
                self._known.popitem(last=False)

    def _manifest(self, job_id: str) -> dict[str, Any] | None:
        if not contracts.is_job_id(job_id):
            return None
        return self._store.get(contracts.manifest_key(job_id))

    # ---- POST /classify ------------------------------------------------------------

    def classify(self, body: bytes, name: str, wait: float | None = None) -> Classified:
        """Store one image as a one-image job (the S3 event queues it like any other)
        and wait for its result: ``wait`` seconds from the call (``classify_timeout``
        when None), within 0..MAX_CLASSIFY_WAIT, the upload included."""
        deadline = self._clock() + self.wait_seconds(wait)
        input_policy.check_name(name)
        fmt = input_policy.check_bytes(
            body[: input_policy.SNIFF_BYTES], len(body), self._settings.max_image_bytes
        )
        # The bytes decide the type: a multipart part is often application/octet-stream.
        actual = input_policy.content_type_of(fmt)
        job_id = contracts.new_job_id()
        image = self._write_manifest(job_id, [(name, actual, len(body))])["images"][0]
        log.info("classify: image %s (%s, %d bytes) stored", image["image_id"], name, len(body))
        self._s3.put_object(
            Bucket=self._resources.input_bucket,
            Key=image["key"],
            Body=body,
            ContentType=actual,
            Metadata={c.META_NAME: quote(name, safe="")},
        )
        key = _result_key(job_id, image["image_id"])
        self._remember(image["image_id"])
        left = deadline - self._clock()
        result = self._waiter.wait(key, left) if left > 0 else self._store.get(key)
        return Classified(image["image_id"], result)

    def wait_seconds(self, wait: float | None) -> float:
        """How long ``classify`` waits: ``wait`` if given (refused outside
        0..MAX_CLASSIFY_WAIT), else the stage's ``classify_timeout``."""
        if wait is None:
            return self._settings.classify_timeout
        if not 0 <= wait <= MAX_CLASSIFY_WAIT:
            raise BadRequestError(
                f"wait must be within 0..{MAX_CLASSIFY_WAIT:g} seconds (API Gateway ends a "
                f"request at 29 s), not {wait:g}")
        return wait


def _result_key(job_id: str, image_id: str) -> str:
    return contracts.result_key(contracts.job_input_key(job_id, image_id))
