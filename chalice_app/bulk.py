"""Bulk jobs' routes as a Chalice blueprint (docs/bulk.md): ``POST /jobs/{id}/images``
(another page of uploads), ``POST /jobs/{id}/cancel`` and
``GET /jobs/{id}/export?format=csv|jsonl``. ``POST /jobs`` and ``GET /jobs/{id}``
themselves stay in chalice_app/api.py and reach the same service
(skyclass.runtime.bulk.service). Each route parses, calls one method, and answers. The
jobs' background work is in chalice_app/tasks.py.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalice_app.api import json_body
from chalice_app.errors import json_errors
from chalice_app.wiring import services

bp = Blueprint(__name__)


@bp.route("/jobs/{job_id}/images", methods=["POST"])
@json_errors
def add_images(job_id: str) -> Response:
    return Response(body=services().bulk.add_images(job_id, json_body(bp)), status_code=201)


@bp.route("/jobs/{job_id}/cancel", methods=["POST"])
@json_errors
def cancel_job(job_id: str) -> dict[str, Any]:
    return services().bulk.cancel(job_id)


@bp.route("/jobs/{job_id}/export", methods=["GET"])
@json_errors
def export_link(job_id: str) -> dict[str, Any]:
    params = bp.current_request.query_params or {}
    return services().bulk.export_link(job_id, params.get("format"))
