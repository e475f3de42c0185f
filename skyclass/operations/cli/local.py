"""``skyclass up`` and ``skyclass emulator``: the local stack (skyclass/operations/local/)."""

from __future__ import annotations

import argparse

from skyclass.runtime import constants as c


def register(subparsers: argparse._SubParsersAction) -> None:
    from skyclass.operations.cli import env_default

    up = subparsers.add_parser(
        "up", help="start the whole service locally on an embedded AWS emulator")
    up.add_argument("--api-port", type=int, default=env_default(c.API_PORT, 8000, int))
    up.add_argument("--aws-port", type=int, default=env_default(c.AWS_PORT, 4566, int))
    up.add_argument("--max-workers", type=int, default=env_default(c.MAX_WORKERS, 4, int))
    up.add_argument("--boot-delay", type=float, default=env_default(c.BOOT_DELAY, 0.0, float),
                    help="simulated EC2 boot time in seconds")
    up.set_defaults(func=_up)

    emulator = subparsers.add_parser("emulator", help="run the embedded AWS emulator alone")
    emulator.add_argument("--port", type=int, default=env_default(c.AWS_PORT, 4566, int))
    emulator.set_defaults(func=_emulator)


def _up(args: argparse.Namespace) -> int:
    from skyclass.operations.local.stack import up

    return up(api_port=args.api_port, aws_port=args.aws_port,
              max_workers=args.max_workers, boot_delay=args.boot_delay)


def _emulator(args: argparse.Namespace) -> int:
    from skyclass.operations.local.emulator import serve

    serve(port=args.port)
    return 0
