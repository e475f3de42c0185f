"""Fixtures shared by every tier.

Functional tests run against moto in-process (``mock_aws``) with a stage provisioned by
the same ``skyclass.operations.provision.stage`` code the local stack and AWS use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# No test may reach a real AWS account, whatever the developer's shell holds.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings():
    from skyclass.runtime.settings import Settings

    return Settings.from_env({}, max_workers=3)


@pytest.fixture
def aws() -> Iterator[object]:
    """A fresh in-process emulator and a client factory bound to it."""
    from moto import mock_aws

    from skyclass.runtime.aws import AwsClients

    with mock_aws():
        yield AwsClients()


@pytest.fixture
def stage(settings, aws):
    """A provisioned local stage: buckets, queues, S3-event queue, stand-in AMI, pool."""
    from skyclass.operations.provision.stage import provision

    return provision(settings, aws, s3_events_to_queue=True, register_local_ami=True)


@pytest.fixture
def output_dir(request) -> Path:
    """A folder under test-output/ for artefacts a person may want to look at."""
    path = REPO_ROOT / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A small CNN trained once per session on generated shapes (tests/support/tiny_model.py)."""
    from tests.support.tiny_model import train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def local_stack(tiny_model, tmp_path_factory):
    """The real local stack (``skyclass up`` as processes, tests/e2e/conftest.py), started
    once per session and shared by the e2e and browser tiers."""
    from tests.e2e.conftest import running_stack

    with running_stack(tiny_model, tmp_path_factory.mktemp("skyclass-local")) as stack:
        yield stack
