"""Scaler: one tick of the scheduled scaling Lambda (chalice_app/scaling.py).

It reads the backlog (the work queue, and the images still to be ingested where
something counts them: skyclass.runtime.metrics), the fleet and the workers' metrics,
asks the pure policy for a
plan, applies it to EC2 and writes the decision to the output bucket, where the next
tick finds the policy's state (a Lambda keeps none between invocations) and
``GET /fleet`` shows the reason and the throughput used.

An EC2 or SQS error is logged and recorded, never raised: the next tick simply tries
again. A CloudWatch error only means the configured throughput is used this tick, and
that images finished between ticks go unseen.

Ticks may overlap: nothing reserves the function a single instance (a reservation fails
on accounts with little Lambda concurrency; docs/deploy.md), and EventBridge delivers a
scheduled event at least once. So a tick first claims the decision document with a
conditional write on the version it read; of two ticks that read the same version,
S3 lets exactly one write, and the other changes nothing. A decision that cannot be
read or claimed (an S3 error) is logged, and the tick still decides, without the
history: a fleet that is never stopped costs more than one that forgets its grace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from skyclass.runtime import constants as c
from skyclass.runtime.bulk.backlog import JobsBacklog
from skyclass.runtime.fleet.policy import Observation, Plan, decide
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.metrics import read_activity, read_images_to_ingest
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore

log = logging.getLogger(__name__)

MEASURED = "measured"
DEFAULT = "default"
ANOTHER_TICK = "another scaling tick is deciding; this one changed nothing"


@dataclass(frozen=True)
class _Claim:
    """The decision this tick found (empty before the first), and the ETag of its claim
    on the document: the record replaces only that version (None: write regardless)."""

    previous: dict[str, Any]
    etag: str | None


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
        jobs: Callable[[], JobsBacklog] | None = None,
    ) -> None:
        """``cloudwatch``: where the workers publish their metrics (and the local bridge
        the images it has yet to ingest; skyclass.runtime.metrics); without it the
        configured throughput is used. ``jobs``: what bulk jobs add to and take from the
        queue's backlog (skyclass.runtime.bulk.backlog)."""
        self._jobs = jobs
        self._queue = queue
        self._pool = pool
        self._store = store
        self._settings = settings
        self._clock = clock
        self._cloudwatch = cloudwatch

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

    def ingesting(self, now: float) -> int:
        """Images uploaded but not yet queued as work, where something counts them."""
        if self._cloudwatch is None:
            return 0
        try:
            return read_images_to_ingest(self._cloudwatch, self._settings.stage,
                                         now=datetime.fromtimestamp(now, UTC))
        except (ClientError, BotoCoreError):
            log.warning("could not read the images to ingest; counting none", exc_info=True)
            return 0

    def run_once(self) -> Plan:
        now = self._clock()
        claim = self._claim(now)
        if claim is None:
            log.info(ANOTHER_TICK)
            return Plan(reason=ANOTHER_TICK)
        previous = claim.previous
        last_busy_at = previous.get("last_busy_at")
        surplus_since = previous.get("surplus_since")
        recent = [(float(e[0]), int(e[1]), int(e[2])) for e in previous.get("recent") or []
                  if len(e) == 3]
        throughput = self.throughput(now)
        ingesting = self.ingesting(now)
        depths = None
        jobs = self._jobs_backlog()
        try:
            depths = self._queue.depths()
            # Messages of cancelled jobs are dropped unclassified: not work.
            waiting = depths.visible + depths.delayed
            ended_in_flight = max(0, jobs.ended_queued - waiting)
            plan = decide(
                Observation(
                    visible=max(0, waiting - jobs.ended_queued),
                    in_flight=max(0, depths.in_flight - ended_in_flight),
                    to_list=jobs.to_list,
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
        self._record({**_record(plan, backlog, throughput, now), "ingesting": ingesting,
                      "jobs": {"to_list": jobs.to_list, "cancelled_queued": jobs.ended_queued,
                               "listing": jobs.listing_jobs}}, claim)
        return plan

    def _jobs_backlog(self) -> JobsBacklog:
        if self._jobs is None:
            return JobsBacklog()
        try:
            return self._jobs()
        except (ClientError, BotoCoreError):
            log.warning("could not read the bulk jobs; scaling on the queue alone",
                        exc_info=True)
            return JobsBacklog()

    def _claim(self, now: float) -> _Claim | None:
        """Take this tick (see the module's docstring); None if another tick has it."""
        previous: dict[str, Any] = {}
        try:
            found = self._store.get_versioned(c.FLEET_DECISION_KEY)
            etag, previous = found if found else (None, {})
            claimed = self._store.replace(
                c.FLEET_DECISION_KEY, {**previous, "tick_started_at": _iso(now)}, etag)
        except (ClientError, BotoCoreError):
            log.exception("could not read or claim the last decision; deciding without it")
            return _Claim(previous, None)
        return None if claimed is None else _Claim(previous, claimed)

    def _record(self, document: dict[str, Any], claim: _Claim) -> None:
        try:
            if claim.etag is None:
                self._store.put(c.FLEET_DECISION_KEY, document)
            elif self._store.replace(c.FLEET_DECISION_KEY, document, claim.etag) is None:
                log.warning("a later scaling tick claimed the decision; its record stands")
        except (ClientError, BotoCoreError):
            log.exception("could not record the decision; the next tick decides without it")


def _record(plan: Plan, backlog: int | None, throughput: ThroughputUsed,
            now: float) -> dict[str, Any]:
    return {
        "at": _iso(now),
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


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
