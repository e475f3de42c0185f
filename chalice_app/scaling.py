"""The scaling Lambda: once a minute, one tick of the scaler (skyclass.runtime.fleet.scaler),
after retrying the S3 events whose invocations failed (skyclass.runtime.ingest_failures),
so that images queued by the retry count in the same tick's backlog."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import CloudWatchEvent

from chalice_app.wiring import services

bp = Blueprint(__name__)


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def scale(event: CloudWatchEvent) -> dict[str, Any]:
    """Start or stop workers to match the backlog; returns the plan.

    Lambda handler ``chalice_app.scaling.scale``, called as Lambda calls it, with a
    scheduled event and a context (the local stack's timer calls it the same way, more
    often: skyclass.operations.local.lambda_host.Schedule).
    """
    s = services()
    s.failed_ingestions.run_once()
    return asdict(s.scaler.run_once())

