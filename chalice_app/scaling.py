"""The scaling Lambda: once a minute, one tick of the scaler (skyclass.fleet.scaler)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import CloudWatchEvent

from chalice_app.wiring import services

bp = Blueprint(__name__)


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def scale(event: CloudWatchEvent) -> dict[str, Any]:
    """Start or stop workers to match the backlog; returns the plan.

    Lambda handler ``chalice_app.scaling.scale``, called as Lambda calls it, with a
    scheduled event and a context: ``scale(scheduled_event(), context)``. The local
    stack's timer calls it the same way, more often.
    """
    return asdict(services().scaler.run_once())


def scheduled_event(region: str = "us-east-1", account: str = "123456789012") -> dict[str, Any]:
    """A scheduled event as EventBridge sends it, for callers standing in for EventBridge
    (the local stack's timer, tests): Chalice's CloudWatchEvent reads every field."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {},
    }
