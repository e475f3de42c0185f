"""The Lambda deployment package: built by Chalice, imported the way Lambda imports it.

Chalice zips ``app.py``, ``chalicelib/`` and ``vendor/`` (following symlinks), plus
requirements.txt's packages; the Lambda Python runtime adds boto3 and botocore. This
test builds the package, unzips it and, in a fresh interpreter that sees only the zip
and boto3/botocore with their dependencies, imports the app and every handler. No
TensorFlow, Pillow or numpy can be imported there, so the package provably needs none.

It packages with ``--pkg-format terraform``: Chalice's CloudFormation format refuses
apps with ``on_s3_event`` (CloudFormation cannot add notifications to an existing
bucket); the zip is the same either way. The CloudFormation is linted all the same, with
cfn-lint, from a variant of app.py in which the S3-event handler is a plain Lambda
function: everything else (the functions, their roles and policies, the API, the
schedule) is packaged as it is, and the one resource left out, the subscription, is
checked in its Terraform form here. The package is built as a team deploying
through CI would build it: in a project bootstrapped for the stage (its names and
per-function policies in .chalice/), and the Terraform it writes must hold the
handlers, the schedule, the S3 subscription and those policies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest

from skyclass.operations.deploy.chalice_project import write_stage
from skyclass.operations.provision.iam import StageArns, lambda_policies
from skyclass.runtime.constants import INPUT_BUCKET
from skyclass.runtime.names import StageResources
from tests.support.chalice_project import chalice_project

# What the Lambda Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"]
FORBIDDEN = ["tensorflow", "keras", "PIL", "numpy"]
STAGE = "ci"
ACCOUNT = "111122223333"
BUCKET = f"skyclass-{STAGE}-input-{ACCOUNT}"
RESOURCES = StageResources(
    STAGE, BUCKET, f"skyclass-{STAGE}-output-{ACCOUNT}",
    f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/skyclass-{STAGE}-work",
    f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/skyclass-{STAGE}-work-dlq")
POLICIES = lambda_policies(StageArns.of(RESOURCES, "us-east-1", ACCOUNT))

PROBE = """
import importlib, json, sys

class Forbidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"the Lambda package must not need {name}")

sys.path[:0] = [PACKAGE, RUNTIME]
sys.meta_path.insert(0, Forbidden())
import app
handlers = {}
for handler in HANDLERS:
    module, _, attr = handler.rpartition(".")
    handlers[handler] = callable(getattr(importlib.import_module(module), attr))
import chalice_app.api as api
print(json.dumps({
    "routes": {path: sorted(entries) for path, entries in app.app.routes.items()},
    "handlers": handlers,
    "views": [callable(getattr(api, n)) for n in
              ("health", "create_job", "get_job", "classify", "get_image", "fleet", "index")],
    "app_from": app.__file__,
    "skyclass_from": importlib.import_module("skyclass").__file__,
    "loaded": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


def build_package(out: Path, project: Path) -> Path:
    """Bootstrap's .chalice/ entries for the stage, then `chalice package` as CI runs it."""
    write_stage(project, STAGE, {INPUT_BUCKET: BUCKET}, POLICIES)
    env = {**os.environ, INPUT_BUCKET: BUCKET, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--pkg-format", "terraform",
         "--stage", STAGE, str(out)],
        cwd=project, env=env, check=True, capture_output=True, timeout=300,
    )
    return out


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("package")
    return build_package(root / "out", chalice_project(root / "project"))


# app.py as it is, but the S3-event handler registered as a plain function.
APP_FOR_CLOUDFORMATION = '''from chalice import Chalice

from chalice_app import api, auth, bulk, events, scaling, tasks

app = Chalice(app_name="skyclass")
api.configure(app)
app.register_blueprint(auth.bp)
app.register_blueprint(api.bp)
app.register_blueprint(bulk.bp)
app.register_blueprint(scaling.bp)
app.register_blueprint(tasks.bp)


@app.lambda_function(name="on_s3_event")
def on_s3_event(event, context):
    return events.on_s3_event(event, context)
'''
# cfn-lint findings that do not apply, with the reason (none today).
CFN_EXPLAINED: dict[str, str] = {}


@pytest.fixture(scope="module")
def cloudformation(tmp_path_factory) -> dict:
    """The SAM template `chalice package` writes for the CloudFormation variant."""
    root = tmp_path_factory.mktemp("cloudformation")
    project = chalice_project(root / "project")
    (project / "app.py").write_text(APP_FOR_CLOUDFORMATION)
    write_stage(project, STAGE, {INPUT_BUCKET: BUCKET}, POLICIES)
    subprocess.run(
        [str(Path(sys.executable).parent / "chalice"), "package", "--stage", STAGE,
         str(root / "out")],
        cwd=project, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}, check=True,
        capture_output=True, timeout=300,
    )
    return json.loads((root / "out" / "sam.json").read_text())


def cfn_lint(template: dict) -> list[str]:
    from cfnlint.api import lint

    return [f"{m.rule.id} {m.message}"
            for m in lint(json.dumps(template), regions=["us-east-1", "eu-west-1"])]


def test_the_cloudformation_passes_cfn_lint(cloudformation):
    # GIVEN the CloudFormation (SAM) template of the stage's functions, roles and API
    resources = cloudformation["Resources"]
    roles = {name.removesuffix("Role"): r["Properties"]["Policies"][0]["PolicyDocument"]
             for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert sorted(roles.values(), key=json.dumps) == sorted(POLICIES.values(), key=json.dumps)
    assert any(r["Type"] == "AWS::Serverless::Api" for r in resources.values())
    # THEN cfn-lint, in the regions skyclass is deployed to, has nothing left to say
    assert [f for f in cfn_lint(cloudformation)
            if f.split(" ", 1)[0] not in CFN_EXPLAINED] == []


def test_cfn_lint_finds_what_it_is_here_for(cloudformation):
    # A runtime Lambda no longer takes: the kind of mistake cfn-lint exists to catch.
    broken = json.loads(json.dumps(cloudformation))
    handler = next(r for r in broken["Resources"].values()
                   if r["Type"] == "AWS::Serverless::Function")
    handler["Properties"]["Runtime"] = "python2.7"
    assert any(f.startswith("E2533") for f in cfn_lint(broken))


def lambda_runtime(folder: Path) -> Path:
    """A folder exposing boto3, botocore and their dependencies, as the runtime does."""
    folder.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = find_spec(name)
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


def test_the_package_imports_every_handler_with_only_boto3_beside_it(package, tmp_path):
    out = package
    terraform = json.loads((out / "chalice.tf.json").read_text())
    functions = terraform["resource"]["aws_lambda_function"]
    handlers = sorted(f["handler"] for f in functions.values())
    package = tmp_path / "package"
    with zipfile.ZipFile(out / "deployment.zip") as zipped:
        zipped.extractall(package)
    runtime = lambda_runtime(tmp_path / "runtime")

    probe = (
        f"PACKAGE = {str(package)!r}\nRUNTIME = {str(runtime)!r}\n"
        f"HANDLERS = {handlers!r}\nFORBIDDEN = {FORBIDDEN!r}\n" + PROBE
    )
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": os.environ.get("PATH", "")},
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)

    assert handlers == [
        "app.app", "chalice_app.events.on_s3_event", "chalice_app.scaling.scale",
        "chalice_app.tasks.on_finish_task", "chalice_app.tasks.on_list_task",
    ]
    assert all(seen["handlers"].values()) and all(seen["views"])
    assert seen["routes"] == {
        "/": ["GET"], "/classify": ["POST"], "/fleet": ["GET"], "/health": ["GET"],
        "/images/{image_id}": ["GET"], "/jobs": ["POST"], "/jobs/{job_id}": ["GET"],
        "/jobs/{job_id}/cancel": ["POST"], "/jobs/{job_id}/export": ["GET"],
        "/jobs/{job_id}/images": ["POST"],
    }
    assert seen["app_from"].startswith(str(package))
    assert seen["skyclass_from"].startswith(str(package))
    assert not set(FORBIDDEN) & set(seen["loaded"])
    assert BUCKET in json.dumps(terraform["resource"]["aws_s3_bucket_notification"])
    assert (package / "chalice_app" / "web" / "index.html").is_file()


def test_the_package_ships_the_runtime_layer_only(package):
    # GIVEN the deployment zip chalice package built
    with zipfile.ZipFile(package / "deployment.zip") as zipped:
        names = zipped.namelist()
    # THEN its Python code is the app, the Lambda side and the runtime layer (and the
    # part of Chalice that Chalice adds itself), nothing else
    code = {n for n in names if n.endswith(".py")}
    assert code
    outside = sorted(n for n in code if not n.startswith(
        ("app.py", "chalice/", "chalice_app/", "skyclass/runtime/"))
        and n != "skyclass/__init__.py")
    assert outside == []
    # AND none of the operations layer, the worker or the bake travels with it
    assert not [n for n in names if n.startswith(
        ("skyclass/operations/", "ec2_worker/", "ami_build/", "tests/", "bench/"))]
    assert "skyclass/runtime/settings.py" in code


def test_the_terraform_holds_the_handlers_the_schedule_and_the_s3_subscription(package):
    # GIVEN the Terraform `chalice package` wrote for a bootstrapped stage
    resources = json.loads((package / "chalice.tf.json").read_text())["resource"]
    functions = resources["aws_lambda_function"]
    # THEN it deploys the five handlers under the stage's names, with its variables
    assert {name: f["handler"] for name, f in functions.items()} == {
        "api_handler": "app.app", "on_s3_event": "chalice_app.events.on_s3_event",
        "scale": "chalice_app.scaling.scale", "on_list_task": "chalice_app.tasks.on_list_task",
        "on_finish_task": "chalice_app.tasks.on_finish_task"}
    assert {f["function_name"] for f in functions.values()} == {
        f"skyclass-{STAGE}", f"skyclass-{STAGE}-on_s3_event", f"skyclass-{STAGE}-scale",
        f"skyclass-{STAGE}-on_list_task", f"skyclass-{STAGE}-on_finish_task"}
    assert all(f["environment"]["variables"][INPUT_BUCKET] == BUCKET
               for f in functions.values())
    # AND the schedule runs the scaling Lambda every minute
    [rule] = resources["aws_cloudwatch_event_rule"].values()
    assert rule["schedule_expression"] == "rate(1 minute)"
    [target] = resources["aws_cloudwatch_event_target"].values()
    assert "aws_lambda_function.scale" in target["arn"]
    # AND the input bucket's new objects go to the S3-event Lambda
    [notification] = resources["aws_s3_bucket_notification"].values()
    assert notification["bucket"] == BUCKET
    [subscription] = notification["lambda_function"]
    assert "aws_lambda_function.on_s3_event" in subscription["lambda_function_arn"]
    assert subscription["events"] == ["s3:ObjectCreated:*"]
    # AND the bulk jobs' task queues feed their handlers, one task at a time
    mappings = {m["function_name"]: m for m in
                resources["aws_lambda_event_source_mapping"].values()}
    assert {m["batch_size"] for m in mappings.values()} == {1}
    assert len(mappings) == 2
    # AND each function's role carries exactly its own least-privilege policy
    policies = {name.removesuffix("_role"): json.loads(p["policy"])
                for name, p in resources["aws_iam_role_policy"].items()}
    assert policies == POLICIES
