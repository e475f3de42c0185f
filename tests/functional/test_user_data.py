"""What a worker instance launches with is readable by anyone who may describe it (its
user data, the launch template's versions): no secret may ever be there."""

from __future__ import annotations

import base64

from skyclass.operations.provision.stage import provision
from skyclass.operations.provision.workers import ensure_worker_launch
from skyclass.runtime.settings import Settings

SECRET = "s3cr3t-api-key-never-in-user-data"


def _launch_data(aws, template_id: str) -> list[str]:
    versions = aws.ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id)["LaunchTemplateVersions"]
    return [base64.b64decode(v["LaunchTemplateData"]["UserData"]).decode()
            for v in versions]


def test_the_api_key_in_the_operators_shell_never_reaches_a_worker(aws):
    # GIVEN an operator whose shell holds the API key (as for local use, or for the CLI)
    settings = Settings.from_env({"SKYCLASS_API_KEY": SECRET,
                                  "SKYCLASS_API_KEY_PARAMETER": "/skyclass/dev/api-key",
                                  "SKYCLASS_TOP_K": "3"}, stage="dev", max_workers=1)
    stage = provision(settings, aws, register_local_ami=True)
    account = aws.sts.get_caller_identity()["Account"]
    # WHEN the workers' launch template is made from the stage's settings
    launch = ensure_worker_launch(aws, settings, stage.resources, account, stage.ami_id)
    # THEN no version of it carries the key (nor its parameter's name: workers need
    # neither), while the settings a worker does need are there
    [user_data] = _launch_data(aws, launch.launch_template_id)
    assert SECRET not in user_data
    assert "API_KEY" not in user_data
    assert "SKYCLASS_TOP_K=3\n" in user_data
    assert f"SKYCLASS_QUEUE_URL={stage.resources.queue_url}\n" in user_data
