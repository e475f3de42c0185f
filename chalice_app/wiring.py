"""Builds the Lambda's objects once per process, on first use (not at import, so a cold
start that only serves ``GET /health`` or ``GET /`` makes no AWS call).

Settings come from the environment (``.chalice/config.json`` sets them per stage);
resource names not set there are resolved once from the stage's naming rule.
Tests call ``reset()`` between emulators.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

from skyclass.runtime.aws import AwsClients
from skyclass.runtime.bulk.backlog import JobsWatch
from skyclass.runtime.bulk.finisher import Finisher
from skyclass.runtime.bulk.jobstore import JobStore
from skyclass.runtime.bulk.ledger import Ledger
from skyclass.runtime.bulk.lister import Lister
from skyclass.runtime.bulk.service import BulkJobs
from skyclass.runtime.bulk.tasks import TaskQueues
from skyclass.runtime.bulk.tracker import JobTracker
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.fleet.scaler import Scaler
from skyclass.runtime.ingest import Ingestor
from skyclass.runtime.ingest_failures import FailedIngestions
from skyclass.runtime.jobs import JobService
from skyclass.runtime.names import StageResources, ingest_failures_queue_name, queue_url_beside
from skyclass.runtime.queue import WorkQueue
from skyclass.runtime.settings import Settings
from skyclass.runtime.store import JsonStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    resources: StageResources
    queue: WorkQueue
    pool: InstancePool
    store: JsonStore
    jobs: JobService
    ingestor: Ingestor
    scaler: Scaler
    aws: AwsClients
    failed_ingestions: FailedIngestions
    # Bulk jobs (skyclass.runtime.bulk): the job store, its ledger and task queues.
    bulk: BulkJobs
    job_store: JobStore
    ledger: Ledger
    tasks: TaskQueues
    lister: Lister
    finisher: Finisher


@functools.cache
def lambda_settings() -> Settings:
    """The Lambda's settings, read from the environment once per container."""
    return Settings.from_env()


@functools.cache
def services() -> Services:
    # Lambda's Python runtime leaves the root logger at WARNING, and Chalice sets its
    # app's logger ("skyclass", the parent of every skyclass.* logger) to ERROR: without
    # this, the info lines (an image queued, a worker started) never reach CloudWatch.
    logging.getLogger("skyclass").setLevel(logging.INFO)
    settings = lambda_settings()
    aws = AwsClients(settings.region)
    resources = StageResources.resolve(settings, aws)
    queue = WorkQueue(aws.sqs, resources.queue_url, resources.dlq_url)
    pool = InstancePool(aws.ec2, settings.stage)
    store = JsonStore(aws.s3, resources.output_bucket)
    jobs = JobService(aws.s3, store, resources, settings)
    dynamodb = aws.client("dynamodb")
    job_store = JobStore(dynamodb, resources.jobs_table)
    ledger = Ledger(dynamodb, resources.jobs_table)
    tasks = TaskQueues(aws.sqs, settings.stage, resources.queue_url)
    tracker = JobTracker(job_store, ledger, tasks)
    ingestor = Ingestor(aws.s3, queue, pool, store, resources, settings, tracker=tracker)
    failures = WorkQueue(aws.sqs, queue_url_beside(
        resources.queue_url, ingest_failures_queue_name(settings.stage)))
    return Services(
        settings=settings,
        resources=resources,
        queue=queue,
        pool=pool,
        store=store,
        jobs=jobs,
        ingestor=ingestor,
        scaler=Scaler(queue, pool, store, settings, clock=time.time, cloudwatch=aws.cloudwatch,
                      jobs=JobsWatch(job_store, tasks, settings).observe),
        aws=aws,
        failed_ingestions=FailedIngestions(failures, ingestor, store, resources.input_bucket),
        bulk=BulkJobs(aws.s3, job_store, ledger, tasks, jobs, resources.output_bucket,
                      settings),
        job_store=job_store,
        ledger=ledger,
        tasks=tasks,
        lister=Lister(aws.s3, job_store, queue, tasks, settings),
        finisher=Finisher(aws.s3, aws.client("events"), aws.client("ssm"), job_store, ledger,
                          tasks, output_bucket=resources.output_bucket,
                          bus=resources.event_bus, settings=settings),
    )


def reset() -> None:
    """Forget the objects built so far (tests: a new emulator, new settings)."""
    services.cache_clear()
    lambda_settings.cache_clear()
