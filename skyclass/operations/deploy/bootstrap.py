"""``skyclass bootstrap``: everything a deployed stage needs besides Chalice's own part.

The stage's resources come from ``skyclass.operations.provision.stage`` (as a deployed
stage: TLS-only buckets, the worker instance profile, a closed security group, a launch template and
the pool of stopped workers from the stage's AMI) and the API key (SSM), then the
stage's names and least-privilege policies are written into ``.chalice/`` for
``chalice deploy``.
Idempotent: a second run finds everything in place and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skyclass.operations.deploy.chalice_project import lambda_environment, refuse_local, write_stage
from skyclass.operations.provision.api_key import ensure_api_key
from skyclass.operations.provision.iam import StageArns, lambda_policies
from skyclass.operations.provision.stage import Provisioned, provision
from skyclass.operations.waiting import Waiter
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.settings import Settings


@dataclass(frozen=True)
class Bootstrapped:
    provisioned: Provisioned
    environment: dict[str, str]
    config_changed: bool


def bootstrap(settings: Settings, aws: AwsClients, project_dir: Path, *,
              ami_id: str | None = None, waiter: Waiter | None = None) -> Bootstrapped:
    """``ami_id``: the worker image to roll out (a bake just made it), else the stage's
    newest."""
    refuse_local(settings.stage)
    # The stage lives where the clients are: the workers are told that region too.
    settings = settings.replace(region=aws.region)
    provisioned = provision(settings, aws, aws_stage=True, ami_id=ami_id, waiter=waiter)
    account = aws.sts.get_caller_identity()["Account"]
    arns = StageArns.of(provisioned.resources, aws.region, account)
    key_parameter = ensure_api_key(aws, settings.stage)
    environment = lambda_environment(settings, provisioned.resources, key_parameter)
    changed = write_stage(project_dir, settings.stage, environment, lambda_policies(arns))
    return Bootstrapped(provisioned, environment, changed)
