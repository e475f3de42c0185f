"""What ``GET /fleet`` shows (and ``skyclass status`` and the web page read): queue
depths, the worker instances with state and uptime, the per-worker throughput the last
scaling tick used, and that tick's decision with its reason.

The throughput comes from the last decision rather than from CloudWatch, so a page
polling ``/fleet`` every second costs no metric queries. The shape only ever grows:
``queue{visible,in_flight,delayed,dead_letter}``, ``instances[{id,state,uptime_s}]``
and ``last_decision`` are what clients rely on; ``queue.ingesting`` (images uploaded
but not yet queued, where the stage can see them) and ``limits`` (the fleet's size
limits, and a note saying why, where something chose them) are there too, and each
running instance's ``engine`` (what runs its model, in which precision, and why; null
until its worker is ready), from the status its worker wrote when it started.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from skyclass.runtime import constants as c
from skyclass.runtime.contracts import worker_status_key
from skyclass.runtime.fleet.policy import PENDING, RUNNING
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore


def fleet_status(
    queue: WorkQueue, pool: InstancePool, store: JsonStore, now: float,
    boot_time: float | None = None, settings: Settings | None = None,
) -> dict[str, Any]:
    """``boot_time``: mark instances younger than this ``booting`` (None: no marks).
    ``settings``: show the fleet's limits, and why they are what they are where
    ``SKYCLASS_FLEET_NOTE`` says. The images still to be ingested are those the last
    scaling tick saw (as the throughput is), and count in the backlog."""
    depths = queue.depths()
    decision = store.get(c.FLEET_DECISION_KEY)
    ingesting = int((decision or {}).get("ingesting") or 0)
    instances = []
    for i in pool.instances():
        # Only a live instance has an uptime; LaunchTime of a stopped one is history.
        live = i.started_at is not None and i.state in (PENDING, RUNNING)
        entry: dict[str, Any] = {"id": i.id, "state": i.state,
                                 "uptime_s": round(now - i.started_at) if live else None}
        if boot_time is not None:
            entry["booting"] = i.is_booting(now, boot_time)
        instances.append(entry)
    _add_engines(store, [e for e in instances if e["state"] == RUNNING])
    status: dict[str, Any] = {
        "queue": {
            "visible": depths.visible,
            "in_flight": depths.in_flight,
            "delayed": depths.delayed,
            "dead_letter": depths.dead_letter,
            "ingesting": ingesting,
        },
        "backlog": depths.backlog + ingesting,
        "instances": instances,
        "throughput": (decision or {}).get("throughput"),
        "last_decision": decision,
    }
    if settings is not None:
        status["limits"] = {"min_workers": settings.min_workers,
                            "max_workers": settings.max_workers,
                            "note": settings.fleet_note}
    return status


def _add_engines(store: JsonStore, running: list[dict[str, Any]]) -> None:
    """Each running instance's engine from its worker's status object: one GET each, a
    few at a time (a worker writes it once when ready; a stopped one's is history)."""
    def engine(entry: dict[str, Any]) -> dict[str, Any] | None:
        found = store.get(worker_status_key(entry["id"]))
        if found is None:
            return None
        return {key: found.get(key) for key in ("engine", "precision", "reason", "speedup")}

    if not running:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
        for entry, found in zip(running, pool.map(engine, running), strict=True):
            entry["engine"] = found
