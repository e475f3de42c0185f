"""The HTTP API of ARCHITECTURE.md as a Chalice blueprint.

Each route parses the request, calls one method of the core (skyclass.runtime.jobs,
skyclass.runtime.fleet.status) and turns the answer into a response; errors become JSON in
chalice_app/errors.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalice import Blueprint, Chalice, Response

from chalice_app import multipart, wiring
from chalice_app.errors import json_errors
from chalice_app.web import render_page
from chalice_app.wiring import services
from skyclass.runtime.contracts import PENDING
from skyclass.runtime.errors import BadRequestError
from skyclass.runtime.fleet.status import fleet_status
from skyclass.runtime.input_policy import ALLOWED_TYPES, MAX_NAME_CHARS, check_classify_body
from skyclass.runtime.jobs import MAX_IMAGES_PER_JOB

bp = Blueprint(__name__)

MULTIPART = "multipart/form-data"
# Bodies API Gateway must pass through as bytes (base64 to the Lambda), not as text.
BINARY_TYPES = [*ALLOWED_TYPES, "image/jpg", MULTIPART]
# /classify sniffs the bytes anyway, so a client that says only "octet-stream" is fine.
CLASSIFY_TYPES = [*BINARY_TYPES, "application/octet-stream"]
# How soon a client told 202 should ask its status_url. A hundred clients asking every
# second cost the local API and emulator most of a core while a worker was starting;
# every 2 s, half that, and a client still learns of its result within 2 s.
RETRY_AFTER_S = 2


def configure(app: Chalice) -> None:
    """What the routes need from the app itself: binary media types for uploads."""
    app.api.binary_types.extend(t for t in BINARY_TYPES if t not in app.api.binary_types)


@bp.route("/health", methods=["GET"])
@json_errors
def health() -> dict[str, str]:
    return {"status": "ok"}


@bp.route("/jobs", methods=["POST"])
@json_errors
def create_job() -> Response:
    # Uploads ({"images"}) or an S3 prefix read in place ({"source"}): docs/bulk.md.
    return Response(body=services().bulk.create_job(json_body(bp)), status_code=201)


@bp.route("/jobs/{job_id}", methods=["GET"])
@json_errors
def get_job(job_id: str) -> dict[str, Any]:
    params = bp.current_request.query_params or {}
    return services().bulk.get_job(job_id, params.get("cursor"), params.get("limit"))


@bp.route("/classify", methods=["POST"], content_types=CLASSIFY_TYPES)
@json_errors
def classify() -> Response:
    """``?wait=SECONDS`` (0..28, default ``SKYCLASS_CLASSIFY_TIMEOUT``): how long to wait
    for the result before answering 202 with its ``status_url`` (and ``Retry-After``)."""
    request = bp.current_request
    params = request.query_params or {}
    content_type = request.headers.get("content-type", "")
    body = request.raw_body or b""
    check_classify_body(len(body), services().settings.max_image_bytes)
    if content_type.lower().startswith(MULTIPART):
        name, body = multipart.first_file(body, content_type)
    else:
        name = params.get("name") or "upload"
    answer = services().jobs.classify(body, name, wait=_seconds(params.get("wait")))
    if answer.result is not None:
        return Response(body=answer.result, status_code=200)
    return Response(body={"image_id": answer.image_id, "status_url": answer.status_url},
                    headers={"Retry-After": str(RETRY_AFTER_S)}, status_code=202)


@bp.route("/images/{image_id}", methods=["GET"])
@json_errors
def get_image(image_id: str) -> Response:
    result = services().bulk.get_image(image_id)
    if result is not None:
        return Response(body=result, status_code=200)
    return Response(body={"image_id": image_id, "status": PENDING}, status_code=202)


@bp.route("/fleet", methods=["GET"])
@json_errors
def fleet() -> dict[str, Any]:
    s = services()
    return fleet_status(s.queue, s.pool, s.store, now=time.time(), boot_time=s.settings.boot_time,
                        settings=s.settings)


@bp.route("/", methods=["GET"])
@json_errors
def index() -> Response:
    # Settings alone, not services(): serving the page makes no AWS call.
    settings = wiring.lambda_settings()
    limits = {
        "max_image_bytes": settings.max_image_bytes,
        "types": list(ALLOWED_TYPES),
        "max_images_per_job": MAX_IMAGES_PER_JOB,
        "max_name_chars": MAX_NAME_CHARS,
        "api_key_required": bool(settings.api_key or settings.api_key_parameter),
    }
    return Response(
        body=render_page(limits),
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"},
    )


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError as exc:
        raise BadRequestError(f"wait must be a number of seconds, not {value!r}") from exc
    if seconds != seconds:  # NaN
        raise BadRequestError("wait must be a number of seconds, not NaN")
    return seconds


def json_body(blueprint: Blueprint) -> dict[str, Any]:
    """The request's body, which must be a JSON object."""
    try:
        body = json.loads(blueprint.current_request.raw_body or b"null")
    except ValueError as exc:
        raise BadRequestError(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequestError('send a JSON object: {"images": [...]}')
    return body
