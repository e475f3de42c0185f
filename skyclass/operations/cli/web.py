"""``skyclass open``: the web page (``GET /`` of the API) in the default browser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from urllib.parse import urlencode


def register(subparsers: argparse._SubParsersAction) -> None:
    from skyclass.operations.cli import api_options

    op = subparsers.add_parser("open", parents=[api_options()],
                               help="open the web page in a browser")
    op.add_argument("--job", action="append", default=[], metavar="JOB_ID",
                    help="open a job's results (repeatable: a selection split into jobs)")
    op.set_defaults(func=_open)


def page_url(api: str, job_ids: Sequence[str] = ()) -> str:
    """The page's URL for an API base URL; ``?job=…`` shows those jobs' results. The
    trailing slash keeps the page's relative URLs under a stage prefix (``…/api/``)."""
    query = urlencode([("job", job_id) for job_id in job_ids])
    return api.rstrip("/") + "/" + (f"?{query}" if query else "")


def _open(args: argparse.Namespace) -> int:
    import webbrowser

    import requests

    from skyclass.operations.api_client import SkyclassClient
    from skyclass.runtime.errors import SkyclassError

    url = page_url(args.api, args.job)
    try:
        SkyclassClient(args.api, timeout=5).health()
    except requests.ConnectionError as exc:
        raise SkyclassError(f"nothing answers at {args.api}: start the service with "
                            "`skyclass up`, or name its URL with --api") from exc
    print(url)
    if not webbrowser.open(url):
        print("skyclass: no browser found here; open the URL above yourself", file=sys.stderr)
    return 0
