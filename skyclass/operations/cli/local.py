"""``skyclass up`` and ``skyclass emulator``: the local stack (skyclass/operations/local/).

Options default to their ``SKYCLASS_*`` variables, then to the settings' defaults
(skyclass.runtime.settings): an option given beats the variable, which beats the default.
"""

from __future__ import annotations

import argparse

from skyclass.runtime import constants as c


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up", help="start the whole service locally on an embedded AWS emulator")
    up.add_argument("--api-port", type=int, help=f"the API's port (env {c.API_PORT}, 8000)")
    up.add_argument("--aws-port", type=int, help=f"the emulator's port (env {c.AWS_PORT}, 4566)")
    up.add_argument("--max-workers", type=int,
                    help=f"worker instances in the pool (env {c.MAX_WORKERS}; default: "
                         "as many as this machine has room for)")
    up.add_argument("--boot-delay", type=float,
                    help=f"simulated EC2 boot time in seconds (env {c.BOOT_DELAY}, 0)")
    up.set_defaults(func=_up)

    emulator = subparsers.add_parser("emulator", help="run the embedded AWS emulator alone")
    emulator.add_argument("--port", type=int, help=f"its port (env {c.AWS_PORT}, 4566)")
    emulator.add_argument("--eventual-consistency", type=float, metavar="SECONDS",
                          help="rehearse AWS's eventual consistency: new instance profiles, "
                               "images and tags are not found, and released snapshots stay "
                               "in use, for this long (env SKYCLASS_EMULATOR_LAG, 0)")
    emulator.set_defaults(func=_emulator)


def _up(args: argparse.Namespace) -> int:
    from skyclass.operations.local.stack import up
    from skyclass.runtime.settings import Settings

    settings = Settings.from_env(api_port=args.api_port, aws_port=args.aws_port,
                                 max_workers=args.max_workers, boot_delay=args.boot_delay)
    # A fleet size the operator chose is kept; otherwise the stack sizes it to the machine.
    chosen = settings.max_workers if settings.is_configured("max_workers") else None
    return up(api_port=settings.api_port, aws_port=settings.aws_port,
              max_workers=chosen, boot_delay=settings.boot_delay)


def _emulator(args: argparse.Namespace) -> int:
    import os

    from skyclass.operations.local.emulator import LAG_VARIABLE, serve
    from skyclass.runtime.settings import Settings

    lag = args.eventual_consistency
    if lag is None:
        lag = float(os.environ.get(LAG_VARIABLE) or 0)
    serve(port=Settings.from_env(aws_port=args.port).aws_port, lag=lag)
    return 0
