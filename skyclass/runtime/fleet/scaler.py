"""Scaler: one tick of the scheduled scaling Lambda (chalice_app/scaling.py).

It reads the backlog (the work queue, and the images still to be ingested where the
stage can see them), the fleet and the workers' metrics, asks the pure policy for a
plan, applies it to EC2 and writes the decision to the output bucket, where the next
tick finds the policy's state (a Lambda keeps none between invocations) and
``GET /fleet`` shows the reason and the throughput used.

An EC2 or SQS error is logged and recorded, never raised: the next tick simply tries
again. A CloudWatch error only means the configured throughput is used this tick, and
that images finished between ticks go unseen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from skyclass.runtime import constants as c
from skyclass.runtime.fleet.policy import Observation, Plan, decide
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.metrics import read_activity
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore

log = logging.getLogger(__name__)

MEASURED = "measured"
DEFAULT = "default"


@dataclass(frozen=True)
class ThroughputUsed:
    """Images per second of one busy, warm worker, and whether the workers measured it
    or it is ``SKYCLASS_WORKER_THROUGHPUT`` (no metrics yet, or CloudWatch unreachable);
    images per second the fleet finished lately, and images it finished within the
    idle grace (both 0 without metrics)."""

    per_worker: float
    source: str
    finished_rate: float = 0.0
    finished_in_grace: int = 0


class Scaler:
    def __init__(
        self,
        queue: WorkQueue,
        pool: InstancePool,
        store: JsonStore,
        settings: Settings,
        clock: Callable[[], float],
        cloudwatch: Any = None,
        ingest_queue: WorkQueue | None = None,
    ) -> None:
        """``cloudwatch``: where the workers publish their metrics
        (skyclass.runtime.metrics); without it the configured throughput is used.
        ``ingest_queue``: where S3 events wait to be ingested, if they wait in a queue
        this stage can read (the local stack's bridge); its depth counts as backlog."""
        self._queue = queue
        self._pool = pool
        self._store = store
        self._settings = settings
        self._clock = clock
        self._cloudwatch = cloudwatch
        self._ingest_queue = ingest_queue

    def last_decision(self) -> dict[str, Any] | None:
        return self._store.get(c.FLEET_DECISION_KEY)

    def throughput(self, now: float) -> ThroughputUsed:
        default = ThroughputUsed(self._settings.worker_throughput, DEFAULT)
        if self._cloudwatch is None:
            return default
        try:
            activity = read_activity(self._cloudwatch, self._settings.stage,
                                     self._settings.idle_grace,
                                     now=datetime.fromtimestamp(now, UTC))
        except (ClientError, BotoCoreError):
            log.warning("could not read the workers' metrics; using the default throughput",
                        exc_info=True)
            return default
        per_worker = activity.warm.per_worker
        return ThroughputUsed(per_worker or default.per_worker,
                              MEASURED if per_worker else DEFAULT,
                              activity.finished_rate, round(activity.finished_in_grace))

    def ingesting(self) -> int:
        """Images uploaded but not yet queued as work, where this stage can see them."""
        if self._ingest_queue is None:
            return 0
        return self._ingest_queue.depths().backlog

    def run_once(self) -> Plan:
        now = self._clock()
        previous = self.last_decision() or {}
        last_busy_at = previous.get("last_busy_at")
        surplus_since = previous.get("surplus_since")
        recent = [(float(e[0]), int(e[1]), int(e[2])) for e in previous.get("recent") or []
                  if len(e) == 3]
        throughput = self.throughput(now)
        depths = None
        ingesting = 0
        try:
            depths = self._queue.depths()
            ingesting = self.ingesting()
            plan = decide(
                Observation(
                    visible=depths.visible + depths.delayed,
                    in_flight=depths.in_flight,
                    instances=self._pool.instances(),
                    per_worker=throughput.per_worker,
                    now=now,
                    finished_rate=throughput.finished_rate,
                    recent=recent,
                    last_busy_at=last_busy_at,
                    ingesting=ingesting,
                    finished_in_grace=throughput.finished_in_grace,
                    surplus_since=surplus_since,
                ),
                self._settings,
            )
            self._pool.start(plan.start)
            self._pool.stop(plan.stop)
        except (ClientError, BotoCoreError) as exc:
            log.exception("scaling tick failed; the next tick retries")
            plan = Plan(reason=f"AWS error, nothing changed: {exc}", last_busy_at=last_busy_at,
                        recent=recent, surplus_since=surplus_since)
        if plan.start or plan.stop:
            log.info("scaling: %s (start %s, stop %s)", plan.reason, plan.start, plan.stop)
        backlog = depths.backlog + ingesting if depths else None
        self._store.put(c.FLEET_DECISION_KEY, _record(plan, backlog, throughput, now))
        return plan


def _record(plan: Plan, backlog: int | None, throughput: ThroughputUsed,
            now: float) -> dict[str, Any]:
    return {
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "backlog": backlog,
        "desired": plan.desired,
        "reason": plan.reason,
        "started": plan.start,
        "stopped": plan.stop,
        "throughput": {"per_worker": round(throughput.per_worker, 3),
                       "source": throughput.source,
                       "finished_per_s": round(throughput.finished_rate, 3),
                       "finished_in_grace": throughput.finished_in_grace},
        "last_busy_at": plan.last_busy_at,
        "surplus_since": plan.surplus_since,
        "recent": [list(entry) for entry in plan.recent],
    }
