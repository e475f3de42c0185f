"""``skyclass status``: the queue and the worker fleet from ``GET /fleet``, once or live
(``--watch`` redraws in place until Ctrl-C)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    from skyclass.operations.cli import api_options

    st = subparsers.add_parser("status", parents=[api_options()],
                               help="show the queue and the worker fleet")
    st.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    st.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    st.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from skyclass.operations.api_client import SkyclassClient

    client = SkyclassClient(args.api)
    if not args.watch:
        sys.stdout.write(render_fleet(client.fleet()))
        return 0
    from rich.live import Live
    from rich.text import Text

    with Live(Text(_fetch(client)), refresh_per_second=4, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(args.interval)
                live.update(Text(_fetch(client)), refresh=True)
        except KeyboardInterrupt:
            return 0


def _fetch(client: Any) -> str:
    """The rendered fleet, or why it could not be read: a watch outlives a restart."""
    try:
        return render_fleet(client.fleet()) + f"\n(refreshed {time.strftime('%H:%M:%S')})\n"
    except Exception as exc:  # connection refused while the stack restarts, and the like
        return f"could not read the fleet from the API: {exc}\n"


def render_fleet(fleet: dict[str, Any]) -> str:
    queue = fleet.get("queue", {})
    lines = [
        f"backlog {queue.get('visible', 0)} visible, {queue.get('in_flight', 0)} in flight, "
        f"{queue.get('delayed', 0)} delayed; {queue.get('dead_letter', 0)} dead letters"
        + (f"; {queue['ingesting']} still to ingest" if queue.get("ingesting") else ""),
    ]
    throughput = fleet.get("throughput") or {}
    if throughput.get("per_worker") is not None:
        line = (f"throughput {throughput['per_worker']:g} img/s per worker "
                f"({throughput.get('source', '?')})")
        if throughput.get("finished_per_s"):
            line += f", fleet finished {throughput['finished_per_s']:g} img/s lately"
        lines.append(line)
    instances = fleet.get("instances", [])
    up = sum(1 for i in instances if i.get("state") in ("pending", "running"))
    lines.append(f"workers: {up} up of {len(instances)} in the pool")
    note = (fleet.get("limits") or {}).get("note")
    if note:
        lines.append(f"  ({note})")
    for inst in instances:
        uptime = inst.get("uptime_s")
        up_for = f" up {uptime:.0f}s" if isinstance(uptime, int | float) else ""
        booting = " (booting)" if inst.get("booting") else ""
        engine = inst.get("engine") or {}
        runs = f"  {engine['engine']} {engine.get('precision')}" if engine.get("engine") else ""
        lines.append(f"  {inst.get('id')}  {inst.get('state')}{up_for}{booting}{runs}")
    decision = fleet.get("last_decision") or {}
    if decision:
        lines.append(f"last decision ({decision.get('at', '?')}): {decision.get('reason', '')}")
        for verb in ("started", "stopped"):
            if decision.get(verb):
                lines.append(f"  {verb} {', '.join(decision[verb])}")
    return "\n".join(lines) + "\n"
