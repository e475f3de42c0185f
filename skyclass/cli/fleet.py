"""``skyclass status``: the queue and the worker fleet, once or live."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    from skyclass.cli import api_options

    st = subparsers.add_parser("status", parents=[api_options()],
                               help="show the queue and the worker fleet")
    st.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    st.add_argument("--interval", type=float, default=2.0)
    st.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from skyclass.api_client import SkyclassClient

    client = SkyclassClient(args.api)
    if not args.watch:
        sys.stdout.write(render_fleet(client.fleet()))
        return 0
    from rich.live import Live
    from rich.text import Text

    with Live(Text(render_fleet(client.fleet())), refresh_per_second=4) as live:
        while True:
            time.sleep(args.interval)
            live.update(Text(render_fleet(client.fleet())))


def render_fleet(fleet: dict[str, Any]) -> str:
    queue = fleet.get("queue", {})
    lines = [
        f"backlog {queue.get('visible', 0)} visible, {queue.get('in_flight', 0)} in flight, "
        f"{queue.get('dead_letter', 0)} dead letters",
    ]
    instances = fleet.get("instances", [])
    lines.append(f"workers: {len(instances)} in the pool")
    for inst in instances:
        uptime = inst.get("uptime_s")
        up = f" up {uptime:.0f}s" if isinstance(uptime, int | float) else ""
        lines.append(f"  {inst.get('id')}  {inst.get('state')}{up}")
    decision = fleet.get("last_decision") or {}
    if decision:
        lines.append(f"last decision: {decision.get('reason', '')}")
    return "\n".join(lines) + "\n"
