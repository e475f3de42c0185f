"""Builds the Lambda's objects once per process, on first use (not at import, so a cold
start that only serves ``GET /health`` or ``GET /`` makes no AWS call).

Settings come from the environment (``.chalice/config.json`` sets them per stage);
resource names not set there are resolved once from the stage's naming rule.
Tests call ``reset()`` between emulators.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from skyclass.runtime.aws import AwsClients
from skyclass.runtime.fleet.pool import InstancePool
from skyclass.runtime.fleet.scaler import Scaler
from skyclass.runtime.ingest import Ingestor
from skyclass.runtime.jobs import JobService
from skyclass.runtime.names import StageResources
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
    # Where S3 events wait to be ingested, where the stage can read it (locally).
    ingest_queue: WorkQueue | None
    aws: AwsClients


@functools.cache
def lambda_settings() -> Settings:
    """The Lambda's settings, read from the environment once per container."""
    return Settings.from_env()


@functools.cache
def services() -> Services:
    settings = lambda_settings()
    aws = AwsClients(settings.region)
    resources = StageResources.resolve(settings, aws)
    queue = WorkQueue(aws.sqs, resources.queue_url, resources.dlq_url)
    pool = InstancePool(aws.ec2, settings.stage)
    store = JsonStore(aws.s3, resources.output_bucket)
    ingest_queue = (WorkQueue(aws.sqs, settings.events_queue_url)
                    if settings.events_queue_url else None)
    return Services(
        settings=settings,
        resources=resources,
        queue=queue,
        pool=pool,
        store=store,
        jobs=JobService(aws.s3, store, resources, settings),
        ingestor=Ingestor(aws.s3, queue, pool, store, resources, settings),
        scaler=Scaler(queue, pool, store, settings, clock=time.time, cloudwatch=aws.cloudwatch,
                      ingest_queue=ingest_queue),
        ingest_queue=ingest_queue,
        aws=aws,
    )


def reset() -> None:
    """Forget the objects built so far (tests: a new emulator, new settings)."""
    services.cache_clear()
    lambda_settings.cache_clear()
