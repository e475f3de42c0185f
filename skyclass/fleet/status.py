"""What ``GET /fleet`` shows: queue depths, the worker instances, the last decision."""

from __future__ import annotations

from typing import Any

from skyclass import constants as c
from skyclass.fleet.policy import PENDING, RUNNING
from skyclass.fleet.pool import InstancePool
from skyclass.queue import WorkQueue
from skyclass.results import ResultStore


def fleet_status(
    queue: WorkQueue, pool: InstancePool, store: ResultStore, now: float
) -> dict[str, Any]:
    depths = queue.depths()
    return {
        "queue": {
            "visible": depths.visible,
            "in_flight": depths.in_flight,
            "delayed": depths.delayed,
            "dead_letter": depths.dead_letter,
        },
        "instances": [
            {
                "id": i.id,
                "state": i.state,
                # Only a live instance has an uptime; LaunchTime of a stopped one is history.
                "uptime_s": round(now - i.started_at)
                if i.started_at is not None and i.state in (PENDING, RUNNING)
                else None,
            }
            for i in pool.instances()
        ],
        "last_decision": store.get(c.FLEET_DECISION_KEY),
    }
