"""``skyclass classify`` (through the API) and ``skyclass drop`` (into the drop folder)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import mimetypes
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from skyclass.operations.cli import bulk
from skyclass.runtime import constants as c
from skyclass.runtime.contracts import DONE

JOB_CHUNK = 500  # images per POST /jobs


def register(subparsers: argparse._SubParsersAction) -> None:
    from skyclass.operations.cli import api_options

    cl = subparsers.add_parser("classify", parents=[api_options()],
                               help="classify image files and folders, or an S3 prefix in "
                                    "place (s3://BUCKET/PREFIX/)")
    cl.add_argument("paths", nargs="+", type=bulk.as_path, metavar="PATH")
    cl.add_argument("--top", type=int, default=1, help="labels to print per image")
    fmt = cl.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON result per line")
    fmt.add_argument("--csv", action="store_true", help="CSV: name,status,label,score,error")
    cl.add_argument("--out", type=Path, help="write the output to FILE instead of stdout "
                    "(for s3://: download the job's export there)")
    cl.add_argument("--timeout", type=float, default=3600.0, help="give up after SECONDS")
    cl.add_argument("--callback", metavar="URL", help="for s3://: POST the job's signed "
                    "summary to URL when it ends")
    cl.set_defaults(func=_classify)

    dr = subparsers.add_parser("drop", help="put files under incoming/ in the input bucket")
    dr.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    dr.add_argument("--prefix", default="", help="sub-folder under incoming/")
    dr.add_argument("--bucket", help="input bucket (default: the stage's)")
    dr.add_argument("--wait", action="store_true", help="wait for the results and print them")
    dr.add_argument("--timeout", type=float, default=600.0)
    dr.set_defaults(func=_drop)


def find_images(paths: Iterable[Path]) -> tuple[list[Any], list[tuple[Path, str]]]:
    """Files named directly, and image files found under folders (sorted; named by their
    path inside the folder, so photos/a/x.jpg and photos/b/x.jpg stay apart). Returns
    the images and the (path, reason) of files that cannot be sent."""
    from skyclass.operations.api_client import LocalImage

    images, skipped = [], []
    for path in paths:
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
            candidates = [p for p in candidates if _content_type(p).startswith("image/")]
        elif path.is_file():
            candidates = [path]
        else:
            skipped.append((path, "no such file or folder"))
            continue
        for file in candidates:
            content_type = _content_type(file)
            if not content_type.startswith("image/"):
                skipped.append((file, f"not an image file type ({content_type})"))
                continue
            name = file.relative_to(path).as_posix() if path.is_dir() else file.name
            images.append(LocalImage(file, name, content_type, file.stat().st_size))
    return images, skipped


def _content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _classify(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from skyclass.operations.api_client import SkyclassClient

    sources = [p for p in args.paths if isinstance(p, str)]
    if sources:
        if len(args.paths) > 1:
            print("skyclass: classify one s3:// prefix at a time, without local files",
                  file=sys.stderr)
            return 2
        return bulk.classify_source(args, sources[0])
    images, skipped = find_images(args.paths)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not images:
        print("skyclass: no images to classify", file=sys.stderr)
        return 2
    client = SkyclassClient(args.api)
    results: list[dict[str, Any]] = []
    with Progress(transient=True, console=_stderr_console()) as progress:
        jobs = []
        uploading = progress.add_task("uploading", total=len(images))
        with ThreadPoolExecutor(max_workers=8) as pool:
            for start in range(0, len(images), JOB_CHUNK):
                chunk = images[start : start + JOB_CHUNK]
                job = client.create_job(chunk)
                jobs.append(job["job_id"])
                uploads = list(zip(job["uploads"], chunk, strict=True))
                for _ in pool.map(lambda pair: client.upload(*pair), uploads):
                    progress.advance(uploading)
        classifying = progress.add_task("classifying", total=len(images))
        finished: dict[str, int] = {}

        def on_progress(job: dict[str, Any]) -> None:
            finished[job["job_id"]] = job["done"] + job["failed"]
            progress.update(classifying, completed=sum(finished.values()))

        for job_id in jobs:
            job = client.wait_for_job(job_id, timeout=args.timeout, on_progress=on_progress)
            results.extend(client.results(job_id, first=job))
            if job["pending"]:
                print(f"skyclass: job {job_id} still has {job['pending']} pending images "
                      f"after {args.timeout:.0f} s", file=sys.stderr)
    text = render_results(results, top=args.top, as_json=args.json, as_csv=args.csv)
    _write(text, args.out)
    failed = sum(r["status"] != DONE for r in results) + len(skipped)
    pending = len(images) - len(results)
    return 1 if failed or pending else 0


def render_results(results: list[dict[str, Any]], *, top: int = 1, as_json: bool = False,
                   as_csv: bool = False) -> str:
    results = sorted(results, key=lambda r: (r.get("name") or "", r.get("image_id") or ""))
    if as_json:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["name", "status", "label", "score", "error", "image_id"])
        for r in results:
            writer.writerow([r.get("name"), r["status"], r.get("label") or "",
                             "" if r.get("score") is None else f"{r['score']:.4f}",
                             r.get("error") or "", r.get("image_id")])
        return out.getvalue()
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "label", "score", box=None, pad_edge=False)
    for r in results:
        if r["status"] == DONE:
            labels = ", ".join(f"{t['label']}" for t in r["top"][:top])
            table.add_row(r.get("name") or "", labels, f"{r['score']:.3f}")
        else:
            table.add_row(r.get("name") or "", f"FAILED: {r.get('error')}", "")
    buffer = io.StringIO()
    Console(file=buffer, width=120, no_color=True).print(table)
    return buffer.getvalue()


def _write(text: str, out: Path | None) -> None:
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _drop(args: argparse.Namespace) -> int:
    from skyclass.runtime.aws import AwsClients
    from skyclass.runtime.contracts import result_key
    from skyclass.runtime.names import StageResources
    from skyclass.runtime.settings import Settings
    from skyclass.runtime.store import JsonStore

    settings = Settings.from_env(input_bucket=args.bucket)
    aws = AwsClients(settings.region)
    resources = StageResources.resolve(settings, aws)
    found, skipped = find_images(args.paths)
    prefix = c.INCOMING_PREFIX + (args.prefix.strip("/") + "/" if args.prefix.strip("/") else "")
    images, keys, first_with = [], [], {}
    for image in found:
        key = prefix + image.name
        if key in first_with:  # the second upload would replace the first one's image
            skipped.append((image.path, f"same name as {first_with[key]} in the drop folder"))
            continue
        first_with[key] = image.path
        images.append(image)
        keys.append(key)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    store = JsonStore(aws.s3, resources.output_bucket)
    # Results already there answer earlier uploads of the same names, not these ones.
    earlier = store.etags(result_key(key) for key in keys) if args.wait else {}
    for image, key in zip(images, keys, strict=True):
        aws.s3.upload_file(str(image.path), resources.input_bucket, key,
                           ExtraArgs={"ContentType": image.content_type})
        print(f"s3://{resources.input_bucket}/{key}", file=sys.stderr)
    if not args.wait:
        return 0 if not skipped else 1
    results, waiting = store.wait_for([result_key(key) for key in keys], timeout=args.timeout,
                                      earlier=earlier)
    sys.stdout.write(render_results(results))
    if waiting:
        print(f"no result yet for {len(waiting)} of {len(keys)} images after {args.timeout:g} s "
              f"(they stay queued; 'skyclass status' shows the backlog)", file=sys.stderr)
    return 1 if waiting or skipped or any(r["status"] != DONE for r in results) else 0
