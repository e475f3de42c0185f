"""``skyclass classify s3://BUCKET/PREFIX/`` (a bulk job over objects read in place) and
``skyclass cancel JOB``: docs/bulk.md.

The job runs in the service; the command starts it, shows its progress (listed, queued,
done, failed) until it ends, prints its summary and where its export is, and with
``--out FILE`` downloads the export (CSV for ``--csv`` or a ``.csv`` file, else JSON
Lines). Ctrl-C stops watching, not the job: the command says how to cancel it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

POLL_S = 1.0


def is_source(path: str) -> bool:
    return path.startswith("s3://")


def register(subparsers: argparse._SubParsersAction) -> None:
    from skyclass.operations.cli import api_options

    cancel = subparsers.add_parser("cancel", parents=[api_options()],
                                   help="cancel a job (its queued images are dropped)")
    cancel.add_argument("job_id", metavar="JOB")
    cancel.set_defaults(func=_cancel)


def classify_source(args: argparse.Namespace, source: str) -> int:
    from rich.progress import BarColumn, Progress, TextColumn

    from skyclass.operations.api_client import SkyclassClient

    client = SkyclassClient(args.api)
    job = client.create_source_job(source, callback_url=args.callback)
    job_id = job["job_id"]
    print(f"job {job_id}: classifying {source} in place", file=sys.stderr)
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[counts]}"))
    deadline = time.monotonic() + args.timeout
    try:
        with Progress(*columns, transient=True, console=_stderr()) as progress:
            bar = progress.add_task("listing", total=None, counts="")
            while job["state"] == "running" and time.monotonic() < deadline:
                time.sleep(POLL_S)
                job = client.get_job(job_id, limit=1)
                progress.update(bar, description="listing" if job["listing"] else "classifying",
                                total=None if job["listing"] else job["total"],
                                completed=job["done"] + job["failed"], counts=progress_text(job))
    except KeyboardInterrupt:
        print(f"\nstopped watching; job {job_id} goes on (cancel it with "
              f"`skyclass cancel {job_id}`)", file=sys.stderr)
        return 130
    if job["state"] == "running":
        print(f"job {job_id} still running after {args.timeout:.0f} s; see `GET "
              f"/jobs/{job_id}`", file=sys.stderr)
        return 1
    job = _wait_for_export(client, job_id)
    print(summary_text(job), file=sys.stderr)
    if args.out or args.json or args.csv:
        fmt = "csv" if args.csv or (args.out and args.out.suffix == ".csv") else "jsonl"
        link = client.export_link(job_id, fmt)
        if args.out:
            client.download(link["url"], args.out)
            print(f"wrote {args.out} ({fmt})", file=sys.stderr)
        else:
            client.download(link["url"], sys.stdout.buffer)
    return 0 if job["state"] == "complete" and not job["failed"] else 1


def progress_text(job: dict[str, Any]) -> str:
    parts = [f"{job['listed']} listed", f"{job['queued']} queued", f"{job['done']} done"]
    if job["failed"]:
        parts.append(f"{job['failed']} failed")
    if job["skipped"]["total"]:
        parts.append(f"{job['skipped']['total']} skipped")
    return ", ".join(parts)


def summary_text(job: dict[str, Any]) -> str:
    skipped = job.get("skipped") or {"total": 0}
    lines = [f"job {job['job_id']} {job['state']}: {job['done']} done, {job['failed']} failed"
             + (f", {job['cancelled']} cancelled" if job.get("cancelled") else "")
             + (f"; {job['listed']} objects listed, {skipped['total']} skipped "
                f"({skipped.get('not_an_image', 0)} not images, {skipped.get('size', 0)} "
                "empty or too large)" if "listed" in job else "")]
    if job.get("error"):
        lines.append(f"  error: {job['error']}")
    export = job.get("export")
    if export:
        lines.append(f"  export: {export['csv']}\n          {export['jsonl']} "
                     f"({export['rows']} rows)")
    return "\n".join(lines)


def _wait_for_export(client: Any, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id, limit=1)
        if job.get("export") or time.monotonic() > deadline:
            return job
        time.sleep(POLL_S)


def _cancel(args: argparse.Namespace) -> int:
    from skyclass.operations.api_client import SkyclassClient

    job = SkyclassClient(args.api).cancel_job(args.job_id)
    print(summary_text(job), file=sys.stderr)
    return 0


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def as_path(value: str) -> Path | str:
    return value if is_source(value) else Path(value)
