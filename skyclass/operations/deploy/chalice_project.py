"""The Chalice side of a deployed stage: its entries in ``.chalice/`` and the ``chalice``
command itself.

Bootstrap writes the stage's settings into ``.chalice/config.json`` as the stage's
``environment_variables`` (where the Lambdas read them) and one least-privilege policy
file per function (``policy-{stage}-{function}.json``, named in the stage's
``lambda_functions``). The ``local`` stage is never written: ``chalice local`` puts its
stage's variables over the environment, and the local stack decides those names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from skyclass.operations.deploy.errors import DeployError
from skyclass.runtime import constants as c
from skyclass.runtime.names import StageResources
from skyclass.runtime.settings import Settings

LOCAL_STAGE = "local"
# Lambda reserves AWS_REGION and sets it itself; a worker id means nothing to a Lambda;
# a literal API key is a secret, and config.json is no place for one (the deployed
# API reads its key from SSM, named by SKYCLASS_API_KEY_PARAMETER).
NOT_FOR_LAMBDAS = (c.REGION, c.WORKER_ID, c.API_KEY)


def refuse_local(stage: str) -> None:
    if stage == LOCAL_STAGE:
        raise DeployError("the local stage is run by `skyclass up`, not deployed; "
                          "pick another stage name, e.g. --stage dev")


def lambda_environment(settings: Settings, resources: StageResources,
                       api_key_parameter: str) -> dict[str, str]:
    """The stage's settings as the Lambdas' environment variables: its names, the pool
    size, and every setting the operator chose (by variable or option) over the
    default, so the Lambdas scale and validate as the operator configured."""
    env = settings.as_env()
    chosen = {name: value for name, value in settings.as_env(only_configured=True).items()
              if name not in NOT_FOR_LAMBDAS}
    return {
        **chosen,
        c.STAGE: resources.stage,
        c.INPUT_BUCKET: resources.input_bucket,
        c.OUTPUT_BUCKET: resources.output_bucket,
        c.QUEUE_URL: resources.queue_url,
        c.DLQ_URL: resources.dlq_url,
        c.MAX_WORKERS: env[c.MAX_WORKERS],
        c.MIN_WORKERS: env[c.MIN_WORKERS],
        c.API_KEY_PARAMETER: api_key_parameter,
    }


def policy_file_name(stage: str, function: str) -> str:
    return f"policy-{stage}-{function}.json"


def write_stage(project_dir: Path, stage: str, environment: Mapping[str, str],
                policies: Mapping[str, dict[str, Any]]) -> bool:
    """Write the stage's variables and per-function policy files; returns whether
    anything changed (a second bootstrap with the same names changes nothing)."""
    refuse_local(stage)
    chalice_dir = project_dir / ".chalice"
    config_path = chalice_dir / "config.json"
    config = _read_config(config_path)
    stage_config = config.setdefault("stages", {}).setdefault(stage, {})
    before = json.dumps(stage_config, sort_keys=True)
    stage_config["environment_variables"] = {
        **stage_config.get("environment_variables", {}), **environment}
    stage_config.setdefault("tags", {c.TAG_STAGE: stage})
    functions = stage_config.setdefault("lambda_functions", {})
    for function in policies:
        functions.setdefault(function, {})["iam_policy_file"] = policy_file_name(stage, function)
    changed = json.dumps(stage_config, sort_keys=True) != before
    if changed:
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    for function, document in policies.items():
        changed |= _write_if_changed(chalice_dir / policy_file_name(stage, function),
                                     json.dumps(document, indent=2) + "\n")
    return changed


def forget_stage(project_dir: Path, stage: str) -> None:
    """Undo ``write_stage``: the stage keeps only its name and tags in config.json."""
    refuse_local(stage)
    chalice_dir = project_dir / ".chalice"
    config_path = chalice_dir / "config.json"
    config = _read_config(config_path)
    stage_config = config.get("stages", {}).get(stage)
    if stage_config is None:
        return
    for function, function_config in stage_config.pop("lambda_functions", {}).items():
        policy = function_config.pop("iam_policy_file", None)
        if policy:
            (chalice_dir / policy).unlink(missing_ok=True)
        if function_config:
            stage_config.setdefault("lambda_functions", {})[function] = function_config
    stage_config["environment_variables"] = {c.STAGE: stage}
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def chalice_env(environment: Mapping[str, str], region: str) -> dict[str, str]:
    """The ``chalice`` process's environment: ours, the stage's variables, and the stage's
    region where Chalice (botocore) looks for it, so the Lambdas, the API and the S3
    subscription land where bootstrap put the rest, whatever the profile says."""
    return {**os.environ, **environment, c.REGION: region, c.DEFAULT_REGION: region}


def run_chalice(project_dir: Path, args: list[str], environment: Mapping[str, str],
                region: str, report: Callable[[str], None] | None = None) -> str:
    """Run ``chalice ARGS`` in the project with the stage's variables exported (the S3
    subscription is named at import time from ``SKYCLASS_INPUT_BUCKET``) in ``region``;
    each line it prints goes to ``report`` as it comes (a deploy takes a minute or
    more). Returns its output, or raises with the end of it."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
         *args],
        cwd=project_dir, env=chalice_env(environment, region),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if report is not None:
            report(f"  {line.rstrip()}")
    output = "".join(lines)
    if process.wait() != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise DeployError(f"`chalice {' '.join(args)}` failed:\n{tail}")
    return output


def deployed_resources(project_dir: Path, stage: str) -> dict[str, dict[str, Any]] | None:
    """What ``chalice deploy`` recorded for the stage, by resource name; None if the stage
    was not deployed from this project."""
    path = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not path.is_file():
        return None
    return {r["name"]: r for r in json.loads(path.read_text()).get("resources", [])}


def api_url(project_dir: Path, stage: str) -> str | None:
    resources = deployed_resources(project_dir, stage) or {}
    return resources.get("rest_api", {}).get("rest_api_url")


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DeployError(f"no {path}: run from the skyclass checkout (where app.py is)")
    return json.loads(path.read_text())


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
