"""Who makes an AWS call, and under which policy.

On AWS each component runs with its own role: the three Lambda functions, the worker
instances, and the operator who runs bootstrap, deploy, bake and teardown (and, inside
deploy and teardown, ``chalice deploy``/``chalice delete``). Here they share processes
(the functional tier runs everything in pytest's; the local stack's Lambda host runs
two functions), so a call is attributed by the code that makes it: the outermost frame
of the calling stack that belongs to a component's module decides (the scaling function
that retries an S3 event through the ingest code is still the scaling function),
counting only frames inside the first frame of the tests or of a local stand-in for an
AWS service (the S3-event bridge, the Lambda host, the instance runner). A call with no
component frame there is not a component's and is not judged: the test that seeds a
result, or plays the AMI builder, is not the product. Threads
started through a ThreadPoolExecutor inherit the submitter's component
(``inherit_in_threads``), so a Lambda's parallel reads stay its own.

The policy of each component is the one skyclass generates for the stage
(skyclass.operations.provision.iam), for the stage the call's resources belong to.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyclass.runtime.names import (
    API_FUNCTION,
    EVENTS_FUNCTION,
    FINISH_FUNCTION,
    LIST_FUNCTION,
    SCALE_FUNCTION,
    StageResources,
    bucket_name,
    dlq_name,
    queue_name,
)

if TYPE_CHECKING:  # imported when first needed: the judge runs inside processes whose
    # layering tests/functional/test_layers.py checks (no operations module at start-up)
    from skyclass.operations.provision.iam import StageArns

REPO = Path(__file__).resolve().parents[3]
WORKER = "worker"
BAKE = "bake"
BOOTSTRAP = "bootstrap"
DEPLOY = "deploy"
TEARDOWN = "teardown"
CHALICE = "chalice"
OPERATOR = (BOOTSTRAP, DEPLOY, BAKE, TEARDOWN, CHALICE)
COMPONENTS = (API_FUNCTION, EVENTS_FUNCTION, SCALE_FUNCTION, LIST_FUNCTION, FINISH_FUNCTION,
              WORKER, *OPERATOR)

_SEP = os.sep
# (path fragment, component): a frame whose file contains the fragment is the component's.
_REPO_MODULES = (
    ("skyclass/runtime/fleet/scaler.py", SCALE_FUNCTION),
    ("chalice_app/scaling.py", SCALE_FUNCTION),
    ("skyclass/runtime/ingest.py", EVENTS_FUNCTION),
    ("chalice_app/events.py", EVENTS_FUNCTION),
    ("skyclass/runtime/jobs.py", API_FUNCTION),
    ("skyclass/runtime/fleet/status.py", API_FUNCTION),
    ("chalice_app/api.py", API_FUNCTION),
    ("chalice_app/auth.py", API_FUNCTION),
    # Bulk jobs: the API's routes, and the two task Lambdas by what they run (their
    # handlers, chalice_app/tasks.py, are one module for both).
    ("chalice_app/bulk.py", API_FUNCTION),
    ("skyclass/runtime/bulk/service.py", API_FUNCTION),
    ("skyclass/runtime/bulk/lister.py", LIST_FUNCTION),
    ("skyclass/runtime/bulk/finisher.py", FINISH_FUNCTION),
    ("ec2_worker/", WORKER),
    ("ami_build/bake.py", BAKE),
    ("skyclass/operations/deploy/bootstrap.py", BOOTSTRAP),
    ("skyclass/operations/deploy/deployer.py", DEPLOY),
    ("skyclass/operations/deploy/teardown.py", TEARDOWN),
)
MARKERS = tuple((str(REPO / fragment), component) for fragment, component in _REPO_MODULES)
# Chalice's own deployer (chalice deploy / chalice delete, run by deploy and teardown).
CHALICE_MARKERS = (f"{_SEP}chalice{_SEP}deploy{_SEP}", f"{_SEP}chalice{_SEP}awsclient.py")
# Code that is not a component: the tests, and the local stand-ins for AWS services.
NOT_A_COMPONENT = (str(REPO / "tests") + _SEP, str(REPO / "bench") + _SEP,
                   str(REPO / "skyclass/operations/local") + _SEP)
_SKIPPED = (str(Path(__file__).parent) + _SEP,)

_inherited = threading.local()


def component_of_stack(frame: Any = None) -> str | None:
    """The component whose code made the call now on the stack, or None."""
    frame = frame or sys._getframe(1)
    found = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIPPED):
            if filename.startswith(NOT_A_COMPONENT):
                break
            for marker, component in MARKERS:
                if filename.startswith(marker):
                    found = component
            if any(marker in filename for marker in CHALICE_MARKERS):
                found = CHALICE
        frame = frame.f_back
    return found or getattr(_inherited, "component", None)


def inherit_in_threads() -> None:
    """Have work submitted to a ThreadPoolExecutor run as the submitter's component."""
    submit = concurrent.futures.ThreadPoolExecutor.submit
    if getattr(submit, "_inherits_component", False):
        return

    @functools.wraps(submit)
    def submit_as_caller(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any):
        component = component_of_stack(sys._getframe(1))
        if component is None:
            return submit(self, fn, *args, **kwargs)

        def run(*a: Any, **kw: Any) -> Any:
            before = getattr(_inherited, "component", None)
            _inherited.component = component
            try:
                return fn(*a, **kw)
            finally:
                _inherited.component = before

        return submit(self, run, *args, **kwargs)

    submit_as_caller._inherits_component = True  # type: ignore[attr-defined]
    concurrent.futures.ThreadPoolExecutor.submit = submit_as_caller  # type: ignore[method-assign]


@dataclass(frozen=True)
class Stage:
    name: str
    region: str
    account: str

    def arns(self) -> StageArns:
        from skyclass.operations.provision.iam import StageArns

        resources = StageResources(
            self.name, bucket_name(self.name, "input", self.account),
            bucket_name(self.name, "output", self.account),
            f"https://sqs.{self.region}.amazonaws.com/{self.account}/{queue_name(self.name)}",
            f"https://sqs.{self.region}.amazonaws.com/{self.account}/{dlq_name(self.name)}",
            # The buckets the stage reads in place, as bootstrap grants them: those the
            # process is configured with (the stack's processes, or a test's monkeypatch).
            source_buckets=_source_buckets())
        return StageArns.of(resources, self.region, self.account)


def _source_buckets() -> tuple[str, ...]:
    from skyclass.runtime.constants import SOURCE_BUCKETS

    return tuple(b.strip() for b in os.environ.get(SOURCE_BUCKETS, "").split(",") if b.strip())


def policy_of(component: str, stage: Stage,
              policies: Callable[[str, StageArns], dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """The policy document skyclass generates for ``component`` of ``stage``
    (``policies`` stands in for the generator, so a test can take an action away)."""
    return (policies or generated_policy)(component, stage.arns())


def generated_policy(component: str, arns: StageArns) -> dict[str, Any]:
    from skyclass.operations.provision.iam import lambda_policies, operator_policy, worker_policy

    if component == WORKER:
        return worker_policy(arns)
    if component in OPERATOR:
        return operator_policy(arns)
    return lambda_policies(arns)[component]


def policy_source(component: str) -> str:
    """Where the statement to add belongs, for the failure message."""
    where = "skyclass/operations/provision/iam.py"
    if component == WORKER:
        return f"worker_policy() in {where}"
    if component in OPERATOR:
        return f"operator_policy() in {where}"
    return f"lambda_policies()[{component!r}] in {where}"


def without(component: str, action: str) -> Callable[[str, StageArns], dict[str, Any]]:
    """skyclass's policies, but ``component``'s without ``action`` (for the tests that
    show the check fails when a policy lacks one action)."""

    def policies(who: str, arns: StageArns) -> dict[str, Any]:
        document = generated_policy(who, arns)
        if who != component and not (who in OPERATOR and component in OPERATOR):
            return document
        statements = []
        for statement in document["Statement"]:
            actions = [a for a in statement["Action"] if a != action]
            if actions:
                statements.append({**statement, "Action": actions})
        return {**document, "Statement": statements}

    return policies
