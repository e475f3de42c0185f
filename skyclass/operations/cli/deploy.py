"""``skyclass bake-ami|bootstrap|deploy|teardown --stage S``: a stage on AWS (or on
whatever ``AWS_ENDPOINT_URL`` names, e.g. ``skyclass emulator`` for a rehearsal).
They work on the project around the current directory, as ``chalice`` does.
See docs/deploy.md."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stage", required=True, help="the stage, e.g. dev or prod")
    common.add_argument("--project-dir", type=Path, default=None,
                        help="the Chalice project (where app.py and .chalice/ are; default: "
                             "the one around the current directory)")
    common.add_argument("--wait-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    sizing = argparse.ArgumentParser(add_help=False)
    sizing.add_argument("--max-workers", type=int, default=None,
                        help="worker pool size (env SKYCLASS_MAX_WORKERS, default 4)")
    sizing.add_argument("--instance-type", default=None,
                        help="worker instance type (env SKYCLASS_INSTANCE_TYPE, "
                             "default c7i.large)")

    baking = argparse.ArgumentParser(add_help=False)
    baking.add_argument("--base-ami", help="the builder's base image (default: the latest "
                                           "Amazon Linux 2023; for GPU workers, one with "
                                           "NVIDIA drivers)")

    for name, func, text, parents in (
        ("bake-ami", _bake_ami, "bake the stage's worker AMI (reports boot-to-ready time)",
         [common, sizing, baking]),
        ("bootstrap", _bootstrap, "create the stage's buckets, queues, worker pool and "
                                  ".chalice/ entries (idempotent)", [common, sizing]),
        ("deploy", _deploy, "bake (if no AMI) + bootstrap + chalice deploy; prints the API URL",
         [common, sizing, baking]),
    ):
        command = subparsers.add_parser(name, help=text, parents=parents)
        command.set_defaults(func=func)
    teardown = subparsers.add_parser(
        "teardown", help="delete everything the stage created, and nothing else",
        parents=[common])
    teardown.set_defaults(func=_teardown)


def _settings(args: argparse.Namespace):
    from skyclass.runtime.settings import Settings

    return Settings.from_env(stage=args.stage, max_workers=getattr(args, "max_workers", None),
                             instance_type=getattr(args, "instance_type", None))


def _aws(settings):
    from skyclass.runtime.aws import AwsClients

    return AwsClients(settings.region)


def _project(args: argparse.Namespace) -> Path:
    from skyclass.operations.project import project_around

    return project_around(args.project_dir)


def _waiter(args: argparse.Namespace):
    """Every wait's limit is stated (docs/deploy.md, "Limits"); ``--wait-scale`` (hidden)
    shrinks them all for a rehearsal against ``skyclass emulator --eventual-consistency``."""
    from skyclass.operations.waiting import Waiter, Waits

    return Waiter(_say, Waits().scaled(args.wait_scale))


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} skyclass | {message}", flush=True)


def _bake_ami(args: argparse.Namespace) -> int:
    from skyclass.operations.deploy.deployer import bake_ami

    settings = _settings(args)
    bake_ami(settings, _aws(settings), _project(args), _say, base_ami=args.base_ami,
             waiter=_waiter(args))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from skyclass.operations.deploy.bootstrap import bootstrap

    settings = _settings(args)
    done = bootstrap(settings, _aws(settings), _project(args), waiter=_waiter(args))
    p = done.provisioned
    _say(f"stage {settings.stage}: buckets {p.resources.input_bucket}, "
         f"{p.resources.output_bucket}; queue {p.resources.queue_url}; "
         f"AMI {p.ami_id or 'none yet (skyclass bake-ami)'}; "
         f"{len(p.worker_instance_ids)} worker instance(s)")
    _say(".chalice/config.json " + ("updated" if done.config_changed else "already up to date"))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from skyclass.operations.deploy.deployer import deploy

    settings = _settings(args)
    deployed = deploy(settings, _aws(settings), _project(args), _say, base_ami=args.base_ami,
                      waiter=_waiter(args))
    _say(f"deployed stage {settings.stage}")
    print(deployed.api_url, flush=True)
    return 0


def _teardown(args: argparse.Namespace) -> int:
    from skyclass.operations.deploy.teardown import Teardown

    settings = _settings(args)
    Teardown(settings, _aws(settings), _project(args), _say, waiter=_waiter(args)).run()
    return 0
