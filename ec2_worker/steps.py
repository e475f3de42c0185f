"""The steps one image goes through: parse → fetch → decode → classify → encode.

Each step either takes the image further or gives it its outcome (``outcome.py``), and a
refusal is a sentence a person understands:

- parse: the body as a work message. A broken body that still names an input key is
  answered as failed (``WorkMessage.salvage``); one that names none is unanswerable.
- fetch: the object from the input bucket, and only from it; a gone object or one
  above the byte limit is answered as failed, S3 trouble is retried.
- decode: bytes to RGB pixels at the model's input size (``decode.py``); a file that is
  no image, truncated or too large in pixels is answered as failed.
- classify: the batch's decoded images as one batch through the engine (``engine.py``),
  one output per input or none at all; a failing model is retried.
- encode: each image's top-k predictions as its ``done`` result (``contracts.py``).

A retry on a message's last delivery before the dead-letter queue (``max_receives``) is
answered as failed instead, with the reason, so a long outage does not lose the image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from ec2_worker.batch import Item
from ec2_worker.decode import decode_image
from ec2_worker.engine import InferenceEngine
from ec2_worker.outcome import Answered, Outcome, Retry, Unanswerable, retry_delay
from skyclass.runtime.constants import SOURCE_BUCKETS
from skyclass.runtime.contracts import SOURCE, WorkMessage, done_result, failed_result
from skyclass.runtime.errors import InvalidImageError, InvalidMessageError
from skyclass.runtime.queue import Received
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import is_not_found

log = logging.getLogger(__name__)


class ImageSteps:
    """The per-image steps, with what they need: S3, the engine, the limits."""

    def __init__(self, *, s3: Any, engine: InferenceEngine, settings: Settings,
                 input_bucket: str, worker_id: str, clock: Callable[[], float]) -> None:
        self._s3 = s3
        self._engine = engine
        self._settings = settings
        self._input_bucket = input_bucket
        self._model_name = engine.classifier.name
        self._worker_id = worker_id
        self._clock = clock

    def parse(self, received: Received) -> Item:
        try:
            return Item(received, WorkMessage.from_json(received.body))
        except InvalidMessageError as exc:
            item = Item(received, WorkMessage.salvage(received.body))
            if item.message is None:
                log.error("unanswerable message %s left for the dead-letter queue: %s",
                          received.message_id, exc.message)
                item.outcome = Unanswerable(exc.message)
            else:
                item.outcome = self._failed(item, f"invalid work message: {exc.message}")
            return item

    def fetch_and_decode(self, item: Item) -> None:
        """The image's pixels, or its outcome."""
        data = self._fetch(item)
        if data is not None:
            self._decode(item, data)

    def classify(self, items: list[Item]) -> None:
        """Predict the decoded images among ``items`` as one batch, and encode each
        image's predictions as its ``done`` result."""
        items = [i for i in items if i.pending and i.pixels is not None]
        if not items:
            return
        start = self._clock()
        try:
            predictions = self._engine.predict(np.stack([i.pixels for i in items]))
            if len(predictions) != len(items):
                raise RuntimeError(f"{len(predictions)} outputs for {len(items)} images")
        except Exception as exc:  # the images are fine; try them again later
            log.exception("inference failed for %d images", len(items))
            for item in items:
                item.outcome = self._retry_or_give_up(
                    item, f"the model failed on this batch ({exc})")
            return
        batch_ms = _ms(self._clock() - start)
        for item, top in zip(items, predictions, strict=True):
            item.pixels = None  # the batch may wait to be settled; its pixels are done
            item.timings.update(infer=round(batch_ms / len(items), 3), infer_batch=batch_ms)
            item.outcome = Answered(done_result(
                item.message, top, model=self._model_name, worker=self._worker_id,
                timings_ms=dict(item.timings),
            ))

    def _fetch(self, item: Item) -> bytes | None:
        message = item.message
        # Uploads come from the input bucket; a bulk job's source objects from the
        # buckets the stage reads in place (SKYCLASS_SOURCE_BUCKETS), and nowhere else.
        readable = (self._settings.source_bucket_names if message.origin == SOURCE
                    else (self._input_bucket,))
        if message.bucket not in readable:
            where = (f"which is not in {SOURCE_BUCKETS}" if message.origin == SOURCE
                     else "not the input bucket")
            item.outcome = self._failed(item, f"the image is in bucket {message.bucket}, {where}")
            return None
        start = self._clock()
        try:
            data = self._download(message)
        except _ObjectGone:
            item.outcome = self._failed(item, "the object is gone" if message.origin
                                        else "the uploaded object is gone")
            return None
        except InvalidImageError as exc:
            item.outcome = self._failed(item, exc.message)
            return None
        except Exception as exc:  # S3 trouble of any kind: try again later
            log.exception("could not fetch %s", message.source)
            item.outcome = self._retry_or_give_up(
                item, f"could not read the uploaded image ({exc})")
            return None
        item.timings["download"] = _ms(self._clock() - start)
        return data

    def _download(self, message: WorkMessage) -> bytes:
        try:
            response = self._s3.get_object(Bucket=message.bucket, Key=message.key)
        except ClientError as exc:
            if is_not_found(exc):
                raise _ObjectGone from exc
            raise
        limit = self._settings.max_image_bytes
        if response["ContentLength"] > limit:
            response["Body"].close()
            raise InvalidImageError(
                f"image is {response['ContentLength']} bytes, above the limit of {limit} bytes"
            )
        return response["Body"].read()

    def _decode(self, item: Item, data: bytes) -> None:
        start = self._clock()
        try:
            item.pixels = decode_image(
                data, self._engine.classifier.input_size, self._settings.max_image_pixels)
        except InvalidImageError as exc:
            item.outcome = self._failed(item, exc.message)
        except Exception as exc:  # not the image's fault that we know of (e.g. memory)
            log.exception("could not decode %s", item.message.source)
            item.outcome = self._retry_or_give_up(item, f"could not decode the image ({exc})")
        item.timings["decode"] = _ms(self._clock() - start)

    def _retry_or_give_up(self, item: Item, reason: str) -> Outcome:
        """Another try later, unless this is the message's last delivery before the
        dead-letter queue: then failed, with the reason, so the image is not lost."""
        tries = item.received.receive_count
        if tries < self._settings.max_receives:
            return Retry(reason, retry_delay(tries))
        attempts = "1 try" if tries == 1 else f"{tries} tries"
        return self._failed(item, f"{reason}; gave up after {attempts}")

    def _failed(self, item: Item, reason: str) -> Answered:
        return Answered(failed_result(
            item.message, reason, model=self._model_name, worker=self._worker_id,
            timings_ms=dict(item.timings),
        ))


class _ObjectGone(Exception):
    """The message's object no longer exists (deleted, or never uploaded)."""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
