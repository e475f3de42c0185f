"""``skyclass bake-ami`` and ``skyclass deploy``: the one-command flows.

deploy = bootstrap, bake the worker AMI if the stage has none (then bootstrap again with
that image, so the launch template and the pool use it even before a listing shows it),
and ``chalice deploy`` with the stage's variables exported in the stage's region; the
API's URL is the answer. Every step is idempotent, so running it again converges
instead of duplicating. Every wait reports progress through the ``Waiter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ami_build.bake import AmiBaker, BakeResult, refuse_where_nothing_boots
from skyclass.operations.deploy.bootstrap import Bootstrapped, bootstrap
from skyclass.operations.deploy.chalice_project import api_url, run_chalice
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.provision.stage import find_worker_ami
from skyclass.operations.waiting import Waiter
from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.names import (
    EVENTS_FUNCTION,
    ingest_failures_queue_name,
    lambda_function_name,
)
from skyclass.runtime.settings import Settings

Report = Callable[[str], None]
# Builders for GPU workers install TensorFlow's CUDA build (instance families g*, p*).
GPU_FAMILIES = ("g", "p")
# Lambda's retries of a failed asynchronous invocation (its default, stated here).
LAMBDA_ASYNC_RETRIES = 2


@dataclass(frozen=True)
class Deployed:
    bootstrapped: Bootstrapped
    bake: BakeResult | None
    api_url: str


def bake_ami(settings: Settings, aws: AwsClients, project_dir: Path, report: Report,
             baker: Callable[..., AmiBaker] = AmiBaker, base_ami: str | None = None,
             waiter: Waiter | None = None) -> BakeResult:
    """Bake a worker AMI for the stage and roll it into its launch template and pool."""
    refuse_where_nothing_boots(aws.ec2.meta.endpoint_url, settings.stage)
    waiter = waiter or Waiter(report)
    first = bootstrap(settings, aws, project_dir, waiter=waiter)
    result = _bake(settings, aws, first, project_dir, baker, base_ami, waiter)
    bootstrap(settings, aws, project_dir, ami_id=result.ami_id, waiter=waiter)
    return result


def _bake(settings: Settings, aws: AwsClients, bootstrapped: Bootstrapped, project_dir: Path,
          baker: Callable[..., AmiBaker], base_ami: str | None, waiter: Waiter
          ) -> BakeResult:
    gpu = "yes" if settings.instance_type.startswith(GPU_FAMILIES) else "no"
    waiter.report(f"baking the worker AMI for stage {settings.stage} (TensorFlow "
                  f"{'GPU' if gpu == 'yes' else 'CPU'} build); this takes several minutes")
    result = baker(aws, bootstrapped.provisioned.resources, waiter).bake(
        project_dir, gpu=gpu, base_ami=base_ami)
    waiter.report(f"AMI {result.ami_id} ({result.name}): builder boot to ready "
                  f"{result.boot_to_ready_s:.0f} s")
    return result


def deploy(settings: Settings, aws: AwsClients, project_dir: Path, report: Report,
           baker: Callable[..., AmiBaker] = AmiBaker, base_ami: str | None = None,
           waiter: Waiter | None = None) -> Deployed:
    if find_worker_ami(aws, settings.stage) is None:
        # Before anything is created: a stage that needs a bake where none can run.
        refuse_where_nothing_boots(aws.ec2.meta.endpoint_url, settings.stage)
    waiter = waiter or Waiter(report)
    bootstrapped = bootstrap(settings, aws, project_dir, waiter=waiter)
    bake = None
    if bootstrapped.provisioned.ami_id is None:
        bake = _bake(settings, aws, bootstrapped, project_dir, baker, base_ami, waiter)
        bootstrapped = bootstrap(settings, aws, project_dir, ami_id=bake.ami_id, waiter=waiter)
    p = bootstrapped.provisioned
    report(f"stage {settings.stage}: buckets {p.resources.input_bucket}, "
           f"{p.resources.output_bucket}; queue {p.resources.queue_url}; AMI {p.ami_id}; "
           f"{len(p.worker_instance_ids)} worker instance(s)")
    report("chalice deploy (Lambdas, API, schedule, S3 subscription)")
    run_chalice(project_dir, ["deploy", "--stage", settings.stage],
                bootstrapped.environment, aws.region, report)
    keep_failed_s3_events(aws, settings.stage, report)
    url = api_url(project_dir, settings.stage)
    if url is None:
        raise DeployError("chalice deploy finished without recording the API's URL in "
                          f".chalice/deployed/{settings.stage}.json")
    key = bootstrapped.environment[c.API_KEY_PARAMETER]
    report(f"clients send the API key in x-api-key (skyclass reads SKYCLASS_API_KEY): "
           f"aws ssm get-parameter --name {key} --with-decryption "
           f"--query Parameter.Value --output text")
    return Deployed(bootstrapped, bake, url)


def keep_failed_s3_events(aws: AwsClients, stage: str, report: Report) -> None:
    """Give the S3-event function its on-failure destination: the stage's ingest-failures
    queue. S3 invokes it asynchronously; Lambda tries an event three times and, without
    a destination, drops it (its image would stay pending for ever). Chalice's config
    has no setting for it, so it is set after each ``chalice deploy``."""
    queue_url = aws.sqs.get_queue_url(QueueName=ingest_failures_queue_name(stage))["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    function = lambda_function_name(stage, EVENTS_FUNCTION)
    aws.client("lambda").put_function_event_invoke_config(
        FunctionName=function, MaximumRetryAttempts=LAMBDA_ASYNC_RETRIES,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}})
    report(f"{function}: S3 events that fail {LAMBDA_ASYNC_RETRIES + 1} tries go to "
           f"{queue_arn}; the scaling tick retries them, then fails their images")
