"""Scaler: one tick of the scheduled scaling Lambda (chalice_app/scaling.py).

It reads the backlog and the fleet, asks the pure policy for a plan, applies it to EC2
and writes the decision to the output bucket, where the next tick finds ``last_busy_at``
(a Lambda keeps no state between invocations) and ``GET /fleet`` shows the reason.
An EC2 error is logged and recorded, never raised: the next tick simply tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from skyclass import constants as c
from skyclass.fleet.policy import Plan, decide
from skyclass.fleet.pool import InstancePool
from skyclass.queue import WorkQueue
from skyclass.results import ResultStore
from skyclass.settings import Settings

log = logging.getLogger(__name__)


class Scaler:
    def __init__(
        self,
        queue: WorkQueue,
        pool: InstancePool,
        store: ResultStore,
        settings: Settings,
        clock: Callable[[], float],
    ) -> None:
        self._queue = queue
        self._pool = pool
        self._store = store
        self._settings = settings
        self._clock = clock

    def last_decision(self) -> dict[str, Any] | None:
        return self._store.get(c.FLEET_DECISION_KEY)

    def run_once(self) -> Plan:
        now = self._clock()
        previous = self.last_decision() or {}
        last_busy_at = previous.get("last_busy_at")
        backlog = None
        try:
            backlog = self._queue.depths().backlog
            plan = decide(
                backlog,
                self._pool.instances(),
                self._settings.worker_throughput,
                now,
                last_busy_at,
                self._settings,
            )
            self._pool.start(plan.start)
            self._pool.stop(plan.stop)
        except (ClientError, BotoCoreError) as exc:
            log.exception("scaling tick failed; the next tick retries")
            plan = Plan(reason=f"AWS error, nothing changed: {exc}", last_busy_at=last_busy_at)
        if plan.start or plan.stop:
            log.info("scaling: %s (start %s, stop %s)", plan.reason, plan.start, plan.stop)
        self._store.put(c.FLEET_DECISION_KEY, _record(plan, backlog, now))
        return plan


def _record(plan: Plan, backlog: int | None, now: float) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "backlog": backlog,
        "desired": plan.desired,
        "reason": plan.reason,
        "started": plan.start,
        "stopped": plan.stop,
        "last_busy_at": plan.last_busy_at,
    }
