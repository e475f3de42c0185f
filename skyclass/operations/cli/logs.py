"""``skyclass logs --stage S [--image ID] [--follow]``: a stage's log lines from CloudWatch
Logs (its Lambdas' groups and its workers' group), or one image's trail through the
API, ingest, the workers and the scaler. The local stage's lines are in the emulator's
CloudWatch Logs (the stack ships them there), read the same way."""

from __future__ import annotations

import argparse
import os
import sys
import time

from skyclass.runtime import constants as c


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "logs", help="a stage's log lines, or one image's trail (--image), from CloudWatch Logs")
    command.add_argument("--stage", default=os.environ.get(c.STAGE) or "local",
                         help=f"the stage (env {c.STAGE}, default local)")
    command.add_argument("--image", metavar="ID", help="only the lines that name this image")
    command.add_argument("--follow", action="store_true", help="keep printing new lines")
    command.add_argument("--since", type=float, default=60.0, metavar="MINUTES",
                         help="how far back to look (default 60)")
    command.set_defaults(func=_logs)


def _logs(args: argparse.Namespace) -> int:
    from skyclass.operations.logs import LogTrail
    from skyclass.runtime.aws import AwsClients
    from skyclass.runtime.settings import Settings

    settings = Settings.from_env(stage=args.stage)
    if settings.stage == "local" and not os.environ.get("AWS_ENDPOINT_URL"):
        _point_at_the_local_emulator(settings)
        settings = Settings.from_env(stage=args.stage)
    trail = LogTrail(AwsClients(settings.region).client("logs"), settings.stage)
    since_ms = int((time.time() - args.since * 60) * 1000)
    if args.follow:
        for line in trail.follow(since_ms, args.image):
            print(line.render(), flush=True)
        return 0
    lines = trail.read(since_ms, args.image)
    for line in lines:
        print(line.render())
    if not lines:
        about = f"image {args.image}" if args.image else "it"
        print(f"skyclass: no log lines of stage {settings.stage} about {about} in the last "
              f"{args.since:g} min", file=sys.stderr)
        return 1
    return 0


def _point_at_the_local_emulator(settings) -> None:
    """`skyclass up`'s emulator, with its fake credentials (never a real account's)."""
    from skyclass.operations.local.stack import emulator_env
    from skyclass.runtime.settings import standard_region

    endpoint = f"http://127.0.0.1:{settings.aws_port}"
    os.environ.update(emulator_env(endpoint, standard_region(os.environ) or "us-east-1"))
