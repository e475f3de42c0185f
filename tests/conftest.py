"""Fixtures shared by every tier.

Functional tests run against moto in-process (``mock_aws``) with a stage provisioned by
the same ``skyclass.operations.provision.stage`` code the local stack and AWS use.
"""

from __future__ import annotations

import os
import tempfile
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

# The IAM judge (tests/support/iam/judge.py): every AWS call a component makes, in this
# process and in every process the tests start (the folder below on PYTHONPATH loads
# it there), is judged against the policy skyclass generates for that component and
# answered as AWS would. A test during which a call was denied, or a missing key was
# answered 403, fails with what to add (``iam_check``). SKYCLASS_IAM_ENFORCE=0 records
# without refusing.
from tests.support.iam.judge import LOG_DIR_ENV, Judge, install  # noqa: E402
from tests.support.paths import REPO_ROOT  # noqa: E402

IAM_LOG_DIR = Path(tempfile.mkdtemp(prefix="skyclass-iam-"))
os.environ[LOG_DIR_ENV] = str(IAM_LOG_DIR)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO_ROOT / "tests" / "support" / "iam_site"),
                os.environ.get("PYTHONPATH")) if p)
IAM = install(Judge(enforce=os.environ.get("SKYCLASS_IAM_ENFORCE", "1") != "0"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "iam_findings_expected: the test provokes IAM findings on purpose "
                   "and takes them itself")


class _ChildFindings:
    """Findings the tests' child processes appended to IAM_LOG_DIR since a mark."""

    def __init__(self) -> None:
        self._offsets = self._sizes()

    @staticmethod
    def _sizes() -> dict[Path, int]:
        return {path: path.stat().st_size for path in IAM_LOG_DIR.glob("*.jsonl")}

    def new(self) -> list[dict]:
        import json

        found = []
        for path in self._sizes():
            with path.open() as lines:
                lines.seek(self._offsets.get(path, 0))
                found += [json.loads(line) for line in lines.read().splitlines()
                          if line.strip()]
        self._offsets = self._sizes()
        return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many calls of each component the IAM judge saw, here and in child processes."""
    import json
    import shutil

    counts: dict[str, int] = {}
    rows = [[*key, n] for key, n in IAM.counts.items()]
    for path in IAM_LOG_DIR.glob("calls-*.json"):
        rows += json.loads(path.read_text())
    for component, _service, _operation, n in rows:
        counts[component] = counts.get(component, 0) + n
    if counts:
        terminalreporter.write_line("IAM judge: calls judged, by component: " + ", ".join(
            f"{component} {n}" for component, n in sorted(counts.items())))
    shutil.rmtree(IAM_LOG_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def iam_check(request: pytest.FixtureRequest) -> Iterator[Judge]:
    """Fail the test during which a component made a call its policy does not allow."""
    mark, children = IAM.mark(), _ChildFindings()
    yield IAM
    if request.node.get_closest_marker("iam_findings_expected"):
        return
    messages = [f.explain() for f in IAM.findings(mark)]
    messages += [f["explain"] for f in children.new()]
    if messages:
        pytest.fail("calls AWS would refuse (IAM judge, tests/support/iam):\n"
                    + "\n".join(sorted(set(messages))), pytrace=False)


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
    """A small CNN trained once per session on generated pictures (testbed/tiny_model.py)."""
    from testbed.tiny_model import train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def local_stack(tiny_model, tmp_path_factory):
    """The real local stack (``skyclass up`` as processes, tests/support/stack.py),
    started once per session and shared by the e2e and browser tiers."""
    from tests.support.stack import (
        IDLE_GRACE,
        LIST_PAGE_SIZE,
        SOURCE_BUCKET,
        TASK_TIMEOUT,
        VISIBILITY_TIMEOUT,
        running_stack,
        tiny_model_env,
    )

    env = {**tiny_model_env(tiny_model), "SKYCLASS_IDLE_GRACE": IDLE_GRACE,
           "SKYCLASS_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT,
           "SKYCLASS_SOURCE_BUCKETS": SOURCE_BUCKET, "SKYCLASS_LIST_PAGE_SIZE": LIST_PAGE_SIZE,
           "SKYCLASS_TASK_TIMEOUT": TASK_TIMEOUT}
    with running_stack(tmp_path_factory.mktemp("skyclass-local"), env, max_workers=2,
                       boot_delay=0.5) as stack:
        yield stack


@pytest.fixture(scope="session")
def keyed_stack(tiny_model, tmp_path_factory):
    """A second local stack, one whose API wants a key (``STACK_API_KEY``), shared by
    the page's and the CLI's tests of the key."""
    from tests.support.stack import STACK_API_KEY, running_stack, tiny_model_env

    env = {**tiny_model_env(tiny_model), "SKYCLASS_API_KEY": STACK_API_KEY}
    with running_stack(tmp_path_factory.mktemp("keyed-stack"), env, max_workers=1) as stack:
        yield stack
