"""A bulk job over an S3 prefix in the local stack, from ``POST /jobs`` to its export.

    python -m bench.bulk [--images 10000] [--compare 1000] [--workers 2]

The stack runs the tests' tiny model (testbed/tiny_model.py, trained once and
cached), so the figures are the service's own costs — listing, queueing, counting,
exporting — not ResNet-50's. Each job gets a stack of its own: first ``--compare``
images, then ``--images``, small JPEGs under a prefix with three objects in every
hundred that are not images (so skipping is exercised too), classified in place as one
job. For each the bench prints:

* wall time from ``POST /jobs`` to the export being there, and images per second;
* AWS requests per image by API (S3 GET/PUT/LIST, SQS send/receive/delete,
  DynamoDB...), as the stack's own components made them: the IAM judge
  (tests/support/iam), loaded into every process of the stack to record without
  refusing, counts each component's calls by operation and writes them when its
  process ends. The scaler's ticks and the API's answers to this bench's polling
  follow the clock, not the images, and are shown apart; whether the per-image cost
  grows with the job's size is the comparison of the two jobs. (Recording costs the
  stack some CPU, so the wall times are a little pessimistic.)
* what the emulator served during the job, per image and by service, from its request
  counter (bench.support): everything, the local stand-ins' polling and this bench's
  included, so an upper bound on the same figures;
* the export's rows, which must equal the images, and the skipped count.

Then ``GET /jobs/{id}`` is timed on the big job and on a 10-image job, in interleaved
rounds (the same page size, ``limit=10``, and the default page), and listing alone is
measured: a copy of the lister, in this process, lists the big prefix into a scratch
queue and table of the emulator (no worker sees them), counting its own requests.

Figures go to docs/bulk.md beside this command; they are a local machine's, where every
"instance" and the emulator share a few cores: never mistake them for AWS's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import boto3  # noqa: E402
import requests  # noqa: E402

from bench.support import TINY_MODEL_CACHE, model_env, running_stack  # noqa: E402
from testbed.stack_process import REPO_ROOT  # noqa: E402
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes  # noqa: E402

SOURCE_BUCKET = "bench-bulk-archive"
POLL_S = 2.0
JOB_TIMEOUT_S = 3 * 3600
LATENCY_ROUNDS = 40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=1_000,
                        help="images of the smaller job the per-image costs are compared with")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    print(cpu_line())
    from testbed.tiny_model import train_tiny_model

    tiny = train_tiny_model(TINY_MODEL_CACHE)
    for name, images in (("compare", args.compare), ("job", args.images)):
        with tempfile.TemporaryDirectory(prefix="skyclass-bench-calls-") as calls:
            env = model_env(tiny.model_path, tiny.labels_path,
                            SKYCLASS_SOURCE_BUCKETS=SOURCE_BUCKET,
                            SKYCLASS_LIST_PAGE_SIZE=str(args.page_size), **recording(calls))
            with running_stack(env, max_workers=args.workers) as bench:
                stack = bench.stack
                s3 = client(stack.endpoint, "s3")
                s3.create_bucket(Bucket=SOURCE_BUCKET)
                started = time.monotonic()
                others = fill(s3, f"{name}/", images)
                print(f"-- {name}: s3://{SOURCE_BUCKET}/{name}/ holds {images} images and "
                      f"{others} other objects (filled in {time.monotonic() - started:.0f} s)")
                served = bench.emulator_requests()
                job_id, wall = run_job(stack, name, images, others)
                served = {k: v - served.get(k, 0) for k, v in bench.emulator_requests().items()}
                print("emulator served        " + ", ".join(
                    f"{service} {n / images:.2f}" for service, n in
                    sorted(served.items(), key=lambda kv: -kv[1])) + " per image (every "
                    "request during the job: stand-ins' polling and this bench's too)")
                if name == "job":
                    fill(s3, "tiny/", 10)
                    tiny_job, _ = run_job(stack, "tiny", 10, 0)
                    latency(stack, job_id, images, tiny_job)
                    listing_alone(stack.endpoint, f"{name}/", args.page_size, images + others)
            # The stack has stopped: every process wrote what its components called.
            print_requests(read_calls(Path(calls)), images)


def recording(folder: str) -> dict[str, str]:
    """The environment that has the stack's processes record every AWS call their
    components make: the IAM judge (tests/support/iam), recording without refusing."""
    site = str(REPO_ROOT / "tests" / "support" / "iam_site")
    return {"PYTHONPATH": os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH"))
                                          if p),
            "SKYCLASS_IAM_LOG_DIR": folder, "SKYCLASS_IAM_ENFORCE": "0"}


def read_calls(folder: Path) -> Counter[tuple[str, str]]:
    """Calls by (component, "service:Operation"), summed over the processes."""
    calls: Counter[tuple[str, str]] = Counter()
    for path in folder.glob("calls-*.json"):
        for component, service, operation, n in json.loads(path.read_text()):
            calls[(component, f"{service}:{operation}")] += n
    return calls


# Components whose calls follow the clock or the client rather than the images: the
# scaler's ticks, and the API answering this bench's polling and timing rounds.
APART = ("scale", "api_handler")


def print_requests(calls: Counter[tuple[str, str]], images: int) -> None:
    if not calls:
        print("requests per image     (no calls recorded)")
        return
    by_api: Counter[str] = Counter()
    for (component, api), n in calls.items():
        if component not in APART:
            by_api[api] += n
    print("requests per image     " + ", ".join(
        f"{api} {n / images:.3f}" for api, n in by_api.most_common()
        if n / images >= 0.0005))
    apart = {c: sum(n for (component, _), n in calls.items() if component == c)
             for c in APART}
    print(f"                       total {sum(by_api.values()) / images:.2f} per image "
          "(lister, workers, finisher); besides, over the stack's life: "
          + ", ".join(f"{c} {n} calls" for c, n in apart.items()))


def cpu_line() -> str:
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"cpu                    {model}, {os.cpu_count()} cores, flags: {' '.join(wanted)}"


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def fill(s3: Any, prefix: str, images: int) -> int:
    """``images`` small JPEGs under ``prefix`` and, for every hundred, three objects that
    are not images (a note, an empty file, a folder marker); returns how many of those."""
    others = {f"{prefix}notes-{i}.txt": b"notes" for i in range(images // 100)}
    others |= {f"{prefix}empty-{i}.jpg": b"" for i in range(images // 100)}
    others |= {f"{prefix}folder-{i}/": b"" for i in range(images // 100)}

    def put(index: int) -> None:
        label = CLASSES[index % len(CLASSES)]
        s3.put_object(Bucket=SOURCE_BUCKET, Key=f"{prefix}{label}/{index:07d}.jpg",
                      Body=image_bytes(label, HELD_OUT_SEED + index % 500, size=(64, 48)))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, range(images)))
        list(pool.map(lambda kv: s3.put_object(Bucket=SOURCE_BUCKET, Key=kv[0], Body=kv[1]),
                      others.items()))
    return len(others)


def run_job(stack: Any, name: str, images: int, others: int) -> tuple[str, float]:
    began = time.monotonic()
    created = requests.post(f"{stack.api}/jobs", json={"source": f"s3://{SOURCE_BUCKET}/{name}/"},
                            timeout=30)
    created.raise_for_status()
    job_id = created.json()["job_id"]
    while True:
        job = requests.get(f"{stack.api}/jobs/{job_id}?limit=1", timeout=120).json()
        if job.get("export") or time.monotonic() - began > JOB_TIMEOUT_S:
            break
        time.sleep(POLL_S)
    wall = time.monotonic() - began
    assert job["export"] and job["export"]["rows"] == images, job
    assert job["done"] + job["failed"] == images and job["skipped"]["total"] == others, job
    if name != "tiny":
        print(f"wall time              {wall:.1f} s from POST /jobs to the export "
              f"({images / wall:.1f} images/s); {job['done']} done, {job['failed']} failed, "
              f"{job['skipped']['total']} skipped, export {job['export']['rows']} rows; "
              f"{job['resent']} keys sent twice, {job['duplicates_dropped']} copies dropped")
    return job_id, wall


def latency(stack: Any, big: str, images: int, small: str) -> None:
    """GET /jobs/{id} on the big and the 10-image job, interleaved, same page size."""
    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(LATENCY_ROUNDS):
        for label, job_id in (("10,000" if images == 10_000 else str(images), big),
                              ("10", small)):
            for query in ("?limit=10", ""):
                start = time.perf_counter()
                response = requests.get(f"{stack.api}/jobs/{job_id}{query}", timeout=30)
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                timings.setdefault((label, query or "default page"), []).append(elapsed * 1000)
    print(f"-- GET /jobs/{{id}}, {LATENCY_ROUNDS} interleaved rounds, median (p90) ms")
    for (label, query), values in timings.items():
        values.sort()
        print(f"{label:>6}-image job, {query:<13} {statistics.median(values):7.1f} "
              f"({values[int(0.9 * len(values))]:.1f})")


def listing_alone(endpoint: str, prefix: str, page_size: int, keys: int) -> None:
    """The lister, in this process, over the big prefix into a scratch queue and table."""
    from skyclass.operations.provision.bulk import ensure_jobs_table
    from skyclass.runtime.aws import AwsClients
    from skyclass.runtime.bulk.jobstore import JobStore
    from skyclass.runtime.bulk.lister import Lister
    from skyclass.runtime.bulk.tasks import TaskQueues
    from skyclass.runtime.queue import WorkQueue
    from skyclass.runtime.settings import Settings

    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    aws = AwsClients("us-east-1")
    calls: Counter[str] = Counter()
    for service in ("s3", "sqs", "dynamodb"):
        aws.client(service).meta.events.register(
            "before-call", _counter(calls, service))
    scratch = f"bench-listing-{uuid.uuid4().hex[:8]}"
    table = ensure_jobs_table(aws, scratch, {})
    queue = WorkQueue(aws.sqs, aws.sqs.create_queue(QueueName=scratch)["QueueUrl"])
    settings = Settings.from_env({}, source_buckets=SOURCE_BUCKET, list_page_size=page_size,
                                 stage="bench")
    jobs = JobStore(aws.client("dynamodb"), table)
    job_id = uuid.uuid4().hex[:20]
    jobs.create(job_id, "source", sealed=False, source_bucket=SOURCE_BUCKET,
                source_prefix=prefix)
    lister = Lister(aws.s3, jobs, queue, TaskQueues(aws.sqs, "bench", queue.url), settings)
    calls.clear()
    start = time.monotonic()
    report = lister.run(job_id, remaining=lambda: 3600.0)
    wall = time.monotonic() - start
    print(f"-- listing alone: {report.listed} keys listed, {report.queued} enqueued in "
          f"{wall:.1f} s: {report.listed / wall:.0f} keys/s listed, "
          f"{report.queued / wall:.0f} images/s enqueued ({report.pages} pages)")
    print("   requests per image  " + ", ".join(
        f"{op} {n / report.queued:.3f}" for op, n in calls.most_common()))
    assert report.listed == keys and report.outcome == "listed", report
    aws.sqs.delete_queue(QueueUrl=queue.url)
    aws.client("dynamodb").delete_table(TableName=table)


def _counter(calls: Counter[str], service: str) -> Callable[..., None]:
    def count(model: Any, **_: Any) -> None:
        calls[f"{service}:{model.name}"] += 1
    return count


if __name__ == "__main__":
    main()
