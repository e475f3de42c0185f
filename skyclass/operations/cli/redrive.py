"""``skyclass redrive``: send dead-lettered work messages back to the work queue."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    redrive = subparsers.add_parser(
        "redrive", help="move messages from the dead-letter queue back to the work queue")
    redrive.add_argument("--max", type=int, default=None, dest="limit",
                         help="move at most N messages (default: all)")
    redrive.set_defaults(func=_redrive)


def _redrive(args: argparse.Namespace) -> int:
    from skyclass.runtime.aws import AwsClients
    from skyclass.runtime.names import StageResources
    from skyclass.runtime.queue import WorkQueue
    from skyclass.runtime.settings import Settings

    settings = Settings.from_env()
    aws = AwsClients(settings.region)
    resources = StageResources.resolve(settings, aws)
    moved = WorkQueue(aws.sqs, resources.queue_url, resources.dlq_url).redrive(args.limit)
    print(f"moved {moved} message(s) from the dead-letter queue back to the work queue")
    return 0
