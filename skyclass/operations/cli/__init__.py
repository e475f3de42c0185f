"""The ``skyclass`` command: run the local stack, classify images, watch the fleet.

    skyclass up                  # the whole service on an embedded AWS (make run)
    skyclass emulator            # the AWS emulator alone
    skyclass classify PATH...    # upload files/folders through the API, print labels
    skyclass classify s3://B/P/  # classify an S3 prefix in place; --out FILE: its export
    skyclass cancel JOB          # cancel a job
    skyclass drop PATH...        # put files under incoming/ in the input bucket
    skyclass status [--watch]    # backlog, workers and the scaler's last decision
    skyclass open [--job ID]     # the web page in a browser
    skyclass redrive             # send dead-lettered messages back to the work queue
    skyclass logs [--image ID]   # a stage's logs, or one image's trail (API, ingest, worker)
    skyclass deploy --stage S    # the whole service on AWS (bake-ami, bootstrap, teardown)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from skyclass.operations.cli import bulk, classify, deploy, fleet, local, logs, redrive, web
from skyclass.runtime.constants import API_URL

# Each module registers its own subcommands (``register(subparsers)``); this one parses,
# dispatches, and turns skyclass errors into one line and exit code 2.
COMMANDS = (local, classify, bulk, fleet, redrive, deploy, logs, web)
DEFAULT_API = "http://127.0.0.1:8000"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's one place that turns errors into a message
        from skyclass.runtime.errors import SkyclassError

        if isinstance(exc, SkyclassError) or exc.__class__.__module__.startswith("requests"):
            print(f"skyclass: {exc}", file=sys.stderr)
            return 2
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyclass", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def api_options() -> argparse.ArgumentParser:
    """The ``--api URL`` option, for commands that talk to the HTTP API."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--api", default=os.environ.get(API_URL) or DEFAULT_API,
                        help=f"API base URL (env {API_URL}, default {DEFAULT_API})")
    return parent
