"""``python -m ec2_worker``: the worker process, as systemd (or the local runner) starts it.

Builds everything once (settings, the engine that runs the model, chosen per machine and
warmed up for the batch sizes it will see, AWS clients, stage resources), logs one line
when ready with the engine and why it runs (also written for ``/fleet`` and the metrics,
``ec2_worker/engines/report.py``), and runs until SIGTERM or SIGINT,
finishing the batch in hand and releasing prefetched ones (ec2_worker/pipeline.py). On a
machine with a GPU the model runs there, with a larger batch unless
``SKYCLASS_BATCH_SIZE`` says otherwise.
If the model cannot be loaded it exits non-zero with the plain reason, so a restart loop
shows what is wrong.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.request

_STARTED = time.monotonic()  # the worker's time to ready counts from here
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

from ec2_worker.engine import batch_size_for, has_gpu  # noqa: E402
from ec2_worker.engines import report as engine_report  # noqa: E402
from ec2_worker.engines.build import build_engine  # noqa: E402
from ec2_worker.worker import Worker  # noqa: E402
from skyclass.runtime.aws import AwsClients  # noqa: E402
from skyclass.runtime.bulk.tracker import JobTracker  # noqa: E402
from skyclass.runtime.errors import SkyclassError  # noqa: E402
from skyclass.runtime.metrics import MetricsPublisher  # noqa: E402
from skyclass.runtime.names import StageResources  # noqa: E402
from skyclass.runtime.queue import WorkQueue  # noqa: E402
from skyclass.runtime.settings import Settings  # noqa: E402
from skyclass.runtime.store import JsonStore  # noqa: E402

log = logging.getLogger("ec2_worker")

_IMDS = "http://169.254.169.254/latest"


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        gpu = has_gpu()
        settings = settings.replace(batch_size=batch_size_for(
            settings.batch_size, configured=settings.is_configured("batch_size"), gpu=gpu))
        engine, chosen = build_engine(settings, gpu=gpu, batch_sizes={1, settings.batch_size})
        classifier = engine.classifier
        aws = AwsClients(settings.region)
        resources = StageResources.resolve(settings, aws)
    except SkyclassError as exc:
        log.error("cannot start: %s", exc.message)
        return 2
    except (ClientError, BotoCoreError) as exc:
        log.error("cannot start: cannot reach the stage's AWS resources: %s", exc)
        return 2

    worker = Worker(
        queue=WorkQueue(aws.sqs, resources.queue_url, resources.dlq_url),
        results=JsonStore(aws.s3, resources.output_bucket),
        s3=aws.s3,
        engine=engine,
        settings=settings,
        input_bucket=resources.input_bucket,
        worker_id=settings.worker_id or _instance_id() or socket.gethostname(),
        metrics=MetricsPublisher(aws.cloudwatch, settings.stage),
        tracker=JobTracker.for_stage(aws, resources),
    )

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    height, width = classifier.input_size
    ready = time.monotonic() - _STARTED
    log.info("worker %s ready: model %s, input %dx%d, batch up to %d, %s on %s, in %.1f s; %s",
             worker.worker_id, classifier.name, height, width, settings.batch_size,
             engine.precision, "GPU" if gpu else "CPU", ready, chosen.summary())
    engine_report.publish(chosen, s3=aws.s3, bucket=resources.output_bucket,
                          cloudwatch=aws.cloudwatch, stage=settings.stage,
                          worker_id=worker.worker_id, model=classifier.name, ready_seconds=ready)
    worker.run(stop)
    log.info("worker %s stopped", worker.worker_id)
    return 0


def _instance_id() -> str | None:
    """The EC2 instance id from the metadata service (IMDSv2), or None off EC2."""
    try:
        token_request = urllib.request.Request(
            f"{_IMDS}/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(token_request, timeout=1) as response:
            token = response.read().decode()
        id_request = urllib.request.Request(
            f"{_IMDS}/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(id_request, timeout=1) as response:
            return response.read().decode() or None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
