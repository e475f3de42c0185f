"""The IAM judge: every AWS call a skyclass component makes, judged against the policy
skyclass generates for that component, and answered as AWS would answer it.

It wraps botocore's one door for API calls (``BaseClient._make_api_call``) and its
presigners (a presigned URL or POST is the signer's call, made later by whoever holds
it), so it sees each call with its operation and parameters before it is sent:

* the component that makes it (tests/support/iam/components.py), or none (the tests
  themselves, the local stand-ins for AWS services): then the call passes untouched;
* the authorizations it needs (tests/support/iam/actions.py): action, resource ARN and
  the condition keys the request carries (resource tags are looked up in the emulator);
* the verdict of the component's generated policy (tests/support/iam/evaluator.py).

A denied call is not sent: the caller gets the AccessDenied (UnauthorizedOperation for
EC2) that AWS would return, so the product's handling of it runs. A GET or HEAD of a
missing S3 key by a caller that may not list the key's prefix gets 403 instead of the
emulator's 404, as from S3. Every judged call is recorded; a denial, a masked 404 or a
call whose authorization is unknown is a finding, and a finding fails the test during
which it happened (tests/conftest.py), with a message naming the component, the action,
the resource and the statement to add. In the end-to-end tier the stack's processes
load the judge at start-up (tests/support/iam_site/sitecustomize.py) and append their
findings to files the tests read.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import botocore.client
import botocore.signers
from botocore.exceptions import ClientError

from tests.support.iam import actions
from tests.support.iam.actions import Call, Lookup, Need, UnmappedCallError
from tests.support.iam.components import (
    Stage,
    component_of_stack,
    inherit_in_threads,
    policy_of,
    policy_source,
    without,
)
from tests.support.iam.evaluator import evaluate

LOG_DIR_ENV = "SKYCLASS_IAM_LOG_DIR"
# "COMPONENT:ACTION": judge against skyclass's policies less that one action (to see
# what fails without it; tests/functional/test_iam_check.py).
WITHOUT_ENV = "SKYCLASS_IAM_WITHOUT"
ACCOUNT_ENV = "SKYCLASS_IAM_ACCOUNT"
DEFAULT_ACCOUNT = "123456789012"  # moto's
COUNTS_EVERY_S = 2.0
DENIED = "denied"
MASKED_404 = "404 answered as 403"
UNMAPPED = "unmapped"
ALLOWED = "allowed"

# What each service calls the refusal.
_DENIAL_CODES = {"ec2": "UnauthorizedOperation", "ssm": "AccessDeniedException",
                 "logs": "AccessDeniedException", "lambda": "AccessDeniedException",
                 "events": "AccessDeniedException", "apigateway": "AccessDeniedException"}
_STAGE_PATTERNS = [re.compile(p) for p in (
    r"^arn:aws:s3:::skyclass-(?P<stage>.+)-(?:input|output)-\d{12}(?:/|$)",
    r"^arn:aws:sqs:[^:]*:\d*:skyclass-(?P<stage>.+?)-(?:work|work-dlq|s3-events|list|finish"
    r"|tasks-dlq|ingest-failures)$",
    r"^arn:aws:ssm:[^:]*:\d*:parameter/skyclass/(?P<stage>[^/]+)/",
    r"^arn:aws:iam::\d*:(?:role|instance-profile)/skyclass-(?P<stage>.+)"
    r"-(?:worker|api_handler|on_s3_event|scale|on_list_task|on_finish_task)$",
    r"^arn:aws:logs:[^:]*:\d*:log-group:/aws/lambda/skyclass-(?P<stage>.+?)"
    r"(?:-on_s3_event|-scale|-on_list_task|-on_finish_task)?(?::\*)?$",
    r"^arn:aws:logs:[^:]*:\d*:log-group:/skyclass/(?P<stage>[^/]+)/",
    r"^arn:aws:lambda:[^:]*:\d*:function:skyclass-(?P<stage>.+?)"
    r"(?:-on_s3_event|-scale|-on_list_task|-on_finish_task)?$",
    r"^arn:aws:events:[^:]*:\d*:rule/skyclass-(?P<stage>.+)-scale-event$",
    # Bulk jobs: the jobs table (and its index), the stage's event bus and its rules.
    r"^arn:aws:dynamodb:[^:]*:\d*:table/skyclass-(?P<stage>.+)-jobs(?:/|$)",
    r"^arn:aws:events:[^:]*:\d*:(?:event-bus|rule)/skyclass-(?P<stage>[^/]+)(?:/|$)",
)]
_STAGE_TAG = "skyclass:stage"


@dataclass
class Verdict:
    """One judged call."""

    component: str
    service: str
    operation: str
    stage: str
    outcome: str  # ALLOWED, DENIED, MASKED_404 or UNMAPPED
    needs: list[dict[str, Any]] = field(default_factory=list)
    denied: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""
    # A GET/HEAD its caller may not list the prefix of: a missing key answers 403.
    masks_missing: bool = False
    # For a GET/HEAD: the listing S3 checks before it says a key is missing.
    listing: dict[str, Any] | None = None
    pid: int = field(default_factory=os.getpid)
    taken: bool = False  # a test that provoked it on purpose has taken it

    @property
    def is_finding(self) -> bool:
        return self.outcome != ALLOWED and not self.taken

    def explain(self) -> str:
        """The finding as a person fixes it: who, what, on what, and what to add."""
        where = policy_source(self.component)
        if self.outcome == UNMAPPED:
            return (f"{self.component} called {self.service} {self.operation}, whose IAM "
                    f"authorization tests/support/iam/actions.py does not know: "
                    f"{self.detail}; add it there")
        lines = []
        for need in self.denied:
            statement = {"Effect": "Allow", "Action": need["action"],
                         "Resource": need["resource"]}
            carried = {k: v for k, v in need["context"].items()
                       if not k.startswith("aws:ResourceTag/") or k.endswith(_STAGE_TAG)
                       or "skyclass:" in k}
            condition = f"; the request carries {json.dumps(carried)}" if carried else ""
            if self.outcome == MASKED_404:
                lines.append(
                    f"{self.component} read a missing key ({self.operation}) and AWS would "
                    f"answer 403, not 404, because it may not {need['action']} on "
                    f"{need['resource']}{condition}: add to {where} "
                    f"{json.dumps(statement)} with a StringLike s3:prefix condition for "
                    f"the key's prefix (or treat 403 as absent, in "
                    f"skyclass.runtime.store.is_not_found)")
            else:
                lines.append(
                    f"{self.component} may not {need['action']} on {need['resource']} "
                    f"({self.service} {self.operation}, stage {self.stage}){condition}: "
                    f"no statement of {where} allows it; add {json.dumps(statement)}"
                    + (" with a condition on those keys" if condition else ""))
        return "\n".join(lines)


class _EmulatorLookup(Lookup):
    """Tags and launch templates, read from the emulator with the caller's own client
    (unjudged: AWS computes these itself)."""

    def __init__(self, client: Any, judge: Judge) -> None:
        self._client = client
        self._judge = judge

    def ec2_tags(self, resource_type: str, resource_id: str) -> dict[str, str]:
        describe = {
            "instance": ("describe_instances", "InstanceIds",
                         lambda r: [i for x in r["Reservations"] for i in x["Instances"]]),
            "image": ("describe_images", "ImageIds", lambda r: r["Images"]),
            "launch-template": ("describe_launch_templates", "LaunchTemplateIds",
                                lambda r: r["LaunchTemplates"]),
            "security-group": ("describe_security_groups", "GroupIds",
                               lambda r: r["SecurityGroups"]),
            "snapshot": ("describe_snapshots", "SnapshotIds", lambda r: r["Snapshots"]),
        }.get(resource_type)
        if describe is None or resource_id == "*" or self._client.meta.service_model \
                .service_name != "ec2":
            return {}
        method, param, items = describe
        with self._judge.unjudged():
            try:
                found = items(getattr(self._client, method)(**{param: [resource_id]}))
            except ClientError:
                return {}
        tags = found[0].get("Tags", []) if found else []
        return {t["Key"]: t["Value"] for t in tags}

    def launch_template(self, template: Mapping[str, Any]) -> Mapping[str, Any]:
        selector = {k: v for k, v in template.items()
                    if k in ("LaunchTemplateId", "LaunchTemplateName")}
        with self._judge.unjudged():
            try:
                versions = self._client.describe_launch_template_versions(
                    **selector, Versions=[template.get("Version", "$Default")])
            except ClientError:
                return {}
        found = versions["LaunchTemplateVersions"]
        return found[0]["LaunchTemplateData"] if found else {}

    def function_of_mapping(self, uuid: str) -> str | None:
        if self._client.meta.service_model.service_name != "lambda":
            return None
        with self._judge.unjudged():
            try:
                return self._client.get_event_source_mapping(UUID=uuid)["FunctionArn"]
            except ClientError:
                return None

    def role_of_profile(self, profile: Mapping[str, Any]) -> str | None:
        name = profile.get("Name") or (profile.get("Arn") or "").rsplit("/", 1)[-1]
        if not name:
            return None
        import boto3

        # Where the caller's clients go (AWS_ENDPOINT_URL, or moto in-process).
        iam = boto3.client("iam", region_name=self._client.meta.region_name)
        with self._judge.unjudged():
            try:
                roles = iam.get_instance_profile(InstanceProfileName=name)[
                    "InstanceProfile"]["Roles"]
            except ClientError:
                return None
        return roles[0]["RoleName"] if roles else None


class Judge:
    """Judges the calls of this process; keeps its verdicts (and, with ``log_dir``,
    appends its findings to ``log_dir/<pid>.jsonl`` for the tests to read)."""

    def __init__(self, log_dir: Path | None = None, account: str = DEFAULT_ACCOUNT,
                 enforce: bool = True) -> None:
        """``enforce``: answer a denied call as AWS would (else only record it)."""
        without_action = os.environ.get(WITHOUT_ENV)
        self.verdicts: list[Verdict] = []
        # How many calls of each (component, service, operation) were judged.
        self.counts: dict[tuple[str, str, str], int] = {}
        self._counts_written = 0.0
        self.enforce = enforce
        self._log_dir = log_dir
        self._account = account
        self._local = threading.local()
        self._lock = threading.Lock()
        self._policies: Callable[[str, Any], dict[str, Any]] | None = None
        if without_action:
            component, _, action = without_action.partition(":")
            self._policies = without(component, action)
        self._last_stage: str | None = None

    # ---- what tests use ---------------------------------------------------------------

    def findings(self, since: int = 0) -> list[Verdict]:
        with self._lock:
            return [v for v in self.verdicts[since:] if v.is_finding]

    def mark(self) -> int:
        with self._lock:
            return len(self.verdicts)

    def take(self, since: int = 0) -> list[Verdict]:
        """The findings since ``since``, taken by a test that provoked them on purpose
        (they no longer fail it)."""
        found = self.findings(since)
        for verdict in found:
            verdict.taken = True
        return found

    def judged(self, since: int = 0) -> list[Verdict]:
        with self._lock:
            return list(self.verdicts[since:])

    @contextlib.contextmanager
    def generating(self, policies: Callable[[str, Any], dict[str, Any]]) -> Iterator[None]:
        """Judge against ``policies(component, StageArns)`` instead of skyclass's."""
        before, self._policies = self._policies, policies
        try:
            yield
        finally:
            self._policies = before

    @contextlib.contextmanager
    def unjudged(self) -> Iterator[None]:
        before = getattr(self._local, "off", False)
        self._local.off = True
        try:
            yield
        finally:
            self._local.off = before

    # ---- the wrapped calls --------------------------------------------------------------

    def judge(self, client: Any, operation: str, params: Mapping[str, Any]
              ) -> Verdict | None:
        if getattr(self._local, "off", False):
            return None
        component = component_of_stack()
        if component is None:
            return None
        service = client.meta.service_model.service_name
        call = Call(service, operation, params, client.meta.region_name, self._account,
                    _http(client, operation, params))
        with self.unjudged():
            try:
                needs = actions.needs(call, _EmulatorLookup(client, self))
            except UnmappedCallError as exc:
                return self._keep(Verdict(component, service, operation, "?", UNMAPPED,
                                          detail=str(exc)))
            stage = self._stage_of(needs)
            policy = policy_of(component, stage, self._policies)
            denied = [n for n in needs
                      if not evaluate(policy, n.action, n.resource, n.context).allowed]
            verdict = Verdict(component, service, operation, stage.name,
                              DENIED if denied else ALLOWED,
                              needs=[asdict(n) for n in needs],
                              denied=[asdict(n) for n in denied])
            if not denied and service == "s3" and operation in ("GetObject", "HeadObject"):
                listing = actions.listing_of_key(params["Bucket"], params["Key"])
                verdict.listing = asdict(listing)
                if not evaluate(policy, listing.action, listing.resource,
                                listing.context).allowed:
                    verdict.masks_missing = True
                    verdict.denied = [verdict.listing]
        return self._keep(verdict)

    def _stage_of(self, needs: list[Need]) -> Stage:
        """The stage whose policy applies: the one the call's resources belong to (by
        their names or their skyclass:stage tag), else the stage last seen here."""
        name = None
        for need in needs:
            tagged = (need.context.get(f"aws:ResourceTag/{_STAGE_TAG}")
                      or need.context.get(f"aws:RequestTag/{_STAGE_TAG}"))
            match = next((m for p in _STAGE_PATTERNS if (m := p.match(need.resource))), None)
            name = tagged or (match and match.group("stage"))
            if name:
                break
        name = name or os.environ.get("SKYCLASS_STAGE") or self._last_stage or "local"
        self._last_stage = name
        region = next((n.resource.split(":")[3] for n in needs
                       if n.resource.count(":") > 3 and n.resource.split(":")[3]), None)
        return Stage(name, region or os.environ.get("AWS_REGION", "us-east-1"),
                     self._account)

    def _keep(self, verdict: Verdict) -> Verdict:
        with self._lock:
            self.verdicts.append(verdict)
            self.counts[(verdict.component, verdict.service, verdict.operation)] = (
                self.counts.get((verdict.component, verdict.service, verdict.operation), 0)
                + 1)
        if verdict.is_finding:
            self.log(verdict)
        if time.monotonic() - self._counts_written > COUNTS_EVERY_S:
            self.write_counts()  # now and then: a process ended by a signal runs no atexit
        return verdict

    def write_counts(self) -> None:
        """Append what this process judged to ``log_dir/calls-<pid>.json`` (at exit)."""
        self._counts_written = time.monotonic()
        if self._log_dir is not None and self.counts:
            with self._lock:
                rows = [[*key, n] for key, n in sorted(self.counts.items())]
            (self._log_dir / f"calls-{os.getpid()}.json").write_text(json.dumps(rows))

    def missing_key(self, verdict: Verdict) -> bool:
        """The emulator said 404 to a GET or HEAD: AWS says so only to a caller that may
        list the key (which then needed that permission); to another it says 403."""
        if verdict.listing is None:
            return False
        if not verdict.masks_missing:
            verdict.needs.append(verdict.listing)
            return False
        verdict.outcome = MASKED_404
        self.log(verdict)
        return self.enforce

    def log(self, verdict: Verdict) -> None:
        if self._log_dir is not None:
            line = json.dumps({**asdict(verdict), "explain": verdict.explain()})
            with (self._log_dir / f"{os.getpid()}.jsonl").open("a") as out:
                out.write(line + "\n")


def _http(client: Any, operation: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """The operation's HTTP method and request path with its URI parameters filled."""
    model = client.meta.service_model.operation_model(operation)
    uri = model.http.get("requestUri", "").split("?", 1)[0]
    members = model.input_shape.members if model.input_shape else {}
    by_location = {shape.serialization.get("name", name): params.get(name, "*")
                   for name, shape in members.items()
                   if shape.serialization.get("location") == "uri"}
    path = re.sub(r"\{(\w+)\+?\}", lambda m: str(by_location.get(m.group(1), "*")), uri)
    return model.http.get("method", ""), path


def access_denied(client: Any, operation: str, verdict: Verdict) -> ClientError:
    """The error AWS answers a call its caller may not make."""
    service = client.meta.service_model.service_name
    need = verdict.denied[0]
    code = "403" if operation == "HeadObject" else _DENIAL_CODES.get(service, "AccessDenied")
    message = (f"User: arn:aws:sts::{need['resource'].split(':')[4] or DEFAULT_ACCOUNT}:"
               f"assumed-role/{verdict.component}/skyclass is not authorized to perform: "
               f"{need['action']} on resource: {need['resource']} because no "
               f"identity-based policy allows the {need['action']} action")
    parsed = {"Error": {"Code": code, "Message": message},
              "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}}}
    return client.exceptions.from_code(code)(parsed, operation)


_JUDGE: Judge | None = None


def installed() -> Judge | None:
    return _JUDGE


def install(judge: Judge) -> Judge:
    """Judge every call made from now on in this process (once per process)."""
    global _JUDGE
    if _JUDGE is not None:
        return _JUDGE
    _JUDGE = judge
    atexit.register(judge.write_counts)
    inherit_in_threads()
    _wrap_api_calls()
    _wrap_presigners()
    return judge


def _wrap_api_calls() -> None:
    make_api_call = botocore.client.BaseClient._make_api_call

    @functools.wraps(make_api_call)
    def judged(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
        verdict = _JUDGE.judge(self, operation_name, api_params) if _JUDGE else None
        if verdict is not None and verdict.outcome == DENIED and _JUDGE.enforce:
            raise access_denied(self, operation_name, verdict)
        try:
            return make_api_call(self, operation_name, api_params)
        except ClientError as exc:
            missing = exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey")
            if verdict is not None and missing and _JUDGE.missing_key(verdict):
                raise access_denied(self, operation_name, verdict) from None
            raise

    botocore.client.BaseClient._make_api_call = judged


def _wrap_presigners() -> None:
    """A presigned URL or POST is a call by its signer, made when it is used."""
    presign_url = botocore.signers.generate_presigned_url
    presign_post = botocore.signers.generate_presigned_post

    @functools.wraps(presign_url)
    def judged_url(self: Any, ClientMethod: str, Params: Any = None,  # noqa: N803
                   *args: Any, **kwargs: Any) -> Any:
        operation = self._PY_TO_OP_NAME.get(ClientMethod, ClientMethod)
        _judge_presigned(self, operation, Params or {})
        return presign_url(self, ClientMethod, Params, *args, **kwargs)

    @functools.wraps(presign_post)
    def judged_post(self: Any, Bucket: str, Key: str, *args: Any,  # noqa: N803
                    **kwargs: Any) -> Any:
        _judge_presigned(self, "PutObject", {"Bucket": Bucket, "Key": Key})
        return presign_post(self, Bucket, Key, *args, **kwargs)

    botocore.signers.generate_presigned_url = judged_url
    botocore.signers.generate_presigned_post = judged_post


def _judge_presigned(client: Any, operation: str, params: Mapping[str, Any]) -> None:
    # The holder of the URL gets AWS's 403 when it is used; the signer's test fails.
    if _JUDGE is not None:
        _JUDGE.judge(client, operation, params)
