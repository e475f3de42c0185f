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

from ami_build.bake import AmiBaker, BakeResult
from skyclass.operations.deploy.bootstrap import Bootstrapped, bootstrap
from skyclass.operations.deploy.chalice_project import api_url, run_chalice
from skyclass.operations.deploy.errors import DeployError
from skyclass.operations.waiting import Waiter
from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.settings import Settings

Report = Callable[[str], None]
# Builders for GPU workers install TensorFlow's CUDA build (instance families g*, p*).
GPU_FAMILIES = ("g", "p")


@dataclass(frozen=True)
class Deployed:
    bootstrapped: Bootstrapped
    bake: BakeResult | None
    api_url: str


def bake_ami(settings: Settings, aws: AwsClients, project_dir: Path, report: Report,
             baker: Callable[..., AmiBaker] = AmiBaker, base_ami: str | None = None,
             waiter: Waiter | None = None) -> BakeResult:
    """Bake a worker AMI for the stage and roll it into its launch template and pool."""
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
    output = run_chalice(project_dir, ["deploy", "--stage", settings.stage],
                         bootstrapped.environment, aws.region)
    for line in output.strip().splitlines():
        report(f"  {line}")
    url = api_url(project_dir, settings.stage)
    if url is None:
        raise DeployError("chalice deploy finished without recording the API's URL in "
                          f".chalice/deployed/{settings.stage}.json")
    key = bootstrapped.environment[c.API_KEY_PARAMETER]
    report(f"clients send the API key in x-api-key (skyclass reads SKYCLASS_API_KEY): "
           f"aws ssm get-parameter --name {key} --with-decryption "
           f"--query Parameter.Value --output text")
    return Deployed(bootstrapped, bake, url)
